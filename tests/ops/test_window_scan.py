"""MambaCSR's scan orders (rssr.ops.window_scan): exact orders, padding, inverses and the official quirk."""
import pytest
import torch

from rssr.ops.window_scan import ScanDirection, cross_scale_merge, cross_scale_scan, window_merge, window_scan


def positions(height: int, width: int, channels: int = 1, batch: int = 1) -> torch.Tensor:
    """A map whose value at (h, w) is its raster index + 1 (0 is left for pad tokens)."""
    grid = torch.arange(1, height * width + 1, dtype=torch.float32).view(1, 1, height, width)
    return grid.expand(batch, channels, height, width).clone()


def test_window_scan_orders_on_a_4x4_map():
    x = positions(4, 4)
    row_first = window_scan(x, 2)[0, 0].long().tolist()
    assert row_first == [1, 2, 5, 6, 3, 4, 7, 8, 9, 10, 13, 14, 11, 12, 15, 16]
    column_first = window_scan(x, 2, column_first=True)[0, 0].long().tolist()
    assert column_first == [1, 5, 2, 6, 9, 13, 10, 14, 3, 7, 4, 8, 11, 15, 12, 16]
    assert window_scan(x, 2, column_first=True, flip=True)[0, 0].long().tolist() == column_first[::-1]


def test_window_scan_zero_pads_bottom_right_and_keeps_pad_tokens():
    x = positions(3, 5)
    seq = window_scan(x, 4)
    assert seq.shape == (1, 1, 4 * 8)
    assert (seq == 0).sum() == 4 * 8 - 15
    assert seq[0, 0, :4].long().tolist() == [1, 2, 3, 4]  # first window row: real pixels first
    assert seq[0, 0, 12:16].long().tolist() == [0, 0, 0, 0]  # fourth row of the first window is padding


@pytest.mark.parametrize('height,width', [(8, 8), (11, 13), (5, 3), (16, 40)])
@pytest.mark.parametrize('window', [1, 4, 8, 64])
@pytest.mark.parametrize('column_first', [False, True])
@pytest.mark.parametrize('flip', [False, True])
def test_window_merge_inverts_window_scan(height, width, window, column_first, flip):
    x = torch.randn(2, 3, height, width)
    seq = window_scan(x, window, column_first, flip)
    merged = window_merge(seq, height, width, window, column_first, flip)
    assert torch.equal(merged, x.flatten(2))


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_window_sequences_and_rasters_are_stored_time_major(memory_format):
    """(B, L, C) in memory, as the selective scan reads them and the direction gate takes them."""
    x = torch.randn(2, 3, 11, 13).contiguous(memory_format=memory_format)
    sequence = window_scan(x, 4, column_first=True, flip=True)
    raster = window_merge(sequence, 11, 13, 4, column_first=True, flip=True)
    assert sequence.transpose(1, 2).is_contiguous() and raster.transpose(1, 2).is_contiguous()
    assert torch.equal(raster, x.reshape(2, 3, -1))


def test_scan_direction_names():
    assert ScanDirection.parse('c_w64_flip') == ScanDirection(64, column_first=True, flip=True)
    assert ScanDirection.parse('w8') == ScanDirection(8)
    assert ScanDirection.parse('c_w16').name == 'c_w16'
    with pytest.raises(ValueError, match="'h_flip'"):
        ScanDirection.parse('h_flip')


def cross_inputs(height: int, width: int):
    """High map whose value is the raster index of its covering low pixel, and that low map."""
    rows = torch.arange(height).view(-1, 1) // 2
    cols = torch.arange(width).view(1, -1) // 2
    high = (rows * (width // 2) + cols).float().view(1, 1, height, width)
    low = torch.arange(height * width // 4, dtype=torch.float32).view(1, 1, height // 2, width // 2)
    return high, low


@pytest.mark.parametrize('column_first', [False, True])
@pytest.mark.parametrize('flip', [False, True])
def test_cross_scale_scan_puts_each_low_token_before_the_four_pixels_it_covers(column_first, flip):
    high, low = cross_inputs(16, 48)
    groups = cross_scale_scan(high, low, 16, column_first, flip).view(-1, 5)
    assert groups.shape[0] == 16 * 48 // 4
    assert torch.equal(groups, groups[:, :1].expand(-1, 5))
    assert len(set(groups[:, 0].tolist())) == groups.shape[0]  # every low token exactly once


def test_cross_scale_high_order_inside_a_window():
    x = positions(16, 16)
    low = torch.zeros(1, 1, 8, 8)
    high = cross_scale_scan(x, low, 16).view(-1, 5)[:, 1:].reshape(-1)
    assert high[:8].long().tolist() == [1, 2, 17, 18, 3, 4, 19, 20]  # 2x2 cells, row-major
    high_c = cross_scale_scan(x, low, 16, column_first=True).view(-1, 5)[:, 1:].reshape(-1)
    assert high_c[:8].long().tolist() == [1, 17, 2, 18, 33, 49, 34, 50]  # cells down the first column


@pytest.mark.parametrize('height,width', [(16, 16), (16, 48), (32, 16)])
@pytest.mark.parametrize('column_first', [False, True])
@pytest.mark.parametrize('flip', [False, True])
def test_exact_cross_scale_merge_inverts_the_scan(height, width, column_first, flip):
    x, low = torch.randn(2, 3, height, width), torch.randn(2, 3, height // 2, width // 2)
    seq = cross_scale_scan(x, low, 16, column_first, flip)
    merged = cross_scale_merge(seq, height, width, 16, column_first, flip, exact_column_inverse=True)
    assert torch.equal(merged, x.flatten(2))


@pytest.mark.parametrize('flip', [False, True])
def test_official_column_inverse_is_exact_only_for_square_grids(flip):
    square, low = torch.randn(1, 2, 32, 32), torch.randn(1, 2, 16, 16)
    seq = cross_scale_scan(square, low, 16, True, flip)
    assert torch.equal(cross_scale_merge(seq, 32, 32, 16, True, flip), square.flatten(2))

    x = positions(16, 48)
    seq = cross_scale_scan(x, torch.zeros(1, 1, 8, 24), 16, True, flip)
    official = cross_scale_merge(seq, 16, 48, 16, True, flip)
    assert not torch.equal(official, x.flatten(2))
    assert sorted(official.flatten().long().tolist()) == list(range(1, 16 * 48 + 1))  # still a permutation
    # the official rule: token of window k, local (row r, col c) lands at
    # ((k mod Wg)*16 + r) * (16*Hg) + (k div Wg)*16 + c
    hg, wg = 1, 3
    for k, (window_row, window_col) in enumerate([(i, j) for j in range(wg) for i in range(hg)]):
        for r, c in [(0, 0), (5, 11), (15, 15)]:
            source = (window_row * 16 + r) * 48 + window_col * 16 + c + 1
            target = ((k % wg) * 16 + r) * (16 * hg) + (k // wg) * 16 + c
            assert official[0, 0, target].item() == source


def test_cross_scale_size_errors_name_the_sizes():
    with pytest.raises(ValueError, match='12x16'):
        cross_scale_scan(torch.zeros(1, 1, 12, 16), torch.zeros(1, 1, 6, 8), 16)
    with pytest.raises(ValueError, match='8x8'):
        cross_scale_scan(torch.zeros(1, 1, 16, 16), torch.zeros(1, 1, 4, 4), 16)


def test_compact_order_collapses_inner_pad_runs_and_drops_edge_runs():
    from rssr.ops.window_scan import compact_window_order
    order = compact_window_order(3, 5, (ScanDirection(4), ScanDirection(4, flip=True)))
    pad = 15  # the zero slot after the 15 pixels
    assert order.sources[0].tolist() == [0, 1, 2, 3, 5, 6, 7, 8, 10, 11, 12, 13, pad, 4, pad, 9, pad, 14]
    assert order.pad_runs[0].tolist() == [1] * 12 + [4, 1, 3, 1, 3, 1]
    assert order.sources[1].tolist() == order.sources[0].flip(0).tolist()
    x = positions(3, 5, channels=2, batch=2)
    from rssr.ops.window_scan import compact_window_merge, compact_window_scan
    merged = compact_window_merge(compact_window_scan(x, order), order)
    assert torch.equal(merged, x.flatten(2)[:, None].expand(2, 2, 2, 15))


@pytest.mark.parametrize('kwargs,size', [(dict(dual_interleaved_scan=True, scan_size=4, depths=[4]), (10, 14)),
                                         (dict(dual_interleaved_scan=False, scan_size=4, depths=[1]), (6, 9))])
def test_collapsed_pad_runs_give_the_outputs_and_gradients_of_scanning_every_pad_token(kwargs, size, monkeypatch):
    """MambaCSR scans compact orders where windows need padding; the plain orders must agree in value and gradient."""
    from rssr.archs.mambacsr import MambaCSR, MultiDirectionScan
    torch.manual_seed(0)
    model = MambaCSR(embed_dim=24, d_state=4, upsampler='pixelshuffle', upscale=2, **kwargs)
    for name, param in model.named_parameters():
        if 'dt_projs_bias' in name:  # large steps: pad runs decay the state visibly
            param.data.uniform_(0.0, 2.0)
    x = torch.rand(2, 3, *size)

    def run():
        model.zero_grad()
        out = model(x)
        (out * torch.linspace(-1, 1, out.numel(), dtype=out.dtype).view_as(out)).sum().backward()
        return out.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    assert model.layers[0].residual_group.blocks[-1].self_attention.multi_scan.compact_order(*size) is not None
    compact_out, compact_grads = run()
    monkeypatch.setattr(MultiDirectionScan, 'compact_order', lambda self, height, width: None)
    plain_out, plain_grads = run()
    assert (compact_out - plain_out).abs().max() <= 1e-5 * plain_out.abs().max()  # float32 rounding only
    for name, grad in plain_grads.items():
        assert (compact_grads[name] - grad).abs().max() <= 1e-4 * grad.abs().max(), name
