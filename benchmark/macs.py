"""Analytic MACs and parameter counts of search-space architectures, as ``thop.profile`` reports them.

The upstream Accel-NASBench records carry ``model_info.macs`` / ``model_info.params`` counted by ``thop``
(0.1.1) on a torchvision-style EfficientNet at 224x224 input. Both are sums of per-layer terms that depend
only on the block, the layer's position in it and that block's e/k/se choices, so they are tabulated once
here and a batch is evaluated with a handful of gathers -- no network is built.

Network (its geometry lives in :mod:`benchmark.geometry`; per layer, ``c_in`` is the layer's input width
and ``h = c_in * e``):

- stem: 3x3 stride-2 conv 3->32 (no bias) + BN + activation, 224 -> 112
- MBConv layer: [1x1 expand conv c_in->h + BN + act, only if e != 1], kxk depthwise conv stride s (no bias)
  + BN + act, [squeeze-excite on h: global avgpool, 1x1 conv h->c_in//4 with bias, act, 1x1 conv
  c_in//4->h with bias, gate], 1x1 project conv h->c_out (no bias) + BN; the stride applies to the first
  layer of a block, later layers have c_in = c_out and stride 1
- head: 1x1 conv 320->1280 (no bias) + BN + act, global avgpool, Linear 1280->1000 (with bias)

thop's conventions, checked against every record of the development archive:

- conv: ``out_elements * (c_in / groups) * k * k`` MACs, bias not counted as MACs (but as parameters)
- BatchNorm2d (affine): ``4 * elements`` MACs, parameters ``2 * channels`` (running stats are buffers)
- AdaptiveAvgPool2d(1): ``(H * W + 1) * channels``
- Linear: ``in * out``
- activations (SiLU/ReLU/Hardsigmoid/Sigmoid), dropout, residual add and the SE multiply: 0
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike

from benchmark import space
from benchmark._typing import FloatArray, IntArray
from benchmark.errors import ConfigurationError
from benchmark.geometry import INPUT_SIZE, MNASNET, NUM_CLASSES, Skeleton, feature_size, squeeze_channels

_MAX_LAYERS = max(space.LAYERS_BLOCK5)
_BN_MACS_PER_ELEMENT = 4  # thop: 2 per element, doubled for an affine BatchNorm


def _conv(
    c_in: int, c_out: int, k: int, out_res: int, groups: int = 1, bias: bool = False
) -> tuple[int, int]:
    """(MACs, params) of a square conv with ``out_res x out_res`` output, thop convention."""
    macs = out_res * out_res * c_out * (c_in // groups) * k * k
    params = c_out * (c_in // groups) * k * k + (c_out if bias else 0)
    return macs, params


def _bn(channels: int, res: int) -> tuple[int, int]:
    """(MACs, params) of an affine BatchNorm2d on a ``channels x res x res`` map."""
    return _BN_MACS_PER_ELEMENT * channels * res * res, 2 * channels


def _global_pool(channels: int, res: int) -> int:
    """MACs of AdaptiveAvgPool2d(1) on a ``channels x res x res`` map."""
    return (res * res + 1) * channels


def _mbconv(c_in: int, c_out: int, e: int, k: int, stride: int, se: bool, in_res: int) -> tuple[int, int]:
    """(MACs, params) of one MBConv layer."""
    out_res = -(-in_res // stride)
    hidden = c_in * e
    terms: list[tuple[int, int]] = []
    if e != 1:
        terms += [_conv(c_in, hidden, 1, in_res), _bn(hidden, in_res)]
    terms += [_conv(hidden, hidden, k, out_res, groups=hidden), _bn(hidden, out_res)]
    if se:
        squeeze = squeeze_channels(c_in)
        terms += [
            (_global_pool(hidden, out_res), 0),
            _conv(hidden, squeeze, 1, 1, bias=True),
            _conv(squeeze, hidden, 1, 1, bias=True),
        ]
    terms += [_conv(hidden, c_out, 1, out_res), _bn(c_out, out_res)]
    return sum(t[0] for t in terms), sum(t[1] for t in terms)


def _fixed_terms(skeleton: Skeleton, resolution: int, num_classes: int) -> tuple[int, int]:
    """(MACs, params) of everything outside the MBConv blocks: stem, head, pool and classifier."""
    sides = feature_size(resolution, skeleton)
    stem_res, final_res = sides[0], sides[-1]
    sk = skeleton
    terms = [
        _conv(sk.in_channels, sk.stem_channels, sk.stem_kernel, stem_res),
        _bn(sk.stem_channels, stem_res),
        _conv(sk.out_channels[-1], sk.head_channels, 1, final_res),
        _bn(sk.head_channels, final_res),
        (_global_pool(sk.head_channels, final_res), 0),
        (sk.head_channels * num_classes, sk.head_channels * num_classes + num_classes),
    ]
    return sum(t[0] for t in terms), sum(t[1] for t in terms)


def _cumulative_tables(skeleton: Skeleton, resolution: int) -> tuple[IntArray, IntArray]:
    """Cumulative per-block counts, each ``(7, 4, 3, 2, 2)``: ``[block, layers_index, e_index, k_index, se]``.

    Entry ``[b, j, ...]`` is the total over layers ``0..j`` of block ``b`` (rows past a block's layer choices
    are filled but never indexed).
    """
    shape = (space.N_BLOCKS, _MAX_LAYERS, len(space.EXPANSIONS), len(space.KERNELS), 2)
    macs = np.zeros(shape, dtype=np.int64)
    params = np.zeros(shape, dtype=np.int64)
    sides = feature_size(resolution, skeleton)
    c_in_block = skeleton.stem_channels
    for b in range(space.N_BLOCKS):
        c_out, stride_b = skeleton.out_channels[b], skeleton.strides[b]
        for j in range(_MAX_LAYERS):
            c_in, stride, in_res = (c_in_block, stride_b, sides[b]) if j == 0 else (c_out, 1, sides[b + 1])
            for ei, e in enumerate(space.EXPANSIONS):
                for ki, k in enumerate(space.KERNELS):
                    for se in (0, 1):
                        macs[b, j, ei, ki, se], params[b, j, ei, ki, se] = _mbconv(
                            c_in, c_out, e, k, stride, bool(se), in_res
                        )
        c_in_block = c_out
    return np.cumsum(macs, axis=1), np.cumsum(params, axis=1)


@lru_cache(maxsize=16)
def _tables(skeleton: Skeleton, resolution: int, num_classes: int) -> tuple[IntArray, IntArray, int, int]:
    """(cumulative MACs, cumulative params, fixed MACs, fixed params) of one skeleton x input x classes."""
    if isinstance(resolution, bool) or not isinstance(resolution, (int, np.integer)) or resolution < 1:
        raise ConfigurationError(f"resolution must be a positive integer (pixels), got {resolution!r}")
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ConfigurationError(f"num_classes must be a positive integer, got {num_classes!r}")
    cum_macs, cum_params = _cumulative_tables(skeleton, int(resolution))
    fixed_macs, fixed_params = _fixed_terms(skeleton, int(resolution), int(num_classes))
    return cum_macs, cum_params, fixed_macs, fixed_params


_BLOCKS = np.arange(space.N_BLOCKS)


def count_macs_params(
    X: ArrayLike,
    *,
    skeleton: Skeleton = MNASNET,
    resolution: int = INPUT_SIZE,
    num_classes: int = NUM_CLASSES,
) -> tuple[IntArray, IntArray]:
    """Exact MACs and parameter counts (integers, not millions), each ``(n,)``, for an ``(n, 28)`` batch.

    The defaults are the dataset's counting (MnasNet skeleton, 224 px, 1000 classes); another skeleton,
    input side or class count gives that network's counts (tables built once per combination).
    """
    cum_macs, cum_params, fixed_macs, fixed_params = _tables(skeleton, resolution, num_classes)
    batch = space.as_batch(X)
    e = batch[:, 0::4]
    k = batch[:, 1::4]
    l_ = batch[:, 2::4]
    se = batch[:, 3::4]
    idx = (_BLOCKS[None, :], l_, e, k, se)  # each (n, 7)
    macs = cum_macs[idx].sum(axis=1) + fixed_macs
    params = cum_params[idx].sum(axis=1) + fixed_params
    return macs, params


def macs_params(
    X: ArrayLike,
    *,
    skeleton: Skeleton = MNASNET,
    resolution: int = INPUT_SIZE,
    num_classes: int = NUM_CLASSES,
) -> tuple[FloatArray, FloatArray]:
    """MACs and parameter count in millions (upstream ``model_info``), each ``(n,)``, of an ``(n, 28)`` batch.

    A single ``(28,)`` architecture is treated as a batch of one; the keywords as :func:`count_macs_params`.
    """
    macs, params = count_macs_params(X, skeleton=skeleton, resolution=resolution, num_classes=num_classes)
    return macs / 1e6, params / 1e6
