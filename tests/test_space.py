"""benchmark.space helpers used by the optimizers (the rest of the space is covered across the suite)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from benchmark import space


def _expected(ids: np.ndarray, known: set[int]) -> list[bool]:
    seen: set[int] = set()
    out = []
    for a in ids.tolist():
        out.append(a in known or a in seen)
        seen.add(a)
    return out


@given(hnp.arrays(np.int64, st.integers(0, 400), elements=st.integers(0, 300)), st.sets(st.integers(0, 300)))
def test_duplicated_marks_known_and_repeated_ids(ids: np.ndarray, known: set[int]) -> None:
    # sizes on both sides of the loop / vectorised switch
    want = _expected(ids, known)
    as_array = space.duplicated(ids, np.array(sorted(known), dtype=np.int64))
    as_set = space.duplicated(ids, known)
    assert as_array.dtype == np.bool_ and as_array.shape == ids.shape
    assert as_array.tolist() == want
    assert as_set.tolist() == want


def test_duplicated_accepts_architectures() -> None:
    X = space.sample(6, np.random.default_rng(0))
    X[4] = X[1]
    known = X[[2]]
    np.testing.assert_array_equal(space.duplicated(X, known), [False, False, True, False, True, False])
    np.testing.assert_array_equal(space.duplicated(X), [False, False, False, False, True, False])
    assert space.duplicated(np.zeros((0, space.N_GENES), dtype=np.int64), known).shape == (0,)


def test_duplicated_large_batches_agree_with_the_definition() -> None:
    g = np.random.default_rng(1)
    ids = g.integers(0, 800, 1000)
    known = g.integers(0, 800, 50)
    want = _expected(ids, set(known.tolist()))
    assert space.duplicated(ids, known).tolist() == want
    assert space.duplicated(ids, set(known.tolist())).tolist() == want
