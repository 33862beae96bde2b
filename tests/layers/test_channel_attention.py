"""RCAN channel attention and MambaIR's channel-attention block (rssr.layers.channel_attention)."""
import torch
from torch import nn

from rssr.layers.channel_attention import ChannelAttention, ChannelAttentionBlock


def test_channel_attention_by_definition():
    attention = ChannelAttention(8, squeeze_factor=4)
    x = torch.rand(2, 8, 3, 5)
    squeezed = torch.relu(attention.attention[1](x.mean(dim=(2, 3), keepdim=True)))
    assert torch.allclose(attention(x), x * torch.sigmoid(attention.attention[3](squeezed)), atol=1e-6)


def test_zero_channel_squeeze_keeps_official_shapes_and_runs():
    attention = ChannelAttention(20, squeeze_factor=30)
    assert attention.attention[1].weight.shape == (0, 20, 1, 1)
    x = torch.rand(1, 20, 4, 3)
    assert torch.equal(attention(x), x * torch.sigmoid(attention.attention[3].bias).view(1, -1, 1, 1))


def test_block_keys_and_activations():
    block = ChannelAttentionBlock(12, compress_ratio=3, squeeze_factor=6, act_layer=nn.SiLU,
                                  attention_act_layer=nn.Tanh)
    assert isinstance(block.cab[1], nn.SiLU) and isinstance(block.cab[3].attention[2], nn.Tanh)
    assert [key for key in block.state_dict() if key.endswith('weight')] == [
        'cab.0.weight', 'cab.2.weight', 'cab.3.attention.1.weight', 'cab.3.attention.3.weight']
    assert block.cab[0].out_channels == 4
    x = torch.rand(1, 12, 5, 4)
    assert torch.equal(block(x), block.cab[3](block.cab[2](block.cab[1](block.cab[0](x)))))
