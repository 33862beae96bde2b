"""Unroll a 2-D map into SS2D's four scan directions and merge them back (VMamba / MambaIR order).

Directions, k = 0..3: row-major (index h*W + w), column-major (index w*H + h), and the reverses of
those two. :func:`cross_merge` undoes each ordering and sums the four with equal weight.

Both work in any memory layout. The direction sequences are stored time-major ((B, L, 4, C) in memory,
seen as (B, 4, C, L)), which the selective scan reads without a transpose; from a channels-last map
and back to one, every copy here moves whole pixels (C contiguous values) at a time. Only out-of-place
ops are used, so that ONNX exporters trace them.
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor


def stack_time_major(sequences: Sequence[Tensor]) -> Tensor:
    """K direction sequences, each (B, C, L), -> (B, K, C, L) stored time-major, (B, L, K, C) in memory: the
    layout the selective scan reads without a transpose (a copy of whole C-vectors for time-major inputs)."""
    return torch.stack([sequence.transpose(1, 2) for sequence in sequences], dim=2).permute(0, 2, 3, 1)


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W) direction sequences, stored time-major."""
    b, c, height, width = x.shape
    pixels = x.permute(0, 2, 3, 1)  # (B, H, W, C)
    row_major = pixels.reshape(b, height * width, c).transpose(1, 2)
    col_major = pixels.transpose(1, 2).reshape(b, height * width, c).transpose(1, 2)
    return stack_time_major([row_major, col_major, row_major.flip(-1), col_major.flip(-1)])


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """(B, 4, C, H*W) direction outputs -> (B, C, H*W) row-major sum, stored as (B, H*W, C)."""
    b, _, c, length = ys.shape
    steps = ys.permute(0, 3, 1, 2)  # (B, L, 4, C)
    reversed_back = steps[:, :, 2:].flip(1)
    row_major = (steps[:, :, 0] + reversed_back[:, :, 0]).reshape(b, height, width, c)
    col_major = (steps[:, :, 1] + reversed_back[:, :, 1]).reshape(b, width, height, c)
    return (row_major + col_major.transpose(1, 2)).reshape(b, length, c).transpose(1, 2)
