"""Scene inference speed of the shipped models on the CPU, against the bare network, as a Markdown table.

    python scripts/benchmark_infer.py                       # shipped models, 512 x 512 LR, default threads and 1
    python scripts/benchmark_infer.py --size 704 --models convmambasr_s2_x4 --no-self-ensemble
    python scripts/benchmark_infer.py --bf16 /work/heldout/s2_*.tif    # bfloat16 against float32 instead

A synthetic 4-band uint16 GeoTIFF (reflectance x 10000) of ``--size`` LR pixels is written once. Then per
model and thread count (the count ``rssr.infer`` picks on this machine, and 1) a fresh Python process
(so that its peak RSS is the run's own), set up as ``rssr.infer`` sets itself up (threads, and
:func:`rssr.cpu_memory.retain_freed_memory`), does, in this order:

1. ``super_resolve_scene`` at the defaults of ``rssr.infer`` (tiling, workers, uint16 output), timed;
   its peak RSS (``ru_maxrss``, whole process: Python, torch and rssr included) is read right after;
2. the bare forward: one forward of the whole LR scene as one tensor (band normalisation included,
   under ``torch.inference_mode``, the same threads), no tiling, reading, blending or writing;
3. with the self-ensemble, ``super_resolve_scene`` again with ``--self-ensemble``'s model.

With several threads, step 1 is also run with ``--workers 1`` (tiles one after another, each op on all
threads), for comparison. All steps repeat ``--repeats`` times, alternating; medians are reported.
Columns: LR megapixels per minute of scene inference; its time over the bare forward's (the issue's
ratio: 1.0 means tiling, overlap, blending, I/O and normalisation cost nothing); the pixels the tiles
send through the network over the scene's (the overlap); peak RSS; the self-ensemble's time over plain
inference; and the time for a whole Sentinel-2 tile, counted as 10980 x 10980 LR pixels (the 10 m bands,
super-resolved x4 to 2.5 m), extrapolated as the measured time per pixel sent through the network times
the pixels its own tile grid sends (tiles of the same budget; the grid of a 10980-pixel scene overlaps
more than a small scene's).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

SENTINEL2_TILE = 10980  # LR pixels per side of a whole Sentinel-2 tile at 10 m


def forwarded_pixels(height: int, width: int, model) -> int:
    """Pixels the tiles of ``rssr.infer``'s default tiling send through ``model`` for a height x width scene."""
    from rssr.inference.scene import TilingOptions, scene_tile_grid
    from rssr.layers.padding import SizeRequirements

    requirements = getattr(model, 'size_requirements', SizeRequirements())
    return scene_tile_grid(height, width, TilingOptions(), requirements).forwarded_pixels


def worker(model_name: str, source: Path, folder: Path, repeats: int, self_ensemble: bool) -> Dict:
    """Run in a fresh process with RSSR_NUM_THREADS set: the measurements of one model at one thread count."""
    import torch

    from rssr.basicsr.loading import load_model
    from rssr.cpu_memory import retain_freed_memory
    from rssr.inference import TilingOptions, super_resolve_scene, with_self_ensemble
    from rssr.io import read_raster, resolve_radiometry
    from rssr.threads import configure_threads

    threads = configure_threads(None).threads
    retain_freed_memory()  # as rssr.infer does at start-up (RSSR_KEEP_FREED_MEMORY=0 measures without it)
    model = load_model(zoo_name=model_name)
    radiometry = resolve_radiometry('uint16', 4, preset='sentinel2')

    def infer(net, name: str, tiling: TilingOptions = TilingOptions()) -> float:
        start = time.perf_counter()
        super_resolve_scene(net, source, folder / name, radiometry=radiometry, tiling=tiling, device='cpu',
                            progress=False)
        seconds = time.perf_counter() - start
        (folder / name).unlink()
        return seconds

    lr = torch.from_numpy(read_raster(source, radiometry=radiometry).filled())[None]

    def bare() -> float:
        with torch.inference_mode():
            start = time.perf_counter()
            model(lr)
            return time.perf_counter() - start

    with torch.inference_mode():  # warm-up: the first forward of a process pays for kernel selection
        model(lr[..., :64, :64])
    infer_seconds, bare_seconds, one_worker_seconds, ensemble_seconds, peak_rss = [], [], [], [], 0.0
    for _ in range(repeats):
        infer_seconds.append(infer(model, f'sr_{model_name}_{threads}.tif'))
        if not peak_rss:  # before the bare forward, whose whole-scene activations are not the inference's
            peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
        bare_seconds.append(bare())
        if threads > 1:  # the tiles one after another, each op on all threads (as before --workers)
            one_worker_seconds.append(infer(model, f'w1_{model_name}_{threads}.tif', TilingOptions(workers=1)))
        if self_ensemble:
            ensemble_seconds.append(infer(with_self_ensemble(model), f'se_{model_name}_{threads}.tif'))
    height, width = lr.shape[-2:]

    def median(seconds: List[float]) -> Optional[float]:
        return statistics.median(seconds) if seconds else None

    return dict(threads=threads, infer=median(infer_seconds), bare=median(bare_seconds),
                one_worker=median(one_worker_seconds), ensemble=median(ensemble_seconds),
                peak_rss_gib=peak_rss, pixels=height * width,
                forwarded=forwarded_pixels(height, width, model),
                forwarded_sentinel2=forwarded_pixels(SENTINEL2_TILE, SENTINEL2_TILE, model))


def bf16_cost(model_name: str, hr_paths: List[Path], threads: int, repeats: int) -> List[str]:
    """Rows: per HR tile, time (median of ``repeats``, float32 and bf16 alternating, after an untimed run of
    each) and PSNR / SAM against HR of ``rssr.infer`` in float32 and with ``--amp bf16`` (LR made as
    ``scripts/evaluate_heldout.py`` makes it)."""
    import torch
    from evaluate_heldout import RADIOMETRY, score

    from rssr.basicsr.loading import load_model
    from rssr.data.degradations import bicubic_downsample
    from rssr.inference import OutputOptions, super_resolve_scene
    from rssr.io.raster import output_georeference, read_raster, resolve_radiometry, write_raster

    torch.set_num_threads(threads)
    model = load_model(zoo_name=model_name)
    radiometry = resolve_radiometry('uint16', 4, preset=RADIOMETRY)
    rows = []
    with tempfile.TemporaryDirectory(prefix='rssr-bf16-') as folder:
        for hr_path in hr_paths:
            hr = read_raster(hr_path, radiometry=radiometry).values
            hr = hr[:, :hr.shape[1] // 4 * 4, :hr.shape[2] // 4 * 4]
            lr_path = Path(folder) / f'{hr_path.stem}_lr.tif'
            write_raster(lr_path, bicubic_downsample(torch.from_numpy(hr), 4).numpy(),
                         output_georeference(hr_path, (0, 0, hr.shape[1], hr.shape[2]), zoom=0.25), radiometry)
            times: Dict[Optional[str], List[float]] = {None: [], 'bf16': []}
            for run in range(repeats + 1):
                for amp in times:
                    sr_path = Path(folder) / f'{hr_path.stem}_{amp}.tif'
                    start = time.perf_counter()
                    super_resolve_scene(model, lr_path, sr_path, radiometry_preset=RADIOMETRY, amp=amp, device='cpu',
                                        output=OutputOptions(dtype='float32', overwrite=True), progress=False)
                    if run:
                        times[amp].append(time.perf_counter() - start)
            f32, b16 = ({'seconds': statistics.median(times[amp]),
                         **score(read_raster(Path(folder) / f'{hr_path.stem}_{amp}.tif').values, hr, 4)}
                        for amp in times)
            rows.append(f"| {model_name} | {hr_path.stem} | {f32['seconds']:.2f} | {b16['seconds']:.2f} | "
                        f"{f32['seconds'] / b16['seconds']:.2f} | {f32['psnr']:.3f} | {b16['psnr']:.3f} | "
                        f"{b16['psnr'] - f32['psnr']:+.3f} | {f32['sam']:.3f} | {b16['sam']:.3f} | "
                        f"{b16['sam'] - f32['sam']:+.3f} |")
    return rows


def hours(seconds: float) -> str:
    return f'{seconds / 3600:.1f} h'


def table_row(model: str, r: Dict) -> str:
    per_forwarded = r['infer'] / r['forwarded']
    tile = per_forwarded * r['forwarded_sentinel2']
    ensemble = '-' if r['ensemble'] is None else f"{r['ensemble'] / r['infer']:.2f}"
    tile_ensemble = '-' if r['ensemble'] is None else hours(r['ensemble'] / r['forwarded'] * r['forwarded_sentinel2'])
    one_worker = '-' if r['one_worker'] is None else f"{r['one_worker']:.1f}"
    return (f"| {model} | {r['threads']} | {r['pixels'] / 1e6 / (r['infer'] / 60):.2f} | {r['infer']:.1f} | "
            f"{one_worker} | {r['bare']:.1f} | {r['infer'] / r['bare']:.2f} | {r['forwarded'] / r['pixels']:.2f} | "
            f"{r['peak_rss_gib']:.2f} | {ensemble} | {hours(tile)} | {tile_ensemble} |")


def main() -> None:
    from rssr.threads import available_cores
    from rssr.weights import SHIPPED_MODELS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--models', nargs='+', default=list(SHIPPED_MODELS))
    parser.add_argument('--size', type=int, default=512, help='LR scene side (default 512)')
    parser.add_argument('--threads', nargs='+', type=int, help='thread counts (default: all cores, then 1)')
    parser.add_argument('--repeats', type=int, default=1, help='alternating inference / bare forward runs')
    parser.add_argument('--no-self-ensemble', dest='self_ensemble', action='store_false')
    parser.add_argument('--bf16', nargs='+', type=Path, metavar='HR_TIF',
                        help='instead: bfloat16 against float32 on these HR tiles (B02 B03 B04 B08, x 10000)')
    parser.add_argument('--worker', nargs=3, metavar=('MODEL', 'SOURCE', 'FOLDER'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        model, source, folder = args.worker
        print(json.dumps(worker(model, Path(source), Path(folder), args.repeats, args.self_ensemble)))
        return

    thread_counts = args.threads or sorted({available_cores(), 1}, reverse=True)
    if args.bf16:
        print(f'x4, rssr.infer defaults, float32 output, CPU, {thread_counts[0]} thread(s), time: median of '
              f'{args.repeats}\n')
        print('| model | tile | float32 (s) | bf16 (s) | speed-up | PSNR fp32 | PSNR bf16 | PSNR change (dB) | '
              'SAM fp32 | SAM bf16 | SAM change (deg) |')
        print('|---|---|---|---|---|---|---|---|---|---|---|')
        for model in args.models:
            print('\n'.join(bf16_cost(model, args.bf16, thread_counts[0], args.repeats)), flush=True)
        return

    from benchmark_infer_memory import write_scene

    print(f'{args.size} x {args.size} LR scene, 4-band uint16, x4, rssr.infer defaults (256 x 256 LR pixels in '
          f'flight shared by the workers, overlap 32), CPU, {args.repeats} repeat(s)\n')
    print('| model | threads | LR MP/min | infer (s) | infer, 1 worker (s) | bare forward (s) | infer / bare | '
          'forwarded / scene pixels | peak RSS (GiB) | self-ensemble / plain | Sentinel-2 tile | with self-ensemble |')
    print('|---|---|---|---|---|---|---|---|---|---|---|---|', flush=True)
    with tempfile.TemporaryDirectory(prefix='rssr-infer-speed-') as folder:
        source = Path(folder) / 'lr.tif'
        write_scene(source, args.size, args.size)
        for model in args.models:
            for threads in thread_counts:
                print(f'{model}, {threads} thread(s) ...', file=sys.stderr, flush=True)
                command = [sys.executable, __file__, '--worker', model, str(source), folder,
                           '--repeats', str(args.repeats)] + ([] if args.self_ensemble else ['--no-self-ensemble'])
                environment = dict(os.environ, RSSR_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads))
                done = subprocess.run(command, capture_output=True, text=True, env=environment)
                if done.returncode:
                    sys.exit(f'{model} at {threads} thread(s) failed:\n{done.stderr}')
                print(table_row(model, json.loads(done.stdout.strip().splitlines()[-1])), flush=True)


if __name__ == '__main__':
    main()
