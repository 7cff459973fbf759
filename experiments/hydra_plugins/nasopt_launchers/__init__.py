"""nasopt's Hydra launchers (``hydra/launcher=slurm|submitit_local|ray``); see :mod:`experiments.launching`.

Hydra imports every module under ``hydra_plugins`` when it starts, so nothing here imports submitit, Ray or
nasopt at import time.
"""
