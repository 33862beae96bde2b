"""The transformer feed-forward block and stochastic depth, in plain torch (timm's ``Mlp`` and
``DropPath`` semantics, parameter names ``fc1``/``fc2`` as the official checkpoints store them), so
that the archs need nothing beyond torch."""
from __future__ import annotations

from typing import Callable

from torch import Tensor, nn


class Mlp(nn.Module):
    """fc2(act(fc1(x))): Linear in_features -> hidden_features -> in_features."""

    def __init__(self, in_features: int, hidden_features: int, act_layer: Callable[[], nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden_features, in_features)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: in training, zero each sample's residual branch with probability ``drop_prob``
    and scale the kept ones by 1 / (1 - drop_prob); the identity in evaluation."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep_prob = 1.0 - self.drop_prob
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep_prob)
        return x * (mask / keep_prob if keep_prob > 0.0 else mask)

    def extra_repr(self) -> str:
        return f'drop_prob={self.drop_prob}'
