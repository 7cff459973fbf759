"""The runner's progress bar: evaluations done, with the incumbents' best accuracy and hypervolume."""

from __future__ import annotations

import sys
import time

from nasopt.incumbents import Incumbents


class ProgressBar:
    """tqdm bar over evaluations with ``best acc .. hv ..`` as postfix (refreshed at most every 0.5 s).

    Args:
        incumbents: where the postfix numbers come from.
        total: evaluations of the budget (None = unknown).
        initial: evaluations already done (a resumed run).
        desc: the bar's label.
        enabled: True, False, or None (only on a terminal).
    """

    def __init__(
        self, incumbents: Incumbents, *, total: int | None, initial: int, desc: str, enabled: bool | None
    ) -> None:
        from tqdm.auto import tqdm

        self.incumbents = incumbents
        self._last = 0.0
        self.bar = tqdm(
            total=total,
            initial=initial,
            unit="eval",
            desc=desc,
            disable=None if enabled is None else not enabled,
            dynamic_ncols=True,
            file=sys.stderr,
        )

    def _postfix(self) -> None:
        inc = self.incumbents
        acc = "n/a" if inc.best_accuracy is None else f"{inc.best_accuracy:.2f}%"
        self.bar.set_postfix_str(f"best acc {acc} hv {inc.hypervolume:.4f}", refresh=False)

    def update(self, n: int) -> None:
        """``n`` more evaluations done."""
        self.bar.update(n)
        now = time.perf_counter()
        if not self.bar.disable and now - self._last > 0.5:
            self._postfix()
            self._last = now

    def close(self) -> None:
        if not self.bar.disable:
            self._postfix()
        self.bar.close()


__all__ = ["ProgressBar"]
