"""Model zoo in the style of timm: named configurations with model cards, and ``create_model``.

Each arch module registers a :class:`ModelCard` per named configuration (its official settings)
with :func:`register_card`. ``create_model(name, scale=..., in_chans=..., **overrides)`` builds it.
"""
from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any, Dict, Mapping, Optional, Tuple

from torch import nn

from rssr.registry import ARCHS


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
    try:
        return _CARDS[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, _CARDS, n=3)
        hint = f' Did you mean {", ".join(close)}?' if close else ''
        raise KeyError(f'No model named {name!r} in the rssr zoo.{hint} Known: {", ".join(list_models())}') from None


def create_model(name: str, scale: int = 4, in_chans: Optional[int] = None, pretrained: Optional[str] = None,
                 **overrides: Any) -> nn.Module:
    """Build the named configuration at ``scale`` with ``in_chans`` bands; optionally load weights."""
    card = model_card(name)
    kwargs = dict(card.kwargs)
    kwargs[card.scale_kwarg] = scale
    kwargs[card.chans_kwarg] = card.in_chans if in_chans is None else in_chans
    kwargs.update(overrides)
    model = ARCHS.get(card.arch)(**kwargs)
    if pretrained is not None:
        from rssr.checkpoint import load_weights
        load_weights(model, pretrained)
    return model
