"""Conversions between feature maps (B, C, H, W) and token sequences (B, H*W, C), row-major.

SwinIR's ``PatchEmbed`` / ``PatchUnEmbed`` with patch size 1 (the only size those archs use: the
modules just flatten), kept as modules so the optional ``norm`` keeps its checkpoint key.
"""
from __future__ import annotations

from typing import Callable, Optional, Tuple

from torch import Tensor, nn


def to_tokens(x: Tensor) -> Tensor:
    """(B, C, H, W) -> (B, H*W, C), token index h*W + w: a view of a contiguous or a channels-last map."""
    return x.permute(0, 2, 3, 1).flatten(1, 2)


def to_map(tokens: Tensor, size: Tuple[int, int]) -> Tensor:
    """(B, H*W, C) -> (B, C, H, W) for size = (H, W), a channels-last view of contiguous tokens.

    Built by permuting (B, H, W, C) so that the strides are channels-last ones even for B = 1 (a
    transposed (B, C, H*W) view is not recognised as channels-last then, and convolutions copy it).
    """
    b, _, c = tokens.shape
    return tokens.reshape(b, size[0], size[1], c).permute(0, 3, 1, 2)


class PatchEmbed(nn.Module):
    """Flatten a feature map into tokens, then apply ``norm_layer(embed_dim)`` if given (key ``norm``)."""

    def __init__(self, embed_dim: int, norm_layer: Optional[Callable[[int], nn.Module]] = None) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.norm = norm_layer(embed_dim) if norm_layer is not None else None

    def forward(self, x: Tensor) -> Tensor:
        tokens = to_tokens(x)
        return tokens if self.norm is None else self.norm(tokens)


class PatchUnEmbed(nn.Module):
    """Fold tokens (B, H*W, C) back into a feature map (B, C, H, W)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.embed_dim = embed_dim

    def forward(self, tokens: Tensor, size: Tuple[int, int]) -> Tensor:
        return to_map(tokens, size)
