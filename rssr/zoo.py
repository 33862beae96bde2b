"""Model zoo in the style of timm: named configurations with model cards, and ``create_model``.

Each arch module registers a :class:`ModelCard` per named configuration (its official settings)
with :func:`register_card`. ``create_model(name, scale=..., in_chans=..., **overrides)`` builds it;
``pretrained=path`` (or ``True`` for the weights a card ships) loads weights and, when they were
trained with band normalisation, returns the network inside it (:mod:`rssr.band_normalization`).
"""
from __future__ import annotations

import fnmatch
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Optional, Tuple, Union

from torch import nn

from rssr.errors import UserError
from rssr.registry import ARCHS
from rssr.utils import did_you_mean


class UnknownModelError(UserError, KeyError):
    """A zoo name (or its shipped weights) that does not exist; the message lists the known ones."""

    __str__ = Exception.__str__  # KeyError would quote the message


@dataclass(frozen=True)
class ModelCard:
    """What a user should know before picking a model; also the recipe to build it.

    Attributes:
        name: zoo name (``create_model(name)``).
        arch: registered arch class name.
        kwargs: constructor kwargs of the official configuration (scale and bands set by create_model).
        paper: citation; doi: the paper's DOI; repo: official code; repo_license: its license status.
        scales: scales the official work trained; in_chans: default band count.
        size_requirements: human-readable LR size constraints; kernels: sequence kernels used.
        amp: dtypes supported under autocast, e.g. {'bf16': True, 'fp16': False}.
        recipe: official training options file in rssr's options/.
        params: parameter count per scale at the official configuration.
        flops: MACs per scale at 64x64 LR, with what is counted.
        scale_kwarg / chans_kwarg: the constructor kwarg names for scale and band count.
        weights: trained weights shipped with rssr (a path relative to the rssr package, or absolute),
            loaded by ``create_model(name, pretrained=True)``; they store their band normalisation.
        weights_scale: the scale those weights were trained for.
        weights_bands: the bands those weights take, in order, as band descriptions name them (e.g.
            ``('B02', 'B03', 'B04', 'B08')``); ``rssr.infer`` reads a file's bands in this order by their
            descriptions (:mod:`rssr.inference.bands`). Empty: not named.
        weights_radiometry: the ``rssr.io.RADIOMETRY_PRESETS`` name that turns the files the weights were
            trained on into their input values (``rssr.infer --radiometry``); empty when it fixes none.
        weights_info: what users should know about them: training data, iterations, validation
            metrics, quality grade.
    """

    name: str
    arch: str
    kwargs: Mapping[str, Any]
    paper: str = ''
    doi: str = ''
    repo: str = ''
    repo_license: str = ''
    scales: Tuple[int, ...] = (2, 3, 4)
    in_chans: int = 3
    size_requirements: str = 'any size'
    kernels: Tuple[str, ...] = ()
    amp: Mapping[str, bool] = field(default_factory=dict)
    recipe: str = ''
    params: Mapping[int, int] = field(default_factory=dict)
    flops: Mapping[int, str] = field(default_factory=dict)
    scale_kwarg: str = 'upscale'
    chans_kwarg: str = 'in_chans'
    weights: str = ''
    weights_scale: int = 4
    weights_bands: Tuple[str, ...] = ()
    weights_radiometry: str = ''
    weights_info: str = ''

    def weights_path(self) -> Optional[Path]:
        """Where the shipped weights are, or None when the card ships none."""
        if not self.weights:
            return None
        path = Path(self.weights)
        return path if path.is_absolute() else Path(__file__).resolve().parent / path


_CARDS: Dict[str, ModelCard] = {}


def register_card(card: ModelCard) -> ModelCard:
    """Add a named configuration to the zoo (idempotent for the same card)."""
    existing = _CARDS.get(card.name)
    if existing is not None and existing != card:
        raise KeyError(f'rssr zoo: a different model card named {card.name!r} is already registered')
    _CARDS[card.name] = card
    return card


def list_models(pattern: str = '*') -> list[str]:
    """Names of the zoo's configurations, optionally filtered by a glob pattern."""
    return sorted(fnmatch.filter(_CARDS, pattern))


def model_card(name: str) -> ModelCard:
    """The card of the zoo model ``name``; an unknown name names the closest known ones."""
    try:
        return _CARDS[name]
    except KeyError:
        raise UnknownModelError(f'No model named {name!r} in the rssr zoo{did_you_mean(name, _CARDS) or "."} '
                                f'Known: {", ".join(list_models())}') from None


def create_model(name: str, scale: Optional[int] = None, in_chans: Optional[int] = None,
                 pretrained: Union[None, bool, str, os.PathLike] = None, **overrides: Any) -> nn.Module:
    """Build the named configuration at ``scale`` (default 4, or the shipped weights' scale with
    ``pretrained=True``) with ``in_chans`` bands; optionally load weights (a path, or True for the
    card's shipped weights). Weights stored with a band normalisation come back inside it."""
    card = model_card(name)
    if pretrained is True:
        pretrained = card.weights_path()
        if pretrained is None:
            shipped = ', '.join(n for n in list_models() if _CARDS[n].weights) or 'none'
            raise UnknownModelError(f'The rssr zoo model {name!r} ships no weights; pass pretrained=<path to a '
                                    f'checkpoint>. Models with weights: {shipped}')
        scale = card.weights_scale if scale is None else scale
    kwargs = dict(card.kwargs)
    kwargs[card.scale_kwarg] = 4 if scale is None else scale
    kwargs[card.chans_kwarg] = card.in_chans if in_chans is None else in_chans
    kwargs.update(overrides)
    model = ARCHS.get(card.arch)(**kwargs)
    if pretrained in (None, False):
        return model
    from rssr.checkpoint import load_normalized_weights
    return load_normalized_weights(model, pretrained)


def describe_card(name: str) -> str:
    """A model card as text: the configuration, its paper and code, and the shipped weights with their
    band normalisation."""
    card = model_card(name)
    lines = [f'{card.name}: {card.arch} {dict(card.kwargs)}',
             f'  paper: {card.paper or "-"}' + (f' (doi:{card.doi})' if card.doi else ''),
             f'  code: {card.repo or "-"} ({card.repo_license or "license unknown"})',
             f'  scales: {", ".join(map(str, card.scales))}; bands by default: {card.in_chans}; '
             f'{card.size_requirements}']
    if card.params:
        lines.append('  params: ' + ', '.join(f'x{s}: {n:,}' for s, n in sorted(card.params.items())))
    path = card.weights_path()
    if path is None:
        lines.append('  weights: none shipped (train with the recipe, or pass your own checkpoint)')
        return '\n'.join(lines)
    from rssr.checkpoint import stored_normalization
    lines.append(f'  weights: {path} (x{card.weights_scale})')
    if card.weights_bands:
        lines.append(f'  bands, in this order: {" ".join(card.weights_bands)}; radiometry: '
                     f'{card.weights_radiometry or "-"}')
    if card.weights_info:
        lines.append(f'  about the weights: {card.weights_info}')
    normalization = stored_normalization(path) if path.is_file() else None
    lines.append(f'  band normalisation: {normalization.describe() if normalization else "(weights file missing)"}')
    return '\n'.join(lines)
