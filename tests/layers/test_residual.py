"""EDSR residual blocks (rssr.layers.residual): near-identity start and official keys."""
import torch

from rssr.layers.residual import ResidualBlockNoBN, residual_blocks


def test_residual_block_starts_near_identity_and_keeps_keys():
    torch.manual_seed(0)
    blocks = residual_blocks(3, 16)
    assert '2.conv2.bias' in blocks.state_dict()
    assert all(torch.count_nonzero(b.conv1.bias) == 0 for b in blocks)
    x = torch.rand(1, 16, 8, 8)
    relative_change = (blocks(x) - x).norm() / x.norm()
    assert 0 < relative_change < 0.5
    assert ResidualBlockNoBN(16, pytorch_init=True).conv1.bias.abs().sum() > 0
