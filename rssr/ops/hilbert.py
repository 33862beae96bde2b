"""Hilbert-curve scan order of a square 2^p x 2^p token grid.

The curve is the one of the ``hilbertcurve`` package (2.x), which LSTMConvSR's official code calls:
the distance of grid point (x, y) is computed with Skilling's transpose algorithm ("Programming the
Hilbert curve", AIP Conf. Proc. 707, 2004) and the point is given column first, x = column,
y = row. The curve starts in the top-left cell and ends in the top-right one. Everything is
vectorised over the whole grid, so building an order costs a handful of integer tensor ops.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Tuple

import torch
from torch import Tensor


def hilbert_distance(x: Tensor, y: Tensor, order: int) -> Tensor:
    """Distance along the 2-D Hilbert curve of order ``order`` (side 2^order) of the points (x, y).

    x, y: integer tensors of the same shape with values in [0, 2^order).
    """
    if order < 1:
        raise ValueError(f'hilbert_distance: the curve order must be >= 1 (side 2, 4, 8, ...), got {order}')
    axes = [x.long().clone(), y.long().clone()]
    bit = 1 << (order - 1)
    # Skilling's 'inverse undo': per bit from the top, reflect or exchange the lower bits.
    while bit > 1:
        low_bits = bit - 1
        for i in range(2):
            bit_set = (axes[i] & bit) != 0
            exchanged = (axes[0] ^ axes[i]) & low_bits
            new_first = torch.where(bit_set, axes[0] ^ low_bits, axes[0] ^ exchanged)
            if i > 0:
                axes[i] = torch.where(bit_set, axes[i], axes[i] ^ exchanged)
            axes[0] = new_first
        bit >>= 1
    # Gray encode.
    axes[1] = axes[1] ^ axes[0]
    flips = torch.zeros_like(axes[1])
    bit = 1 << (order - 1)
    while bit > 1:
        flips = flips ^ torch.where((axes[1] & bit) != 0, bit - 1, 0)
        bit >>= 1
    axes = [axes[0] ^ flips, axes[1] ^ flips]
    # Interleave the transposed coordinates, most significant bit first, x's bit before y's.
    distance = torch.zeros_like(axes[0])
    for level in range(order - 1, -1, -1):
        distance = (distance << 2) | (((axes[0] >> level) & 1) << 1) | ((axes[1] >> level) & 1)
    return distance


@lru_cache(maxsize=None)
def _hilbert_permutations(side: int, device: str) -> Tuple[Tensor, Tensor]:
    order = side.bit_length() - 1
    raster = torch.arange(side * side)
    distance = hilbert_distance(raster % side, raster // side, order)
    scan = torch.argsort(distance)
    return scan.to(device), torch.argsort(scan).to(device)


def hilbert_scan_order(side: int, device: torch.device | str = 'cpu') -> Tuple[Tensor, Tensor]:
    """The Hilbert scan of a side x side grid as raster indices, and its inverse permutation.

    Returns ``(scan, inverse)``: ``tokens[:, scan]`` visits the row-major tokens along the curve and
    ``curve_tokens[:, inverse]`` puts them back. Cached per side and device.
    """
    side = int(side)  # ONNX export traces sizes as tensors
    if side < 2 or side & (side - 1):
        raise ValueError(f'Hilbert scan: the token grid must be square with a power-of-two side >= 2, got side {side}')
    return _hilbert_permutations(side, str(torch.device(device)))
