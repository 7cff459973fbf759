"""``nasopt proxy analyze``: τ between schemes, seed-to-seed τ, cost ratio and top-k overlap, from records or
from the paper's ablation CSV format."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from benchmark import space
from benchmark.sources import ABLATION_FILES, DatasetNotFoundError, resolve_ablation_dir
from experiments.cli import main as nasopt_main
from nasopt.proxy.analyze import (
    ProxyDataError,
    analyze,
    read_ablation_csv,
    read_scheme_records,
    top_k_overlap,
)


def _ablation_csvs(d: Path, n: int = 40, noise_ref: float = 0.1, noise_prox: float = 0.3) -> None:
    """Six CSVs in the upstream format: a true accuracy per architecture, seed noise per scheme, the proxy
    5x cheaper and shifted down by 8 points."""
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    X = space.sample(n, rng)
    truth = rng.uniform(60, 75, n)
    dec = space.decode(X)
    schemes = (("fewproxy", noise_ref, 0.0, 10_000.0), ("proxified", noise_prox, -8.0, 2_000.0))
    for scheme, noise, shift, seconds in schemes:
        for s in (1, 2, 3):
            rows = []
            for i in rng.permutation(n):  # files list the architectures in different orders
                se = ["True" if v else "False" for v in dec["se"][i]]
                genes = [*dec["e"][i], *dec["k"][i], *dec["l"][i], *se]
                acc = truth[i] + shift + rng.normal(0, noise)
                fields = [i, 1000 + s, i, 0, round(acc, 4), 90.0, 300.0, 4.0, seconds, *genes]
                rows.append(",".join(map(str, fields)))
            (d / f"{scheme}-seed{s}.csv").write_text("\n".join(rows) + "\n")


def test_analysis_of_ablation_csvs(tmp_path: Path) -> None:
    _ablation_csvs(tmp_path)
    ref = read_ablation_csv(sorted(tmp_path.glob("fewproxy-*.csv")), "ref")
    prox = read_ablation_csv(sorted(tmp_path.glob("proxified-*.csv")), "prox")
    assert ref.top1.shape == (40, 3) and np.isfinite(ref.top1).all()  # seeds joined by architecture
    r = analyze(ref, prox, ks=(5, 10))
    assert r.n == 40 and r.cost_ratio == pytest.approx(5.0)
    assert r.hours_reference == pytest.approx(40 * 3 * 10_000 / 3600)
    assert 0.8 < r.kendall_tau <= 1 and r.kendall_tau_ci[0] <= r.kendall_tau <= r.kendall_tau_ci[1]
    assert len(r.seed_tau_reference) == 3 and len(r.cross_seed_tau) == 9
    assert np.mean(r.seed_tau_reference) > np.mean(r.seed_tau_proxy)  # the noisier scheme agrees less
    assert set(r.top_k) == {5, 10} and all(0 <= v <= 1 for v in r.top_k.values())


def test_top_k_overlap() -> None:
    a = np.arange(10.0)
    assert top_k_overlap(a, a, 3) == 1.0 and top_k_overlap(a, -a, 3) == 0.0
    assert top_k_overlap(a, np.array([9, 8, 0, 1, 2, 3, 4, 5, 6, 7.0]), 3) == pytest.approx(1 / 3)


def test_records_of_two_schemes_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    from nasopt.validation.records import write_record

    rng = np.random.default_rng(1)
    X = space.sample(15, rng)
    truth = rng.uniform(60, 75, 15)
    for scheme, scale, seconds in (("ref", 1.0, 900.0), ("prox", 0.9, 100.0)):
        for _seed in range(2):
            for x, t in zip(X, truth, strict=True):
                metrics = {
                    "val_top1": scale * t + rng.normal(0, 0.05),
                    "val_top5": None,
                    "train_time": seconds,
                }
                write_record(tmp_path / scheme, x, metrics=metrics)
    prox = read_scheme_records(tmp_path / "prox")
    assert prox.top1.shape == (15, 2)
    argv = [
        "proxy",
        "analyze",
        "--reference",
        str(tmp_path / "ref"),
        "--proxy",
        str(tmp_path / "prox"),
        "--json",
    ]
    assert nasopt_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 15 and out["cost_ratio"] == pytest.approx(9.0) and out["kendall_tau"] > 0.9


def test_too_few_shared_architectures_and_missing_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _ablation_csvs(tmp_path, n=6)
    ref = read_ablation_csv(sorted(tmp_path.glob("fewproxy-*.csv")), "ref")
    prox = read_ablation_csv(sorted(tmp_path.glob("proxified-*.csv")), "prox")
    with pytest.raises(ProxyDataError, match="at least 10 are needed"):
        analyze(ref, prox)
    with pytest.raises(DatasetNotFoundError, match="lacks the ablation CSVs"):
        resolve_ablation_dir(tmp_path / "nowhere")
    assert nasopt_main(["proxy", "analyze", "--upstream-dir", str(tmp_path / "nowhere")]) == 2
    assert "lacks the ablation CSVs" in capsys.readouterr().err
    assert nasopt_main(["proxy", "analyze"]) == 2


def test_upstream_download_is_cached(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a directory, the CSVs are fetched into the cache through benchmark.sources.fetch (which checks
    each file's SHA-256), once."""
    import benchmark.sources as sources

    _ablation_csvs(tmp_path / "src", n=12)
    fetched = []

    def fake_fetch(remote: sources.RemoteFile, dest: str | Path, *, progress: bool = True) -> Path:
        fetched.append(remote.name)
        Path(dest).parent.mkdir(parents=True, exist_ok=True)
        Path(dest).write_bytes((tmp_path / "src" / remote.name).read_bytes())
        return Path(dest)

    monkeypatch.setenv("NASOPT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(sources, "fetch", fake_fetch)
    d = resolve_ablation_dir()
    assert d == tmp_path / "cache" / "ablation" and sorted(fetched) == sorted(ABLATION_FILES)
    fetched.clear()
    resolve_ablation_dir()
    assert fetched == []
    assert all(len(f.sha256) == 64 for f in ABLATION_FILES.values())
