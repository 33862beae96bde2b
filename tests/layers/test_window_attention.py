"""The shared shifted-window attention pieces (rssr.layers.window_attention) against their definitions."""
import pytest
import torch

from rssr.layers.window_attention import (
    MASKED_LOGIT,
    WindowAttention,
    attend_in_windows,
    relative_position_index,
    shifted_window_mask,
    window_partition,
    window_reverse,
)


def test_partition_and_reverse_round_trip_with_rectangular_windows():
    x = torch.rand(2, 6, 8, 3)
    windows = window_partition(x, (3, 4))
    assert windows.shape == (2 * 2 * 2, 3, 4, 3)
    assert torch.equal(windows[1], x[0, 0:3, 4:8])  # windows row-major over the grid, batch-major
    assert torch.equal(windows[4], x[1, 0:3, 0:4])
    assert torch.equal(window_reverse(windows, (3, 4), 6, 8), x)
    with pytest.raises(ValueError, match='not a multiple of the window 4x4'):
        window_partition(x, 4)


def test_relative_position_index_definition():
    wh, ww = 2, 3
    index = relative_position_index((wh, ww))
    for p in range(wh * ww):
        for q in range(wh * ww):
            (r1, c1), (r2, c2) = divmod(p, ww), divmod(q, ww)
            assert index[p, q] == (r1 - r2 + wh - 1) * (2 * ww - 1) + (c1 - c2 + ww - 1)


def test_shift_mask_separates_the_regions_of_the_roll():
    height, width, window, shift = 8, 12, 4, 2
    mask = shifted_window_mask(height, width, window, shift)
    assert mask.shape == (6, 16, 16)

    def region(position, length):
        return 0 if position < length - window else (1 if position < length - shift else 2)

    labels = torch.tensor([[region(r, height) * 3 + region(c, width) for c in range(width)] for r in range(height)])
    windows = window_partition(labels[None, :, :, None], window).reshape(-1, window * window)
    expected = (windows[:, :, None] != windows[:, None, :]).float() * MASKED_LOGIT
    assert torch.equal(mask, expected)
    assert mask[0].abs().sum() == 0 and mask[-1].abs().sum() > 0  # only windows on the seams are masked


def test_shifted_attention_never_mixes_tokens_across_the_seam():
    torch.manual_seed(0)
    attention = WindowAttention(dim=4, window_size=4, num_heads=2).eval()
    x = torch.rand(1, 8, 8, 4)
    mask = shifted_window_mask(8, 8, 4, 2)
    reference = attend_in_windows(x, attention, 2, mask)
    changed = x.clone()
    changed[0, 0, 0] += 1.  # top-left token: after the roll it sits in the bottom-right window, region 8
    out = attend_in_windows(changed, attention, 2, mask)
    moved = (out - reference).abs().sum(-1)[0] > 0
    assert moved[0, 0] and moved[:2, :2].all()  # same region (rows/cols 0-1) sees it
    assert not moved[2:, :].any() and not moved[:, 2:].any()  # tokens of other regions never do


def test_one_row_of_windows_attends_each_window_alone():
    """A single row of windows (8 x 16 map, window 8): partitioning gives a non-contiguous view."""
    torch.manual_seed(0)
    attention = WindowAttention(4, 8, 2)
    x = torch.rand(1, 8, 16, 4)
    halves = [attention(x[:, :, cols].reshape(1, 64, 4)).view(1, 8, 8, 4) for cols in (slice(0, 8), slice(8, 16))]
    assert torch.allclose(attend_in_windows(x, attention), torch.cat(halves, dim=2), atol=1e-6)
