"""Geometric self-ensemble: the mean of a network's outputs over the 8 flips and 90-degree rotations.

The detail an SR network adds that is not in the input (noise on water, say) changes with the
orientation of the input, the detail it infers reliably does not; averaging over the eight
orientations keeps the second and damps the first (EDSR's "+" models). It costs 8 forward passes.
With band normalisation the ensemble wraps the arch inside it, so the statistics, the bicubic residual
and the inverse normalisation are applied once.
"""
from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor, nn

from rssr.band_normalization import BandNormalizedSR
from rssr.layers.arch_wrapper import ArchWrapper

ORIENTATIONS: Tuple[Tuple[int, bool], ...] = tuple((turns, flip) for turns in range(4) for flip in (False, True))


def _oriented(x: Tensor, turns: int, flip: bool) -> Tensor:
    x = torch.rot90(x, turns, dims=(-2, -1))
    return x.flip(-1) if flip else x


def _restored(y: Tensor, turns: int, flip: bool) -> Tensor:
    y = y.flip(-1) if flip else y
    return torch.rot90(y, -turns, dims=(-2, -1))


class SelfEnsemble(ArchWrapper):
    """``net`` averaged over the dihedral group: mean over (turns, flip) of restore(net(orient(x))).

    Size requirements, scale and state_dict are the inner network's (:class:`ArchWrapper`); size
    requirements are the same for both sides, so a rotated input stays valid.
    """

    def forward(self, x: Tensor) -> Tensor:
        outputs = (_restored(self.net(_oriented(x, turns, flip)), turns, flip).float() for turns, flip in ORIENTATIONS)
        return sum(outputs) / len(ORIENTATIONS)


def with_self_ensemble(model: nn.Module) -> nn.Module:
    """``model`` with its arch replaced by :class:`SelfEnsemble` of it (inside band normalisation)."""
    if isinstance(model, BandNormalizedSR):
        return BandNormalizedSR(SelfEnsemble(model.net), model.normalization, model.fixed_statistics)
    return SelfEnsemble(model)


__all__ = ['ORIENTATIONS', 'SelfEnsemble', 'with_self_ensemble']
