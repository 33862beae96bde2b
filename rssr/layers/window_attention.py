"""Swin-style (shifted) window self-attention with a relative position bias.

The pieces every Swin-family block needs, written once:

- :func:`window_partition` / :func:`window_reverse`: cut a (B, H, W, C) map into non-overlapping
  windows (windows row-major over the grid, batch-major; tokens row-major inside a window) and
  stitch them back.
- :func:`relative_position_index`: the (N, N) table index of every (query, key) pair in a window.
- :func:`shifted_window_mask`: the 0 / -100 mask that keeps a cyclically shifted window from
  attending across the seams of the roll (9 regions, as in Swin / SwinIR).
- :class:`WindowAttention`: multi-head attention inside a window with the learned bias table;
  parameter and buffer names (``qkv``, ``proj``, ``relative_position_bias_table``,
  ``relative_position_index``) are the ones Swin-family checkpoints use.
- :func:`attend_in_windows`: roll, partition, attend, merge, roll back.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.utils import to_2tuple

Size2 = Union[int, Tuple[int, int]]

MASKED_LOGIT = -100.0
"""Value added to the logits of (query, key) pairs that lie in different regions of a shifted window."""


def window_partition(x: Tensor, window_size: Size2) -> Tensor:
    """Split x (B, H, W, C) into windows (B * nW, wh, ww, C); H and W must be multiples of the window."""
    batch, height, width, channels = x.shape
    wh, ww = to_2tuple(window_size)
    if height % wh or width % ww:
        raise ValueError(f'window_partition: map {height}x{width} is not a multiple of the window {wh}x{ww}')
    x = x.view(batch, height // wh, wh, width // ww, ww, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, wh, ww, channels)


def window_reverse(windows: Tensor, window_size: Size2, height: int, width: int) -> Tensor:
    """Inverse of :func:`window_partition`: windows (B * nW, wh, ww, C) back to (B, H, W, C)."""
    wh, ww = to_2tuple(window_size)
    channels = windows.shape[-1]
    x = windows.view(-1, height // wh, width // ww, wh, ww, channels)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, height, width, channels)


def relative_position_index(window_size: Size2) -> Tensor:
    """(N, N) int64 index into a ((2wh-1) * (2ww-1))-row bias table, N = wh * ww.

    For query (r1, c1) and key (r2, c2): (r1 - r2 + wh - 1) * (2ww - 1) + (c1 - c2 + ww - 1).
    """
    wh, ww = to_2tuple(window_size)
    rows, cols = torch.meshgrid(torch.arange(wh), torch.arange(ww), indexing='ij')
    rows, cols = rows.flatten(), cols.flatten()
    delta_rows = rows[:, None] - rows[None, :] + wh - 1
    delta_cols = cols[:, None] - cols[None, :] + ww - 1
    return delta_rows * (2 * ww - 1) + delta_cols


def shifted_window_mask(height: int, width: int, window_size: Size2, shift_size: Size2,
                        device: Optional[torch.device] = None) -> Tensor:
    """Attention mask (nW, N, N) for windows over a map cyclically shifted by ``shift_size``.

    The map is labelled with up to 9 regions (rows split at H - wh and H - shift, columns likewise);
    a (query, key) pair from different regions gets :data:`MASKED_LOGIT`, otherwise 0.
    """
    wh, ww = to_2tuple(window_size)
    sh, sw = to_2tuple(shift_size)
    row_region = _region_labels(height, wh, sh, device)
    col_region = _region_labels(width, ww, sw, device)
    labels = (row_region[:, None] * 3 + col_region[None, :]).to(torch.float32)
    windows = window_partition(labels[None, :, :, None], (wh, ww)).reshape(-1, wh * ww)
    differ = windows[:, None, :] != windows[:, :, None]
    return torch.zeros(differ.shape, device=device).masked_fill_(differ, MASKED_LOGIT)


def _region_labels(length: int, window: int, shift: int, device: Optional[torch.device]) -> Tensor:
    """0 before ``length - window``, 1 up to ``length - shift``, 2 after (one axis of the 9 regions)."""
    positions = torch.arange(length, device=device)
    return (positions >= length - window).long() + (positions >= length - shift).long()


class WindowAttention(nn.Module):
    """Multi-head self-attention within one window, with a learned relative position bias.

    Args:
        dim: token channels; must be divisible by ``num_heads``.
        window_size: window side (int) or (height, width).
        num_heads: attention heads.
        qkv_bias: learn a bias for the q, k, v projection.
        qk_scale: overrides the head_dim ** -0.5 logit scale when truthy (Swin semantics).
        attn_drop, proj_drop: dropout on attention weights and on the output projection.
    """

    def __init__(self, dim: int, window_size: Size2, num_heads: int, qkv_bias: bool = True,
                 qk_scale: Optional[float] = None, attn_drop: float = 0., proj_drop: float = 0.) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'WindowAttention: dim {dim} is not divisible by num_heads {num_heads}')
        self.dim = dim
        self.window_size = to_2tuple(window_size)
        self.num_heads = num_heads
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        wh, ww = self.window_size
        self.relative_position_bias_table = nn.Parameter(torch.zeros((2 * wh - 1) * (2 * ww - 1), num_heads))
        self.register_buffer('relative_position_index', relative_position_index(self.window_size))
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim)
        self.proj_drop = nn.Dropout(proj_drop)
        nn.init.trunc_normal_(self.relative_position_bias_table, std=.02)

    def relative_position_bias(self) -> Tensor:
        """(heads, N, N) bias added to every window's logits."""
        tokens = self.window_size[0] * self.window_size[1]
        bias = self.relative_position_bias_table[self.relative_position_index.view(-1)]
        return bias.view(tokens, tokens, self.num_heads).permute(2, 0, 1)

    def forward(self, windows: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """windows (B * nW, N, C) -> (B * nW, N, C); mask (nW, N, N) or None, added to the logits."""
        batch_windows, tokens, channels = windows.shape
        qkv = self.qkv(windows).reshape(batch_windows, tokens, 3, self.num_heads, channels // self.num_heads)
        query, key, value = qkv.permute(2, 0, 3, 1, 4)
        logit_bias = self.relative_position_bias()
        if mask is not None:
            num_windows = mask.shape[0]
            logit_bias = logit_bias[None] + mask[:, None]
            query, key, value = (t.view(-1, num_windows, *t.shape[1:]) for t in (query, key, value))
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=logit_bias.to(query.dtype),
                                             dropout_p=self.attn_drop if self.training else 0., scale=self.scale)
        out = out.reshape(batch_windows, self.num_heads, tokens, -1).transpose(1, 2).reshape(batch_windows, tokens, -1)
        return self.proj_drop(self.proj(out))

    def extra_repr(self) -> str:
        return f'dim={self.dim}, window_size={self.window_size}, num_heads={self.num_heads}'


def attend_in_windows(x: Tensor, attention: WindowAttention, shift_size: Size2 = 0,
                      mask: Optional[Tensor] = None) -> Tensor:
    """(Shifted) window attention over a whole map x (B, H, W, C) -> (B, H, W, C).

    Rolls the map by -shift, attends inside ``attention.window_size`` windows (with ``mask``, e.g.
    from :func:`shifted_window_mask`), and rolls the result back.
    """
    _, height, width, channels = x.shape
    sh, sw = to_2tuple(shift_size)
    if sh or sw:
        x = torch.roll(x, shifts=(-sh, -sw), dims=(1, 2))
    window = attention.window_size
    windows = window_partition(x, window).reshape(-1, window[0] * window[1], channels)
    windows = attention(windows, mask=mask)
    x = window_reverse(windows.reshape(-1, *window, channels), window, height, width)
    if sh or sw:
        x = torch.roll(x, shifts=(sh, sw), dims=(1, 2))
    return x
