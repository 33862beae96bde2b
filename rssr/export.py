"""``python -m rssr.export``: write an rssr model as ONNX (onnxruntime, QGIS Deepness), one fixed tile size.

    python -m rssr.export --model convmambasr_s2_x4 --tile 64 --output convmambasr_s2_x4.onnx
    python -m rssr.export --model repmamba_s2_x4 --tile 64 --input-convention deepness --output qgis.onnx
    python -m rssr.export --opt options/test/x.yml --tile 96 --output x.onnx

The model options are those of ``rssr.infer``. The graph holds the band normalisation, the network (scan
included), the bicubic residual and, with ``--input-convention deepness``, Deepness's value scaling; see
:mod:`rssr.onnx_export` and docs/qgis.md. The export is checked with onnxruntime against the torch model.
"""
from __future__ import annotations

import argparse
import logging
import sys
from typing import Optional, Sequence

import torch

from rssr.band_normalization import BandNormalizedSR
from rssr.errors import InferenceError, user_errors
from rssr.infer import add_model_arguments, load_model_from_args
from rssr.io import RADIOMETRY_PRESETS, resolve_radiometry
from rssr.onnx_export import CONVENTIONS, DEEPNESS_SCALE, export_onnx, parity
from rssr.threads import configure_threads
from rssr.zoo import model_card

SENTINEL2_RESOLUTION_CM = 1000.0  # the 10 m bands B02, B03, B04, B08
logger = logging.getLogger('rssr')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='python -m rssr.export', description=__doc__.splitlines()[0])
    add_model_arguments(parser)
    export = parser.add_argument_group('export')
    export.add_argument('--tile', type=int, required=True, help='LR tile size T: the graph maps (1, C, T, T) to '
                        '(1, C, sT, sT)')
    export.add_argument('--output', required=True, help='the .onnx file to write')
    export.add_argument('--input-convention', choices=CONVENTIONS, default='rssr',
                        help="rssr: physical values in and out (rssr.infer --onnx); deepness: layer DN / 255 in, "
                             "DN / 255 out (QGIS Deepness, output scaling 255)")
    export.add_argument('--radiometry', choices=sorted(RADIOMETRY_PRESETS),
                        help="DN -> physical values of the layers the model will run on (default: the zoo card's, "
                             "e.g. sentinel2); needed by --input-convention deepness")
    export.add_argument('--resolution', type=float,
                        help='LR pixel size in cm for Deepness (default: 1000 for Sentinel-2 radiometry)')
    export.add_argument('--exporter', choices=('auto', 'torchscript', 'dynamo'), default='auto',
                        help='torch.onnx exporter (auto: TorchScript, else dynamo where TorchScript cannot trace)')
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    with user_errors('rssr.export'):
        configure_threads(None)
        model, bands = load_model_from_args(args)
        if bands.count is None:
            raise InferenceError('The network has no convolution to read its band count from; rssr.export needs a '
                                 'network whose first layer is a Conv2d.')
        card = model_card(args.model) if args.model is not None else None
        preset = args.radiometry or (card.weights_radiometry if card is not None and args.weights is None else None)
        if args.input_convention == 'deepness' and not preset:
            raise InferenceError('--input-convention deepness turns layer DN into the values the model takes: give '
                                 f'--radiometry (one of {", ".join(sorted(RADIOMETRY_PRESETS))}).')
        radiometry = resolve_radiometry('uint16', bands.count, preset=preset) if preset else \
            resolve_radiometry('float32', bands.count)
        resolution = args.resolution
        if resolution is None and preset and preset.startswith('sentinel2'):
            resolution = SENTINEL2_RESOLUTION_CM
        normalization = model.normalization.to_metadata() if isinstance(model, BandNormalizedSR) else {}
        fields = dict(bands=bands.names, radiometry=preset or None, band_normalization=normalization,
                      model=args.model or args.arch or args.opt)
        result = export_onnx(model, args.output, tile=args.tile, card_fields=fields, convention=args.input_convention,
                             radiometry=radiometry, resolution_cm=resolution, exporter=args.exporter)
        generator = torch.Generator().manual_seed(0)
        check = torch.rand(1, bands.count, args.tile, args.tile, generator=generator) * 0.4  # reflectance-like
        if args.input_convention == 'deepness':
            shape = (1, bands.count, 1, 1)
            check = (check - torch.tensor(radiometry.offset).view(shape)) / torch.tensor(radiometry.scale).view(shape)
            check = check / DEEPNESS_SCALE
        error = parity(result.path, model, args.input_convention, radiometry, [check])
        logger.info('Wrote %s (%.2f MiB, %s exporter, %.1f s); onnxruntime vs torch on a random tile: max |diff| '
                    '%.2e', result.path, result.megabytes, result.exporter, result.seconds, error)
    return 0


if __name__ == '__main__':
    sys.exit(main())
