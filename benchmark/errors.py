"""The root of every user-facing nasopt error.

Every error a user can cause (a bad argument, a bad file, a run directory that holds another run) derives from
:class:`NasoptError`, so an application catches one type and prints its one-line message. Built-in bases are
kept beside it (``class ProblemError(NasoptError, ValueError)``) so ``except ValueError`` still works.
"""

from __future__ import annotations


class NasoptError(Exception):
    """A user-facing nasopt error; its message names the problem and the way to fix it."""


__all__ = ["NasoptError"]
