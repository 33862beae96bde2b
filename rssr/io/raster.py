"""Multiband raster I/O: windows of GeoTIFF/PNG/JPEG files in, georeferenced GeoTIFF (or PNG) out.

Reading returns physical values (``DN * scale + offset``, e.g. reflectance) as float32 ``(C, H, W)``
arrays plus a validity mask built from the file's nodata value. Writing inverts that mapping back
to the source data type and keeps CRS, band descriptions and nodata; the transform of an SR output
is the transform of its input window with the pixel size divided by the zoom factor.

Band numbers follow GDAL/rasterio: the first band is 1. A band may also be named by its
description (e.g. ``'B08'``).
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Optional, Sequence, Tuple, Union

import numpy as np

from rssr.band_names import band_position
from rssr.errors import DataError

if TYPE_CHECKING:
    import rasterio
    from affine import Affine

__all__ = ['RADIOMETRY_PRESETS', 'RASTER_EXTENSIONS', 'GeoReference', 'Radiometry', 'RasterArray', 'RasterError',
           'RasterInfo', 'fill_nodata', 'output_georeference', 'output_nodata', 'read_raster', 'read_raster_info',
           'resolve_bands', 'resolve_radiometry', 'values_to_dn', 'write_raster']

BandSpec = Union[int, str]
WindowSpec = Tuple[int, int, int, int]  # (row_off, col_off, height, width) in pixels
RASTER_EXTENSIONS = ('.tif', '.tiff', '.png', '.jpg', '.jpeg')
INPAINT_RADIUS = 3  # pixels around a nodata pixel that fill_nodata draws from
UINT16_LEVELS = 65535

#: Named DN -> physical value mappings: value = DN * scale + offset.
RADIOMETRY_PRESETS = {
    # Sentinel-2 L1C/L2A before processing baseline 04.00 (Jan 2022): reflectance = DN / 10000.
    'sentinel2': (1e-4, 0.0),
    # Sentinel-2 L1C/L2A from processing baseline 04.00 on: (DN + RADIO_ADD_OFFSET=-1000) / 10000.
    'sentinel2_pb04': (1e-4, -0.1),
    # Landsat 8/9 Collection 2 Level-2 surface reflectance.
    'landsat_c2_l2_sr': (2.75e-5, -0.2),
    # 8-bit imagery (PNG/JPEG benchmarks) to [0, 1], as BasicSR reads it.
    'uint8_unit': (1 / 255, 0.0),
}


class RasterError(DataError):
    """A raster cannot be read or does not match what was asked of it; the message names the file."""


@dataclass(frozen=True)
class RasterInfo:
    """Header of a raster file (no pixels read)."""

    path: str
    driver: str
    height: int
    width: int
    count: int
    dtype: str
    crs: Optional[rasterio.crs.CRS]
    transform: Affine
    nodata: Optional[float]
    descriptions: Tuple[Optional[str], ...]


@dataclass(frozen=True)
class Radiometry:
    """Per-band linear mapping between stored digital numbers and physical values."""

    scale: Tuple[float, ...]
    offset: Tuple[float, ...]

    def to_physical(self, dn: np.ndarray) -> np.ndarray:
        """``(C, H, W)`` DN -> float32 physical values; no clipping (reflectance may exceed 1)."""
        scale = np.asarray(self.scale, dtype=np.float64)[:, None, None]
        offset = np.asarray(self.offset, dtype=np.float64)[:, None, None]
        return (dn.astype(np.float64) * scale + offset).astype(np.float32)

    def to_dn(self, values: np.ndarray, dtype: str) -> np.ndarray:
        """``(C, H, W)`` physical values -> ``dtype`` DN, rounded and clipped to the type's range."""
        # float32 values to 8/16-bit or float32 DN stay float32 (one copy, then in place): exact to 0.01 DN up
        # to 65535, and the whole output of a scene passes through here
        narrow = np.dtype(dtype) in (np.uint8, np.int8, np.uint16, np.int16, np.float32)
        precision = np.float32 if values.dtype == np.float32 and narrow else np.float64
        dn = values.astype(precision)
        dn -= np.asarray(self.offset, dtype=precision)[:, None, None]
        dn /= np.asarray(self.scale, dtype=precision)[:, None, None]
        if np.issubdtype(np.dtype(dtype), np.integer):
            limits = np.iinfo(dtype)
            np.clip(np.rint(dn, out=dn), limits.min, limits.max, out=dn)
        return dn.astype(dtype)


def _rasterio() -> ModuleType:
    """rasterio, imported on first use: ``import rssr`` and the archs need no GDAL (a GPU machine that checks
    the kernels may have none, docs/gpu.md)."""
    import rasterio
    import rasterio.windows
    return rasterio


def _open(path: Union[str, Path]) -> rasterio.io.DatasetReader:
    if not Path(path).is_file():
        raise RasterError(f'Raster file not found: {path}')
    rasterio = _rasterio()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
            return rasterio.open(path)
    except rasterio.errors.RasterioError as err:
        raise RasterError(f'Cannot read raster {path}: {err}') from None


def read_raster_info(path: Union[str, Path]) -> RasterInfo:
    """Read the header of ``path``; raises :class:`RasterError` naming the file if it is unreadable."""
    with _open(path) as src:
        return RasterInfo(path=str(path), driver=src.driver, height=src.height, width=src.width,
                          count=src.count, dtype=src.dtypes[0], crs=src.crs, transform=src.transform,
                          nodata=src.nodata, descriptions=tuple(src.descriptions))


def resolve_bands(info: RasterInfo, bands: Optional[Sequence[BandSpec]]) -> list[int]:
    """1-based band numbers for ``bands`` (numbers or descriptions, names resolved by
    :func:`rssr.band_names.band_position`: ``nir`` finds a band described ``B08``); all bands when ``bands`` is None.
    A band selected twice (by number and description alike) is an error naming it."""
    if bands is None:
        return list(range(1, info.count + 1))
    numbers: list[int] = []
    for band in bands:
        if isinstance(band, str):
            position = band_position(band, info.descriptions)
            if position is None:
                known = ', '.join(str(d) for d in info.descriptions)
                raise RasterError(f'Band {band!r} not found in {info.path}; its band descriptions are: {known}.')
            numbers.append(position + 1)
        elif isinstance(band, (int, np.integer)) and not isinstance(band, bool):
            if not 1 <= band <= info.count:
                raise RasterError(f'Band {band} is out of range for {info.path}, which has {info.count} bands '
                                  f'(band numbers are 1-based: 1..{info.count}).')
            numbers.append(int(band))
        else:
            raise RasterError(f'Band {band!r} must be a 1-based band number or a band description ({info.path}).')
        if numbers[-1] in numbers[:-1]:
            first = bands[numbers.index(numbers[-1])]
            described = f' ({info.descriptions[numbers[-1] - 1]})' if info.descriptions[numbers[-1] - 1] else ''
            raise RasterError(f'Band {numbers[-1]}{described} of {info.path} is selected twice, as {first!r} and '
                              f'{band!r} in the band selection {", ".join(map(str, bands))}; select each band once.')
    return numbers


def _per_band(value: Union[float, Sequence[float]], num_bands: int, what: str) -> Tuple[float, ...]:
    if np.ndim(value) == 0:
        return (float(value),) * num_bands
    values = tuple(float(v) for v in value)
    if len(values) != num_bands:
        raise DataError(f'{what} has {len(values)} values but {num_bands} bands are read.')
    return values


def resolve_radiometry(dtype: str, num_bands: int, preset: Optional[str] = None,
                       scale: Union[None, float, Sequence[float]] = None,
                       offset: Union[None, float, Sequence[float]] = None) -> Radiometry:
    """DN -> physical mapping from a preset name or explicit per-band ``scale``/``offset``.

    Without either, integer rasters are normalised by their type's maximum (uint8 -> /255,
    uint16 -> /65535) and float rasters are kept as they are.
    """
    if preset is not None:
        if scale is not None or offset is not None:
            raise DataError(f'Give either the radiometry preset {preset!r} or dn_scale/dn_offset, not both.')
        if preset not in RADIOMETRY_PRESETS:
            raise DataError(f'Unknown radiometry preset {preset!r}; known: {", ".join(RADIOMETRY_PRESETS)}.')
        scale, offset = RADIOMETRY_PRESETS[preset]
    if scale is None:
        scale = 1.0 / np.iinfo(dtype).max if np.issubdtype(np.dtype(dtype), np.integer) else 1.0
    return Radiometry(scale=_per_band(scale, num_bands, 'dn_scale'),
                      offset=_per_band(0.0 if offset is None else offset, num_bands, 'dn_offset'))


@dataclass
class RasterArray:
    """Physical values ``(C, H, W)`` float32 with a ``(H, W)`` validity mask (False = nodata)."""

    values: np.ndarray
    valid: np.ndarray
    info: RasterInfo
    band_numbers: list[int]

    def filled(self) -> np.ndarray:
        """``values`` with the nodata pixels filled in from the valid pixels around them (:func:`fill_nodata`)."""
        return fill_nodata(self.values, self.valid)


def fill_nodata(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` ``values`` with the pixels outside ``valid`` (``(H, W)`` bool) filled in from the valid
    pixels around them, band by band; valid pixels unchanged, zeros where no pixel is valid.

    A network fed nodata as a constant (0, or the band mean) sees a false edge around every hole and
    spreads it into the valid pixels next to it; a filled hole continues the image instead. The fill
    is OpenCV's Navier-Stokes inpainting (radius ``INPAINT_RADIUS``), run on each band scaled to 16
    bits over its valid range: it kept valid pixels next to holes closest to their quality without
    holes of the fills measured (docs/inference.md, "Nodata"), and OpenCV's float32 path does worse.
    """
    if valid.all():
        return values
    if not valid.any():
        return np.zeros_like(values)
    import cv2

    holes = ~valid
    mask = holes.astype(np.uint8)
    filled = values.copy()
    for band, out in zip(values, filled):
        low, high = float(band[valid].min()), float(band[valid].max())
        span = (high - low) or 1.0
        levels = np.rint((np.where(valid, band, low) - low) / span * UINT16_LEVELS).astype(np.uint16)
        inpainted = cv2.inpaint(levels, mask, INPAINT_RADIUS, cv2.INPAINT_NS)
        out[holes] = inpainted[holes] * (span / UINT16_LEVELS) + low
    return filled


def _check_window(info: RasterInfo, window: WindowSpec) -> rasterio.windows.Window:
    row, col, height, width = (int(v) for v in window)
    if row < 0 or col < 0 or height <= 0 or width <= 0 or row + height > info.height or col + width > info.width:
        raise RasterError(f'Window rows {row}..{row + height}, cols {col}..{col + width} is outside '
                          f'{info.path} ({info.height} x {info.width} pixels).')
    return _rasterio().windows.Window(col, row, width, height)


def read_raster(path: Union[str, Path], bands: Optional[Sequence[BandSpec]] = None,
                window: Optional[WindowSpec] = None, radiometry: Optional[Radiometry] = None,
                nodata: Optional[float] = None) -> RasterArray:
    """Read ``bands`` of ``path`` inside ``window`` as physical values.

    ``nodata`` overrides the file's nodata value. A pixel is invalid when any selected band equals
    nodata or is not finite; invalid pixels are set to 0 in ``values``.
    """
    info = read_raster_info(path)
    numbers = resolve_bands(info, bands)
    rio_window = None if window is None else _check_window(info, window)
    if info.driver == 'JPEG':
        dn = _read_jpeg(path, numbers, rio_window)
    else:
        try:
            with _open(path) as src:
                dn = src.read(numbers, window=rio_window)
        except _rasterio().errors.RasterioError as err:
            raise RasterError(f'Cannot read pixels of {path} (file damaged or truncated?): {err}') from None
    nodata = info.nodata if nodata is None else nodata
    valid = np.ones(dn.shape[1:], dtype=bool)
    if nodata is not None and not np.isnan(nodata):
        valid &= ~np.any(dn == nodata, axis=0)
    if np.issubdtype(dn.dtype, np.floating):
        valid &= np.all(np.isfinite(dn), axis=0)
    radiometry = radiometry or resolve_radiometry(info.dtype, len(numbers))
    if len(radiometry.scale) != len(numbers):
        raise DataError(f'Radiometry has {len(radiometry.scale)} bands but {len(numbers)} bands are read '
                        f'from {path}.')
    values = radiometry.to_physical(np.where(valid, dn, 0))
    values[:, ~valid] = 0.0
    return RasterArray(values=values, valid=valid, info=info, band_numbers=numbers)


def _read_jpeg(path: Union[str, Path], numbers: list[int], window: Optional[rasterio.windows.Window]) -> np.ndarray:
    """Decode a JPEG with OpenCV, whose pixels match PIL's and BasicSR's (GDAL's decoder differs by a
    few levels in chroma), so that benchmark images read as the papers read them."""
    import cv2

    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if image is None:
        raise RasterError(f'Cannot decode JPEG {path} (file damaged or truncated?).')
    dn = image[None] if image.ndim == 2 else image[..., ::-1].transpose(2, 0, 1)  # BGR -> RGB
    if window is not None:
        dn = dn[:, window.row_off:window.row_off + window.height, window.col_off:window.col_off + window.width]
    return np.ascontiguousarray(dn[[n - 1 for n in numbers]])


@dataclass(frozen=True)
class GeoReference:
    """Where an output raster sits and how its bands are stored."""

    crs: Optional[rasterio.crs.CRS]
    transform: Affine
    descriptions: Tuple[Optional[str], ...]
    nodata: Optional[float]
    dtype: str
    source_driver: str


def output_georeference(path: Union[str, Path], window: Optional[WindowSpec] = None, zoom: float = 1.0,
                        bands: Optional[Sequence[BandSpec]] = None) -> GeoReference:
    """Georeference of an output whose pixels are ``zoom`` times smaller than those of ``window`` in ``path``.

    For a ×4 SR result of an LR file: ``output_georeference(lr_path, zoom=4)``; for the SR result
    of an LR made from an HR window: ``output_georeference(hr_path, window, zoom=1)``.
    """
    info = read_raster_info(path)
    numbers = resolve_bands(info, bands)
    transform = info.transform
    if window is not None:
        transform = _rasterio().windows.transform(_check_window(info, window), transform)
    return GeoReference(crs=info.crs, transform=transform @ transform.scale(1.0 / zoom),
                        descriptions=tuple(info.descriptions[n - 1] for n in numbers),
                        nodata=info.nodata, dtype=info.dtype, source_driver=info.driver)


def output_nodata(dtype: str, declared: Optional[float], invalid_pixels: bool = False) -> Optional[float]:
    """The nodata value of an output of ``dtype``: the ``declared`` one (the input's, or one the user chose),
    else NaN for a float type; for an integer type without one, 0 (unsigned) or the type's minimum
    (signed) when it has ``invalid_pixels`` to mark, else None."""
    if declared is not None and not (np.isnan(declared) and np.issubdtype(np.dtype(dtype), np.integer)):
        return declared
    if np.issubdtype(np.dtype(dtype), np.floating):
        return float('nan')
    if invalid_pixels:
        return 0 if np.iinfo(dtype).min == 0 else int(np.iinfo(dtype).min)
    return None


def _avoid_nodata_collisions(dn: np.ndarray, valid: np.ndarray, nodata: float) -> np.ndarray:
    """Move valid pixels that happen to equal ``nodata`` by one DN, so they stay valid on reading."""
    collide = (dn == nodata) & valid[None]
    if not collide.any():
        return dn
    step = 1 if not np.issubdtype(dn.dtype, np.integer) or nodata < np.iinfo(dn.dtype).max else -1
    dn[collide] = dn[collide] + step
    return dn


def values_to_dn(values: np.ndarray, georef: GeoReference, radiometry: Radiometry,
                 valid: Optional[np.ndarray] = None) -> np.ndarray:
    """Physical ``(C, H, W)`` values -> stored ``georef.dtype`` DN, invalid pixels set to nodata (a georef
    without a nodata value cannot take invalid pixels: see :func:`output_nodata`)."""
    dn = radiometry.to_dn(values, georef.dtype)
    if valid is None or valid.all():
        return dn
    if georef.nodata is None:
        raise ValueError(f'{int((~valid).sum())} invalid pixels to write as {georef.dtype} without a nodata value.')
    if not np.isnan(georef.nodata):
        dn = _avoid_nodata_collisions(dn, valid, georef.nodata)
    dn[:, ~valid] = np.asarray(georef.nodata).astype(dn.dtype)
    return dn


def write_raster(path: Union[str, Path], values: np.ndarray, georef: GeoReference, radiometry: Radiometry,
                 valid: Optional[np.ndarray] = None, driver: str = 'GTiff') -> Path:
    """Write ``(C, H, W)`` physical ``values`` as ``georef.dtype`` DN to ``path`` (through a temporary file
    renamed into place, so a failed or killed write leaves no truncated file).

    ``driver`` 'GTiff' keeps CRS, transform, band descriptions and nodata; invalid pixels get the nodata
    value, chosen by :func:`output_nodata` when ``georef`` has none. 'PNG' writes 1- or 3-band 8/16-bit
    images without georeference.
    """
    path = Path(path)
    nodata = output_nodata(georef.dtype, georef.nodata, invalid_pixels=valid is not None and not valid.all())
    georef = replace(georef, nodata=nodata)
    path.parent.mkdir(parents=True, exist_ok=True)
    if values.ndim != 3:
        raise ValueError(f'write_raster expects (C, H, W) values, got shape {values.shape} for {path}.')
    num_bands = values.shape[0]
    if len(georef.descriptions) != num_bands:
        raise ValueError(f'{path}: {num_bands} bands to write but the georeference describes '
                         f'{len(georef.descriptions)} bands.')
    dn = values_to_dn(values, georef, radiometry, valid)
    if driver == 'PNG' and (dn.shape[0] not in (1, 3) or dn.dtype not in (np.uint8, np.uint16)):
        raise DataError(f'PNG holds 1 or 3 bands of uint8/uint16; got {dn.shape[0]} bands of {dn.dtype} '
                       f'for {path}. Write a GeoTIFF instead.')
    partial = path.with_name(f'.{path.stem}.partial{path.suffix}')  # OpenCV picks the encoder by the suffix
    try:
        if driver == 'PNG':
            _write_png(partial, dn)
        else:
            _write_geotiff(partial, dn, georef)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def _write_geotiff(path: Path, dn: np.ndarray, georef: GeoReference) -> None:
    num_bands, height, width = dn.shape
    profile = dict(driver='GTiff', height=height, width=width, count=num_bands, dtype=georef.dtype,
                   crs=georef.crs, transform=georef.transform, nodata=georef.nodata,
                   tiled=height >= 256 and width >= 256, compress='deflate')
    rasterio = _rasterio()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, 'w', **profile) as dst:
            dst.write(dn)
            for band, description in enumerate(georef.descriptions, start=1):
                if description:
                    dst.set_band_description(band, description)


def _write_png(path: Path, dn: np.ndarray) -> None:
    import cv2

    image = dn[0] if dn.shape[0] == 1 else dn[::-1].transpose(1, 2, 0)  # RGB -> OpenCV's BGR
    if not cv2.imwrite(str(path), np.ascontiguousarray(image)):
        raise RasterError(f'OpenCV could not write {path}.')
