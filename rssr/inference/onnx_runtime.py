"""Run a model exported by ``python -m rssr.export`` with onnxruntime, as a module ``rssr.infer`` tiles with.

:class:`OnnxSR` looks like the torch models to :func:`rssr.inference.scene.super_resolve_scene`: it takes
(N, C, T, T) physical values and returns (N, C, sT, sT) physical values, pads smaller tiles up to the
export tile (its size requirements), takes the scene statistics for band normalisation mode image
(:meth:`with_statistics`) and converts to and from Deepness's DN / 255 for files exported with that
input convention. Only files with rssr's metadata card are accepted.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from rssr.band_normalization import BandNormalization
from rssr.errors import InferenceError
from rssr.inference.bands import BandContract
from rssr.layers.padding import SizeRequirements
from rssr.onnx_export import (
    DEEPNESS_SCALE,
    INPUT_NAME,
    METADATA_KEY,
    OUTPUT_NAME,
    STATISTICS_INPUTS,
    ExportCard,
    session,
)


class OnnxSR(nn.Module):
    """An exported rssr model as a torch module (onnxruntime on the CPU; tensors come back on their device)."""

    def __init__(self, path: str | os.PathLike, card: ExportCard, run: Any,
                 fixed_statistics: Optional[Tuple[Tensor, Tensor]] = None) -> None:
        super().__init__()
        self.path, self.card, self.run = Path(path), card, run
        self.normalization = BandNormalization.from_metadata(card.band_normalization)
        self.fixed_statistics = fixed_statistics
        # the graph has one fixed input shape: square tiles of the exported size
        self.size_requirements = SizeRequirements(multiple_of=card.tile, min_side=card.tile, square=True)
        self.output_scale = card.scale

    def with_statistics(self, mean: Tensor, std: Tensor) -> 'OnnxSR':
        """The same model fed the statistics of a whole scene (band normalisation mode image)."""
        return OnnxSR(self.path, self.card, self.run, (mean, std.clamp(min=self.normalization.eps)))

    def band_contract(self) -> BandContract:
        return BandContract(count=self.card.band_count, names=self.card.bands,
                            owner=f'the ONNX model {self.path}')

    def forward(self, x: Tensor) -> Tensor:
        feed = {}
        if self.card.statistics_inputs:
            bands = (1, self.card.band_count, 1, 1)
            mean, std = self.fixed_statistics or (torch.full(bands, float('nan')),) * 2
            feed = {name: value.reshape(bands).float().cpu().numpy() for name, value in zip(STATISTICS_INPUTS,
                                                                                           (mean, std))}
        scale = torch.tensor(self.card.radiometry_scale).view(1, -1, 1, 1)
        offset = torch.tensor(self.card.radiometry_offset).view(1, -1, 1, 1)
        deepness = self.card.convention == 'deepness'
        tiles = ((x.float().cpu() - offset) / scale / DEEPNESS_SCALE) if deepness else x.float().cpu()
        outputs = [self.run.run([OUTPUT_NAME], {INPUT_NAME: tile[None].numpy(), **feed})[0] for tile in tiles]
        y = torch.from_numpy(np.concatenate(outputs))
        if deepness:
            y = y * DEEPNESS_SCALE * scale + offset
        return y.to(x.device)


def load_onnx_model(path: str | os.PathLike) -> OnnxSR:
    """The model exported to ``path`` by ``rssr.export``; a file without rssr's metadata card is refused."""
    path = Path(path)
    if not path.is_file():
        raise InferenceError(f'ONNX model not found: {path}')
    run = session(path)
    metadata = run.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in metadata:
        raise InferenceError(f'{path} was not exported by rssr (its metadata has no {METADATA_KEY!r} card with the '
                             f'bands, radiometry and tile rssr.infer needs); export the model with python -m '
                             f'rssr.export, or run this file in its own tool.')
    return OnnxSR(path, ExportCard.from_json(metadata[METADATA_KEY]), run)
