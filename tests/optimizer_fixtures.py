"""Transitional alias for tests/test_bo.py only: the fixtures now live in :mod:`nasopt.testing`.

Delete this file once test_bo.py imports ``nasopt.testing``.
"""

from __future__ import annotations

from nasopt.testing import evaluate, load_state_tree, make_problem, run_loop, save_state_tree

__all__ = ["evaluate", "load_state_tree", "make_problem", "run_loop", "save_state_tree"]
