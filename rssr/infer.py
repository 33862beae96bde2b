"""``python -m rssr.infer``: super-resolve rasters (GeoTIFF, PNG, JPEG, or a folder of them).

    python -m rssr.infer --opt options/test/x.yml --input scene.tif --output scene_x4.tif
    python -m rssr.infer --model convmambasr --scale 4 --weights net_g.pth --input dir/ --output out_dir/
    python -m rssr.infer --arch EDSR --arch-kwargs '{num_in_ch: 4, num_out_ch: 4, upscale: 4}' --weights w.pth ...
    torchrun --nproc_per_node=4 -m rssr.infer --model convmambasr --weights net_g.pth --input dir/ --output out_dir/

A folder run skips outputs that already exist (a killed run resumes); under torchrun every rank
takes its share of the files on its own device (:mod:`rssr.inference.sharding`).
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from torch import nn

from rssr.basicsr.loading import band_contract, load_model, parse_arch_kwargs
from rssr.basicsr.plugins import import_plugins
from rssr.cpu_memory import retain_freed_memory
from rssr.errors import user_errors
from rssr.inference import InferenceError, OutputOptions, TilingOptions, super_resolve_scene
from rssr.inference.bands import BandContract
from rssr.inference.scene import DEFAULT_TILE, MAX_DEFAULT_WORKERS, THREADS_PER_DEFAULT_WORKER
from rssr.inference.self_ensemble import with_self_ensemble
from rssr.inference.sharding import finish, run_shard, start_shard
from rssr.io import RASTER_EXTENSIONS
from rssr.threads import configure_threads


def _parse_bands(text: Optional[str]) -> Optional[List[int | str]]:
    if text is None:
        return None
    return [int(b) if b.strip().isdigit() else b.strip() for b in text.split(',')]


def _jobs(source: Path, destination: Path) -> List[Tuple[Path, Path]]:
    """(input, output) pairs; a folder input maps to a folder output with the same file names (.tif)."""
    if source.is_dir():
        inputs = sorted(p for p in source.iterdir() if p.suffix.lower() in RASTER_EXTENSIONS)
        if not inputs:
            raise InferenceError(f'No rasters ({", ".join(RASTER_EXTENSIONS)}) in folder {source}.')
        destination.mkdir(parents=True, exist_ok=True)
        return [(p, destination / (p.stem + '.tif')) for p in inputs]
    if not source.exists():
        raise InferenceError(f'Input not found: {source}')
    return [(source, destination)]


def add_model_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """--opt, --arch, --arch-kwargs, --model, --import, --scale, --in-chans, --weights (rssr.infer, rssr.export);
    returns their argument group."""
    model = parser.add_argument_group('model (one of --opt, --arch, --model)')
    model.add_argument('--opt', help='rssr/BasicSR options file: network_g and path.pretrain_network_g are used')
    model.add_argument('--arch', help='registered arch name, with --arch-kwargs')
    model.add_argument('--arch-kwargs', default='{}', help='arch kwargs as a YAML/JSON mapping')
    model.add_argument('--model', help='rssr zoo name (see rssr.list_models())')
    model.add_argument('--import', dest='imports', action='append', default=[], metavar='PKG',
                       help='import PKG first (repeatable): archs another package registers in BasicSR')
    model.add_argument('--scale', type=int, default=4, help='scale for --model (default 4)')
    model.add_argument('--in-chans', type=int, help='band count for --model')
    model.add_argument('--weights', help='checkpoint (.pth/.safetensors; BasicSR params_ema/params understood)')
    return model


def load_model_from_args(args: argparse.Namespace) -> Tuple[nn.Module, BandContract]:
    """The model and its band contract as the model options of :func:`add_model_arguments` say."""
    import_plugins(args.imports)
    kwargs = parse_arch_kwargs(args.arch_kwargs)
    model = load_model(options=args.opt, arch=args.arch, arch_kwargs=kwargs, zoo_name=args.model, scale=args.scale,
                       in_chans=args.in_chans, weights=args.weights)
    return model, band_contract(model, options=args.opt, zoo_name=args.model, weights=args.weights)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m rssr.infer', description=__doc__.splitlines()[0])
    model = add_model_arguments(parser)
    model.add_argument('--onnx', metavar='F.onnx',
                       help='run a model exported by python -m rssr.export (onnxruntime, CPU) instead of one of '
                            '--opt/--arch/--model; its tile size is fixed by the export')
    data = parser.add_argument_group('data')
    data.add_argument('--input', required=True, help='a raster file or a folder of rasters')
    data.add_argument('--output', required=True, help='output file (.tif or .png) or folder (for a folder input)')
    data.add_argument('--bands', help='comma-separated 1-based band numbers or descriptions, as in training')
    data.add_argument('--nodata', type=float,
                      help="nodata value: pixels equal to it in any selected band are nodata (default: the file's); "
                           'also the nodata value of integer outputs. NaN is always nodata')
    data.add_argument('--radiometry', help='DN scaling preset as in training (e.g. sentinel2, landsat_c2_l2_sr); '
                      'default: integer rasters divided by their type maximum')
    data.add_argument('--out-dtype', choices=('source', 'float32'), default='source',
                      help="'source': input dtype after inverse scaling; 'float32': physical values")
    data.add_argument('--cog', action='store_true', help='write Cloud-Optimised GeoTIFFs')
    data.add_argument('--overwrite', action='store_true', help='replace existing outputs')
    run = parser.add_argument_group('tiling and device')
    run.add_argument('--tile', type=int,
                     help=f'tiles hold at most TILE x TILE LR pixels (it sets the memory; default {DEFAULT_TILE} / '
                          'sqrt(workers): about the same pixels in flight at any thread count); their shape is '
                          'chosen per scene to run the fewest pixels. With --onnx: the exported tile')
    run.add_argument('--overlap', type=int, default=32, help='LR overlap between tiles (default 32)')
    run.add_argument('--margin', type=int, default=8, help='LR pixels at inner tile sides given no weight (default 8)')
    run.add_argument('--batch-size', type=int, help='tiles per forward (default: 4 on a GPU, 1 on the CPU)')
    run.add_argument('--workers', type=int,
                     help=f'CPU: tiles in flight at once, each on its own thread (default: one per '
                          f'{THREADS_PER_DEFAULT_WORKER} threads, at most {MAX_DEFAULT_WORKERS}; each tile holds its '
                          f'own activations)')
    run.add_argument('--device', help='cpu, cuda, cuda:1 ... (default: cuda if available)')
    run.add_argument('--amp', choices=('bf16', 'fp16'),
                     help='autocast dtype: bf16 or fp16 on a GPU; bf16 on a CPU with native bfloat16 (AVX512-BF16, '
                          'AMX, Arm BF16), refused elsewhere. Scans stay float32')
    run.add_argument('--self-ensemble', action='store_true',
                     help='average over the 8 flips/rotations (8x the time; damps noise the network adds, e.g. '
                          'on water: better spectra)')
    return parser


def _onnx_model(args: argparse.Namespace) -> Tuple[nn.Module, BandContract, int]:
    """The --onnx model, its band contract and tile; model options or another --tile are refused."""
    from rssr.inference.onnx_runtime import load_onnx_model

    given = [flag for flag, value in (('--opt', args.opt), ('--arch', args.arch), ('--model', args.model),
                                      ('--weights', args.weights)) if value is not None]
    if args.self_ensemble:
        given.append('--self-ensemble')
    if given:
        raise InferenceError(f'--onnx runs the exported model as it is; drop {", ".join(given)}.')
    model = load_onnx_model(args.onnx)
    if args.tile is not None and args.tile != model.card.tile:
        raise InferenceError(f'{args.onnx} was exported for {model.card.tile}-pixel tiles; drop --tile {args.tile} '
                             f'(or export again with python -m rssr.export --tile {args.tile}).')
    return model, model.band_contract(), model.card.tile


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    with user_errors('rssr.infer'):
        configure_threads(None)
        retain_freed_memory()
        shard = start_shard(args.device)
        if args.onnx is not None:
            model, bands, tile = _onnx_model(args)
        else:
            (model, bands), tile = load_model_from_args(args), args.tile
        if args.self_ensemble:
            model = with_self_ensemble(model)
        tiling = TilingOptions(tile=tile, overlap=args.overlap, margin=args.margin, batch_size=args.batch_size,
                               workers=args.workers)
        output = OutputOptions(dtype=args.out_dtype, cog=args.cog, overwrite=args.overwrite)
        jobs = _jobs(Path(args.input), Path(args.output))
        results = run_shard(shard, jobs, lambda source, destination: super_resolve_scene(
            model, source, destination, bands=_parse_bands(args.bands), band_contract=bands,
            radiometry_preset=args.radiometry, nodata=args.nodata, tiling=tiling, output=output, device=shard.device,
            amp=args.amp),
            skip_complete=Path(args.input).is_dir() and not args.overwrite)
        finish(shard, results)
    return 0


if __name__ == '__main__':
    sys.exit(main())
