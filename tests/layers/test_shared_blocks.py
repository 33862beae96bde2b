"""Shared blocks written for ConvMambaSR and reused by other ports: upsamplers, EDSR residual
blocks, token folding, residual groups and SS2D."""
import pytest
import torch
from torch import nn

from rssr.layers.residual import ResidualBlockNoBN, residual_blocks
from rssr.layers.residual_group import ResidualGroup, resi_connection_conv
from rssr.layers.ss2d import SS2D, VSSBlock, resolve_dt_rank
from rssr.layers.tokens import PatchEmbed, to_map, to_tokens
from rssr.layers.upsample import Upsample, UpsampleOneStep
from rssr.ops.selective_scan import selective_scan_reference


@pytest.mark.parametrize('scale, keys', [(2, ['0']), (3, ['0']), (4, ['0', '2']), (8, ['0', '2', '4'])])
def test_upsample_shapes_and_checkpoint_keys(scale, keys):
    upsample = Upsample(scale, 8)
    assert sorted({k.split('.')[0] for k in upsample.state_dict()}) == keys
    assert upsample(torch.rand(1, 8, 3, 5)).shape == (1, 8, 3 * scale, 5 * scale)


def test_upsample_rejects_other_scales_and_one_step_takes_any():
    with pytest.raises(ValueError, match='scale 5 is not supported'):
        Upsample(5, 8)
    one_step = UpsampleOneStep(5, 8, 4)
    assert list(one_step.state_dict()) == ['0.weight', '0.bias']
    assert one_step(torch.rand(2, 8, 3, 2)).shape == (2, 4, 15, 10)


def test_residual_block_starts_near_identity_and_keeps_keys():
    torch.manual_seed(0)
    blocks = residual_blocks(3, 16)
    assert '2.conv2.bias' in blocks.state_dict()
    assert all(torch.count_nonzero(b.conv1.bias) == 0 for b in blocks)
    x = torch.rand(1, 16, 8, 8)
    relative_change = (blocks(x) - x).norm() / x.norm()
    assert 0 < relative_change < 0.5
    assert ResidualBlockNoBN(16, pytorch_init=True).conv1.bias.abs().sum() > 0


def test_tokens_round_trip_and_optional_norm():
    x = torch.rand(2, 5, 3, 4)
    tokens = to_tokens(x)
    assert tokens.shape == (2, 12, 5) and torch.equal(tokens[:, 1 * 4 + 2], x[:, :, 1, 2])
    assert torch.equal(to_map(tokens, (3, 4)), x)
    assert list(PatchEmbed(5, nn.LayerNorm).state_dict()) == ['norm.weight', 'norm.bias']
    assert list(PatchEmbed(5).state_dict()) == []


def test_resi_connection_conv_and_group_residual():
    assert list(resi_connection_conv(8, '3conv').state_dict())[::2] == ['0.weight', '2.weight', '4.weight']
    with pytest.raises(ValueError, match="got 'conv'"):
        resi_connection_conv(8, 'conv')
    group = ResidualGroup([], 8)
    nn.init.zeros_(group.conv.weight), nn.init.zeros_(group.conv.bias)
    tokens = torch.rand(1, 6, 8)
    assert torch.equal(group(tokens, (2, 3)), tokens)


def test_ss2d_matches_four_explicit_directional_scans():
    torch.manual_seed(0)
    ss2d = SS2D(d_model=6, d_state=3, expand=1.5, scan_backend='reference')
    assert ss2d.dt_rank == resolve_dt_rank('auto', 6) == 1 and ss2d.x_proj_weight.shape == (4, 7, 9)
    x = torch.randn(2, 3, 5, 6)  # non-square H=3, W=5
    h, w = 3, 5
    scan_path, gate = ss2d.in_proj(x).chunk(2, dim=-1)
    u = ss2d.act(ss2d.conv2d(scan_path.permute(0, 3, 1, 2)))
    row_major = torch.stack([u[:, :, i, j] for i in range(h) for j in range(w)], dim=-1)
    col_major = torch.stack([u[:, :, i, j] for j in range(w) for i in range(h)], dim=-1)
    sequences = [row_major, col_major, row_major.flip(-1), col_major.flip(-1)]
    merged = torch.zeros_like(row_major)
    for k, seq in enumerate(sequences):
        dt_raw, B, C = torch.split(torch.einsum('cd,bdl->bcl', ss2d.x_proj_weight[k], seq), [1, 3, 3], dim=1)
        delta = torch.einsum('dr,brl->bdl', ss2d.dt_projs_weight[k], dt_raw)
        rows = slice(k * 9, (k + 1) * 9)
        y = selective_scan_reference(seq, delta, -torch.exp(ss2d.A_logs[rows]), B, C, ss2d.Ds[rows],
                                     delta_bias=ss2d.dt_projs_bias[k], delta_softplus=True)
        y = y.flip(-1) if k >= 2 else y
        if k % 2:  # column-major back to row-major
            y = torch.stack([y[..., j * h + i] for i in range(h) for j in range(w)], dim=-1)
        merged = merged + y
    expected = ss2d.out_proj(ss2d.out_norm(merged.transpose(1, 2).reshape(2, h, w, 9)) * nn.functional.silu(gate))
    assert torch.allclose(ss2d(x), expected, atol=1e-5)


def test_vss_block_is_residual_with_skip_scales():
    block = VSSBlock(6, conv_block=nn.Conv2d(6, 6, 1), d_state=2, expand=1.)
    nn.init.zeros_(block.self_attention.out_proj.weight)
    nn.init.zeros_(block.conv_blk.weight), nn.init.zeros_(block.conv_blk.bias)
    with torch.no_grad():
        block.skip_scale.fill_(2.), block.skip_scale2.fill_(3.)
    tokens = torch.rand(1, 12, 6)
    assert torch.allclose(block(tokens, (3, 4)), 6 * tokens)
