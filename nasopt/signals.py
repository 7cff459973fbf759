"""Stop a run cleanly on SIGINT/SIGTERM: the first signal asks the loop to stop after the current batch
(with a checkpoint), a second one acts at once (the handler that was installed before)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Any


class StopFlag:
    """Why the run should stop (a signal name, ``"request"``), or None to go on."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def request(self, reason: str = "request") -> None:
        """Stop after the current batch."""
        self.reason = reason

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if self.reason is not None:  # second signal: behave as before us
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.reason = name
        msg = (
            f"\nnasopt: {name} received - stopping after this batch with a checkpoint (again: stop at once)\n"
        )
        with contextlib.suppress(OSError):
            os.write(2, msg.encode())

    @contextlib.contextmanager
    def handling_signals(self, enabled: bool = True) -> Iterator[None]:
        """Catch SIGINT/SIGTERM while in the context (only possible in the main thread)."""
        self._previous = {}
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._on_signal)
        try:
            yield
        finally:
            for signum, prev in self._previous.items():
                signal.signal(signum, prev)


__all__ = ["StopFlag"]
