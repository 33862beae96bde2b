"""Export an rssr model to ONNX: the whole pipeline around the network in one graph of fixed tile size.

The graph takes one (1, C, T, T) tile and returns one (1, C, sT, sT) tile. Inside it: the band
normalisation stored with the weights (mode dataset: constants; mode image: the tile's own mean/std
unless the optional inputs ``scene_mean``/``scene_std`` are fed, see below), the network with the
selective scan (:func:`rssr.ops.selective_scan.selective_scan_export`), the bicubic residual, the inverse
normalisation and, for the ``deepness`` input convention, the DN scaling of QGIS's Deepness plugin.

Input conventions:
    ``rssr``      physical values in and out, as ``rssr.infer`` reads them (DN * scale + offset of the
                  radiometry); ``rssr.infer --onnx`` runs these.
    ``deepness``  Deepness feeds raw layer values / 255 and multiplies the output by its "output
                  scaling" (default 255): the graph multiplies by 255, applies the radiometry, runs the
                  model, and returns DN / 255, so a uint16 Sentinel-2 layer gives reflectance DN back.

Mode image statistics: ``scene_mean``/``scene_std`` (1, C, 1, 1) are initializers holding NaN that are
also listed as graph inputs (onnxruntime's overridable initializers: ``get_inputs()`` shows only the
tile, so Deepness sees one input). NaN means "use the tile's statistics"; ``rssr.infer --onnx`` feeds
the whole scene's, as the torch path does, so that every tile is normalised alike.

The metadata holds what Deepness reads (``model_type``, ``resolution`` in cm/px, ``tile_size``,
``tiles_overlap`` in percent) and rssr's own card under the key ``rssr`` (JSON: bands, radiometry,
scale, input convention, band normalisation, rssr version), which ``rssr.infer --onnx`` requires.
"""
from __future__ import annotations

import copy
import importlib
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from rssr.band_normalization import BandNormalizedSR, masked_band_statistics
from rssr.errors import InferenceError, UserError
from rssr.io import Radiometry
from rssr.layers.padding import SizeRequirements
from rssr.version import __version__

CONVENTIONS = ('rssr', 'deepness')
DEEPNESS_SCALE = 255.0  # Deepness divides layer values by 255 and multiplies outputs by its output scaling (255)
OPSET = 18
METADATA_KEY = 'rssr'
STATISTICS_INPUTS = ('scene_mean', 'scene_std')
INPUT_NAME, OUTPUT_NAME = 'lr', 'sr'
logger = logging.getLogger('rssr')


class OnnxExtraMissing(UserError):
    """onnx or onnxruntime is not installed; the message says how to install rssr's onnx extra."""


def require(module: str) -> Any:
    """Import ``module`` (onnx, onnxruntime) or raise :class:`OnnxExtraMissing` naming the extra."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise OnnxExtraMissing(f'{module} is not installed; ONNX export and --onnx need rssr\'s onnx extra: '
                               f'pip install "rssr[onnx]" (or pip install onnx onnxruntime).') from None


@dataclass(frozen=True)
class ExportCard:
    """What the exported file says about itself (stored as JSON under the metadata key ``rssr``)."""

    tile: int
    scale: int
    bands: Tuple[str, ...]
    band_count: int
    radiometry: Optional[str]
    radiometry_scale: Tuple[float, ...]
    radiometry_offset: Tuple[float, ...]
    convention: str
    band_normalization: Dict[str, Any]
    model: str
    statistics_inputs: bool

    def to_json(self) -> str:
        return json.dumps({'format': 1, 'rssr_version': __version__, 'tile': self.tile, 'scale': self.scale,
                           'bands': list(self.bands), 'band_count': self.band_count,
                           'radiometry': {'preset': self.radiometry, 'scale': list(self.radiometry_scale),
                                          'offset': list(self.radiometry_offset)},
                           'input_convention': self.convention, 'band_normalization': self.band_normalization,
                           'model': self.model, 'statistics_inputs': self.statistics_inputs})

    @classmethod
    def from_json(cls, text: str) -> 'ExportCard':
        card = json.loads(text)
        radiometry = card['radiometry']
        return cls(tile=int(card['tile']), scale=int(card['scale']), bands=tuple(card['bands']),
                   band_count=int(card['band_count']), radiometry=radiometry['preset'],
                   radiometry_scale=tuple(radiometry['scale']), radiometry_offset=tuple(radiometry['offset']),
                   convention=card['input_convention'], band_normalization=card['band_normalization'],
                   model=card['model'], statistics_inputs=bool(card['statistics_inputs']))


class ExportGraph(nn.Module):
    """``model`` (bare or in :class:`BandNormalizedSR`) as one tile-in, tile-out function of physical values
    (or of Deepness's DN / 255), with optional scene statistics for mode image (NaN: the tile's own)."""

    def __init__(self, model: nn.Module, convention: str, radiometry: Radiometry) -> None:
        super().__init__()
        self.model = model
        self.convention = convention
        bands = (1, len(radiometry.scale), 1, 1)
        self.register_buffer('dn_scale', torch.tensor(radiometry.scale, dtype=torch.float32).view(bands))
        self.register_buffer('dn_offset', torch.tensor(radiometry.offset, dtype=torch.float32).view(bands))

    @property
    def takes_scene_statistics(self) -> bool:
        return (isinstance(self.model, BandNormalizedSR) and self.model.fixed_statistics is None
                and self.model.normalization.mode == 'image')

    def forward(self, x: Tensor, scene_mean: Optional[Tensor] = None, scene_std: Optional[Tensor] = None) -> Tensor:
        if self.convention == 'deepness':
            x = x * DEEPNESS_SCALE * self.dn_scale + self.dn_offset
        if self.takes_scene_statistics:
            tile_mean, tile_std = masked_band_statistics(x, None, self.model.normalization.eps)
            statistics = (torch.where(torch.isnan(scene_mean), tile_mean, scene_mean),
                          torch.where(torch.isnan(scene_std), tile_std, scene_std))
            y = self.model.denormalize(self.model.predict_normalized(self.model.normalize(x, statistics)).float(),
                                       statistics)
        else:
            y = self.model(x)
        if self.convention == 'deepness':
            y = (y - self.dn_offset) / self.dn_scale / DEEPNESS_SCALE
        return y


@dataclass(frozen=True)
class ExportResult:
    path: Path
    exporter: str
    seconds: float
    megabytes: float


def check_tile(model: nn.Module, tile: int) -> None:
    """The tile is a size the model takes unpadded (its size requirements), else an error naming the nearest."""
    requirements: SizeRequirements = getattr(model, 'size_requirements', SizeRequirements())
    valid = requirements.valid_size(tile, tile)
    if tile < 1 or valid != (tile, tile):
        raise InferenceError(f'--tile {tile} is not a tile size this model takes as it is (it needs sides that are '
                             f'{_describe_requirements(requirements)}); use --tile {max(valid)}.')


def _describe_requirements(requirements: SizeRequirements) -> str:
    parts = [f'at least {requirements.min_side}']
    if requirements.power_of_two:
        parts.append(f'{requirements.multiple_of} times a power of two')
    elif requirements.multiple_of > 1:
        parts.append(f'multiples of {requirements.multiple_of}')
    return ' and '.join(parts)


def export_onnx(model: nn.Module, output: str | os.PathLike, *, tile: int, card_fields: Dict[str, Any],
                convention: str = 'rssr', radiometry: Radiometry, resolution_cm: Optional[float] = None,
                exporter: str = 'auto') -> ExportResult:
    """Write ``model`` as ONNX to ``output`` (nothing is left there on failure) and check it with onnxruntime
    against the torch model on a random tile; ``exporter``: 'torchscript', 'dynamo' or 'auto' (TorchScript,
    the dynamo exporter where TorchScript cannot trace the arch)."""
    onnx = require('onnx')
    require('onnxruntime')
    if convention not in CONVENTIONS:
        raise InferenceError(f'--input-convention must be one of {", ".join(CONVENTIONS)}, not {convention!r}.')
    check_tile(model, tile)
    output = Path(output)
    bands = len(radiometry.scale)
    graph = ExportGraph(_deployed(model.eval()), convention, radiometry).eval()
    example = (torch.rand(1, bands, tile, tile),)
    if graph.takes_scene_statistics:
        example += (torch.full((1, bands, 1, 1), float('nan')),) * 2
    with torch.no_grad():
        expected = graph(*example)  # also fills caches (scan orders) the tracer should see as constants
    scale = expected.shape[-1] // tile
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f'.{output.name}.rssr-partial-{os.getpid()}.onnx')
    start = time.perf_counter()
    try:
        used = _export(graph, example, partial, exporter)
        seconds = time.perf_counter() - start
        proto = onnx.load(str(partial))
        if graph.takes_scene_statistics:
            _statistics_as_overridable_initializers(proto, bands)
        fields = dict(card_fields, tile=tile, scale=scale, band_count=bands, convention=convention,
                      radiometry_scale=radiometry.scale, radiometry_offset=radiometry.offset,
                      statistics_inputs=graph.takes_scene_statistics)
        _write_metadata(proto, ExportCard(**fields), resolution_cm)
        onnx.save(proto, str(partial))
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    return ExportResult(output, used, seconds, output.stat().st_size / 2 ** 20)


def _deployed(model: nn.Module) -> nn.Module:
    """``model``, or a copy with its re-parameterised branches fused (Rep-Mamba's ``switch_to_deploy``): the
    graph then holds each fused kernel as a constant, which the TorchScript exporter needs (a kernel computed
    from the branches in the forward is one it cannot export), and runs fewer ops."""
    if not any(hasattr(module, 'switch_to_deploy') for module in model.modules()):
        return model
    model = copy.deepcopy(model)
    for module in model.modules():
        if hasattr(module, 'switch_to_deploy'):
            module.switch_to_deploy()
    return model


def _export(graph: ExportGraph, example: Tuple[Tensor, ...], path: Path, exporter: str) -> str:
    names = [INPUT_NAME, *STATISTICS_INPUTS][:len(example)]
    if exporter in ('auto', 'torchscript'):
        torch.onnx.register_custom_op_symbolic('aten::expm1', _expm1, OPSET)  # MambaCSR's pad-run dt offsets
        try:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                torch.onnx.export(graph, example, str(path), opset_version=OPSET, dynamo=False, input_names=names,
                                  output_names=[OUTPUT_NAME], do_constant_folding=True)
            return 'torchscript'
        except Exception as error:  # noqa: BLE001  (any tracing failure: the dynamo exporter may still work)
            if exporter == 'torchscript':
                raise
            logger.info('The TorchScript exporter cannot trace this arch (%s); using the dynamo exporter.',
                        str(error).strip().splitlines()[0][:200])
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        program = torch.onnx.export(graph, example, dynamo=True, opset_version=OPSET, input_names=names,
                                    output_names=[OUTPUT_NAME], verbose=False)
        program.save(str(path))
    return 'dynamo'


def _expm1(g: Any, x: Any) -> Any:
    """exp(x) - 1 for the TorchScript exporter, which has no aten::expm1 (ONNX has no Expm1 op)."""
    return g.op('Sub', g.op('Exp', x), g.op('Constant', value_t=torch.tensor(1.0)))


def _statistics_as_overridable_initializers(proto: Any, bands: int) -> None:
    """Give the scene statistics inputs NaN initializers: onnxruntime then lists only the tile as an input."""
    import numpy as np
    from onnx import numpy_helper

    for name in STATISTICS_INPUTS:
        proto.graph.initializer.append(numpy_helper.from_array(np.full((1, bands, 1, 1), np.nan, np.float32), name))


def _write_metadata(proto: Any, card: ExportCard, resolution_cm: Optional[float]) -> None:
    entries = {'model_type': json.dumps('Superresolution'), 'tile_size': json.dumps(card.tile),
               'tiles_overlap': json.dumps(0),  # Deepness writes super-resolved tiles whole, at their stride
               METADATA_KEY: card.to_json()}
    if resolution_cm is not None:
        entries['resolution'] = json.dumps(resolution_cm)
    del proto.metadata_props[:]
    for key, value in entries.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value


def session(path: str | os.PathLike) -> Any:
    """An onnxruntime CPU session of ``path`` at the thread count torch uses."""
    ort = require('onnxruntime')
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=['CPUExecutionProvider'])
    except Exception as error:  # noqa: BLE001  (onnxruntime raises its own Fail/InvalidGraph/NoSuchFile types)
        raise InferenceError(f'onnxruntime cannot load {path}: {str(error).strip().splitlines()[0]}') from None


def parity(path: str | os.PathLike, model: nn.Module, convention: str, radiometry: Radiometry,
           inputs: Sequence[Tensor]) -> float:
    """Largest |onnxruntime - torch| over ``inputs`` (each (1, C, T, T), in the graph's input convention)."""
    graph = ExportGraph(_deployed(model.eval()), convention, radiometry).eval()
    run = session(path)
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            args = (x,) + ((torch.full((1, x.shape[1], 1, 1), float('nan')),) * 2
                           if graph.takes_scene_statistics else ())
            want = graph(*args).numpy()
        got = run.run([OUTPUT_NAME], {INPUT_NAME: x.numpy()})[0]
        worst = max(worst, float(abs(got - want).max()))
    return worst
