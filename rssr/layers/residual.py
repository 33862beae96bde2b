"""EDSR's residual block without batch norm (BasicSR ``arch_util.ResidualBlockNoBN``), shared by
the archs with an EDSR-style CNN branch.
"""
from __future__ import annotations

from torch import Tensor, nn


class ResidualBlockNoBN(nn.Module):
    """x + res_scale * conv2(relu(conv1(x))), both convs 3x3 num_feat -> num_feat with bias.

    Args:
        num_feat: channels.
        res_scale: residual scale.
        pytorch_init: keep PyTorch's default conv init; otherwise (BasicSR's default) weights are
            kaiming-normal scaled by 0.1 and biases zero, so a deep stack starts near identity.
    """

    def __init__(self, num_feat: int = 64, res_scale: float = 1.0, pytorch_init: bool = False) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        if not pytorch_init:
            for conv in (self.conv1, self.conv2):
                nn.init.kaiming_normal_(conv.weight)
                conv.weight.data.mul_(0.1)
                nn.init.zeros_(conv.bias)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.relu(self.conv1(x))) * self.res_scale


def residual_blocks(num_blocks: int, num_feat: int, **block_kwargs) -> nn.Sequential:
    """``num_blocks`` ResidualBlockNoBN in sequence (BasicSR's ``make_layer``: keys ``0.conv1``...)."""
    return nn.Sequential(*(ResidualBlockNoBN(num_feat, **block_kwargs) for _ in range(num_blocks)))
