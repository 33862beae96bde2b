"""Window scan orders of MambaCSR: dual-interleaved window scans and position-aligned cross-scale scans.

A *scan order* unrolls a feature map (B, C, H, W) into a 1-D sequence (B, C, L) for a selective
scan, and its *merge* puts the scanned sequence back in row-major (raster) order, (B, C, H*W).
Direction names follow the official code:

- ``w{s}``: windows of s x s pixels visited row by row; inside a window, pixels row by row.
- ``c_w{s}``: windows visited column by column; inside a window, pixels column by column.
- ``_flip``: the whole sequence reversed.

A map whose sides are not multiples of s is zero-padded at the bottom and right first, and the pad
tokens are part of the sequence (they are scanned; the merge drops them). This matches the
official LocalMamba-style scan, whose pad tokens decay the SSM state between real tokens.

The *position-aligned cross-scale* order (``cross_scale_scan``) interleaves a map x (H, W) with
its half-resolution copy x_low (H/2, W/2): x is visited in s x s windows, each window as a grid
of 2x2 cells, and every cell's four pixels follow the low-res pixel that covers them:
``[low_k, cell_k pixel 0..3]`` for k = 0, 1, ..., so L = 5 * H * W / 4. The merge keeps only
the high-resolution positions.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

_DIRECTION = re.compile(r'^(c_)?w(\d+)(_flip)?$')


@dataclass(frozen=True)
class ScanDirection:
    """One scan order: window size, window/pixel visiting order, and whether it is reversed."""

    window: int
    column_first: bool = False
    flip: bool = False

    @classmethod
    def parse(cls, name: str) -> 'ScanDirection':
        """Parse an official direction name: 'w8', 'w8_flip', 'c_w8', 'c_w8_flip', 'w64', ..."""
        match = _DIRECTION.match(name)
        if match is None or int(match.group(2)) < 1:
            raise ValueError(f"Unknown scan direction {name!r}; expected 'w<size>' or 'c_w<size>', "
                             f"optionally ending in '_flip' (e.g. 'w8', 'c_w64_flip')")
        return cls(int(match.group(2)), column_first=bool(match.group(1)), flip=bool(match.group(3)))

    @property
    def name(self) -> str:
        return f"{'c_' if self.column_first else ''}w{self.window}{'_flip' if self.flip else ''}"


def _window_grid(height: int, width: int, window: int) -> tuple[int, int]:
    """Number of windows along H and W once the map is padded to multiples of ``window``."""
    return -(-height // window), -(-width // window)


def window_scan(x: Tensor, window: int, column_first: bool = False, flip: bool = False) -> Tensor:
    """Unroll x (B, C, H, W) window by window into (B, C, L), L = H * W after zero padding to
    multiples of ``window`` (the pad tokens are kept in the sequence). The sequence is stored time-major,
    (B, L, C) in memory, as the selective scan reads it; from a channels-last x every copy moves whole pixels."""
    b, c, height, width = x.shape
    rows, cols = _window_grid(height, width, window)
    if (rows * window, cols * window) != (height, width):
        x = F.pad(x, (0, cols * window - width, 0, rows * window - height))
    tiles = x.permute(0, 2, 3, 1).reshape(b, rows, window, cols, window, c)  # (window row, row in window, ...)
    order = (0, 3, 1, 4, 2, 5) if column_first else (0, 1, 3, 2, 4, 5)
    steps = tiles.permute(order).reshape(b, -1, c)
    return (steps.flip(1) if flip else steps).transpose(1, 2)


def window_merge(sequence: Tensor, height: int, width: int, window: int, column_first: bool = False,
                 flip: bool = False) -> Tensor:
    """Exact inverse of :func:`window_scan`: (B, C, L) -> raster (B, C, H*W), pad tokens dropped; stored
    time-major, (B, H*W, C) in memory."""
    b, c, _ = sequence.shape
    rows, cols = _window_grid(height, width, window)
    steps = sequence.transpose(1, 2)
    if flip:
        steps = steps.flip(1)
    if column_first:
        tiles = steps.reshape(b, cols, rows, window, window, c).permute(0, 2, 4, 1, 3, 5)
    else:
        tiles = steps.reshape(b, rows, cols, window, window, c).permute(0, 1, 3, 2, 4, 5)
    grid = tiles.reshape(b, rows * window, cols * window, c)[:, :height, :width]
    return grid.reshape(b, height * width, c).transpose(1, 2)


def _check_cross_scale_sizes(height: int, width: int, window: int) -> None:
    if window < 2 or window % 2:
        raise ValueError(f'cross-scale scan: the window size must be even, got {window}')
    if height % window or width % window:
        raise ValueError(f'cross-scale scan: H and W must be multiples of the window size {window}, '
                         f'got {height}x{width} (pad the input first)')


def cross_scale_scan(x: Tensor, x_low: Tensor, window: int, column_first: bool = False,
                     flip: bool = False) -> Tensor:
    """Position-aligned cross-scale sequence of x (B, C, H, W) and x_low (B, C, H/2, W/2).

    High-res order: ``window`` x ``window`` windows (row- or column-major), inside each the grid of
    2x2 cells in the same major order, inside each cell its pixels in the same major order.
    Low-res order: (window/2)-sized windows of x_low, so low token k covers high cell k.
    ``flip`` reverses the two sequences separately, then they are interleaved
    ``[low_k, high_4k, ..., high_4k+3]``: (B, C, 5*H*W/4). H and W must be multiples of ``window``.
    """
    b, c, height, width = x.shape
    _check_cross_scale_sizes(height, width, window)
    if tuple(x_low.shape[-2:]) != (height // 2, width // 2):
        raise ValueError(f'cross-scale scan: the low-resolution map must be {height // 2}x{width // 2} '
                         f'for a {height}x{width} map, got {tuple(x_low.shape[-2:])}')
    cells = window // 2
    # dims: window row I, cell row, row in cell, window col J, cell col, col in cell
    grid = x.reshape(b, c, height // window, cells, 2, width // window, cells, 2)
    order = (0, 1, 5, 2, 6, 3, 7, 4) if column_first else (0, 1, 2, 5, 3, 6, 4, 7)
    high = grid.permute(order).reshape(b, c, -1)
    low = window_scan(x_low, cells, column_first=column_first)
    if flip:
        high, low = high.flip(-1), low.flip(-1)
    return torch.cat([low.unsqueeze(-1), high.reshape(b, c, -1, 4)], dim=-1).reshape(b, c, -1)


def cross_scale_merge(sequence: Tensor, height: int, width: int, window: int, column_first: bool = False,
                      flip: bool = False, exact_column_inverse: bool = False) -> Tensor:
    """Raster (B, C, H*W) high-res outputs of a :func:`cross_scale_scan` sequence (low-res dropped).

    Row-first orders are always inverted exactly. For column-first orders the official code reads
    the (column-major) window index as if it were row-major, so its "inverse" is a different
    permutation whenever the window grid is not square (H != W); ``exact_column_inverse=False``
    reproduces that (official checkpoints and reported numbers include it), ``True`` inverts exactly.
    The two agree for square maps.
    """
    b, c, _ = sequence.shape
    _check_cross_scale_sizes(height, width, window)
    cells, rows, cols = window // 2, height // window, width // window
    high = sequence.reshape(b, c, -1, 5)[..., 1:].reshape(b, c, -1)
    if flip:
        high = high.flip(-1)
    if not column_first:
        # dims: I, J, cell row, cell col, row in cell, col in cell -> I, cell row, row in cell, J, ...
        grid = high.reshape(b, c, rows, cols, cells, cells, 2, 2).permute(0, 1, 2, 4, 6, 3, 5, 7)
        return grid.reshape(b, c, height * width)
    # dims: J, I, cell col, cell row, col in cell, row in cell -> I, cell row, row in cell, J, cell col, col in cell.
    # The official code splits the window index as (I, J) instead: the same permutation of a mis-read index.
    window_index = (cols, rows) if exact_column_inverse else (rows, cols)
    grid = high.reshape(b, c, *window_index, cells, cells, 2, 2).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return grid.reshape(b, c, height * width)


@dataclass(frozen=True)
class CompactWindowOrder:
    """Window scan orders of one map size with the runs of pad tokens collapsed.

    In a window scan the zero pad tokens only decay the SSM state: a pad token has u = 0, so its
    B, C and drive are 0 and y = 0, and its step is exp(dt_pad * A) with dt_pad = softplus(delta_bias)
    the same for every pad token of a channel. A run of m pad tokens between real tokens therefore
    acts exactly like one token with dt = m * dt_pad, and runs before the first or after the last
    real token have no effect at all. The compact order keeps every real token, one token per inner
    pad run and no edge runs, so the scan costs what the real tokens cost.

    Attributes (all (K, L') or (K, H*W) for the K directions, on the CPU):
        sources: raster index of each compact token, or H*W for a pad run (read from a zero slot).
        pad_runs: run length m of each pad-run token; 1 for real tokens; 0 for the filler tokens
            that bring directions with fewer compact tokens to the common length L' (no effect).
        positions: compact position of each raster pixel (the merge).
    """

    sources: Tensor
    pad_runs: Tensor
    positions: Tensor


def _compact_order(height: int, width: int, direction: ScanDirection) -> Tuple[Tensor, Tensor]:
    """(sources, pad run lengths) of one direction; see :class:`CompactWindowOrder`."""
    pixels = height * width
    raster = torch.arange(1, pixels + 1, dtype=torch.float64).view(1, 1, height, width)
    order = window_scan(raster, direction.window, direction.column_first, direction.flip)[0, 0].long() - 1
    real = (order >= 0).nonzero().squeeze(1)
    order = order[int(real[0]):int(real[-1]) + 1]  # edge runs of pad tokens have no effect
    is_pad = order < 0
    starts_token = ~is_pad
    starts_token[1:] |= is_pad[1:] & ~is_pad[:-1]
    starts_token[0] = True
    token = torch.cumsum(starts_token.long(), 0) - 1
    run_lengths = torch.bincount(token)
    sources = order[starts_token]
    sources[sources < 0] = pixels
    return sources, run_lengths


@functools.lru_cache(maxsize=64)
def compact_window_order(height: int, width: int, directions: Tuple[ScanDirection, ...]) -> CompactWindowOrder:
    """The :class:`CompactWindowOrder` of ``directions`` on an H x W map (cached per size)."""
    pixels = height * width
    orders = [_compact_order(height, width, direction) for direction in directions]
    length = max(len(sources) for sources, _ in orders)
    sources = torch.full((len(orders), length), pixels, dtype=torch.long)
    pad_runs = torch.zeros(len(orders), length, dtype=torch.long)
    positions = torch.empty(len(orders), pixels, dtype=torch.long)
    for k, (direction_sources, runs) in enumerate(orders):
        count = len(direction_sources)
        sources[k, :count], pad_runs[k, :count] = direction_sources, runs
        real = direction_sources < pixels
        positions[k, direction_sources[real]] = real.nonzero().squeeze(1)
    return CompactWindowOrder(sources, pad_runs, positions)


def compact_window_scan(x: Tensor, order: CompactWindowOrder) -> Tensor:
    """Unroll x (B, C, H, W) in the compact orders: (B, K, C, L'), pad-run tokens zero; stored time-major,
    (B, L', K, C) in memory."""
    b, c = x.shape[:2]
    pixels = x.permute(0, 2, 3, 1).reshape(b, -1, c)
    flat = torch.cat([pixels, pixels.new_zeros(b, 1, c)], dim=1)
    sources = order.sources.to(x.device)  # (K, L')
    steps = flat[:, sources.t().reshape(-1)].view(b, sources.shape[1], sources.shape[0], c)
    return steps.permute(0, 2, 3, 1)


def compact_window_merge(sequences: Tensor, order: CompactWindowOrder) -> Tensor:
    """Scanned (B, K, C, L') compact sequences -> raster (B, K, C, H*W), stored time-major."""
    positions = order.positions.to(sequences.device)  # (K, H*W)
    directions = torch.arange(positions.shape[0], device=sequences.device)
    return sequences.permute(0, 3, 1, 2)[:, positions.t(), directions].permute(0, 2, 3, 1)
