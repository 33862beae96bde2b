"""Overlapping tiles over a scene, and the blending weights that make their seams invisible.

The tile shape is chosen per scene (:func:`plan_tiles`): among all tile heights and widths whose area
is within the budget (``tile`` x ``tile`` LR pixels, which bounds the memory of a forward), the one
whose tiles forward the fewest pixels in all, overlaps included. A 512 x 512 scene at the defaults
(budget 256 x 256, overlap 32) takes 3 x 2 tiles of 192 x 272 (1.20x its pixels) instead of 3 x 3
tiles of 256 (2.25x); a scene no larger than the budget is one tile.
Along each axis the fewest tiles of that size whose overlaps are all at least ``overlap`` run from the
scene's first pixel to its last, at one stride (as even as the alignment of tile starts allows; the
last stride takes the rest). Spreading keeps every overlap close to ``overlap``; shifting only the
last tile back would make the last overlap up to a whole tile, and the strips waiting for the next
row of tiles (see :mod:`rssr.inference.scene`) as large.
Along a side shared with a neighbour a tile's weight is 0 for the first ``margin`` pixels (where
its own zero padding differs from the whole image), then ramps linearly to 1 across the rest of
the overlap; sides on the scene border keep weight 1. For a network whose receptive field is
within ``margin`` LR pixels, blended tiles therefore equal whole-image inference.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, Iterator, List, Tuple

import numpy as np

from rssr.errors import UserError


def tile_count(length: int, tile: int, overlap: int, align: int = 1) -> int:
    """The fewest tiles of size ``tile`` covering ``length`` pixels with overlaps of at least ``overlap``
    when every start but the last is a multiple of ``align``."""
    if tile >= length:
        return 1
    longest_aligned_stride = (tile - overlap) // align * align
    return 2 + max(0, -(-(length - tile - (tile - overlap)) // longest_aligned_stride))


def tile_starts(length: int, tile: int, overlap: int, align: int = 1) -> List[int]:
    """Start offsets of the fewest tiles of size ``tile`` covering ``length`` pixels with at least ``overlap``.

    Every start but the last (``length - tile``) is a multiple of ``align``, so that cell borders fall
    on output-block borders and blocks are written whole (see :mod:`rssr.inference.scene`). The inner
    strides are one multiple of ``align``, as close to even spacing as the tile count allows; the last
    stride takes the rest (at most ``tile - overlap``).
    """
    count = tile_count(length, tile, overlap, align)
    if count == 1:
        return [0]
    last = length - tile
    stride = last
    if count > 2:
        even = last // (count - 1) // align * align
        needed = -(-(last - (tile - overlap)) // (count - 2) // align) * align  # so the last stride reaches
        stride = max(even, needed)
    return [i * stride for i in range(count - 1)] + [last]


def _axis_options(length: int, overlap: int, align: int, multiple: int, longest: int) -> Dict[int, int]:
    """Tile count -> the smallest tile size (a multiple of ``multiple``, at most ``longest``) that covers
    ``length`` with that many tiles; one tile is the whole axis."""
    options = {1: length}
    for size in range(-(-(overlap + align) // multiple) * multiple, min(length, longest + 1), multiple):
        options.setdefault(tile_count(length, size, overlap, align), size)
    return options


def plan_tiles(height: int, width: int, tile: int, overlap: int, align: int = 1, multiple: int = 1) -> TileGrid:
    """The grid of tiles of at most ``tile`` x ``tile`` pixels that forwards the fewest pixels in all.

    Tile sides are multiples of ``multiple`` (the network's size requirement, so no tile is padded)
    unless a tile spans a whole axis. Ties go to fewer tiles.
    """
    budget = tile * tile
    rows = _axis_options(height, overlap, align, multiple, budget // min(width, overlap + align))
    cols = _axis_options(width, overlap, align, multiple, budget // min(height, overlap + align))
    shapes = [(row_count * row_size * col_count * col_size, row_count * col_count, row_size, col_size)
              for row_count, row_size in rows.items() for col_count, col_size in cols.items()
              if row_size * col_size <= budget]
    if not shapes:  # only when the budget is below (overlap + align)^2: square tiles of the budget's side
        return TileGrid(height, width, min(tile, height), min(tile, width), overlap, align)
    _, _, tile_height, tile_width = min(shapes)
    return TileGrid(height, width, tile_height, tile_width, overlap, align)


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
    """The ``tile_height`` x ``tile_width`` tiles of a ``height`` x ``width`` scene, and the output cells
    finalised after each tile.

    Cell (i, j) spans LR rows ``row_starts[i] .. row_starts[i+1]`` (the scene end for the last row)
    and likewise for columns. Every tile touching cell (i, j) has a grid index <= (i, j), so in
    row-major order the cell is complete once tile (i, j) has been processed.
    """

    height: int
    width: int
    tile_height: int
    tile_width: int
    overlap: int
    align: int = 1

    def __post_init__(self) -> None:
        split = [tile for tile, length in ((self.tile_height, self.height), (self.tile_width, self.width))
                 if tile < length]  # sides cut into several tiles, which overlap
        shortest = min(split, default=self.overlap + self.align)
        if not 0 <= self.overlap < shortest:
            raise UserError(f'Tile overlap (--overlap) must be in [0, tile side {shortest}); got {self.overlap}.')
        if not 1 <= self.align <= shortest - self.overlap:
            raise UserError(f'Tile alignment must be in [1, tile side - overlap = {shortest - self.overlap}]; '
                            f'got {self.align}.')

    @property
    def row_starts(self) -> List[int]:
        return tile_starts(self.height, self.tile_height, self.overlap, self.align)

    @property
    def col_starts(self) -> List[int]:
        return tile_starts(self.width, self.tile_width, self.overlap, self.align)

    def __len__(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def forwarded_pixels(self) -> int:
        """LR pixels the network runs on, overlaps included."""
        return len(self) * min(self.tile_height, self.height) * min(self.tile_width, self.width)

    def __iter__(self) -> Iterator[Tile]:
        tile_h, tile_w = min(self.tile_height, self.height), min(self.tile_width, self.width)
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
