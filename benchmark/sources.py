"""Where the Accel-NASBench data comes from: a path, ``NASOPT_DATASET``, the user cache, or a download.

Resolution order of :func:`resolve_dataset`:

1. an explicit path (function argument, ``--dataset`` on the command line);
2. the environment variable ``NASOPT_DATASET``;
3. an ``anb_dataset*.tar.gz`` archive in the user cache (:func:`cache_dir`: ``$NASOPT_CACHE_DIR``, else
   ``$XDG_CACHE_HOME/nasopt``, else ``~/.cache/nasopt``);
4. a download of the full upstream archive and the default split files, pinned to one upstream commit,
   checked against SHA-256 sums and written atomically into the cache.

A path may be a ``.tar.gz`` archive, a directory holding an ``anb_dataset*.tar.gz`` archive (such as the
shared development copy), or a directory of ``result_N.json`` records (searched recursively). Nothing is
downloaded at import time or in any constructor: only :func:`resolve_dataset` (with ``download=True``),
:func:`resolve_split_dir` (with ``download=True``), :func:`download_dataset`, :func:`download_splits` and
:func:`fetch` touch the network.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import urllib.request
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from benchmark.errors import NasoptError

#: Upstream repository and the commit every download is pinned to.
UPSTREAM_REPO = "afzalxo/Accel-NASBench"
PINNED_COMMIT = "42603572d530310e6bac7191d00cf45625a6b197"
_RAW_BASE = f"https://github.com/{UPSTREAM_REPO}/raw/{PINNED_COMMIT}"

#: Environment variables.
ENV_DATASET = "NASOPT_DATASET"
ENV_CACHE_DIR = "NASOPT_CACHE_DIR"

#: File name of the full upstream archive (also what the cache holds).
ARCHIVE_NAME = "anb_dataset_jsons.tar.gz"
#: Glob for archives recognised inside a data directory.
ARCHIVE_GLOB = "anb_dataset*.tar.gz"
#: Split files and where they live relative to a data directory (and to the cache directory).
SPLIT_NAMES: tuple[str, ...] = ("train_paths.json", "val_paths.json", "test_paths.json")
SPLIT_SUBDIR = Path("splits") / "default_split"

DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK = 1 << 16


@dataclass(frozen=True)
class RemoteFile:
    """One upstream file: where to get it and what it must hash to."""

    name: str
    url: str
    sha256: str
    size: int


#: The full upstream dataset (5,138 ``result_N.json`` records).
ARCHIVE = RemoteFile(
    name=ARCHIVE_NAME,
    url=f"{_RAW_BASE}/anb_dataset/anb_dataset_jsons.tar.gz",
    sha256="3520992d42e368b7c08c99fc3f6612855b5b366bf98668a7f19d49f3131aa4ae",
    size=1_173_570,
)

#: The upstream default split files (``configs/data_splits/default_split/`` at the pinned commit).
SPLIT_FILES: dict[str, RemoteFile] = {
    "train_paths.json": RemoteFile(
        "train_paths.json",
        f"{_RAW_BASE}/configs/data_splits/default_split/train_paths.json",
        "ab9c76dcddc70c9a5d9ef6b0c0038f1ebb9cbf6b527deb981204493410f20875",
        265_631,
    ),
    "val_paths.json": RemoteFile(
        "val_paths.json",
        f"{_RAW_BASE}/configs/data_splits/default_split/val_paths.json",
        "b03d1f2738002e6fd21282430fc7994ab259f6866275966de81f633e14177e5b",
        33_179,
    ),
    "test_paths.json": RemoteFile(
        "test_paths.json",
        f"{_RAW_BASE}/configs/data_splits/default_split/test_paths.json",
        "2f4d328d078f18f0ce8ca8f8d10ae4901bdc4b85604057a06797cd35937d83ac",
        33_162,
    ),
}


#: The paper's proxy ablation (``plots/ablations_plots/csvs/`` at the pinned commit): 117 architectures
#: trained with the proxified scheme and with the higher-fidelity "few-proxy" reference scheme, 3 seeds each
#: (top-1, top-5, MACs, params, training seconds and the genes per row); read by ``nasopt proxy analyze``.
ABLATION_SUBDIR = Path("ablation")
ABLATION_FILES: dict[str, RemoteFile] = {
    name: RemoteFile(name, f"{_RAW_BASE}/plots/ablations_plots/csvs/{name}", sha, size)
    for name, sha, size in (
        ("fewproxy-seed1.csv", "108c3425e8ea4b865cf20a023266c396a3da9080074d3d0f2ce6d48c7db3351a", 17_348),
        ("fewproxy-seed2.csv", "6d8f3f377f760e325dcb862ff0dc7e261d5702da712867047e321c0822bcee1d", 17_400),
        ("fewproxy-seed3.csv", "e00d93833916d0ed9dbb556694a78f51be92787b5260282d946b5c9051bbd095", 17_357),
        ("proxified-seed1.csv", "ab8dfce48bc0ca59d365f5bfde70c1036112fb694a773856fb72adc45ddf5e90", 17_411),
        ("proxified-seed2.csv", "7cd2c96a6ec9c0c63a56780a700baa6dfa7df199a2d2d8281a1185c658c0b054", 17_389),
        ("proxified-seed3.csv", "301f346c34f8528864f3332af07ae0fa71746aa442f27ce03409f7ea92cfdc3a", 17_411),
    )
}


class DataSourceError(NasoptError):
    """Base class of the errors raised while locating or downloading the data."""


class DatasetNotFoundError(DataSourceError, FileNotFoundError):
    """The data is not where it was said to be, or nowhere, and could not be downloaded."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class DownloadError(DataSourceError):
    """A download failed (network unreachable, HTTP error, connection cut)."""


class ChecksumMismatchError(DataSourceError):
    """A downloaded file does not have the expected SHA-256 sum (the partial file is deleted)."""


def cache_dir() -> Path:
    """The user cache directory for nasopt, absolute (not created here).

    ``$NASOPT_CACHE_DIR`` if set, else ``$XDG_CACHE_HOME/nasopt``, else ``~/.cache/nasopt``.
    """
    override = os.environ.get(ENV_CACHE_DIR)
    xdg = os.environ.get("XDG_CACHE_HOME")
    if override:
        d = Path(override).expanduser()
    elif xdg:
        d = Path(xdg).expanduser() / "nasopt"
    else:
        d = Path.home() / ".cache" / "nasopt"
    return Path(os.path.abspath(d))


def how_to_supply() -> str:
    """Instructions for supplying the data by hand (used in error messages)."""
    return (
        f"supply the data by hand: set {ENV_DATASET}=/path/to/{ARCHIVE_NAME} (or a directory holding it, "
        f"or a directory of result_N.json records), or pass --dataset PATH (nasopt search: "
        f"benchmark.params.dataset=PATH), or place {ARCHIVE_NAME} "
        f"(from {ARCHIVE.url}) in the cache directory {cache_dir()}"
    )


def find_data(path: str | os.PathLike[str]) -> Path | None:
    """What a data path points at (as an absolute path): the archive file itself, the archive inside a
    directory, or the directory when it holds ``result_*.json`` records; None when it holds none of these."""
    p = Path(os.path.abspath(Path(path).expanduser()))
    if p.is_file():
        return p
    if not p.is_dir():
        return None
    preferred = p / ARCHIVE_NAME
    if preferred.is_file():
        return preferred
    archives = sorted(a for a in p.glob(ARCHIVE_GLOB) if a.is_file())
    if archives:
        return archives[0]
    if any(f.is_file() for f in p.rglob("result_*.json")):
        return p
    return None


def _cached_archive(cache: Path) -> Path | None:
    """The archive in the cache directory (the full upstream one first), or None."""
    if not cache.is_dir():
        return None
    preferred = cache / ARCHIVE_NAME
    if preferred.is_file():
        return Path(os.path.abspath(preferred))
    archives = sorted(a for a in cache.glob(ARCHIVE_GLOB) if a.is_file())
    return Path(os.path.abspath(archives[0])) if archives else None


def _explicit(path: str | os.PathLike[str], what: str) -> Path:
    p = Path(path).expanduser()
    if not p.exists():
        raise DatasetNotFoundError(
            f"{what} {str(p)!r} does not exist; point it at {ARCHIVE_NAME} (or anb_dataset_dev.tar.gz), "
            f"a directory holding such an archive, or a directory of result_N.json records"
        )
    found = find_data(p)
    if found is None:
        raise DatasetNotFoundError(
            f"{what} {str(p)!r} is a directory without an {ARCHIVE_GLOB} archive or result_*.json records; "
            f"point it at the archive or at the directory of records"
        )
    return found


def check_dataset_setting(params: Mapping[str, Any]) -> None:
    """Raise :class:`DatasetNotFoundError` when the data a setting names is not there: the ``dataset`` of
    ``params`` (the surrogate's parameters), else ``$NASOPT_DATASET``. Looks only at the file system (no
    reading, no download): a command checks it before it creates any run directory."""
    path = params.get("dataset")
    if path is not None and str(path) != "":
        _explicit(path, "dataset path")
        return
    env = os.environ.get(ENV_DATASET)
    if env:
        _explicit(env, f"${ENV_DATASET}")


def resolve_dataset(path: str | os.PathLike[str] | None = None, download: bool = True) -> Path:
    """Locate the dataset (an archive file or a directory of records); download it into the cache last.

    Order: ``path`` -> ``$NASOPT_DATASET`` -> :func:`cache_dir` -> download (only if ``download``).
    An explicit path or environment variable that points nowhere is an error, not a fall-through.
    """
    if path is not None and str(path) != "":
        return _explicit(path, "dataset path")
    env = os.environ.get(ENV_DATASET)
    if env:
        return _explicit(env, f"${ENV_DATASET}")
    cache = cache_dir()
    cached = _cached_archive(cache)
    if cached is not None:
        return cached
    if not download:
        raise DatasetNotFoundError(
            f"Accel-NASBench data not found (no path given, ${ENV_DATASET} unset, no {ARCHIVE_GLOB} in "
            f"{cache}) and downloading is disabled; {how_to_supply()}"
        )
    try:
        archive = fetch(ARCHIVE, cache / ARCHIVE.name)
    except DownloadError as exc:
        raise DatasetNotFoundError(
            f"Accel-NASBench data not found locally and the download failed ({exc}); {how_to_supply()}"
        ) from exc
    try:
        download_splits(cache)
    except DownloadError as exc:  # the data itself is there; only the default split will be missing
        warnings.warn(
            f"downloaded {archive}, but not the default split files ({exc}); make_split(kind='default') "
            f"needs them in {cache / SPLIT_SUBDIR}",
            stacklevel=2,
        )
    return archive


def _complete_split_dir(d: Path) -> bool:
    return all((d / name).is_file() for name in SPLIT_NAMES)


def resolve_split_dir(dataset_path: str | os.PathLike[str], *, download: bool = False) -> Path | None:
    """Directory holding the default split files ``{train,val,test}_paths.json``, or None.

    Looks in ``<data dir>/splits/default_split/`` (the data dir is the archive's folder, or the record
    directory itself), then in ``<cache dir>/splits/default_split/``; with ``download=True`` missing split
    files are fetched into the cache.
    """
    p = Path(dataset_path).expanduser()
    base = p if p.is_dir() else p.parent
    candidates = [base / SPLIT_SUBDIR, cache_dir() / SPLIT_SUBDIR]
    for cand in candidates:
        if _complete_split_dir(cand):
            return cand
    if download:
        try:
            return download_splits(cache_dir())
        except DownloadError as exc:
            raise DatasetNotFoundError(
                f"default split files not found in {candidates[0]} or {candidates[1]} and the download "
                f"failed ({exc}); place {', '.join(SPLIT_NAMES)} in one of these directories"
            ) from exc
    return None


def download_dataset(dest_dir: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
    """Download the full upstream archive and the default split files into ``dest_dir`` (the cache).

    Returns the archive path. Files already present with the right name are kept.
    """
    dest = Path(dest_dir) if dest_dir is not None else cache_dir()
    archive = dest / ARCHIVE.name
    if not archive.is_file():
        fetch(ARCHIVE, archive, progress=progress)
    download_splits(dest, progress=progress)
    return archive


def download_splits(dest_dir: str | os.PathLike[str] | None = None, *, progress: bool = True) -> Path:
    """Download the default split files into ``<dest_dir>/splits/default_split/``; returns that directory."""
    dest = (Path(dest_dir) if dest_dir is not None else cache_dir()) / SPLIT_SUBDIR
    for name in SPLIT_NAMES:
        target = dest / name
        if not target.is_file():
            fetch(SPLIT_FILES[name], target, progress=progress)
    return dest


def resolve_ablation_dir(path: str | os.PathLike[str] | None = None, *, download: bool = True) -> Path:
    """A directory holding the six ablation CSVs of :data:`ABLATION_FILES`: ``path`` if given (it must hold
    them), else ``<cache>/ablation``, downloaded there (checksum-verified) when missing and ``download``."""
    if path is not None:
        d = Path(path).expanduser()
        missing = [n for n in ABLATION_FILES if not (d / n).is_file()]
        if missing:
            raise DatasetNotFoundError(
                f"{d} lacks the ablation CSVs {', '.join(missing)}; give the directory of "
                f"plots/ablations_plots/csvs/ of {UPSTREAM_REPO} at {PINNED_COMMIT[:7]}, or leave the path "
                "out to download them into the cache"
            )
        return d
    dest = cache_dir() / ABLATION_SUBDIR
    for name, remote in ABLATION_FILES.items():
        if not (dest / name).is_file():
            if not download:
                raise DatasetNotFoundError(f"the ablation CSVs are not in {dest} and downloading is off")
            fetch(remote, dest / name, progress=False)
    return dest


def _content_length(resp: Any) -> int | None:
    """Content-Length of a response, or None when absent or unreadable."""
    headers = getattr(resp, "headers", None)
    try:
        return int(headers["Content-Length"]) if headers is not None else None
    except (KeyError, TypeError, ValueError):
        return None


def fetch(remote: RemoteFile, dest: str | os.PathLike[str], *, progress: bool = True) -> Path:
    """Download ``remote`` to ``dest``: checksum-verified, atomic (temp file + ``os.replace``), with a
    progress bar. On any failure no file is left behind; a wrong checksum raises
    :class:`ChecksumMismatchError`, a network failure :class:`DownloadError`."""
    target = Path(dest)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    n_bytes = 0
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(remote.url, headers={"User-Agent": "nasopt"})
            try:
                with urllib.request.urlopen(request, timeout=DOWNLOAD_TIMEOUT_S) as resp:
                    total = _content_length(resp) or remote.size or None
                    with tqdm(
                        total=total,
                        unit="B",
                        unit_scale=True,
                        unit_divisor=1024,
                        desc=f"downloading {remote.name}",
                        disable=None if progress else True,
                    ) as bar:
                        while True:
                            chunk = resp.read(_CHUNK)
                            if not chunk:
                                break
                            n_bytes += len(chunk)
                            if remote.size and n_bytes > 4 * remote.size:
                                raise ChecksumMismatchError(
                                    f"download of {remote.url} sent more than {4 * remote.size} bytes "
                                    f"(expected {remote.size}); aborted, nothing was written"
                                )
                            digest.update(chunk)
                            out.write(chunk)
                            bar.update(len(chunk))
            except OSError as exc:  # URLError, HTTPError, timeouts, connection resets
                raise DownloadError(f"could not download {remote.url}: {exc}") from exc
            out.flush()
            os.fsync(out.fileno())
        actual = digest.hexdigest()
        if actual != remote.sha256:
            raise ChecksumMismatchError(
                f"checksum mismatch for {remote.url}: expected sha256 {remote.sha256} ({remote.size} bytes), "
                f"got sha256 {actual} ({n_bytes} bytes); the download was deleted. Try again; if it keeps "
                f"failing, download the file by hand and set {ENV_DATASET}"
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target
