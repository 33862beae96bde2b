"""Super-resolve a whole scene tile by tile, streaming windows from and to disk.

Peak memory is set by the tile size, the batch size and the scene width, never by the scene
height: tiles are read as windows, and each output cell is written as soon as every tile touching
it has run (see :class:`TileGrid`). What waits in memory is the blended overlap strips of the next
row of cells (``overlap * scale`` output rows across the width). Tile starts are multiples of
``TILE_ALIGN`` LR pixels and output blocks are ``TILE_ALIGN * scale`` pixels, so cells cover whole
blocks and GDAL writes them straight through; only the blocks straddling the last, unaligned cell
border wait in GDAL's cache, which is capped (its default, 5% of RAM, would hold finished blocks).

Before any of that, every check of the input, the band selection (:mod:`rssr.inference.bands`) and
the output runs, so a refusal costs no compute. Nodata (the nodata value, or NaN/inf in any band) is
filled in before the network (:func:`rssr.io.fill_nodata`) and written as the output's nodata.
A model inside :class:`~rssr.band_normalization.BandNormalizedSR` gets each tile's nodata
mask. In mode ``image`` its statistics are those of the whole scene (one streamed, decimated read
before the tiles), not of each tile, so that every tile is normalised alike and no seam appears.
"""
from __future__ import annotations

import glob
import logging
import math
import os
import tempfile
import warnings
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Deque, Dict, Iterator, List, Optional, Sequence, Tuple, TypeVar

import numpy as np
import rasterio
import torch
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window
from torch import nn
from tqdm import tqdm

from rssr.band_normalization import BandNormalizedSR
from rssr.errors import CannotWriteError, InferenceError
from rssr.inference.bands import BandContract, model_in_chans
from rssr.inference.precision import autocast, check_amp
from rssr.inference.tiling import Tile, TileGrid, blend_weights, plan_tiles
from rssr.io import (
    GeoReference,
    Radiometry,
    RasterArray,
    RasterError,
    RasterInfo,
    output_georeference,
    output_nodata,
    read_raster,
    read_raster_info,
    resolve_radiometry,
    values_to_dn,
)
from rssr.layers.padding import SizeRequirements, crop_output, pad_to_valid

logger = logging.getLogger('rssr')
TILE_ALIGN = 32  # LR pixels: tile starts (but the last) are multiples of this, output blocks TILE_ALIGN * scale
UNALIGNED_OUTPUT_BLOCK = 256  # output block side when tiles are too small to align
# deflate at level 1 after horizontal differencing (predictor 2 for integers, 3 for floats): on a 2048 x 2048
# 4-band uint16 SR output, 1.3 s and 17.5 MiB, against 3.0 s and 23.1 MiB at deflate's default level without it
# By default DEFAULT_TILE x DEFAULT_TILE LR pixels are in flight at once, shared by the CPU workers (at most
# MAX_DEFAULT_WORKERS: tiles of 256 / sqrt(workers) pixels), so the memory held does not grow with the threads
DEFAULT_TILE = 256
MAX_DEFAULT_WORKERS = 4
THREADS_PER_DEFAULT_WORKER = 2  # on 2 cores one 256-pixel tile on both threads beat two 181-pixel tiles by 1.14-1.25x
OUTPUT_COMPRESSION = dict(compress='deflate', zlevel=1)
OUTPUT_SUFFIXES = ('.tif', '.tiff', '.png')
Item = TypeVar('Item')
Result = TypeVar('Result')


@dataclass(frozen=True)
class TilingOptions:
    """How a scene is cut and run.

    ``tile``: tiles hold at most ``tile`` x ``tile`` LR pixels (the memory of one forward); their shape is
    chosen per scene to forward the fewest pixels (:func:`rssr.inference.tiling.plan_tiles`). Default:
    ``DEFAULT_TILE`` / sqrt(workers), so that the tiles in flight hold about ``DEFAULT_TILE``^2 pixels.
    ``overlap``: LR pixels shared by neighbouring tiles. ``margin``: LR pixels given weight 0 at inner
    tile sides (set it to the network's receptive-field radius). ``batch_size``: tiles per forward
    (default: 4 on a GPU, 1 on the CPU, where batching is no faster and multiplies the memory).
    ``workers``: batches in flight at once on the CPU, each in its own thread with ``threads / workers``
    intra-op threads (default: one per ``THREADS_PER_DEFAULT_WORKER`` threads of torch's pool, at least 1 and
    at most ``MAX_DEFAULT_WORKERS``: fewer, larger tiles overlap less, and each op still has two threads);
    1 on a GPU.
    """

    tile: Optional[int] = None
    overlap: int = 32
    margin: int = 8
    batch_size: Optional[int] = None
    workers: Optional[int] = None

    def __post_init__(self) -> None:
        for name in ('tile', 'batch_size', 'workers'):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise InferenceError(f'Tile size, batch size and workers must be positive; got {name} {value}.')
        smallest_tile = self.tile or DEFAULT_TILE // math.isqrt(MAX_DEFAULT_WORKERS)
        if not 0 <= 2 * self.margin < self.overlap < smallest_tile:
            raise InferenceError(f'Need 0 <= 2*margin < overlap < tile; got margin {self.margin}, overlap '
                                 f'{self.overlap}, tile {smallest_tile}.')

    def for_device(self, device: torch.device) -> 'TilingOptions':
        """These options with ``workers`` and ``tile`` filled in for a run on ``device``."""
        cpu = device.type == 'cpu'
        default = min(max(1, torch.get_num_threads() // THREADS_PER_DEFAULT_WORKER), MAX_DEFAULT_WORKERS)
        workers = (self.workers or default) if cpu else 1
        return replace(self, workers=workers, tile=self.tile or int(DEFAULT_TILE / math.sqrt(workers)))


@dataclass(frozen=True)
class OutputOptions:
    """``dtype``: 'source' (the input's dtype after inverse scaling, rounded and clipped) or 'float32'
    (physical values, NaN as nodata); ``cog``: write a Cloud-Optimised GeoTIFF."""

    dtype: str = 'source'
    cog: bool = False
    overwrite: bool = False

    def __post_init__(self) -> None:
        if self.dtype not in ('source', 'float32'):
            raise InferenceError(f"Output dtype must be 'source' or 'float32'; got {self.dtype!r}.")


def model_scale(model: nn.Module, in_chans: int, device: torch.device) -> int:
    """The model's upscaling factor, measured on a small valid input."""
    requirements: SizeRequirements = getattr(model, 'size_requirements', SizeRequirements())
    side = max(requirements.valid_size(8, 8))
    with torch.inference_mode():
        out = model(torch.zeros(1, in_chans, side, side, device=device))
    return out.shape[-1] // side


def scene_tile_grid(height: int, width: int, tiling: TilingOptions, requirements: SizeRequirements,
                    device: torch.device = torch.device('cpu')) -> TileGrid:
    """The tiles of a ``height`` x ``width`` scene run on ``device``: :func:`plan_tiles` within the tile budget,
    with sides that are multiples of the network's; square tiles of the budget's side for a network that
    needs square or power-of-two inputs (any other shape would be padded to one)."""
    tiling = tiling.for_device(device)
    overlap = min(tiling.overlap, max(tiling.tile - 1, 0))
    align = TILE_ALIGN if tiling.tile - overlap >= TILE_ALIGN else 1
    if requirements.square or requirements.power_of_two:
        return TileGrid(height, width, tiling.tile, tiling.tile, overlap, align)
    return plan_tiles(height, width, tiling.tile, overlap, align, requirements.multiple_of)


class _CellAccumulator:
    """Weighted sums of tile outputs per output cell, written once complete."""

    def __init__(self, grid: TileGrid, scale: int, bands: int) -> None:
        self.grid, self.scale, self.bands = grid, scale, bands
        self.pending: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray]] = {}

    def add(self, tile: Tile, output: np.ndarray, weights: np.ndarray) -> None:
        s = self.scale
        for cell_index in self.grid.cells_touched(tile):
            top, left, height, width = self.grid.cell(*cell_index)
            r0, r1 = max(top, tile.top), min(top + height, tile.top + tile.height)
            c0, c1 = max(left, tile.left), min(left + width, tile.left + tile.width)
            values, total = self._rows(cell_index, (r1 - top) * s, width * s)
            cell_rows = slice((r0 - top) * s, (r1 - top) * s)
            cell_cols = slice((c0 - left) * s, (c1 - left) * s)
            tile_rows = slice((r0 - tile.top) * s, (r1 - tile.top) * s)
            tile_cols = slice((c0 - tile.left) * s, (c1 - tile.left) * s)
            w = weights[tile_rows, tile_cols]
            values[:, cell_rows, cell_cols] += output[:, tile_rows, tile_cols] * w
            total[cell_rows, cell_cols] += w

    def _rows(self, cell_index: Tuple[int, int], rows: int, cols: int) -> Tuple[np.ndarray, np.ndarray]:
        """The sums of a cell's first ``rows`` output rows, grown on demand: a cell below the current
        row of tiles only receives their overlap strip, so only that strip is held for it."""
        values, total = self.pending.get(cell_index, (None, None))
        held = 0 if total is None else total.shape[0]
        if rows > held:
            grown = (np.zeros((self.bands, rows, cols), np.float32), np.zeros((rows, cols), np.float32))
            if held:
                grown[0][:, :held], grown[1][:held] = values, total
            values, total = self.pending[cell_index] = grown
        return values, total

    def pop(self, row: int, col: int) -> np.ndarray:
        values, total = self.pending.pop((row, col))
        return values / total


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[List[Tile]]:
    for start in range(0, len(tiles), size):
        yield list(tiles[start:start + size])


PARTIAL_MARK = '.rssr-partial-'  # a temporary output is named .<name>.rssr-partial-<pid>.tif until complete


def _temporary_path(destination: Path) -> Path:
    return destination.with_name(f'.{destination.name}{PARTIAL_MARK}{os.getpid()}.tif')


def stale_partial_outputs(destination: Path) -> List[Path]:
    """Temporary files of ``destination`` left by processes that were killed while writing it."""
    return sorted(destination.parent.glob(f'.{glob.escape(destination.name)}{PARTIAL_MARK}*'))


def super_resolve_scene(model: nn.Module, source: str | os.PathLike, destination: str | os.PathLike, *,
                        bands: Optional[Sequence[int | str]] = None, band_contract: Optional[BandContract] = None,
                        radiometry: Optional[Radiometry] = None, radiometry_preset: Optional[str] = None,
                        nodata: Optional[float] = None, tiling: TilingOptions = TilingOptions(),
                        output: OutputOptions = OutputOptions(), device: Optional[str] = None,
                        amp: Optional[str] = None, progress: bool = True) -> Path:
    """Super-resolve raster ``source`` into GeoTIFF (or PNG) ``destination``; returns the destination path.

    The output keeps the CRS and band descriptions of the input; its transform is the input's with the
    pixel size divided by the scale. A pixel is nodata when any selected band equals the nodata value
    (``nodata``, else the file's) or is NaN/inf; nodata is filled in before the network
    (:func:`rssr.io.fill_nodata`) and its footprint is written as the output's nodata (see
    :func:`rssr.io.output_nodata`). ``band_contract`` (default: the band count of the model's first
    convolution) picks and checks the bands. Every check of the input, the band selection and the
    output runs before the scene statistics and the network. Nothing is left at ``destination`` if
    anything fails.
    """
    source, destination = Path(source), Path(destination)
    if destination.exists() and not output.overwrite:
        raise InferenceError(f'Output {destination} already exists; pass overwrite=True (--overwrite) to replace it.')
    info = read_raster_info(source)
    band_numbers = (band_contract or BandContract(count=model_in_chans(model))).select(info, bands)
    radiometry = radiometry or resolve_radiometry(info.dtype, len(band_numbers), preset=radiometry_preset)
    if len(radiometry.scale) != len(band_numbers):
        raise InferenceError(f'The radiometry has {len(radiometry.scale)} bands but {len(band_numbers)} bands are '
                             f'selected from {source}.')
    nodata = info.nodata if nodata is None else _checked_nodata(nodata, info)
    out_dtype = 'float32' if output.dtype == 'float32' else info.dtype
    _check_output(destination, len(band_numbers), out_dtype)
    requirements: SizeRequirements = getattr(model, 'size_requirements', SizeRequirements())
    if min(info.height, info.width) < requirements.min_side:
        raise InferenceError(f'{source} is {info.height} x {info.width} pixels, smaller than the '
                             f'{requirements.min_side} pixels per side this model needs.')
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    check_amp(device, amp)
    model = _with_scene_statistics(model.to(device).eval(), source, band_numbers, radiometry, nodata)
    scale = model_scale(model, len(band_numbers), device)
    tiling = tiling.for_device(device)
    grid = scene_tile_grid(info.height, info.width, tiling, requirements, device)
    logger.info('Scene %s (%d x %d): %d tile(s) of %d x %d, %.2fx its pixels through the network.', source,
                info.height, info.width, len(grid), min(grid.tile_height, grid.height),
                min(grid.tile_width, grid.width), grid.forwarded_pixels / (grid.height * grid.width))
    georef = output_georeference(source, zoom=scale, bands=band_numbers)
    georef = replace(georef, dtype=out_dtype, nodata=output_nodata(out_dtype, nodata))
    if output.dtype == 'float32':
        write_radiometry = Radiometry(scale=(1.0,) * len(band_numbers), offset=(0.0,) * len(band_numbers))
    else:
        write_radiometry = radiometry

    def read_tile(tile: Tile) -> RasterArray:
        return read_raster(source, band_numbers, (tile.top, tile.left, tile.height, tile.width), radiometry, nodata)

    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = _temporary_path(destination)
    try:
        _run(model, read_tile, partial, write_radiometry, georef, grid, scale, tiling, requirements, device, amp,
             source.name if progress else '')
        if destination.suffix.lower() == '.png':
            _convert_to_png(partial)
        elif output.cog:
            _convert_to_cog(partial)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _checked_nodata(nodata: float, info: RasterInfo) -> float:
    """A nodata value the user chose for ``info``'s raster, checked against its data type."""
    if np.issubdtype(np.dtype(info.dtype), np.integer):
        limits = np.iinfo(info.dtype)
        if not (float(nodata).is_integer() and limits.min <= nodata <= limits.max):
            raise InferenceError(f'--nodata {nodata:g} is not a {info.dtype} value ({limits.min}..{limits.max}), '
                                 f'the data type of {info.path}.')
        return int(nodata)
    return float(nodata)


def _check_output(destination: Path, bands: int, dtype: str) -> None:
    """The output's format fits its bands and data type, and its folder can be written (a file is created
    and removed in the nearest folder that exists)."""
    suffix = destination.suffix.lower()
    if suffix not in OUTPUT_SUFFIXES:
        raise InferenceError(f'Output {destination}: rssr.infer writes GeoTIFF ({", ".join(OUTPUT_SUFFIXES[:-1])}) '
                             f'or PNG (.png), not {suffix or "a file without an extension"}; name it .tif.')
    if suffix == '.png' and (bands not in (1, 3) or dtype not in ('uint8', 'uint16')):
        raise InferenceError(f'A PNG holds 1 or 3 bands of uint8/uint16; the output {destination} would have {bands} '
                             f'bands of {dtype}. Write a .tif instead.')
    folder = destination.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    if not folder.is_dir():
        raise InferenceError(f'Output {destination}: {folder} is a file, not a folder.')
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise CannotWriteError(f'cannot write {destination}: {folder} is not writable ({err.strerror or err}); '
                               f'choose an output in a folder you can write to.') from None


def _with_scene_statistics(model: nn.Module, source: Path, band_numbers: List[int], radiometry: Radiometry,
                           nodata: Optional[float]) -> nn.Module:
    """For band normalisation mode image: the model with the statistics of the whole scene fixed."""
    from rssr.inference.onnx_runtime import OnnxSR

    if not isinstance(model, (BandNormalizedSR, OnnxSR)) or model.normalization.mode != 'image' \
            or model.fixed_statistics is not None:
        return model
    from rssr.data.band_statistics import scene_band_statistics

    statistics = scene_band_statistics(str(source), band_numbers, radiometry, nodata=nodata)
    logger.info('Band normalisation (mode image) with the statistics of %s (%d valid pixels read): mean %s, std %s',
                source, statistics.pixels, [round(v, 6) for v in statistics.mean],
                [round(v, 6) for v in statistics.std])
    shape = (1, len(statistics.mean), 1, 1)
    return model.with_statistics(torch.tensor(statistics.mean).view(shape), torch.tensor(statistics.std).view(shape))


def _run(model: nn.Module, read_tile: Callable[[Tile], RasterArray], partial: Path, write_radiometry: Radiometry,
         georef: GeoReference, grid: TileGrid, scale: int, tiling: TilingOptions, requirements: SizeRequirements,
         device: torch.device, amp: Optional[str], progress: str) -> None:
    """Write the SR scene to ``partial`` cell by cell; ``read_tile`` reads a tile's LR window, ``progress``
    labels the progress bar ('' for none)."""
    band_count = len(georef.descriptions)
    accumulator = _CellAccumulator(grid, scale, band_count)
    valid_cells: Dict[Tuple[int, int], np.ndarray] = {}
    block = grid.align * scale if grid.align > 1 else UNALIGNED_OUTPUT_BLOCK
    profile = dict(driver='GTiff', height=grid.height * scale, width=grid.width * scale, count=band_count,
                   dtype=georef.dtype, crs=georef.crs, transform=georef.transform, nodata=georef.nodata,
                   tiled=True, blockxsize=block, blockysize=block, BIGTIFF='IF_SAFER', **OUTPUT_COMPRESSION,
                   predictor=3 if np.issubdtype(np.dtype(georef.dtype), np.floating) else 2)
    tiles = list(grid)
    cache = _output_cache_bytes(grid, scale, band_count, georef.dtype, block)
    with warnings.catch_warnings(), rasterio.Env(GDAL_CACHEMAX=cache):
        warnings.simplefilter('ignore', NotGeoreferencedWarning)
        with rasterio.open(partial, 'w', **profile) as dst:
            for band, description in enumerate(georef.descriptions, start=1):
                if description:
                    dst.set_band_description(band, description)
            def read_and_forward(batch: List[Tile]) -> Tuple[List[RasterArray], List[np.ndarray]]:
                lr = [read_tile(tile) for tile in batch]
                return lr, _forward(model, [a.filled() for a in lr], [a.valid for a in lr], requirements, scale,
                                    device, amp)

            batch_size = tiling.batch_size or (1 if device.type == 'cpu' else 4)
            batches = list(_batches(tiles, batch_size))
            results = _in_order(read_and_forward, batches, tiling.workers)
            for batch, (lr, outputs) in zip(batches, tqdm(results, total=len(batches), desc=f'SR {progress}',
                                                          unit='batch', disable=not progress)):
                for tile, lr_tile, sr in zip(batch, lr, outputs):
                    accumulator.add(tile, sr, blend_weights(tile, grid, scale, tiling.margin))
                    for cell_index in grid.cells_touched(tile):
                        _store_validity(valid_cells, grid, cell_index, tile, lr_tile.valid)
                    values = accumulator.pop(tile.row, tile.col)
                    top, left, height, width = grid.cell(tile.row, tile.col)
                    valid = np.repeat(np.repeat(valid_cells.pop((tile.row, tile.col)), scale, 0), scale, 1)
                    dst.write(values_to_dn(values, georef, write_radiometry, valid),
                              window=Window(left * scale, top * scale, width * scale, height * scale))


def _in_order(function: Callable[[Item], Result], items: Sequence[Item], workers: int) -> Iterator[Result]:
    """``function(item)`` for each item, in order, computed ``workers`` at a time in threads, each with
    ``threads / workers`` of torch's intra-op threads (torch releases the GIL inside its ops). At most
    ``workers`` results wait beyond the one being consumed, so memory stays that of ``workers`` items."""
    if workers == 1:
        yield from map(function, items)
        return
    threads = torch.get_num_threads()
    pool = ThreadPoolExecutor(workers, thread_name_prefix='rssr-tile')
    pending: Deque[Future] = deque()
    torch.set_num_threads(max(1, threads // workers))
    try:
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(threads)


def _output_cache_bytes(grid: TileGrid, scale: int, bands: int, dtype: str, block: int) -> int:
    """GDAL block cache for writing the output: the tallest row of cells plus two block rows across the
    width (so no half-written block is evicted; see the module docstring), and 64 MiB for input blocks."""
    tallest = max(grid.cell(row, 0)[2] for row in range(len(grid.row_starts)))
    rows = tallest * scale + 2 * block
    return rows * grid.width * scale * bands * np.dtype(dtype).itemsize + 64 * 2 ** 20


def _store_validity(valid_cells: Dict, grid: TileGrid, cell_index: Tuple[int, int], tile: Tile,
                    tile_valid: np.ndarray) -> None:
    """Copy the tile's LR validity mask into the cell's (identical wherever tiles overlap)."""
    top, left, height, width = grid.cell(*cell_index)
    mask = valid_cells.setdefault(cell_index, np.ones((height, width), dtype=bool))
    r0, r1 = max(top, tile.top), min(top + height, tile.top + tile.height)
    c0, c1 = max(left, tile.left), min(left + width, tile.left + tile.width)
    cell_rows, cell_cols = slice(r0 - top, r1 - top), slice(c0 - left, c1 - left)
    tile_rows, tile_cols = slice(r0 - tile.top, r1 - tile.top), slice(c0 - tile.left, c1 - tile.left)
    mask[cell_rows, cell_cols] = tile_valid[tile_rows, tile_cols]


def _forward(model: nn.Module, tiles: List[np.ndarray], valid: List[np.ndarray], requirements: SizeRequirements,
             scale: int, device: torch.device, amp: Optional[str]) -> List[np.ndarray]:
    """Run a batch of equally sized (C, h, w) tiles with their (h, w) validity masks; pads to the model's
    valid size and crops back."""
    height, width = tiles[0].shape[1:]
    batch = pad_to_valid(torch.from_numpy(np.stack(tiles)).to(device), requirements)
    with torch.inference_mode(), autocast(device, amp):
        if isinstance(model, BandNormalizedSR):
            masks = torch.from_numpy(np.stack(valid)[:, None].astype(np.float32)).to(device)
            sr = model(batch, pad_to_valid(masks, requirements))
        else:
            sr = model(batch)
    sr = crop_output(sr, height, width, scale).float().cpu().numpy()
    return list(sr)


def _convert_to_png(path: Path) -> None:
    """Rewrite the GeoTIFF at ``path`` in place as a PNG (1 or 3 bands of 8/16 bit, checked by
    :func:`_check_output`; no georeference, no nodata)."""
    import cv2

    with rasterio.open(path) as src:
        dn = src.read()
    image = dn[0] if dn.shape[0] == 1 else dn[::-1].transpose(1, 2, 0)
    png = path.with_name(path.name + '.png')
    try:
        if not cv2.imwrite(str(png), np.ascontiguousarray(image)):
            raise InferenceError(f'OpenCV could not write a PNG next to {path}.')
        os.replace(png, path)
    finally:
        png.unlink(missing_ok=True)


def _convert_to_cog(path: Path) -> None:
    """Rewrite the GeoTIFF at ``path`` in place as a Cloud-Optimised GeoTIFF."""
    from rasterio.shutil import copy as raster_copy

    cog = path.with_name(path.name + '.cog.tif')
    try:
        raster_copy(path, cog, driver='COG', compress='DEFLATE', BIGTIFF='IF_SAFER')
        os.replace(cog, path)
    except rasterio.errors.RasterioError as err:
        raise RasterError(f'Could not write a Cloud-Optimised GeoTIFF (GDAL COG driver): {err}') from None
    finally:
        cog.unlink(missing_ok=True)
