"""Residual groups of token blocks and the resi_connection conv (rssr.layers.residual_group)."""
import pytest
import torch
from torch import nn

from rssr.layers.residual_group import ResidualGroup, resi_connection_conv


def test_resi_connection_conv_and_group_residual():
    assert list(resi_connection_conv(8, '3conv').state_dict())[::2] == ['0.weight', '2.weight', '4.weight']
    with pytest.raises(ValueError, match="got 'conv'"):
        resi_connection_conv(8, 'conv')
    group = ResidualGroup([], 8)
    nn.init.zeros_(group.conv.weight), nn.init.zeros_(group.conv.bias)
    tokens = torch.rand(1, 6, 8)
    assert torch.equal(group(tokens, (2, 3)), tokens)
