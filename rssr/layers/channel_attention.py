"""RCAN's channel attention and MambaIR's channel-attention block (CAB), shared by ConvMambaSR and MambaCSR.

The two ports differ only in their activations (StarReLU in ConvMambaSR; GELU in the block and ReLU in
the attention in MambaCSR), so both take them as arguments. Module names match the official
checkpoints: ``attention.1`` / ``attention.3`` (activation ``attention.2``) and ``cab.0`` ... ``cab.3``.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn


class ChannelAttention(nn.Module):
    """RCAN channel attention: x * sigmoid(conv1x1(act(conv1x1(avgpool(x))))), squeezing C to C // squeeze_factor.

    Below ``squeeze_factor`` channels the squeeze width is 0 (the official shapes are kept) and the
    gate is sigmoid of the last conv's bias, computed directly because PyTorch's conv2d rejects
    zero-channel weights at run time.
    """

    def __init__(self, num_feat: int, squeeze_factor: int, act_layer: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        squeezed = num_feat // squeeze_factor
        self.squeeze_is_empty = squeezed == 0
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(num_feat, squeezed, 1), act_layer(),
            nn.Conv2d(squeezed, num_feat, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        if self.squeeze_is_empty:
            return x * torch.sigmoid(self.attention[3].bias).view(1, -1, 1, 1)
        return x * self.attention(x)


class ChannelAttentionBlock(nn.Module):
    """MambaIR's CAB: conv3x3 (C -> C // compress_ratio), act, conv3x3 back to C, channel attention. No residual.

    Args:
        num_feat: channels C. compress_ratio, squeeze_factor: the block's and the attention's squeeze.
        act_layer: activation between the convs. attention_act_layer: activation inside the attention.
    """

    def __init__(self, num_feat: int, compress_ratio: int, squeeze_factor: int,
                 act_layer: Callable[[], nn.Module] = nn.GELU,
                 attention_act_layer: Callable[[], nn.Module] = nn.ReLU) -> None:
        super().__init__()
        hidden = num_feat // compress_ratio
        self.cab = nn.Sequential(
            nn.Conv2d(num_feat, hidden, 3, 1, 1), act_layer(), nn.Conv2d(hidden, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor, attention_act_layer))

    def forward(self, x: Tensor) -> Tensor:
        return self.cab(x)
