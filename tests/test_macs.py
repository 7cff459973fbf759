"""Analytic MACs / parameter counts against the upstream thop numbers, plus structural properties."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmark import space
from benchmark.macs import count_macs_params, macs_params

TOL = 1e-6  # millions; the upstream JSON stores 6 decimals


def _one(x: np.ndarray) -> tuple[float, float]:
    """(MACs, params) in millions of a single ``(28,)`` architecture."""
    m, p = macs_params(x)
    assert m.shape == p.shape == (1,)
    return float(m[0]), float(p[0])


def test_matches_every_upstream_record(anb_records: list[tuple[str, dict[str, Any]]]) -> None:
    names = [name for name, _ in anb_records]
    X = space.from_dicts([rec["architecture"] for _, rec in anb_records])
    want_macs = np.array([rec["model_info"]["macs"] for _, rec in anb_records])
    want_params = np.array([rec["model_info"]["params"] for _, rec in anb_records])
    macs, params = macs_params(X)
    for what, got, want in (("macs", macs, want_macs), ("params", params, want_params)):
        err = np.abs(got - want)
        worst = int(np.argmax(err))
        assert err[worst] < TOL, (
            f"{what} of {names[worst]} ({space.to_string(X[worst])}): got {got[worst]:.6f} M, "
            f"upstream {want[worst]:.6f} M; {int((err >= TOL).sum())} of {len(names)} records off"
        )


def test_efficientnet_b0_exact_counts() -> None:
    macs, params = count_macs_params(space.reference("efficientnet_b0"))
    # thop on the torchvision-style B0 at 224x224 (BatchNorm counted as 4 ops/element, hence > 390 M)
    assert macs.tolist() == [415_145_024]
    assert params.tolist() == [5_288_548]  # torchvision's efficientnet_b0 parameter count
    m, p = macs_params(space.reference("efficientnet_b0"))
    assert m.shape == p.shape == (1,)
    assert m[0] == pytest.approx(415.145024, abs=1e-9)
    assert p[0] == pytest.approx(5.288548, abs=1e-9)


def test_smallest_and_largest_architectures() -> None:
    lo = np.zeros(space.N_GENES, dtype=np.int64)
    hi = space.CARDINALITIES - 1
    (m_lo, p_lo), (m_hi, p_hi) = _one(lo), _one(hi)
    sample = space.sample(500, np.random.default_rng(0))
    m, p = macs_params(sample)
    assert np.all((m >= m_lo) & (m <= m_hi)) and np.all((p >= p_lo) & (p <= p_hi))


def test_empty_batch_and_bad_input() -> None:
    m, p = macs_params(np.zeros((0, space.N_GENES), dtype=np.int64))
    assert m.shape == p.shape == (0,) and m.dtype == np.float64
    bad = space.reference("efficientnet_b0")
    bad[2] = 3  # block 0 has only 3 layer choices
    with pytest.raises(space.InvalidArchitectureError, match="block 0 field 'l'"):
        macs_params(bad)
    with pytest.raises(space.InvalidArchitectureError, match="shape"):
        macs_params(np.zeros((2, 27), dtype=np.int64))


genes = st.tuples(*(st.integers(0, int(c) - 1) for c in space.CARDINALITIES)).map(
    lambda g: np.array(g, dtype=np.int64)
)


@settings(max_examples=200, deadline=None)
@given(x=genes, block=st.integers(0, space.N_BLOCKS - 1), field=st.integers(0, 2), data=st.data())
def test_raising_e_k_or_l_increases_both(x: np.ndarray, block: int, field: int, data: st.DataObject) -> None:
    col = block * space.GENES_PER_BLOCK + field
    top = int(space.CARDINALITIES[col]) - 1
    if x[col] == top:
        x[col] = data.draw(st.integers(0, top - 1))
    y = x.copy()
    y[col] = data.draw(st.integers(int(x[col]) + 1, top))
    (mx, px), (my, py) = _one(x), _one(y)
    change = f"{space.gene_name(col)}: {space.to_string(x)} -> {space.to_string(y)}"
    assert my > mx, f"raising {change} did not increase MACs ({mx} -> {my})"
    assert py > px, f"raising {change} did not increase params ({px} -> {py})"


@settings(max_examples=200, deadline=None)
@given(x=genes, block=st.integers(0, space.N_BLOCKS - 1))
def test_squeeze_excite_adds_params_and_macs(x: np.ndarray, block: int) -> None:
    col = block * space.GENES_PER_BLOCK + 3
    off, on = x.copy(), x.copy()
    off[col], on[col] = 0, 1
    (m_off, p_off), (m_on, p_on) = _one(off), _one(on)
    assert p_on > p_off and m_on > m_off


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40))
def test_batch_equals_row_by_row(seed: int, n: int) -> None:
    X = space.sample(n, np.random.default_rng(seed))
    m, p = macs_params(X)
    assert m.shape == p.shape == (n,)
    rows = [macs_params(x) for x in X]
    np.testing.assert_array_equal(m, np.concatenate([r[0] for r in rows]))
    np.testing.assert_array_equal(p, np.concatenate([r[1] for r in rows]))
    # the float results are the exact integer counts scaled to millions
    ci, pi = count_macs_params(X)
    np.testing.assert_array_equal(m, ci / 1e6)
    np.testing.assert_array_equal(p, pi / 1e6)
