"""SR vs bicubic on held-out 4-band HR tiles (blue, green, red, NIR; uint16 reflectance x 10000).

    python scripts/evaluate_heldout.py --opt options/train/examples/sentinel2_4band_x4_onthefly.yml \
        --weights experiments/sentinel2_4band_x4_onthefly/models/net_g_latest.pth /work/heldout/*.tif
    python scripts/evaluate_heldout.py --model rssr_s2_x4_convmambasr /work/heldout/*.tif   # shipped weights

Protocol, per HR tile (cropped to a multiple of the scale): LR = MATLAB-style bicubic x1/scale of the
HR reflectance (``rssr.data.degradations.bicubic_downsample``), written as a uint16 GeoTIFF like a
real LR product; SR = ``rssr.infer``'s scene inference of that file (tiling, blending and the
model's band normalisation included), kept as float reflectance; bicubic = MATLAB-style bicubic
x scale of the LR. Both are scored against HR with rssr's metrics on reflectance: PSNR (data range
1), SAM (degrees), ERGAS and mean |NDVI error| (NDVI from B04 and B08), and SAM and NDVI error split
into water (HR NIR < 0.05, where red + NIR is small and NDVI ill-conditioned) and land. Prints two
Markdown tables and saves ``LR-bicubic | SR | HR`` RGB PNGs (B04 B03 B02, one stretch per tile) under ``--figures``.
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import numpy as np
import torch

import rssr  # noqa: F401  (registers rssr into BasicSR)
from rssr.basicsr.loading import load_model
from rssr.data.degradations import bicubic_downsample
from rssr.inference.scene import OutputOptions, super_resolve_scene
from rssr.inference.self_ensemble import with_self_ensemble
from rssr.io.raster import output_georeference, read_raster, resolve_radiometry, write_raster
from rssr.metrics.image_quality import calculate_ergas, calculate_multiband_psnr, calculate_ndvi_error, calculate_sam

BAND_NAMES = ('B02', 'B03', 'B04', 'B08')
RADIOMETRY = 'sentinel2'  # reflectance = DN / 10000
METRIC_NAMES = ('psnr', 'sam', 'ergas', 'ndvi_error')
NIR_BAND = BAND_NAMES.index('B08')
WATER_NIR_BELOW = 0.05  # HR NIR reflectance under which a pixel counts as water


def upsample_bicubic(lr: np.ndarray, scale: int) -> np.ndarray:
    """MATLAB-style bicubic x ``scale`` of ``(C, h, w)`` values."""
    from basicsr.utils.matlab_functions import imresize
    return imresize(torch.from_numpy(lr).float(), scale).numpy()


def score(sr: np.ndarray, hr: np.ndarray, scale: int) -> Dict[str, float]:
    """PSNR, SAM, ERGAS and NDVI error of ``(C, H, W)`` reflectance ``sr`` against ``hr``, with SAM and
    NDVI error also on water and land pixels alone (``nan`` where a tile has none)."""
    sr_t, hr_t = torch.from_numpy(sr).double(), torch.from_numpy(hr).double()
    scores = {'psnr': calculate_multiband_psnr(sr_t, hr_t, data_range=1.0),
              'sam': calculate_sam(sr_t, hr_t),
              'ergas': calculate_ergas(sr_t, hr_t, scale=scale),
              'ndvi_error': calculate_ndvi_error(sr_t, hr_t, band_names=BAND_NAMES)}
    water = hr_t[NIR_BAND] < WATER_NIR_BELOW
    for cover, mask in (('water', water), ('land', ~water)):
        has_pixels = bool(mask.any())
        scores[f'sam_{cover}'] = calculate_sam(sr_t, hr_t, mask=mask) if has_pixels else float('nan')
        scores[f'ndvi_error_{cover}'] = (calculate_ndvi_error(sr_t, hr_t, band_names=BAND_NAMES, mask=mask)
                                         if has_pixels else float('nan'))
    scores['water_fraction'] = float(water.double().mean())
    return scores


def rgb_stretch(images: Sequence[np.ndarray]) -> List[np.ndarray]:
    """B04 B03 B02 as 8-bit, with one 2-98 % stretch from the last image (HR) for all of them."""
    low, high = np.percentile(images[-1][[2, 1, 0]], (2, 98))
    return [np.clip((img[[2, 1, 0]].transpose(1, 2, 0) - low) / (high - low) * 255, 0, 255).round().astype(np.uint8)
            for img in images]


def save_figure(path: Path, bicubic: np.ndarray, sr: np.ndarray, hr: np.ndarray) -> None:
    """``LR-bicubic | SR | HR`` side by side with 4-pixel white gaps."""
    import cv2
    panels = rgb_stretch([bicubic, sr, hr])
    gap = np.full((hr.shape[1], 4, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), row[..., ::-1])


def evaluate_tile(model: torch.nn.Module, hr_path: Path, scale: int, workdir: Path,
                  figures: Optional[Path]) -> Dict[str, Dict[str, float]]:
    """Scores of SR and bicubic for one HR tile under the bicubic-LR protocol."""
    radiometry = resolve_radiometry('uint16', len(BAND_NAMES), preset=RADIOMETRY)
    hr_full = read_raster(hr_path, radiometry=radiometry).values
    height, width = (hr_full.shape[1] // scale) * scale, (hr_full.shape[2] // scale) * scale
    hr = hr_full[:, :height, :width]
    lr = bicubic_downsample(torch.from_numpy(hr), scale).numpy()
    lr_path, sr_path = workdir / f'{hr_path.stem}_lr.tif', workdir / f'{hr_path.stem}_sr.tif'
    write_raster(lr_path, lr, output_georeference(hr_path, (0, 0, height, width), zoom=1.0 / scale), radiometry)
    super_resolve_scene(model, lr_path, sr_path, radiometry_preset=RADIOMETRY, output=OutputOptions(dtype='float32'),
                        device='cpu', progress=False)
    sr = read_raster(sr_path).values
    lr_stored = read_raster(lr_path, radiometry=radiometry).values
    bicubic = upsample_bicubic(lr_stored, scale)
    if figures is not None:
        save_figure(figures / f'{hr_path.stem}_bicubic_sr_hr.png', bicubic, sr, hr)
    return {'sr': score(sr, hr, scale), 'bicubic': score(bicubic, hr, scale)}


def with_header(header: str, rows: List[str]) -> str:
    """A Markdown table: ``header``, its separator line, then ``rows``."""
    return '\n'.join([header, '|' + '---|' * (header.count('|') - 1), *rows])


def markdown_table(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One row per tile: SR and bicubic for every metric, and the PSNR gain."""
    rows = []
    for tile, scores in results.items():
        sr, bic = scores['sr'], scores['bicubic']
        rows.append(f'| {tile} | {sr["psnr"]:.2f} | {bic["psnr"]:.2f} | {sr["psnr"] - bic["psnr"]:+.2f} | '
                    f'{sr["sam"]:.2f} | {bic["sam"]:.2f} | {sr["ergas"]:.3f} | {bic["ergas"]:.3f} | '
                    f'{sr["ndvi_error"]:.4f} | {bic["ndvi_error"]:.4f} |')
    return with_header('| tile | PSNR SR | PSNR bic | gain (dB) | SAM SR | SAM bic | ERGAS SR | ERGAS bic | '
                       'NDVI err SR | NDVI err bic |', rows)


def cover_table(results: Dict[str, Dict[str, Dict[str, float]]]) -> str:
    """One row per tile: water fraction, then SAM and NDVI error of SR and bicubic on water and on land."""
    rows = []
    for tile, scores in results.items():
        sr, bic = scores['sr'], scores['bicubic']
        cells = [f'{sr[f"{metric}_{cover}"]:.{digits}f} | {bic[f"{metric}_{cover}"]:.{digits}f}'
                 for cover in ('water', 'land') for metric, digits in (('sam', 2), ('ndvi_error', 4))]
        rows.append(f'| {tile} | {100 * sr["water_fraction"]:.0f} % | ' + ' | '.join(cells) + ' |')
    return with_header('| tile | water | SAM water SR | SAM water bic | NDVI err water SR | NDVI err water bic | '
                       'SAM land SR | SAM land bic | NDVI err land SR | NDVI err land bic |', rows)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('tiles', nargs='+', type=Path, help='HR GeoTIFFs (B02 B03 B04 B08, reflectance x 10000)')
    parser.add_argument('--opt', help='options file whose network_g builds the network')
    parser.add_argument('--weights', help='checkpoint for --opt')
    parser.add_argument('--model', help='zoo name of a model with shipped weights (instead of --opt)')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--figures', type=Path, help='folder for the LR-bicubic | SR | HR PNGs')
    parser.add_argument('--self-ensemble', action='store_true', help="as rssr.infer's --self-ensemble")
    args = parser.parse_args(argv)
    torch.set_grad_enabled(False)
    if args.model:
        model = rssr.create_model(args.model, scale=args.scale, pretrained=True)
    else:
        model = load_model(options=args.opt, weights=args.weights)
    if args.self_ensemble:
        model = with_self_ensemble(model)
    with tempfile.TemporaryDirectory() as workdir:
        results = {tile.stem: evaluate_tile(model, tile, args.scale, Path(workdir), args.figures)
                   for tile in args.tiles}
    print(markdown_table(results))
    print()
    print(cover_table(results))


if __name__ == '__main__':
    main()
