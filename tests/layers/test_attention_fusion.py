"""The dual-branch fusion block (rssr.layers.attention_fusion): each input through its own attention and conv."""
import pytest
import torch
from torch import nn

from rssr.layers.attention_fusion import AttentionFusion


class Scale(nn.Module):
    def __init__(self, factor: float) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x):
        return x * self.factor


def test_each_input_goes_through_its_own_attention_and_conv_under_the_given_names():
    torch.manual_seed(0)
    fusion = AttentionFusion(3, second_named_first=Scale(2.0), other=Scale(-1.0))
    assert list(fusion.state_dict()) == ['conv1.weight', 'conv1.bias', 'conv2.weight', 'conv2.bias']
    assert [name for name, _ in fusion.named_children()] == ['second_named_first', 'other', 'conv1', 'conv2']
    first, second = torch.rand(1, 3, 5, 5), torch.rand(1, 3, 5, 5)
    expected = fusion.conv1(first * 2.0) + fusion.conv2(-second)
    assert torch.allclose(fusion(first, second), expected)


def test_other_than_two_attentions_is_refused_by_name():
    with pytest.raises(ValueError, match='two attentions, got 1: only'):
        AttentionFusion(3, only=Scale(1.0))
