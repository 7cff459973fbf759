"""The root of every user-facing nasopt error.

Every error a user can cause (a bad argument, a bad file, a run directory that holds another run) derives from
:class:`NasoptError`, so an application catches one type and prints its one-line message. Built-in bases are
kept beside it (``class ProblemError(NasoptError, ValueError)``) so ``except ValueError`` still works.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np


class NasoptError(Exception):
    """A user-facing nasopt error; its message names the problem and the way to fix it."""


class ConfigurationError(NasoptError, ValueError):
    """A bad setting (unknown parameter, wrong type or range, unknown name); the message names the fix."""


def check_keywords(owner: str, fn: Callable[..., Any], params: Mapping[str, Any], skip: int = 0) -> None:
    """Raise :class:`ConfigurationError` if ``params`` holds a keyword that ``fn`` does not accept.

    Args:
        owner: what the parameters belong to, for the message (e.g. ``"optimizer 're'"``).
        fn: the callable (class or function) the parameters go to.
        params: keyword arguments to check.
        skip: leading positional parameters that are not user settings (``problem, rng`` of an optimizer).
    """
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    ps = list(sig.parameters.values())
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in ps):
        return
    allowed = [p.name for p in ps[skip:] if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ConfigurationError(
            f"{owner} has no parameter(s) {', '.join(map(repr, unknown))}; "
            f"its parameters: {', '.join(allowed) or '(none)'}"
        )


def keyword_defaults(fn: Callable[..., Any], skip: int = 0) -> dict[str, Any]:
    """The keyword parameters of ``fn`` that have a default, with it (after ``skip`` leading parameters)."""
    try:
        params = list(inspect.signature(fn).parameters.values())[skip:]
    except (TypeError, ValueError):
        return {}
    return {
        p.name: p.default
        for p in params
        if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is not p.empty
    }


def plain(value: Any) -> str:
    """``value`` for a message: numpy scalars (also inside containers) as plain numbers: ``5``, not
    ``np.int64(5)``."""
    if isinstance(value, np.generic):
        return repr(value.item())
    if isinstance(value, np.ndarray):
        return repr(value.tolist())
    if isinstance(value, (list, tuple)):
        inner = ", ".join(plain(v) for v in value)
        return f"[{inner}]" if isinstance(value, list) else f"({inner}{',' if len(value) == 1 else ''})"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{plain(k)}: {plain(v)}" for k, v in value.items()) + "}"
    return repr(value)


__all__ = ["ConfigurationError", "NasoptError", "check_keywords", "keyword_defaults", "plain"]
