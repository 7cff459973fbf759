"""The wheel holds every package of the project (pyproject's explicit package list) and its type marker."""

from __future__ import annotations

from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def _pyproject() -> dict:
    with open(ROOT / "pyproject.toml", "rb") as fh:
        return tomllib.load(fh)


def test_every_package_directory_is_listed_in_pyproject() -> None:
    listed = set(_pyproject()["tool"]["setuptools"]["packages"])
    found = {"nasopt.conf"} if (ROOT / "conf" / "__init__.py").is_file() else set()
    plugins = ROOT / "experiments" / "hydra_plugins"  # installed as the hydra_plugins namespace (package-dir)
    for top in ("benchmark", "optimizers", "nasopt", "experiments"):
        for init in (ROOT / top).rglob("__init__.py"):
            if plugins in init.parents:
                found.add("hydra_plugins." + ".".join(init.parent.relative_to(plugins).parts))
            else:
                found.add(".".join(init.parent.relative_to(ROOT).parts))
    missing, stale = sorted(found - listed), sorted(listed - found)
    assert found == listed, f"missing from pyproject: {missing}; stale: {stale}"


def test_each_top_level_package_ships_py_typed() -> None:
    data = _pyproject()["tool"]["setuptools"]["package-data"]
    for top in ("benchmark", "optimizers", "nasopt", "experiments"):
        assert (ROOT / top / "py.typed").is_file()
        assert "py.typed" in data[top]
