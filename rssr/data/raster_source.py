"""What the multiband datasets share: raster options from YAML, file discovery and pairing, header checks.

Dataset options read here (all optional)::

    bands: [B04, B03, B02, B08]   # 1-based band numbers or band descriptions; default: all bands
    radiometry: sentinel2         # a preset of rssr.io.RADIOMETRY_PRESETS, or:
    dn_scale: 1.0e-4              # per-band list or one number: value = DN * dn_scale + dn_offset
    dn_offset: 0.0
    nodata: 0                     # overrides the files' nodata value
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import torch
from tqdm import tqdm

from rssr.errors import DataError, DataNotFoundError
from rssr.io import (
    RASTER_EXTENSIONS,
    Radiometry,
    RasterArray,
    RasterInfo,
    read_raster,
    read_raster_info,
    resolve_bands,
    resolve_radiometry,
)


@dataclass
class RasterReader:
    """Reads windows of rasters with one band selection, radiometry and nodata rule."""

    bands: Optional[List[Any]] = None
    radiometry: Optional[str] = None
    dn_scale: Any = None
    dn_offset: Any = None
    nodata: Optional[float] = None
    _infos: Dict[str, RasterInfo] = field(default_factory=dict, repr=False)

    @classmethod
    def from_options(cls, opt: Dict[str, Any]) -> 'RasterReader':
        return cls(bands=opt.get('bands'), radiometry=opt.get('radiometry'), dn_scale=opt.get('dn_scale'),
                   dn_offset=opt.get('dn_offset'), nodata=opt.get('nodata'))

    def info(self, path: str) -> RasterInfo:
        if path not in self._infos:
            self._infos[path] = read_raster_info(path)
        return self._infos[path]

    def band_numbers(self, path: str) -> List[int]:
        return resolve_bands(self.info(path), self.bands)

    def radiometry_for(self, path: str) -> Radiometry:
        info = self.info(path)
        return resolve_radiometry(info.dtype, len(self.band_numbers(path)), self.radiometry, self.dn_scale,
                                  self.dn_offset)

    def read(self, path: str, window: Optional[Tuple[int, int, int, int]] = None) -> RasterArray:
        return read_raster(path, self.bands, window, self.radiometry_for(path), self.nodata)

    def georef(self, path: str, window: Tuple[int, int, int, int], zoom: float) -> Dict[str, Any]:
        """Collate-friendly description of where an SR output of this sample lies (read by the model);
        ``nodata`` is the dataset's ``nodata`` option, NaN when it has none (the file's then applies)."""
        radiometry = self.radiometry_for(path)
        return {'path': path, 'window': torch.tensor(window, dtype=torch.long), 'zoom': float(zoom),
                'bands': torch.tensor(self.band_numbers(path), dtype=torch.long),
                'dn_scale': torch.tensor(radiometry.scale, dtype=torch.float64),
                'dn_offset': torch.tensor(radiometry.offset, dtype=torch.float64),
                'nodata': torch.tensor(float('nan') if self.nodata is None else self.nodata, dtype=torch.float64)}


RASTER_OPTION_KEYS = ('bands', 'radiometry', 'dn_scale', 'dn_offset', 'nodata')


def list_rasters(folder: str) -> List[str]:
    """Raster files under ``folder`` (recursive, sorted; a raster file is its own list); an error naming
    the folder if there are none."""
    if os.path.isfile(folder) and Path(folder).suffix.lower() in RASTER_EXTENSIONS:
        return [folder]
    if not os.path.isdir(folder):
        raise DataNotFoundError(f'Dataset folder not found: {folder}')
    found = sorted(str(p) for p in Path(folder).rglob('*') if p.suffix.lower() in RASTER_EXTENSIONS and p.is_file())
    if not found:
        raise DataNotFoundError(f'No images ({", ".join(RASTER_EXTENSIONS)}) found in {folder}.')
    return found


def _lq_candidates(lq_folder: str, relative_gt: Path, filename_tmpl: str) -> Dict[str, str]:
    stem = filename_tmpl.format(relative_gt.stem)
    return {ext: os.path.normpath(os.path.join(lq_folder, relative_gt.parent, stem + ext)) for ext in
            (relative_gt.suffix, *RASTER_EXTENSIONS, *(e.upper() for e in RASTER_EXTENSIONS))}


def pair_paths(gt_folder: str, lq_folder: str, filename_tmpl: str = '{}',
               meta_info_file: Optional[str] = None) -> List[Dict[str, str]]:
    """``[{'gt_path', 'lq_path'}]`` pairing GT ``a/b.tif`` with LQ ``a/<tmpl(b)>.<any raster ext>``.

    GT names come from ``meta_info_file`` (first word of each line, relative to ``gt_folder``) or from
    scanning ``gt_folder``. The LQ file keeps the GT's extension when it exists, else any raster one.
    """
    if meta_info_file:
        with open(meta_info_file) as handle:
            gt_paths = [os.path.join(gt_folder, line.split()[0]) for line in handle if line.strip()]
        if not gt_paths:
            raise DataNotFoundError(f'meta_info_file {meta_info_file} lists no images.')
    else:
        gt_paths = list_rasters(gt_folder)
        list_rasters(lq_folder)
    pairs = []
    for gt_path in gt_paths:
        candidates = _lq_candidates(lq_folder, Path(os.path.relpath(gt_path, gt_folder)), filename_tmpl)
        lq_path = next((p for p in candidates.values() if os.path.isfile(p)), None)
        if lq_path is None:
            raise DataNotFoundError(f'No LQ image for GT {gt_path}: expected {candidates[Path(gt_path).suffix]} '
                                    f'(or the same name with another raster extension).')
        pairs.append({'gt_path': gt_path, 'lq_path': lq_path})
    return pairs


def check_band_counts(reader: RasterReader, paths: Sequence[Tuple[str, str]], expected: Optional[int] = None) -> int:
    """Band count shared by every (role, path); raise naming the first file that differs."""
    counts = {}
    for role, path in paths:
        counts[(role, path)] = len(reader.band_numbers(path))
    reference_role, reference_path = paths[0]
    reference = expected if expected is not None else counts[(reference_role, reference_path)]
    for (role, path), count in counts.items():
        if count != reference:
            raise DataError(f'Band count mismatch: {role} {path} gives {count} bands but '
                            f'{reference_role} {reference_path} gives {reference}. Every file must have the same '
                            f'bands: remove or convert the odd file, or read common bands with the dataset option '
                            f'`bands`.')
    return reference


def read_headers(reader: RasterReader, paths: Sequence[str], desc: str) -> None:
    """Open every file's header once (errors name the unreadable file before training starts)."""
    for path in tqdm(paths, desc=desc, unit='file', disable=len(paths) < 500):
        reader.band_numbers(path)


def raster_band_names(reader: RasterReader, path: str) -> Tuple[str, ...]:
    """Descriptions of the bands ``reader`` reads from ``path``, in order; () when a band is undescribed."""
    names = tuple(reader.info(path).descriptions[n - 1] for n in reader.band_numbers(path))
    return names if all(names) else ()
