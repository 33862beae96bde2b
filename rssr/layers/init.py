"""Weight initialisation shared by the SwinIR-lineage archs (all five official models use it)."""
from __future__ import annotations

from torch import nn


def init_linear_and_layernorm(module: nn.Module) -> None:
    """Linear: trunc_normal(std 0.02, cut at +-2) weight and zero bias; LayerNorm: weight 1, bias 0.

    Applied with ``model.apply(...)`` at the end of ``__init__``; other layers keep their own init.
    """
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02, a=-2.0, b=2.0)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
