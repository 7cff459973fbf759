"""The default optimizer, ``"auto"``: the one measured best at the budget asked for (README: "The default
optimizer").

Both ``nasopt search`` (``optimizer=auto``, its default) and :func:`nasopt.search` (``optimizer="auto"``,
its default) resolve it here, once, when a run starts; a resumed run keeps what it chose then (its
``config.yaml`` records ``optimizer.requested: auto`` and ``optimizer.choice``), even if this rule changed.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importing this module stays light: the search config schema names AUTO
    from nasopt.budget import Budget

#: the optimizer name that picks one by the budget
AUTO = "auto"
#: ``auto`` runs BO up to this many evaluations, NSGA-II beyond
AUTO_BO_MAX_EVALS = 5000


def choose_optimizer(budget: Budget) -> tuple[str, str]:
    """``(registry name, reason)`` of the optimizer ``auto`` runs for ``budget``.

    BO up to :data:`AUTO_BO_MAX_EVALS` evaluations: it leads every optimizer and peer measured at 100, 300
    and 1,500 evaluations, and since it does not know the budget, its first 1,500 evaluations of a longer
    run are the 1,500-evaluation run, which is ahead of NSGA-II's 5,000-evaluation median on acc_a100;
    its scaled mode keeps an ask of 8 near 1.5 s CPU. Beyond that, or without an evaluation limit,
    NSGA-II: no run compared them there, and BO's overhead keeps growing by that per batch.
    """
    n = budget.max_evals
    if n is None:
        return "nsga2", "the budget has no evaluation limit (budget.max_evals=null)"
    if n <= AUTO_BO_MAX_EVALS:
        return "bo", f"budget.max_evals={n} <= {AUTO_BO_MAX_EVALS}"
    return "nsga2", f"budget.max_evals={n} > {AUTO_BO_MAX_EVALS}"


def stored_choice(run_dir: str | Path | None) -> str | None:
    """The optimizer an ``auto`` run in ``run_dir`` chose when it started (its ``config.yaml``), or None
    (no such run there)."""
    from nasopt.rundir import CONFIG_FILE, RunFormatError, config_get, read_config

    if run_dir is None or not (Path(run_dir) / CONFIG_FILE).is_file():
        return None
    try:
        stored = read_config(Path(run_dir))
    except RunFormatError:
        return None
    if config_get(stored, "optimizer.requested") != AUTO:
        return None
    name = config_get(stored, "optimizer.name")
    return None if name is None else str(name)


def resolve(budget: Budget, run_dir: str | Path | None = None, overwrite: bool = False) -> tuple[str, str]:
    """``(registry name, choice)`` for an ``auto`` run: what a run in ``run_dir`` chose when it started
    (unless ``overwrite``), else :func:`choose_optimizer`'s pick; ``choice`` reads
    ``"auto -> bo, because budget.max_evals=300 <= 5000"``."""
    from nasopt.rundir import CONFIG_FILE

    stored = None if overwrite else stored_choice(run_dir)
    if stored is not None:  # resume: what the run chose when it started, even if the rule changed
        name, why = stored, f"chosen when the run started ({Path(str(run_dir)) / CONFIG_FILE})"
    else:
        name, why = choose_optimizer(budget)
    return name, f"{AUTO} -> {name}, because {why}"


__all__ = ["AUTO", "AUTO_BO_MAX_EVALS", "choose_optimizer", "resolve", "stored_choice"]
