"""The two-branch fusion of the dual-branch archs (ConvFormerSR's FFM, ConvMambaSR's GDRM): each input
through its own attention, then its own 3x3 conv, and the sum.
"""
from __future__ import annotations

from torch import Tensor, nn


class AttentionFusion(nn.Module):
    """conv1(first_attention(first)) + conv2(second_attention(second)), both convs 3x3 channels -> channels.

    Args:
        channels: channels of both inputs and of the output.
        **attentions: the two attentions (modules that return the attended features), first the one for
            the first input, under the attribute names the arch's checkpoints use. They are registered in
            that order before conv1 and conv2, so seeded initialisation follows the official construction.
    """

    def __init__(self, channels: int, **attentions: nn.Module) -> None:
        super().__init__()
        if len(attentions) != 2:
            raise ValueError(f'AttentionFusion takes two attentions, got {len(attentions)}: {", ".join(attentions)}')
        self.attention_names = tuple(attentions)
        for name, attention in attentions.items():
            self.add_module(name, attention)
        self.conv1 = nn.Conv2d(channels, channels, 3, 1, 1)
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1)

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        first_attention, second_attention = (getattr(self, name) for name in self.attention_names)
        return self.conv1(first_attention(first)) + self.conv2(second_attention(second))
