"""MambaIR's 2-D selective-scan block (SS2D) and its residual state-space block (VSSBlock).

SS2D (MambaIR ``mambair_arch.SS2D``, from VMamba) mixes tokens globally: an input projection
splits into a scan path and a gate; the scan path goes through a depthwise conv and SiLU, is
unrolled in four directions (:func:`rssr.ops.cross_scan`), run through one selective scan per
direction (:class:`rssr.layers.ssm.DirectionalSSM`), merged by summation, normalised, gated by
SiLU(z) and projected back. Parameter names follow the official checkpoints (``in_proj``,
``conv2d``, ``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``,
``out_norm``, ``out_proj``).

Variants (Rep-Mamba, MambaCSR) can subclass :class:`SS2D` and override :meth:`SS2D.local_mix`
(the depthwise conv + SiLU) or :meth:`SS2D.forward_core` (the directional scan).
"""
from __future__ import annotations

import math
from typing import Callable, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.layers.mlp import DropPath
from rssr.layers.ssm import DirectionalSSM
from rssr.ops.cross_scan import cross_merge, cross_scan


def resolve_dt_rank(dt_rank: Union[int, str], d_model: int) -> int:
    """``'auto'`` means ceil(d_model / 16), Mamba's default delta-projection rank."""
    if dt_rank == 'auto':
        return math.ceil(d_model / 16)
    if isinstance(dt_rank, int) and dt_rank > 0:
        return dt_rank
    raise ValueError(f"SS2D: dt_rank must be a positive int or 'auto', got {dt_rank!r}")


class SS2D(DirectionalSSM):
    """Four-direction 2-D selective scan over (B, H, W, d_model) features.

    Args:
        d_model: input and output channels (C).
        d_state: SSM state size (N).
        d_conv: kernel size of the depthwise conv before the scan.
        expand: d_inner = int(expand * d_model) scan channels.
        dt_rank: rank of the delta projection, or 'auto' (ceil(d_model / 16)).
        dt_min, dt_max, dt_init_floor: range of the initial step sizes (see DirectionalSSM).
        dropout: dropout on the output (none when 0).
        conv_bias: bias of the depthwise conv. bias: bias of in_proj / out_proj.
        scan_backend: force a selective-scan backend (None: automatic).
        directions: number of scan directions K, for subclasses with their own scan orders
            (default: the class attribute ``directions``, 4).
    """

    directions = 4

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 3, expand: float = 2.,
                 dt_rank: Union[int, str] = 'auto', dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, dropout: float = 0., conv_bias: bool = True, bias: bool = False,
                 scan_backend: Optional[str] = None, directions: Optional[int] = None) -> None:
        d_inner = int(expand * d_model)
        directions = self.directions if directions is None else directions
        super().__init__(d_inner, d_state, resolve_dt_rank(dt_rank, d_model), directions,
                         dt_min=dt_min, dt_max=dt_max, dt_init_floor=dt_init_floor, scan_backend=scan_backend)
        self.d_model, self.d_conv, self.expand = d_model, d_conv, expand
        self.in_proj = nn.Linear(d_model, 2 * d_inner, bias=bias)
        self.conv2d = nn.Conv2d(d_inner, d_inner, d_conv, padding=(d_conv - 1) // 2, groups=d_inner, bias=conv_bias)
        self.act = nn.SiLU()
        self.out_norm = nn.LayerNorm(d_inner)
        self.out_proj = nn.Linear(d_inner, d_model, bias=bias)
        self.dropout = nn.Dropout(dropout) if dropout > 0 else None

    def local_mix(self, x: Tensor) -> Tensor:
        """Depthwise conv + SiLU on the scan path, (B, d, H, W) -> (B, d, H, W)."""
        return self.act(self.conv2d(x))

    def forward_core(self, x: Tensor) -> Tensor:
        """Scan (B, d, H, W) in four directions; returns their row-major sum (B, d, H*W), float32."""
        height, width = x.shape[-2:]
        return cross_merge(self.scan(cross_scan(x)), height, width)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, W, d_model) -> (B, H, W, d_model)."""
        b, h, w, _ = x.shape
        scan_path, gate = self.in_proj(x).chunk(2, dim=-1)
        # channels-last: the depthwise conv runs several times faster on it than on a (B, d, H, W) copy
        scan_map = scan_path.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        y = self.forward_core(self.local_mix(scan_map))
        y = self.out_norm(y.transpose(1, 2).reshape(b, h, w, self.d_inner)) * F.silu(gate)
        out = self.out_proj(y)
        return out if self.dropout is None else self.dropout(out)


class VSSBlock(nn.Module):
    """MambaIR's residual state-space block on tokens (B, H*W, C).

    a = skip_scale * u + DropPath(SS2D(ln_1(u)));  out = skip_scale2 * a + conv_blk(ln_2(a)).
    ``conv_blk`` is the arch's local (B, C, H, W) -> (B, C, H, W) block (a channel-attention
    block in MambaIR and ConvMambaSR); it is passed in because each arch has its own.

    Args:
        hidden_dim: channels C.
        conv_block: the local block, stored as ``conv_blk``.
        drop_path: stochastic-depth rate on the SS2D branch.
        norm_layer: norm class for ``ln_1`` and ``ln_2`` (nn.LayerNorm, eps 1e-5, in the officials).
        d_state, expand, attn_drop_rate, scan_backend, **ss2d_kwargs: passed to :class:`SS2D`.
    """

    def __init__(self, hidden_dim: int, conv_block: nn.Module, drop_path: float = 0.,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, d_state: int = 16, expand: float = 2.,
                 attn_drop_rate: float = 0., scan_backend: Optional[str] = None, **ss2d_kwargs) -> None:
        super().__init__()
        self.ln_1 = norm_layer(hidden_dim)
        self.self_attention = SS2D(hidden_dim, d_state=d_state, expand=expand, dropout=attn_drop_rate,
                                   scan_backend=scan_backend, **ss2d_kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.skip_scale = nn.Parameter(torch.ones(hidden_dim))
        self.conv_blk = conv_block
        self.ln_2 = norm_layer(hidden_dim)
        self.skip_scale2 = nn.Parameter(torch.ones(hidden_dim))

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        b, _, c = tokens.shape
        u = tokens.reshape(b, x_size[0], x_size[1], c)
        a = u * self.skip_scale + self.drop_path(self.self_attention(self.ln_1(u)))
        local = self.conv_blk(self.ln_2(a).permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return (a * self.skip_scale2 + local).reshape(b, -1, c)
