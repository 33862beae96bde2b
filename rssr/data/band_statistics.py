"""Per-band mean and std of a training set or a scene, streamed, with nodata pixels left out.

Used by ``band_normalization: {mode: dataset}`` (computed at the start of training when the options
give no mean/std), by ``scripts/compute_band_stats.py``, and by ``rssr.infer`` for
``mode: image`` (the statistics of the whole scene, from a decimated read when it is large).

What is measured is what the dataset yields as GT, in physical units: for the rssr raster datasets
(:class:`MultibandPairedDataset`, :class:`SceneDegradationDataset`) every GT raster is read in strips
with the dataset's band selection, radiometry and nodata rule; any other dataset (e.g. BasicSR's
``PairedImageDataset``) is read item by item in ``phase: val`` form (whole images, no augmentation).
Means and variances are merged with Chan et al.'s pairwise update in float64, so the result does
not depend on the strip size and matches ``numpy.mean`` / ``numpy.std`` of all valid pixels.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Iterator, List, Optional, Sequence, Tuple

import numpy as np

from rssr.errors import DataError
from rssr.io import Radiometry, RasterArray, read_raster, read_raster_info, resolve_bands

logger = logging.getLogger('rssr')
STRIP_PIXELS = 2 ** 22  # pixels per strip read: memory stays bounded on wide scenes
DEFAULT_SCENE_PIXELS = 4_000_000  # decimate scenes larger than this for mode image at inference


@dataclass(frozen=True)
class BandStatistics:
    """Per-band ``mean`` and population ``std`` over ``pixels`` valid pixels."""

    mean: Tuple[float, ...]
    std: Tuple[float, ...]
    pixels: int


class RunningBandStatistics:
    """Streaming per-band mean/variance (Chan et al. pairwise merge, float64)."""

    def __init__(self) -> None:
        self.count = 0
        self.mean: Optional[np.ndarray] = None
        self.m2: Optional[np.ndarray] = None

    def add(self, values: np.ndarray, valid: Optional[np.ndarray] = None) -> None:
        """Add the pixels of ``values`` (C, H, W) where ``valid`` (H, W) is true (all when None)."""
        pixels = values.reshape(values.shape[0], -1) if valid is None else values[:, np.asarray(valid, bool)]
        count = pixels.shape[1]
        if count == 0:
            return
        pixels = pixels.astype(np.float64)
        mean = pixels.mean(axis=1)
        m2 = ((pixels - mean[:, None]) ** 2).sum(axis=1)
        if self.mean is None:
            self.count, self.mean, self.m2 = count, mean, m2
            return
        if mean.shape != self.mean.shape:
            raise DataError(f'Band statistics: an image with {mean.shape[0]} bands after images with '
                             f'{self.mean.shape[0]} bands')
        total = self.count + count
        delta = mean - self.mean
        self.mean = self.mean + delta * count / total
        self.m2 = self.m2 + m2 + delta ** 2 * self.count * count / total
        self.count = total

    def result(self, source: str = 'the images read') -> BandStatistics:
        """The statistics so far; an error naming ``source`` when no valid pixel was added."""
        if self.mean is None:
            raise DataError(f'Band statistics of {source}: no valid pixel (every pixel is nodata: the nodata value '
                            f'or NaN/inf in a band).')
        return BandStatistics(mean=tuple(self.mean.tolist()), std=tuple(np.sqrt(self.m2 / self.count).tolist()),
                              pixels=int(self.count))


def decimation_stride(height: int, width: int, max_pixels: Optional[int]) -> int:
    """Row/column step that reads at most about ``max_pixels`` pixels (1: every pixel)."""
    if not max_pixels or height * width <= max_pixels:
        return 1
    return int(math.ceil(math.sqrt(height * width / max_pixels)))


def raster_strips(read_window: Callable[[Tuple[int, int, int, int]], RasterArray], height: int, width: int,
                  stride: int = 1) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
    """(values, valid) of a raster read in strips of rows, keeping every ``stride``-th row and column."""
    rows_per_strip = stride * max(1, STRIP_PIXELS // (width * stride))
    for top in range(0, height, rows_per_strip):
        strip = read_window((top, 0, min(rows_per_strip, height - top), width))
        yield strip.values[:, ::stride, ::stride], strip.valid[::stride, ::stride]


def raster_band_statistics(sources: Sequence[Tuple[int, int, Callable]], max_pixels: Optional[int] = None,
                           name: str = 'the rasters read') -> BandStatistics:
    """Statistics over rasters given as (height, width, read_window); each decimated to ``max_pixels``;
    ``name`` says in errors what the rasters are."""
    running = RunningBandStatistics()
    for height, width, read_window in sources:
        for values, valid in raster_strips(read_window, height, width, decimation_stride(height, width, max_pixels)):
            running.add(values, valid)
    return running.result(name)


def scene_band_statistics(path: str, bands: Optional[Sequence[Any]], radiometry: Optional[Radiometry],
                          max_pixels: Optional[int] = DEFAULT_SCENE_PIXELS, nodata: Optional[float] = None
                          ) -> BandStatistics:
    """Statistics of one scene as ``rssr.infer`` reads it (bands, radiometry, nodata: ``nodata`` overrides
    the file's), decimated to about ``max_pixels`` pixels."""
    info = read_raster_info(path)
    numbers = resolve_bands(info, bands)
    return raster_band_statistics(
        [(info.height, info.width, lambda window: read_raster(path, numbers, window, radiometry, nodata))],
        max_pixels, f'{path} (bands {", ".join(map(str, numbers))})')


def _gt_rasters(dataset: Any) -> Optional[List[str]]:
    """The GT raster files of an rssr raster dataset, or None for other datasets."""
    if not hasattr(dataset, 'reader'):
        return None
    if hasattr(dataset, 'scenes'):
        return list(dataset.scenes)
    if hasattr(dataset, 'paths'):
        return [pair['gt_path'] for pair in dataset.paths]
    return None


def _item_arrays(dataset: Any) -> Iterable[Tuple[np.ndarray, Optional[np.ndarray]]]:
    for index in range(len(dataset)):
        item = dataset[index]
        valid = item.get('gt_valid')
        yield item['gt'].numpy(), None if valid is None else valid.numpy()[0] > 0.5


def dataset_band_statistics(dataset: Any, max_pixels_per_image: Optional[int] = None) -> BandStatistics:
    """Per-band statistics of the GT ``dataset`` yields (see the module docstring); the bridge builds it from
    the options (:func:`rssr.basicsr.datasets.build_dataset_from_options`)."""
    rasters = _gt_rasters(dataset)
    if rasters is not None:
        reader = dataset.reader
        sources = [(reader.info(path).height, reader.info(path).width,
                    lambda window, path=path: reader.read(path, window)) for path in rasters]
        return raster_band_statistics(sources, max_pixels_per_image)
    running = RunningBandStatistics()
    for values, valid in _item_arrays(dataset):
        running.add(values, valid)
    return running.result()


__all__ = ['BandStatistics', 'RunningBandStatistics', 'dataset_band_statistics', 'scene_band_statistics',
           'raster_band_statistics', 'decimation_stride']
