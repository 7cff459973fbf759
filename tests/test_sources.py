"""Data sources: precedence, cache directory, checksum-verified atomic download, offline errors.

No test reaches the network: ``urllib.request.urlopen`` is replaced by a local fake serving bytes.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from benchmark import sources
from benchmark.dataset import read_records
from benchmark.sources import (
    ARCHIVE,
    ARCHIVE_NAME,
    PINNED_COMMIT,
    SPLIT_FILES,
    SPLIT_NAMES,
    ChecksumMismatchError,
    DatasetNotFoundError,
    DownloadError,
    cache_dir,
    fetch,
    resolve_dataset,
    resolve_split_dir,
)

Kit = Any  # conftest.RecordKit


class FakeResponse(io.BytesIO):
    """What ``urlopen`` returns: a readable body with headers; optionally dies after ``fail_after`` bytes."""

    def __init__(self, data: bytes, fail_after: int | None = None) -> None:
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}
        self.fail_after = fail_after

    def read(self, size: int | None = -1) -> bytes:
        if self.fail_after is not None and self.tell() >= self.fail_after:
            raise ConnectionResetError("connection reset by peer")
        if self.fail_after is not None:
            size = min(size if size is not None and size >= 0 else 1 << 30, self.fail_after - self.tell())
        return super().read(size)


class FakeServer:
    """Serves ``files`` (url -> bytes); 404 for anything else; records every requested url."""

    def __init__(self, files: dict[str, bytes], fail_after: int | None = None) -> None:
        self.files = files
        self.fail_after = fail_after
        self.calls: list[str] = []

    def urlopen(self, req: urllib.request.Request | str, timeout: float | None = None) -> FakeResponse:
        url = req.full_url if isinstance(req, urllib.request.Request) else req
        self.calls.append(url)
        if url not in self.files:
            raise urllib.error.HTTPError(url, 404, "Not Found", None, None)  # type: ignore[arg-type]
        return FakeResponse(self.files[url], self.fail_after)


Serve = Callable[..., FakeServer]


def _offline(req: Any, timeout: float | None = None) -> Any:
    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


def _never(req: Any, timeout: float | None = None) -> Any:
    raise AssertionError("the network must not be used here")


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: no NASOPT_DATASET, the cache in ``tmp_path/cache`` (not created)."""
    monkeypatch.delenv("NASOPT_DATASET", raising=False)
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def served(anb_kit: Kit, monkeypatch: pytest.MonkeyPatch) -> Serve:
    """Install a fake server for a small synthetic archive and split files, with matching pinned sums."""

    def install(archive_bytes: bytes | None = None, fail_after: int | None = None) -> FakeServer:
        buf = io.BytesIO()
        records = anb_kit.records(range(8))
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, rec in records.items():
                data = anb_kit.encode(rec)
                info = tarfile.TarInfo("anb_dataset_jsons/" + name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        good = buf.getvalue()
        splits = {
            "train_paths.json": b'["../x/result_0.json", "../x/result_1.json", "../x/result_2.json"]',
            "val_paths.json": b'["../x/result_3.json"]',
            "test_paths.json": b'["../x/result_4.json"]',
        }
        monkeypatch.setattr(sources, "ARCHIVE", replace(ARCHIVE, sha256=hashlib.sha256(good).hexdigest(),
                                                         size=len(good)))
        monkeypatch.setattr(sources, "SPLIT_FILES", {
            n: replace(SPLIT_FILES[n], sha256=hashlib.sha256(b).hexdigest(), size=len(b))
            for n, b in splits.items()
        })
        files = {ARCHIVE.url: good if archive_bytes is None else archive_bytes}
        files.update({SPLIT_FILES[n].url: b for n, b in splits.items()})
        server = FakeServer(files, fail_after)
        monkeypatch.setattr(urllib.request, "urlopen", server.urlopen)
        server.good = good  # type: ignore[attr-defined]
        return server

    return install


# ------------------------------------------------------------------------------------------ locating


def test_cache_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("NASOPT_CACHE_DIR", raising=False)
    assert cache_dir() == tmp_path / "home" / ".cache" / "nasopt"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache_dir() == tmp_path / "xdg" / "nasopt"
    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "override"))
    assert cache_dir() == tmp_path / "override"
    assert not (tmp_path / "override").exists()  # looking it up creates nothing


def test_precedence_path_env_cache_download(
    tmp_path: Path, env: Path, anb_kit: Kit, monkeypatch: pytest.MonkeyPatch, served: Serve
) -> None:
    recs = anb_kit.records(range(3))
    explicit = anb_kit.write_tar(tmp_path / "explicit" / "mine.tar.gz", recs)
    from_env = anb_kit.write_tar(tmp_path / "envdir" / "anb_dataset_dev.tar.gz", recs)
    cached = anb_kit.write_tar(env / ARCHIVE_NAME, recs)
    monkeypatch.setenv("NASOPT_DATASET", str(tmp_path / "envdir"))
    server = served()
    assert resolve_dataset(explicit) == explicit
    assert resolve_dataset(None) == from_env
    monkeypatch.delenv("NASOPT_DATASET")
    assert resolve_dataset(None) == cached
    assert server.calls == []  # nothing downloaded while a local copy exists
    cached.unlink()
    with pytest.raises(DatasetNotFoundError, match="downloading is disabled"):
        resolve_dataset(None, download=False)
    assert server.calls == []
    got = resolve_dataset(None)
    assert got == env / ARCHIVE_NAME
    assert got.read_bytes() == server.good  # type: ignore[attr-defined]
    assert len(server.calls) == 1 + len(SPLIT_NAMES)
    assert resolve_split_dir(got) == env / "splits" / "default_split"
    assert len(read_records(got)) == 8
    resolve_dataset(None)
    assert len(server.calls) == 1 + len(SPLIT_NAMES)  # second time: from the cache


def test_path_forms(tmp_path: Path, env: Path, anb_kit: Kit) -> None:
    recs = anb_kit.records(range(3))
    dev = anb_kit.write_tar(tmp_path / "shared" / "anb_dataset_dev.tar.gz", recs)
    assert resolve_dataset(tmp_path / "shared") == dev
    full = anb_kit.write_tar(tmp_path / "shared" / ARCHIVE_NAME, recs)
    assert resolve_dataset(tmp_path / "shared") == full  # the full archive wins over the dev one
    records_dir = anb_kit.write_dir(tmp_path / "records", recs, sub="deep/er")
    assert resolve_dataset(records_dir) == records_dir
    assert resolve_dataset(str(dev)) == dev


def test_bad_explicit_paths_do_not_fall_through(
    tmp_path: Path, env: Path, anb_kit: Kit, monkeypatch: pytest.MonkeyPatch
) -> None:
    anb_kit.write_tar(env / ARCHIVE_NAME, anb_kit.records(range(2)))  # a good cache that must not be used
    monkeypatch.setattr(urllib.request, "urlopen", _never)
    with pytest.raises(DatasetNotFoundError, match="does not exist") as info:
        resolve_dataset(tmp_path / "nowhere.tar.gz")
    assert "nowhere.tar.gz" in str(info.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetNotFoundError, match="without an anb_dataset"):
        resolve_dataset(tmp_path / "empty")
    monkeypatch.setenv("NASOPT_DATASET", str(tmp_path / "typo"))
    with pytest.raises(DatasetNotFoundError, match="NASOPT_DATASET") as info:
        resolve_dataset(None)
    assert "typo" in str(info.value)
    assert isinstance(info.value, FileNotFoundError)


def test_split_dir_next_to_data_then_cache(tmp_path: Path, env: Path, anb_kit: Kit,
                                           served: Serve) -> None:
    archive = anb_kit.write_tar(tmp_path / "data" / "anb_dataset_dev.tar.gz", anb_kit.records(range(2)))
    server = served()
    assert resolve_split_dir(archive) is None
    assert server.calls == []
    cache_splits = env / "splits" / "default_split"
    cache_splits.mkdir(parents=True)
    for name in SPLIT_NAMES:
        (cache_splits / name).write_text("[]")
    assert resolve_split_dir(archive) == cache_splits
    local = tmp_path / "data" / "splits" / "default_split"
    local.mkdir(parents=True)
    for name in SPLIT_NAMES[:2]:
        (local / name).write_text("[]")
    assert resolve_split_dir(archive) == cache_splits  # an incomplete set is ignored
    (local / SPLIT_NAMES[2]).write_text("[]")
    assert resolve_split_dir(archive) == local
    assert resolve_split_dir(tmp_path / "data") == local
    assert server.calls == []


def test_split_files_download_on_request(tmp_path: Path, env: Path, served: Serve) -> None:
    server = served()
    got = resolve_split_dir(tmp_path / "somewhere.tar.gz", download=True)
    assert got == env / "splits" / "default_split"
    assert sorted(p.name for p in got.iterdir()) == sorted(SPLIT_NAMES)
    assert sorted(server.calls) == sorted(SPLIT_FILES[n].url for n in SPLIT_NAMES)


# ---------------------------------------------------------------------------------------- downloading


def test_checksum_mismatch_deletes_the_download(env: Path, served: Serve) -> None:
    evil = b"\x1f\x8b" + b"not the archive" * 100
    served(archive_bytes=evil)
    with pytest.raises(ChecksumMismatchError) as info:
        resolve_dataset(None)
    msg = str(info.value)
    assert sources.ARCHIVE.sha256 in msg  # expected
    assert hashlib.sha256(evil).hexdigest() in msg  # actual
    assert ARCHIVE.url in msg
    assert list(env.iterdir()) == []  # neither the archive nor a temp file is left


def test_connection_cut_leaves_no_partial_file(tmp_path: Path, env: Path,
                                               served: Serve) -> None:
    server = served(fail_after=100)
    with pytest.raises(DatasetNotFoundError) as info:
        resolve_dataset(None)
    assert isinstance(info.value.__cause__, DownloadError)
    assert "connection reset" in str(info.value)
    assert list(env.iterdir()) == []
    # an existing file is only ever replaced whole: a failed fetch leaves it untouched
    target = tmp_path / "keep" / "file.bin"
    target.parent.mkdir()
    target.write_bytes(b"old content")
    with pytest.raises(DownloadError):
        fetch(sources.ARCHIVE, target, progress=False)
    assert target.read_bytes() == b"old content"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.bin"]
    assert len(server.calls) == 2


def test_fetch_writes_verified_file(tmp_path: Path, served: Serve) -> None:
    server = served()
    target = tmp_path / "new" / "x.tar.gz"
    assert fetch(sources.ARCHIVE, target, progress=False) == target
    assert target.read_bytes() == server.good  # type: ignore[attr-defined]
    assert [p.name for p in target.parent.iterdir()] == ["x.tar.gz"]


def test_offline_error_says_how_to_supply_the_data(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(urllib.request, "urlopen", _offline)
    with pytest.raises(DatasetNotFoundError) as info:
        resolve_dataset(None)
    msg = str(info.value)
    for part in ("NASOPT_DATASET", "--dataset", str(env), ARCHIVE_NAME, "Network is unreachable"):
        assert part in msg
    assert isinstance(info.value.__cause__, DownloadError)
    assert not env.exists() or list(env.iterdir()) == []


def test_http_error_is_a_download_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server = FakeServer({})
    monkeypatch.setattr(urllib.request, "urlopen", server.urlopen)
    with pytest.raises(DownloadError, match="404"):
        fetch(ARCHIVE, tmp_path / "a.tar.gz", progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------ constants


def test_urls_are_pinned() -> None:
    for remote in (ARCHIVE, *SPLIT_FILES.values()):
        assert f"/{PINNED_COMMIT}/" in remote.url
        assert remote.url.startswith("https://github.com/afzalxo/Accel-NASBench/raw/")
        assert len(remote.sha256) == 64 and remote.size > 0
    assert set(SPLIT_FILES) == set(SPLIT_NAMES)


@pytest.mark.dataset
def test_pinned_split_sums_match_the_shipped_files(anb_split_dir: Path) -> None:
    for name in SPLIT_NAMES:
        data = (anb_split_dir / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == SPLIT_FILES[name].sha256, name
        assert len(data) == SPLIT_FILES[name].size, name


def test_split_download_failure_keeps_the_archive(env: Path, served: Serve) -> None:
    server = served()
    for name in SPLIT_NAMES:
        del server.files[SPLIT_FILES[name].url]
    with pytest.warns(UserWarning, match="not the default split files"):
        got = resolve_dataset(None)
    assert got == env / ARCHIVE_NAME and got.read_bytes() == server.good  # type: ignore[attr-defined]
    assert resolve_split_dir(got) is None


def test_cache_holds_archives_only(tmp_path: Path, env: Path, anb_kit: Kit,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Loose JSON in the cache is not data; a directory holding the archive reads as that archive."""
    monkeypatch.setattr(urllib.request, "urlopen", _never)
    anb_kit.write_dir(env, anb_kit.records(range(2)))
    with pytest.raises(DatasetNotFoundError, match="downloading is disabled"):
        resolve_dataset(None, download=False)
    recs = anb_kit.records(range(4))
    archive = anb_kit.write_tar(tmp_path / "shared" / "anb_dataset_dev.tar.gz", recs)
    ds = read_records(tmp_path / "shared")
    assert ds.source == str(archive) and len(ds) == 4
