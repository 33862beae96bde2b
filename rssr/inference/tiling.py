"""Overlapping tiles over a scene, and the blending weights that make their seams invisible.

Along each axis the fewest full-size tiles whose overlaps are all at least ``overlap`` are spread
evenly from the scene's first pixel to its last (every tile has the full tile size unless the
scene is smaller). Spreading keeps every overlap close to ``overlap``; shifting only the last tile
back would make the last overlap up to a whole tile, and the strips waiting for the next row of
tiles (see :mod:`rssr.inference.scene`) as large.
Along a side shared with a neighbour a tile's weight is 0 for the first ``margin`` pixels (where
its own zero padding differs from the whole image), then ramps linearly to 1 across the rest of
the overlap; sides on the scene border keep weight 1. For a network whose receptive field is
within ``margin`` LR pixels, blended tiles therefore equal whole-image inference.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterator, List, Tuple

import numpy as np

from rssr.errors import UserError


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> List[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` pixels with at least ``overlap``.

    Every start but the last (``length - tile``) is a multiple of ``align``, so that cell borders fall
    on output-block borders and blocks are written whole (see :mod:`rssr.inference.scene`).
    """
    if tile >= length:
        return [0]
    count = math.ceil((length - overlap) / (tile - overlap))  # strides of at most tile - overlap
    while True:
        # even spacing, each start rounded *up* to the alignment: rounding down would leave the last stride
        # short of up to ``align`` per tile and need more tiles (56 instead of 49 for a 10980-pixel
        # Sentinel-2 tile at tile 256, overlap 32, align 32: 1.7x the pixels of the scene instead of 1.3x)
        starts = sorted({min(-(-i * (length - tile) // (count - 1) // align) * align, length - tile)
                         for i in range(count - 1)} | {length - tile})
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        count += 1


@dataclass(frozen=True)
class Tile:
    """One tile: grid index (row, col) and LR window (top, left, height, width)."""

    row: int
    col: int
    top: int
    left: int
    height: int
    width: int


@dataclass(frozen=True)
class TileGrid:
    """The tiles of a ``height`` x ``width`` scene, and the output cells finalised after each tile.

    Cell (i, j) spans LR rows ``row_starts[i] .. row_starts[i+1]`` (the scene end for the last row)
    and likewise for columns. Every tile touching cell (i, j) has a grid index <= (i, j), so in
    row-major order the cell is complete once tile (i, j) has been processed.
    """

    height: int
    width: int
    tile: int
    overlap: int
    align: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.overlap < self.tile:
            raise UserError(f'Tile overlap (--overlap) must be in [0, tile size {self.tile}); got {self.overlap}.')
        if not 1 <= self.align <= self.tile - self.overlap:
            raise UserError(f'Tile alignment must be in [1, tile - overlap = {self.tile - self.overlap}]; '
                             f'got {self.align}.')

    @property
    def row_starts(self) -> List[int]:
        return tile_starts(self.height, self.tile, self.overlap, self.align)

    @property
    def col_starts(self) -> List[int]:
        return tile_starts(self.width, self.tile, self.overlap, self.align)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    def __iter__(self) -> Iterator[Tile]:
        tile_h, tile_w = min(self.tile, self.height), min(self.tile, self.width)
        for i, top in enumerate(self.row_starts):
            for j, left in enumerate(self.col_starts):
                yield Tile(i, j, top, left, tile_h, tile_w)

    def cell(self, row: int, col: int) -> Tuple[int, int, int, int]:
        """LR window (top, left, height, width) of output cell (row, col)."""
        rows, cols = self.row_starts + [self.height], self.col_starts + [self.width]
        return rows[row], cols[col], rows[row + 1] - rows[row], cols[col + 1] - cols[col]

    def cells_touched(self, tile: Tile) -> Iterator[Tuple[int, int]]:
        """Cells that ``tile`` overlaps."""
        rows, cols = self.row_starts, self.col_starts
        for i in range(tile.row, len(rows)):
            if rows[i] >= tile.top + tile.height:
                break
            for j in range(tile.col, len(cols)):
                if cols[j] >= tile.left + tile.width:
                    break
                yield i, j


def _ramp(length: int, overlap: int, margin: int, ramp_start: bool, ramp_end: bool) -> np.ndarray:
    weights = np.ones(length, dtype=np.float32)
    rise = max(overlap - 2 * margin, 1)
    position = np.arange(length, dtype=np.float32)
    edge = np.clip((position - margin + 0.5) / rise, 0.0, 1.0)
    if ramp_start:
        weights = np.minimum(weights, edge)
    if ramp_end:
        weights = np.minimum(weights, edge[::-1])
    return weights


def blend_weights(tile: Tile, grid: TileGrid, scale: int, margin: int) -> np.ndarray:
    """(tile_h*scale, tile_w*scale) weights: 0 within ``margin`` of inner sides, ramping to 1."""
    overlap, margin = grid.overlap * scale, margin * scale
    rows = _ramp(tile.height * scale, overlap, margin, ramp_start=tile.top > 0,
                 ramp_end=tile.top + tile.height < grid.height)
    cols = _ramp(tile.width * scale, overlap, margin, ramp_start=tile.left > 0,
                 ramp_end=tile.left + tile.width < grid.width)
    return rows[:, None] * cols[None, :]
