"""Peak memory of scene inference (``super_resolve_scene``) at several scene sizes, as a Markdown table.

    python scripts/benchmark_infer_memory.py                          # 1024^2 and 4096^2 LR, x4
    python scripts/benchmark_infer_memory.py --sizes 1024 4096x1024 --scale 2   # rows x cols

For each size (``N`` or ``ROWSxCOLS`` LR pixels) a synthetic 4-band uint16 GeoTIFF (smooth patterns plus
noise, tiled, deflate) is written block by block to a temporary folder; then a fresh Python process
imports rssr, builds a tiny conv net (3x3 conv, ReLU, 3x3 conv, pixel shuffle: translation-local), records its
``ru_maxrss`` as the baseline, super-resolves the scene on the CPU to a uint16 GeoTIFF and reports
``ru_maxrss`` again. Columns: peak RSS above that baseline, wall time, tile count, and each size's
peak over the first size's peak (all measured in this run). Scene inference holds the overlap
strips of one row of cells and GDAL's cache for one row of output blocks, so peak memory follows
the scene width (times the tile size), not its area: a taller scene costs no more memory.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np

BANDS = 4


def parse_size(text: str) -> Tuple[int, int]:
    """'4096' -> (4096, 4096); '4096x1024' -> (4096 rows, 1024 cols)."""
    rows, _, cols = text.lower().partition('x')
    return int(rows), int(cols or rows)


def write_scene(path: Path, height: int, width: int, block: int = 256) -> None:
    """A ``height`` x ``width`` 4-band uint16 GeoTIFF written in row blocks (never held whole in memory)."""
    import rasterio
    from affine import Affine

    rng = np.random.default_rng(0)
    profile = dict(driver='GTiff', height=height, width=width, count=BANDS, dtype='uint16', crs='EPSG:32618',
                   transform=Affine(10.0, 0, 400000.0, 0, -10.0, 4200000.0), tiled=True, blockxsize=256,
                   blockysize=256, compress='deflate', nodata=0)
    cols = np.arange(width, dtype=np.float32)
    with rasterio.open(path, 'w', **profile) as dst:
        for top in range(0, height, block):
            rows = np.arange(top, min(top + block, height), dtype=np.float32)[:, None]
            bands = [2000 + 1500 * np.sin(rows / (40 + 9 * b)) * np.cos(cols / (55 + 7 * b))
                     + rng.normal(0, 60, (len(rows), width)) for b in range(BANDS)]
            dn = np.clip(np.stack(bands), 1, 10000).astype(np.uint16)
            dst.write(dn, window=((top, top + len(rows)), (0, width)))


def worker(source: Path, destination: Path, scale: int, tile: int, overlap: int, margin: int,
           batch: Optional[int]) -> Dict:
    """Run in a fresh process: super-resolve ``source``; returns peak RSS above the post-import baseline."""
    import torch
    from torch import nn

    import rssr  # noqa: F401  (the import cost belongs to the baseline)
    from rssr.inference import OutputOptions, TilingOptions, super_resolve_scene
    from rssr.inference.scene import scene_tile_grid
    from rssr.layers.padding import SizeRequirements

    torch.manual_seed(0)
    torch.set_num_threads(2)
    model = nn.Sequential(nn.Conv2d(BANDS, 16, 3, padding=1), nn.ReLU(),
                          nn.Conv2d(16, BANDS * scale * scale, 3, padding=1), nn.PixelShuffle(scale))
    with torch.no_grad():
        model(torch.zeros(1, BANDS, tile, tile))  # warm-up: allocator and kernels belong to the baseline
    baseline_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    import rasterio
    with rasterio.open(source) as src:
        height, width = src.height, src.width
    start = time.perf_counter()
    tiling = TilingOptions(tile, overlap, margin, batch)
    super_resolve_scene(model, source, destination, tiling=tiling,
                        output=OutputOptions(dtype='source'), device='cpu', progress=False)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with rasterio.open(destination) as dst:
        out_shape = (dst.count, dst.height, dst.width)
    return dict(baseline_mib=baseline_kib / 1024, peak_mib=(peak_kib - baseline_kib) / 1024, seconds=seconds,
                tiles=len(scene_tile_grid(height, width, tiling, SizeRequirements())), out_shape=out_shape)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--sizes', nargs='+', default=['1024', '4096'], help='LR scene sides: N or ROWSxCOLS')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--tile', type=int, default=256)
    parser.add_argument('--overlap', type=int, default=32)
    parser.add_argument('--margin', type=int, default=8)
    parser.add_argument('--batch-size', type=int, help="tiles per forward (default: rssr.infer's, 1 on the CPU)")
    parser.add_argument('--worker', nargs=2, metavar=('SOURCE', 'DESTINATION'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = worker(Path(args.worker[0]), Path(args.worker[1]), args.scale, args.tile, args.overlap, args.margin,
                        args.batch_size)
        print(json.dumps(result))
        return

    results: List[Dict] = []
    with tempfile.TemporaryDirectory(prefix='rssr-infer-bench-') as folder:
        for size in args.sizes:
            height, width = parse_size(size)
            source, destination = Path(folder) / f'lr_{size}.tif', Path(folder) / f'sr_{size}.tif'
            write_scene(source, height, width)
            command = [sys.executable, __file__, '--worker', str(source), str(destination), '--scale', str(args.scale),
                       '--tile', str(args.tile), '--overlap', str(args.overlap), '--margin', str(args.margin)]
            command += [] if args.batch_size is None else ['--batch-size', str(args.batch_size)]
            print(f'running {height}x{width} LR x{args.scale} ...', file=sys.stderr, flush=True)
            completed = subprocess.run(command, check=True, capture_output=True, text=True)
            results.append(dict(size=f'{height}x{width}', **json.loads(completed.stdout.strip().splitlines()[-1])))
            source.unlink()
            destination.unlink()

    smallest = results[0]['peak_mib']
    print(f'scale x{args.scale}, 4-band uint16, tile {args.tile}, overlap {args.overlap}, margin {args.margin}, '
          f'batch {args.batch_size or "default"}, CPU\n')
    print('| LR scene | SR output | tiles | time (s) | baseline RSS (MiB) | peak RSS above baseline (MiB) | '
          'peak / first row |')
    print('|---|---|---|---|---|---|---|')
    for r in results:
        bands, height, width = r['out_shape']
        print(f"| {r['size']} | {height}x{width}x{bands} | {r['tiles']} | {r['seconds']:.1f} | "
              f"{r['baseline_mib']:.0f} | {r['peak_mib']:.0f} | {r['peak_mib'] / smallest:.2f} |")


if __name__ == '__main__':
    main()
