"""How much do nodata holes hurt the valid pixels around them? MAE against HR near synthetic holes.

    python scripts/evaluate_nodata_edges.py --model convmambasr_s2_x4 /work/heldout/s2_*.tif
    python scripts/evaluate_nodata_edges.py --tile 48 --overlap 16 --margin 4 /work/heldout/s2_*.tif  # tiled

Protocol, per HR tile (4-band uint16 Sentinel-2, reflectance x 10000, cropped to a multiple of the
scale): LR = MATLAB-style bicubic x1/scale of the HR reflectance, as ``scripts/evaluate_heldout.py``
makes it. Holes = three rectangles and two irregular blobs (unions of discs) at LR resolution,
placed by a generator seeded per tile. For each way of treating the holes, the LR with holes goes
through ``rssr.infer``'s scene inference (``super_resolve_scene``, float32 output), and so does the
LR without holes. The score is the MAE (in DN, all bands) against HR over the HR footprints of the
valid LR pixels within 1 and within 2 LR pixels (8-neighbourhood) of a hole, with the holes and
without them; the ratio is the loss of quality the holes cause (issue 24 asks for at most 1.25).

Ways of treating the holes:

* ``rssr.infer (nodata=0)``: what rssr does with a file whose holes are DN 0 tagged as nodata;
* the candidate fills, each written into the LR before inference (the holes masked afterwards):
  ``band mean`` (the valid pixels' mean per band: the normalised 0 rssr fed before issue 24),
  ``nearest valid`` (exact Euclidean nearest valid pixel), and ``cv2.inpaint`` (radius 3, band by
  band) with Telea's method on uint16 DN (on float32 it writes values far outside the band's range)
  and the Navier-Stokes method on float32 reflectance, on uint16 DN, and on each band scaled to 16
  bits over its valid range (``rssr.io.fill_nodata``, what ``rssr.infer`` does).

Prints one Markdown table over all tiles (pixels pooled) and one per tile.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import cv2
import numpy as np
import torch

import rssr  # noqa: F401  (registers rssr into BasicSR)
from rssr.data.degradations import bicubic_downsample
from rssr.inference.scene import OutputOptions, TilingOptions, super_resolve_scene
from rssr.io import GeoReference, fill_nodata, output_georeference, read_raster, resolve_radiometry, write_raster

RADIOMETRY = 'sentinel2'  # reflectance = DN / 10000
DN_PER_UNIT = 10000
RINGS = (1, 2)  # LR pixels from a hole
RSSR = 'rssr.infer (nodata=0)'


def hole_mask(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) bool, True in three rectangles and two irregular blobs, all inside the tile."""
    holes = np.zeros((height, width), np.uint8)
    for _ in range(3):
        rows, cols = int(rng.integers(4, 14)), int(rng.integers(4, 14))
        top, left = int(rng.integers(4, height - rows - 4)), int(rng.integers(4, width - cols - 4))
        holes[top:top + rows, left:left + cols] = 1
    for _ in range(2):
        center = rng.integers(12, (height - 12, width - 12))
        for _ in range(5):
            offset = rng.integers(-5, 6, 2)
            cv2.circle(holes, (int(center[1] + offset[1]), int(center[0] + offset[0])), int(rng.integers(2, 6)), 1, -1)
    return holes.astype(bool)


def near_holes(holes: np.ndarray, distance: int) -> np.ndarray:
    """Valid pixels within ``distance`` pixels (8-neighbourhood) of a hole."""
    grown = cv2.dilate(holes.astype(np.uint8), np.ones((2 * distance + 1,) * 2, np.uint8)).astype(bool)
    return grown & ~holes


def nearest_valid_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Each hole pixel takes the values of the nearest valid pixel (exact Euclidean distance)."""
    from scipy.ndimage import distance_transform_edt

    rows, cols = distance_transform_edt(~valid, return_distances=False, return_indices=True)
    return values[:, rows, cols]


def band_mean_fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    filled = values.copy()
    filled[:, ~valid] = values[:, valid].mean(axis=1)[:, None]
    return filled


def inpaint_fill(method: int, on_dn: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``cv2.inpaint`` (radius 3) band by band, on uint16 DN or on float32 reflectance."""
    def fill(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
        holes = (~valid).astype(np.uint8)
        if not on_dn:
            return np.stack([cv2.inpaint(np.ascontiguousarray(band), holes, 3, method) for band in values])
        dn = np.clip(np.rint(values * DN_PER_UNIT), 0, 65535).astype(np.uint16)
        return np.stack([cv2.inpaint(band, holes, 3, method) for band in dn]).astype(np.float32) / DN_PER_UNIT
    return fill


FILLS: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    'band mean': band_mean_fill,
    'nearest valid': nearest_valid_fill,
    'OpenCV inpaint Telea, on DN': inpaint_fill(cv2.INPAINT_TELEA, on_dn=True),
    'OpenCV inpaint NS, on float32 reflectance': inpaint_fill(cv2.INPAINT_NS, on_dn=False),
    'OpenCV inpaint NS, on DN': inpaint_fill(cv2.INPAINT_NS, on_dn=True),
    'OpenCV inpaint NS, per band scaled to 16 bits (rssr.io.fill_nodata)': fill_nodata,
}


def super_resolve(model: torch.nn.Module, lr: np.ndarray, georef: GeoReference, path: Path, tiling: TilingOptions,
                  valid: Optional[np.ndarray] = None) -> np.ndarray:
    """SR reflectance of ``lr`` by scene inference, written first as a uint16 GeoTIFF with ``georef``
    (pixels not ``valid`` as its nodata)."""
    radiometry = resolve_radiometry('uint16', lr.shape[0], preset=RADIOMETRY)
    write_raster(path, lr, georef, radiometry, valid)
    sr_path = path.with_name(path.stem + '_sr.tif')
    super_resolve_scene(model, path, sr_path, radiometry_preset=RADIOMETRY, tiling=tiling,
                        output=OutputOptions(dtype='float32', overwrite=True), device='cpu', progress=False)
    return read_raster(sr_path).values


def evaluate_tile(model: torch.nn.Module, hr_path: Path, scale: int, seed: int, workdir: Path,
                  fills: Dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = FILLS,
                  tiling: TilingOptions = TilingOptions()) -> Dict[str, Dict[int, np.ndarray]]:
    """Per treatment (rssr's and ``fills``) and ring: (absolute errors with holes, absolute errors without)
    in DN, pooled over bands."""
    radiometry = resolve_radiometry('uint16', 4, preset=RADIOMETRY)
    hr_full = read_raster(hr_path, radiometry=radiometry).values
    height, width = (hr_full.shape[1] // scale) * scale, (hr_full.shape[2] // scale) * scale
    hr = hr_full[:, :height, :width]
    lr = bicubic_downsample(torch.from_numpy(hr), scale).numpy()
    lr = np.rint(lr * DN_PER_UNIT) / DN_PER_UNIT  # what the uint16 LR file holds
    georef = output_georeference(hr_path, (0, 0, height, width), zoom=1.0 / scale)
    holes = hole_mask(*lr.shape[1:], np.random.default_rng(seed))
    clean = super_resolve(model, lr, georef, workdir / 'clean.tif', tiling)
    tagged = GeoReference(georef.crs, georef.transform, georef.descriptions, 0, 'uint16', georef.source_driver)
    with_holes = {RSSR: super_resolve(model, lr, tagged, workdir / 'holes.tif', tiling, valid=~holes)}
    for name, fill in fills.items():
        filled = fill(np.where(holes, 0.0, lr).astype(np.float32), ~holes)
        with_holes[name] = super_resolve(model, filled, georef, workdir / 'filled.tif', tiling)
    errors = {}
    for name, sr in with_holes.items():
        errors[name] = {}
        for ring in RINGS:
            footprint = np.repeat(np.repeat(near_holes(holes, ring), scale, 0), scale, 1)
            errors[name][ring] = np.stack([np.abs(sr[:, footprint] - hr[:, footprint]).ravel(),
                                           np.abs(clean[:, footprint] - hr[:, footprint]).ravel()]) * DN_PER_UNIT
    return errors



def table(errors: Dict[str, Dict[int, List[np.ndarray]]]) -> str:
    rows = ['| treatment of the holes | ' + ' | '.join(
        f'MAE within {ring} LR px, holes | same pixels, no holes | ratio' for ring in RINGS) + ' |',
        '|---|' + '---|---|---|' * len(RINGS)]
    for name, rings in errors.items():
        cells = []
        for ring in RINGS:
            pooled = np.concatenate(rings[ring], axis=1)
            with_holes, without = pooled.mean(axis=1)
            cells.append(f'{with_holes:.1f} DN | {without:.1f} DN | {with_holes / without:.2f}')
        rows.append(f'| {name} | ' + ' | '.join(cells) + ' |')
    return '\n'.join(rows)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('tiles', nargs='+', type=Path, help='HR GeoTIFFs (B02 B03 B04 B08, reflectance x 10000)')
    parser.add_argument('--model', default='convmambasr_s2_x4', help='zoo name of a model with shipped weights')
    parser.add_argument('--seed', type=int, default=24, help='seed of the hole layouts (tile i uses seed + i)')
    parser.add_argument('--tile', type=int, default=256, help="rssr.infer's --tile (LR; the default runs a 96 x 96 LR "
                        'as one tile, 48 makes holes cross tile borders)')
    parser.add_argument('--overlap', type=int, default=32, help="rssr.infer's --overlap")
    parser.add_argument('--margin', type=int, default=8, help="rssr.infer's --margin")
    args = parser.parse_args(argv)
    tiling = TilingOptions(tile=args.tile, overlap=args.overlap, margin=args.margin)
    torch.set_grad_enabled(False)
    model = rssr.create_model(args.model, pretrained=True)
    card = rssr.zoo.model_card(args.model)
    per_tile = {}
    with tempfile.TemporaryDirectory() as workdir:
        for index, tile in enumerate(args.tiles):
            per_tile[tile.stem] = evaluate_tile(model, tile, card.weights_scale, args.seed + index, Path(workdir),
                                                tiling=tiling)
    names = list(next(iter(per_tile.values())))
    pooled = {name: {ring: [tile[name][ring] for tile in per_tile.values()] for ring in RINGS} for name in names}
    print(f'All {len(per_tile)} tiles ({args.model}, holes seeded from {args.seed}, LR tiles of {args.tile}):\n')
    print(table(pooled))
    for tile, errors in per_tile.items():
        print(f'\n{tile}:\n')
        print(table({name: {ring: [errors[name][ring]] for ring in RINGS} for name in names}))


if __name__ == '__main__':
    main()
