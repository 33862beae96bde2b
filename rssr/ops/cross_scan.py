"""Unroll a 2-D map into SS2D's four scan directions and merge them back (VMamba / MambaIR order).

Directions, k = 0..3: row-major (index h*W + w), column-major (index w*H + h), and the reverses of
those two. :func:`cross_merge` undoes each ordering and sums the four with equal weight.
"""
from __future__ import annotations

import torch
from torch import Tensor


def cross_scan(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, 4, C, H*W) direction sequences."""
    row_major = x.flatten(2)
    col_major = x.transpose(2, 3).flatten(2)
    forward = torch.stack([row_major, col_major], dim=1)
    return torch.cat([forward, forward.flip(-1)], dim=1)


def cross_merge(ys: Tensor, height: int, width: int) -> Tensor:
    """(B, 4, C, H*W) direction outputs -> (B, C, H*W) row-major sum."""
    b, _, c, length = ys.shape
    reversed_back = ys[:, 2:].flip(-1)
    row = ys[:, 0] + reversed_back[:, 0]
    col = ys[:, 1] + reversed_back[:, 1]
    return row + col.view(b, c, width, height).transpose(2, 3).reshape(b, c, length)
