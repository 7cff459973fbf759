"""Small I/O helpers shared by every package: atomic file writes and the package versions for provenance."""

from __future__ import annotations

import contextlib
import functools
import os
import platform
import shutil
from pathlib import Path

#: fsync temporary files before the rename (off by default: an atomic rename already survives a killed
#: *process*; set True, or pass ``fsync=True``, to also survive a power loss)
FSYNC = False

#: packages whose versions are recorded in summaries, caches and fronts
PROVENANCE_PACKAGES = (
    "nasopt",
    "numpy",
    "scipy",
    "pandas",
    "pymoo",
    "xgboost",
    "lightgbm",
    "torch",
    "botorch",
)


def fsync_file(path: Path, fsync: bool | None = None) -> None:
    if FSYNC if fsync is None else fsync:
        with open(path, "rb") as fh:
            os.fsync(fh.fileno())


def atomic_write_bytes(path: str | Path, data: bytes, fsync: bool | None = None) -> None:
    """Write ``data`` to ``path`` through a temporary file and ``os.replace``."""
    p = Path(path)
    tmp = p.with_name(f".{p.name}.tmp-{os.getpid()}")
    try:
        tmp.write_bytes(data)
        fsync_file(tmp, fsync)
        os.replace(tmp, p)
    except BaseException:  # a full disk, a read-only directory: leave no temporary file behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str, fsync: bool | None = None) -> None:
    """Write ``text`` (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode("utf-8"), fsync)


def atomic_copy(src: str | Path, dst: str | Path, fsync: bool | None = None) -> None:
    """Copy a file atomically (temporary copy + ``os.replace``)."""
    d = Path(dst)
    tmp = d.with_name(f".{d.name}.tmp-{os.getpid()}")
    try:
        shutil.copyfile(src, tmp)
        fsync_file(tmp, fsync)
        os.replace(tmp, d)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise


@functools.cache
def _installed_versions(packages: tuple[str, ...]) -> tuple[tuple[str, str], ...]:
    from importlib import metadata

    out = [("python", platform.python_version())]
    for pkg in packages:
        for dist in (pkg, f"{pkg}-cpu"):  # e.g. xgboost is installed as the xgboost-cpu distribution
            with contextlib.suppress(metadata.PackageNotFoundError):
                out.append((pkg, metadata.version(dist)))
                break
    return tuple(out)


def package_versions(packages: tuple[str, ...] = PROVENANCE_PACKAGES) -> dict[str, str]:
    """``{"python": "3.11.7", "numpy": "2.1.0", ...}`` for the installed ones of ``packages`` (a new dict)."""
    return dict(_installed_versions(packages))


def parent_of(pid: int) -> int | None:
    """The parent process of ``pid`` (Linux ``/proc``), or None when it is gone (a zombie counts as gone) or
    cannot be told."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            stat = fh.read()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after "pid (comm)": state, ppid, ...
    if len(fields) < 2 or fields[0] in ("Z", "X"):
        return None
    return int(fields[1]) if fields[1].isdigit() else None


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists and is not a zombie (another user's process counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    if os.path.isdir("/proc/self"):
        return parent_of(pid) is not None
    return True


__all__ = [
    "FSYNC",
    "atomic_copy",
    "atomic_write_bytes",
    "atomic_write_text",
    "fsync_file",
    "package_versions",
    "parent_of",
    "pid_alive",
]
