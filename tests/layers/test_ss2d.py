"""MambaIR's SS2D and VSSBlock (rssr.layers.ss2d) against explicit directional scans."""
import torch
from torch import nn

from rssr.layers.ss2d import SS2D, VSSBlock, resolve_dt_rank
from rssr.ops.selective_scan import selective_scan_reference


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
