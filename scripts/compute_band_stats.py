"""Per-band mean/std of a training set, printed as the ``band_normalization`` block of an option file.

    python scripts/compute_band_stats.py -opt options/train/examples/sentinel2_4band_x4_onthefly.yml
    python scripts/compute_band_stats.py --rasters a.tif b.tif --radiometry sentinel2 [--bands 1,2,3,4]

With ``-opt`` the statistics are those training would compute at its start (the GT of
``datasets.train``, or ``--phase``, read as that dataset reads it: bands, radiometry, nodata); with
``--rasters`` those of the given files. Nodata pixels are left out. Paste the output into the option
file to skip the computation at the start of every run.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Dict, List, Optional, Sequence

import yaml


def _bands(text: Optional[str]) -> Optional[List[Any]]:
    if text is None:
        return None
    return [int(b) if b.strip().isdigit() else b.strip() for b in text.split(',')]


def dataset_options(path: str, phase: str) -> Dict[str, Any]:
    """``datasets.<phase>`` of an option file, completed as BasicSR completes it (phase, scale)."""
    from rssr.basicsr.options import load_yaml

    opt = load_yaml(path)
    datasets = opt.get('datasets') or {}
    if phase not in datasets:
        raise SystemExit(f'compute_band_stats: {path} has no datasets.{phase} (it has: {", ".join(datasets)})')
    return dict(datasets[phase], phase=phase.split('_')[0], scale=opt.get('scale', 1))


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-opt', help='option file: the statistics of its datasets.train (or --phase)')
    source.add_argument('--rasters', nargs='+', help='raster files (GT/HR) to measure')
    parser.add_argument('--phase', default='train', help='dataset of the option file (default train)')
    parser.add_argument('--bands', help='with --rasters: 1-based band numbers or descriptions, comma-separated')
    parser.add_argument('--radiometry', help='with --rasters: DN preset as in the dataset options (e.g. sentinel2)')
    parser.add_argument('--nodata', type=float, help='with --rasters: nodata value overriding the files\'')
    parser.add_argument('--max-pixels', type=int, help='read each raster decimated to about this many pixels')
    args = parser.parse_args(argv)

    import rssr  # noqa: F401  (registries filled)
    from rssr.basicsr.datasets import build_dataset_from_options
    from rssr.data.band_statistics import dataset_band_statistics, raster_band_statistics
    from rssr.data.raster_source import RasterReader

    if args.opt:
        statistics = dataset_band_statistics(build_dataset_from_options(dataset_options(args.opt, args.phase)),
                                             args.max_pixels)
        source_name = f'{args.opt} datasets.{args.phase}'
    else:
        reader = RasterReader(bands=_bands(args.bands), radiometry=args.radiometry, nodata=args.nodata)
        sources = [(reader.info(path).height, reader.info(path).width,
                    lambda window, path=path: reader.read(path, window)) for path in args.rasters]
        statistics = raster_band_statistics(sources, args.max_pixels)
        source_name = ', '.join(args.rasters)
    block = {'band_normalization': {'mode': 'dataset', 'mean': [round(v, 8) for v in statistics.mean],
                                    'std': [round(v, 8) for v in statistics.std], 'residual': 'none'}}
    print(f'# per-band statistics of {source_name}: {statistics.pixels} valid pixels')
    print(yaml.safe_dump(block, default_flow_style=None, sort_keys=False), end='')
    return 0


if __name__ == '__main__':
    sys.exit(main())
