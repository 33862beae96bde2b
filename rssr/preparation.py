"""Building blocks of the ``scripts/prepare_*.py`` dataset recipes (see ``docs/datasets.md``).

Every recipe ends in the same layout, which the option files point at::

    <out>/<split>/HR/<name>.<ext>
    <out>/<split>/LR_bicubic/X<s>/<name>.<ext>    (MATLAB bicubic, HR = s x LR exactly)
    <out>/<split>/HR_X<s>/<name>.<ext>            (only for scales that do not divide the HR size:
                                                   HR mod-cropped to s, for training with BasicSR's
                                                   PairedImageDataset, which needs HR = s x LR)

8-bit images with 1 or 3 bands are written as PNG, everything else as GeoTIFF keeping the source's
georeference (a tile's transform is its window's; an LR's pixel size is s times larger).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import torch
from affine import Affine
from tqdm import tqdm

from rssr.errors import DataError, DataNotFoundError
from rssr.io import (
    RASTER_EXTENSIONS,
    GeoReference,
    Radiometry,
    output_georeference,
    read_raster,
    read_raster_info,
    write_raster,
)


@dataclass
class Image:
    """Pixels (C, H, W) as stored (float32 DN), where they came from, and which are valid ((H, W), False
    where a band holds the nodata value or NaN; None when every pixel is valid): nodata stays nodata."""

    name: str
    dn: np.ndarray
    georef: GeoReference
    valid: Optional[np.ndarray] = None

    def crop(self, row: int, col: int, height: int, width: int, name: Optional[str] = None) -> 'Image':
        transform = self.georef.transform @ Affine.translation(col, row)
        georef = GeoReference(self.georef.crs, transform, self.georef.descriptions, self.georef.nodata,
                              self.georef.dtype, self.georef.source_driver)
        valid = None if self.valid is None else self.valid[row:row + height, col:col + width]
        return Image(name or self.name, self.dn[:, row:row + height, col:col + width], georef, valid)


def _identity(num_bands: int) -> Radiometry:
    return Radiometry((1.0,) * num_bands, (0.0,) * num_bands)


def load_image(path: Path, name: Optional[str] = None, bands: Optional[Sequence] = None) -> Image:
    """Read a raster's stored values (no radiometric scaling) with its georeference and nodata mask."""
    info = read_raster_info(path)
    raster = read_raster(path, bands=bands, radiometry=_identity(len(bands) if bands else info.count))
    return Image(name or Path(path).stem, raster.values, output_georeference(path, bands=bands),
                 None if raster.valid.all() else raster.valid)


def list_images(folder: Path, recursive: bool = True) -> List[Path]:
    """Raster files under ``folder``, sorted; an error naming the folder when there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataNotFoundError(f'Input folder not found: {folder}')
    pattern = folder.rglob('*') if recursive else folder.glob('*')
    found = sorted(p for p in pattern if p.is_file() and p.suffix.lower() in RASTER_EXTENSIONS)
    if not found:
        raise DataNotFoundError(f'No images ({", ".join(RASTER_EXTENSIONS)}) found in {folder}.')
    return found


def images_by_class(root: Path) -> Dict[str, List[Path]]:
    """``{class folder name: sorted images}`` for a scene-classification dataset (one folder per class)."""
    if not Path(root).is_dir():
        raise DataNotFoundError(f'Input folder not found: {root} (expected <root>/<class>/<image>: the downloaded '
                                f'dataset, unpacked).')
    classes = {d.name: list_images(d) for d in sorted(Path(root).iterdir()) if d.is_dir()}
    if not classes:
        raise DataNotFoundError(f'No class folders in {root}: expected <root>/<class>/<image>.')
    return classes


def seeded_class_split(classes: Dict[str, List[Path]], counts: Dict[str, Optional[int]], seed: int
                       ) -> Dict[str, List[Tuple[str, Path]]]:
    """Per class, shuffle with ``seed`` and take ``counts[split]`` images per split in order
    (``None`` = all remaining). Returns ``{split: [(class, path)]}``; an error if a class is too small."""
    splits: Dict[str, List[Tuple[str, Path]]] = {split: [] for split in counts}
    for class_name, paths in classes.items():
        order = list(paths)
        random.Random(f'{seed}-{class_name}').shuffle(order)
        needed = sum(n for n in counts.values() if n is not None)
        if needed > len(order):
            raise DataError(f'Class {class_name} has {len(order)} images, fewer than the {needed} the split needs.')
        start = 0
        for split, count in counts.items():
            stop = len(order) if count is None else start + count
            splits[split].extend((class_name, p) for p in order[start:stop])
            start = stop
    return splits


def seeded_subset(paths: Sequence[Path], count: Optional[int], seed: int) -> List[Path]:
    """``count`` paths drawn with ``seed`` (all when None), in sorted order."""
    if count is None or count >= len(paths):
        return sorted(paths)
    return sorted(random.Random(seed).sample(list(paths), count))


def center_crop(image: Image, size: int) -> Image:
    _, height, width = image.dn.shape
    if min(height, width) < size:
        raise DataError(f'{image.name} is {height} x {width}, smaller than the centre crop {size} x {size}.')
    return image.crop((height - size) // 2, (width - size) // 2, size, size)


def tile_positions(length: int, tile: int, step: int) -> List[int]:
    """Tile starts along one axis: every ``step``, plus a last tile flush with the end (as BasicSR's
    ``extract_subimages`` with ``thresh_size`` 0)."""
    if length < tile:
        return []
    starts = list(range(0, length - tile + 1, step))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tiles(image: Image, tile: int, step: int) -> Iterator[Image]:
    """Sub-images named ``<name>_s<index>`` (BasicSR's sub-image naming, 1-based)."""
    _, height, width = image.dn.shape
    index = 0
    for row in tile_positions(height, tile, step):
        for col in tile_positions(width, tile, step):
            index += 1
            yield image.crop(row, col, tile, tile, f'{image.name}_s{index:03d}')


def mod_crop(image: Image, scale: int) -> Image:
    _, height, width = image.dn.shape
    return image.crop(0, 0, height - height % scale, width - width % scale)


def bicubic_lr(image: Image, scale: int) -> Image:
    """MATLAB ``imresize(hr, 1/scale, 'bicubic')`` of the mod-cropped HR, rounded to the stored type; an LR
    pixel within reach of a nodata HR pixel is nodata."""
    from rssr.data.degradations import DegradationPipeline, bicubic_downsample

    hr = mod_crop(image, scale)
    lr = bicubic_downsample(torch.from_numpy(np.ascontiguousarray(hr.dn)), scale).double().numpy()
    if np.issubdtype(np.dtype(image.georef.dtype), np.integer):
        limits = np.iinfo(image.georef.dtype)
        lr = np.clip(np.rint(lr), limits.min, limits.max)
    georef = output_georeference_scaled(hr.georef, 1.0 / scale)
    valid = None
    if hr.valid is not None:
        valid = DegradationPipeline(None, scale).lq_valid(torch.from_numpy(hr.valid)[None])[0].numpy() > 0.5
    return Image(image.name, lr.astype(np.float32), georef, valid)


def output_georeference_scaled(georef: GeoReference, zoom: float) -> GeoReference:
    transform = georef.transform @ Affine.scale(1.0 / zoom)
    return GeoReference(georef.crs, transform, georef.descriptions, georef.nodata, georef.dtype, georef.source_driver)


def save(image: Image, folder: Path) -> Path:
    """PNG for 8-bit 1/3-band images, GeoTIFF otherwise."""
    num_bands = image.dn.shape[0]
    as_png = image.georef.dtype == 'uint8' and num_bands in (1, 3) and image.georef.crs is None
    path = Path(folder) / f'{image.name}.{"png" if as_png else "tif"}'
    return write_raster(path, image.dn, image.georef, _identity(num_bands), image.valid,
                        driver='PNG' if as_png else 'GTiff')


def write_sr_split(images: Iterable[Image], out_root: Path, split: str, scales: Sequence[int],
                   total: Optional[int] = None) -> int:
    """Write HR and MATLAB-bicubic LR for every scale in the layout above; returns the image count."""
    count = 0
    for image in tqdm(images, total=total, desc=f'{Path(out_root).name}/{split}', unit='image'):
        save(image, Path(out_root) / split / 'HR')
        _, height, width = image.dn.shape
        for scale in scales:
            save(bicubic_lr(image, scale), Path(out_root) / split / 'LR_bicubic' / f'X{scale}')
            if height % scale or width % scale:
                save(mod_crop(image, scale), Path(out_root) / split / f'HR_X{scale}')
        count += 1
    return count


def add_common_arguments(parser, scales: Sequence[int] = (2, 3, 4), seed: bool = True) -> None:
    """``--input``, ``--output``, ``--scales`` (and ``--seed``) shared by every recipe."""
    parser.add_argument('--input', required=True, type=Path, help='downloaded dataset folder')
    parser.add_argument('--output', required=True, type=Path, help='dataset root to create, e.g. datasets/AID')
    parser.add_argument('--scales', type=int, nargs='+', default=list(scales), help='LR scales to make')
    if seed:
        parser.add_argument('--seed', type=int, default=0, help='seed of the split / subset (record it!)')
