"""Array type aliases shared by every package (import these; do not re-declare them)."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

#: integer arrays: gene matrices ``(n, 28)``, indices
IntArray = NDArray[np.int64]
#: float arrays: objective matrices ``(n, m)``, predictions ``(n,)``
FloatArray = NDArray[np.float64]
#: boolean masks ``(n,)``
BoolArray = NDArray[np.bool_]

__all__ = ["BoolArray", "FloatArray", "IntArray"]
