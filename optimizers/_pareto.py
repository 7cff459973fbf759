"""Transitional alias for ``optimizers/bo.py`` only: the checks now live in :mod:`optimizers._checks` and the
tournament winners in :mod:`optimizers.tournament`. Delete this module once bo imports ``optimizers._checks``.
"""

from __future__ import annotations

from optimizers._checks import check_ask, check_bool, check_float, check_int, check_state, check_tell

__all__ = ["check_ask", "check_bool", "check_float", "check_int", "check_state", "check_tell"]
