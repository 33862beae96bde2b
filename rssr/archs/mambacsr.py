"""MambaCSR: dual-interleaved scanning for compressed image super-resolution with SSMs.

Ren, Li, Guo, Li, Zhao, Chen, "MambaCSR: Dual-Interleaved Scanning for Compressed Image
Super-Resolution With SSMs", arXiv:2408.11758 (2024); official code renyulin-f/MambaCSR (no license
file: this is an independent implementation, checkpoint-compatible with it).

A MambaIR-style network for JPEG-compressed LR input. Each residual local Mamba block scans with
two 1-D directions only (a window scan and its reverse), and consecutive blocks interleave
local s x s windows with 64 x 64 "global" windows and row-first with column-first orders
(dual-interleaved scanning, :mod:`rssr.ops.window_scan`). The Final variant (``cross_scale_scan``)
also runs a half-resolution copy of the features through its own groups and fuses it into the
full-resolution path with a position-aligned cross-scale scan.

Official behaviours reproduced on purpose (so official checkpoints give official outputs):

- the zero pad tokens of window scans are scanned (``w64`` on a 32 x 32 map scans 4096 tokens);
- the half-resolution groups always use 8 x 8 windows (``scan_size`` is not passed to them), and
  groups shallower than 6 blocks use 32 x 32 windows when ``cross_scale_scan`` is on;
- the cross-scale fusion (``layers3``) keeps d_state 16 and a 4x MLP whatever the model's settings;
- the column-first cross-scale merge is not the inverse of its scan for non-square window grids;
  ``exact_cross_scale_inverse=True`` corrects it (new models only: it changes official outputs).

Deviations: broken official defaults work (float ``mlp_ratio``, int ``depths2``), gradient
checkpointing works, and the Final variant pads inputs whose sides are not multiples of 16 by
reflection and crops the output back (the official code fails on them).
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.layers.channel_attention import ChannelAttentionBlock
from rssr.layers.init import init_linear_and_layernorm
from rssr.layers.mlp import DropPath, Mlp
from rssr.layers.padding import SizeRequirements
from rssr.layers.residual_group import ResidualGroup, resi_connection_conv
from rssr.layers.sr_skeleton import DIV2K_RGB_MEAN, SRSkeleton, rgb_mean_for, warn_unknown_kwargs
from rssr.layers.ss2d import SS2D
from rssr.layers.tokens import PatchEmbed, to_map
from rssr.ops.cross_scan import stack_time_major
from rssr.ops.window_scan import (
    CompactWindowOrder,
    ScanDirection,
    compact_window_merge,
    compact_window_order,
    compact_window_scan,
    cross_scale_merge,
    cross_scale_scan,
    window_merge,
    window_scan,
)
from rssr.registry import register_arch
from rssr.zoo import ModelCard, register_card

CROSS_SCALE_DIRECTIONS = ('w16', 'w16_flip', 'c_w16', 'c_w16_flip')
CROSS_SCALE_D_STATE = 16
LOW_RES_SCAN_SIZE = 8  # the official half-resolution groups never receive scan_size
CROSS_SCALE_MULTIPLE = 16


class DirectionGate(nn.Module):
    """Global channel gate applied to each merged scan direction (``BiAttn`` in the official code).

    v (B, L, C) -> v * sigmoid(select(GELU(reduce(mean_L(norm(v)))))), one gate per image.
    """

    def __init__(self, channels: int, reduce_ratio: float = 0.125) -> None:
        super().__init__()
        reduced = int(channels * reduce_ratio)
        self.norm = nn.LayerNorm(channels)
        self.global_reduce = nn.Linear(channels, reduced)
        self.channel_select = nn.Linear(reduced, channels)

    def forward(self, v: Tensor) -> Tensor:
        pooled = self.norm(v).mean(1, keepdim=True)
        return v * torch.sigmoid(self.channel_select(F.gelu(self.global_reduce(pooled))))


class MultiDirectionScan(nn.Module):
    """Unrolls a map in several window (or cross-scale) scan orders and merges the scanned sequences.

    The merge puts each direction back in raster order, gates it with the shared
    :class:`DirectionGate` (``attn``) and sums the directions.
    """

    def __init__(self, channels: int, directions: Sequence[str], cross_scale: bool = False,
                 exact_cross_scale_inverse: bool = False) -> None:
        super().__init__()
        self.directions = tuple(ScanDirection.parse(name) for name in directions)
        self.cross_scale = cross_scale
        self.exact_cross_scale_inverse = exact_cross_scale_inverse
        self.attn = DirectionGate(channels)

    def compact_order(self, height: int, width: int) -> Optional[CompactWindowOrder]:
        """The pad-run-collapsed window orders on an H x W map, or None where no window needs padding
        (then the plain orders are scanned)."""
        if self.cross_scale or all(height % d.window == 0 and width % d.window == 0 for d in self.directions):
            return None
        return compact_window_order(int(height), int(width), self.directions)

    def scan(self, x: Tensor, x_low: Optional[Tensor] = None) -> Tensor:
        """x (B, C, H, W) [and x_low (B, C, H/2, W/2) when cross-scale] -> (B, K, C, L)."""
        if self.cross_scale:
            sequences = [cross_scale_scan(x, x_low, d.window, d.column_first, d.flip) for d in self.directions]
        else:
            sequences = [window_scan(x, d.window, d.column_first, d.flip) for d in self.directions]
        return stack_time_major(sequences)

    def merge(self, ys: Tensor, height: int, width: int) -> Tensor:
        """Scanned (B, K, C, L) -> gated sum over directions in raster order, (B, C, H*W)."""
        rasters = []
        for k, d in enumerate(self.directions):
            if self.cross_scale:
                rasters.append(cross_scale_merge(ys[:, k], height, width, d.window, d.column_first, d.flip,
                                                 exact_column_inverse=self.exact_cross_scale_inverse))
            else:
                rasters.append(window_merge(ys[:, k], height, width, d.window, d.column_first, d.flip))
        return self.gated_sum(rasters)

    def gated_sum(self, rasters: Sequence[Tensor]) -> Tensor:
        """Raster-order directions, each (B, C, H*W), -> sum of their gated values (B, C, H*W). The gate works on
        (B, H*W, C) tokens: rasters stored time-major (as the window merges make them) need no copy for it."""
        merged = 0
        for raster in rasters:
            merged = merged + self.attn(raster.transpose(1, 2))
        return merged.transpose(1, 2)

    def extra_repr(self) -> str:
        return f"directions=[{', '.join(d.name for d in self.directions)}], cross_scale={self.cross_scale}"


class LocalWindowSS2D(SS2D):
    """SS2D scanning in the given window orders (``LW_SS2D`` in the official code; expand 2, 3x3 conv).

    Where windows need zero padding, the runs of pad tokens are collapsed before the scan
    (:class:`rssr.ops.window_scan.CompactWindowOrder`): each inner run becomes one token whose step
    dt is the run length times the pad tokens' dt, which the scan sees through a delta offset. The
    outputs are those of scanning every pad token, at the cost of the real tokens only.

    Args:
        d_model: channels C (the scan runs on 2C channels).
        d_state: SSM state size.
        directions: official direction names, e.g. ('w8', 'w8_flip').
        scan_backend: force a selective-scan backend (None: automatic).
        cross_scale: scan position-aligned cross-scale orders (``forward_core`` then takes x_low).
        exact_cross_scale_inverse: see :func:`rssr.ops.window_scan.cross_scale_merge`.
    """

    def __init__(self, d_model: int, d_state: int, directions: Sequence[str], scan_backend: Optional[str] = None,
                 cross_scale: bool = False, exact_cross_scale_inverse: bool = False) -> None:
        super().__init__(d_model, d_state=d_state, d_conv=3, expand=2., scan_backend=scan_backend,
                         directions=len(directions))
        self.multi_scan = MultiDirectionScan(self.d_inner, directions, cross_scale, exact_cross_scale_inverse)

    def pad_run_delta_offset(self, order: CompactWindowOrder) -> Tensor:
        """(K, d, L') delta offsets that turn each pad-run token's dt = softplus(bias) into
        m * softplus(bias) for a run of m pad tokens (pad tokens project to delta 0); 0 elsewhere."""
        k, length = order.pad_runs.shape
        bias = self.dt_projs_bias.float()  # (K, d)
        runs = order.pad_runs.to(bias.device)
        columns = (runs > 1).any(0).nonzero().squeeze(1)
        run_dt = runs[:, columns].to(bias.dtype).clamp(min=1)[:, None, :] * F.softplus(bias)[:, :, None]
        inverse_softplus = run_dt + torch.log(-torch.expm1(-run_dt))
        offsets = (inverse_softplus - bias[:, :, None]) * (runs[:, columns] > 1)[:, None, :]
        return bias.new_zeros(k, bias.shape[1], length).index_copy(2, columns.to(bias.device), offsets)

    def forward_core(self, x: Tensor, x_low: Optional[Tensor] = None) -> Tensor:
        """Scan (B, d, H, W) in this block's directions; gated raster sum (B, d, H*W), float32."""
        height, width = x.shape[-2:]
        order = self.multi_scan.compact_order(height, width)
        if order is None:
            return self.multi_scan.merge(self.scan(self.multi_scan.scan(x, x_low)), height, width)
        ys = self.scan(compact_window_scan(x, order), self.pad_run_delta_offset(order))
        return self.multi_scan.gated_sum(compact_window_merge(ys, order).unbind(1))


class CrossScaleSS2D(LocalWindowSS2D):
    """Fuses the half-resolution branch into the full-resolution tokens (``Cross_SS2D``, ``layers3.i``).

    The full-resolution path (ln_1, in_proj, conv2d) and the low-resolution path (in_proj_down,
    conv2d2; no norm) are scanned together in the four position-aligned cross-scale orders
    (d_state 16). Then out = u * skip_scale + SSM(...); out = out * skip_scale2 + MLP(ln_2(out)),
    MLP hidden 4C. The gate half of ``in_proj_down`` exists in checkpoints but is never used.
    """

    def __init__(self, d_model: int, scan_backend: Optional[str] = None,
                 exact_cross_scale_inverse: bool = False) -> None:
        super().__init__(d_model, CROSS_SCALE_D_STATE, CROSS_SCALE_DIRECTIONS, scan_backend=scan_backend,
                         cross_scale=True, exact_cross_scale_inverse=exact_cross_scale_inverse)
        self.in_proj_down = nn.Linear(d_model, 2 * self.d_inner, bias=False)
        self.conv2d2 = nn.Conv2d(self.d_inner, self.d_inner, 3, padding=1, groups=self.d_inner)
        self.ln_1 = nn.LayerNorm(d_model)
        self.ln_2 = nn.LayerNorm(d_model)
        self.mlp = Mlp(d_model, 4 * d_model, act_layer=nn.GELU)
        self.skip_scale = nn.Parameter(torch.ones(d_model))
        self.skip_scale2 = nn.Parameter(torch.ones(d_model))

    def forward(self, tokens: Tensor, low_tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        """tokens (B, H*W, C) and low_tokens (B, H*W/4, C) -> fused tokens (B, H*W, C)."""
        b, _, c = tokens.shape
        height, width = x_size
        u = tokens.reshape(b, height, width, c)
        scan_path, gate = self.in_proj(self.ln_1(u)).chunk(2, dim=-1)
        low = low_tokens.reshape(b, height // 2, width // 2, c)
        low_path = F.linear(low, self.in_proj_down.weight[:self.d_inner])
        # channels-last maps: the depthwise convs run several times faster on them than on (B, d, H, W) copies
        x_low = self.act(self.conv2d2(low_path.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)))
        scan_map = scan_path.permute(0, 3, 1, 2).contiguous(memory_format=torch.channels_last)
        y = self.forward_core(self.local_mix(scan_map), x_low)
        y = self.out_norm(y.transpose(1, 2).reshape(b, height, width, self.d_inner)) * F.silu(gate)
        out = u * self.skip_scale + self.out_proj(y)
        out = out * self.skip_scale2 + self.mlp(self.ln_2(out))
        return out.reshape(b, -1, c)


class ResidualLocalMambaBlock(nn.Module):
    """Residual local Mamba block (``RLMBlock``), tokens (B, H*W, C).

    a = ln_1(u); x = u * skip_scale + DropPath(LocalWindowSS2D(a)) + 0.01 * CAB(a);
    out = x * skip_scale2 + DropPath(MLP(ln_2(x))).
    """

    def __init__(self, hidden_dim: int, directions: Sequence[str], drop_path: float = 0., d_state: int = 16,
                 mlp_ratio: float = 2., scan_backend: Optional[str] = None) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(hidden_dim)
        self.self_attention = LocalWindowSS2D(hidden_dim, d_state, directions, scan_backend=scan_backend)
        self.skip_scale = nn.Parameter(torch.ones(hidden_dim))
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()
        self.conv_block = ChannelAttentionBlock(hidden_dim, compress_ratio=24, squeeze_factor=24)
        self.ln_2 = nn.LayerNorm(hidden_dim)
        self.skip_scale2 = nn.Parameter(torch.ones(hidden_dim))
        self.mlp = Mlp(hidden_dim, int(mlp_ratio * hidden_dim), act_layer=nn.GELU)

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        b, _, c = tokens.shape
        u = tokens.reshape(b, x_size[0], x_size[1], c)
        a = self.ln_1(u)
        local = self.conv_block(a.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        x = u * self.skip_scale + self.drop_path(self.self_attention(a)) + 0.01 * local
        x = x * self.skip_scale2 + self.drop_path(self.mlp(self.ln_2(x)))
        return x.reshape(b, -1, c)


def direction_schedule(depth: int, scan_size: int, dual_interleaved_scan: bool,
                       cross_scale_scan: bool) -> List[Tuple[str, ...]]:
    """Scan directions of each block of a group, as the official ``BasicLayer`` assigns them.

    Dual interleaving cycles [w{s}, c_w{s}, w64, c_w64] (each with its flip) over the blocks.
    With ``cross_scale_scan`` this cycle is used whatever ``dual_interleaved_scan`` says, except
    that groups shallower than 6 blocks cycle [w32, c_w32]. Without interleaving every block
    scans the four directions w{s}, w{s}_flip, c_w{s}, c_w{s}_flip.
    """
    pair = lambda name: (name, f'{name}_flip')  # noqa: E731
    if cross_scale_scan and depth < 6:
        cycle = [pair('w32'), pair('c_w32')]
    elif cross_scale_scan or dual_interleaved_scan:
        cycle = [pair(f'w{scan_size}'), pair(f'c_w{scan_size}'), pair('w64'), pair('c_w64')]
    else:
        cycle = [pair(f'w{scan_size}') + pair(f'c_w{scan_size}')]
    return [cycle[i % len(cycle)] for i in range(depth)]


def _as_depths(value: Union[int, Sequence[int]], name: str) -> Tuple[int, ...]:
    depths = (value,) if isinstance(value, int) else tuple(value)
    if not depths or any(not isinstance(d, int) or d < 1 for d in depths):
        raise ValueError(f'MambaCSR: {name} must be a positive int or a non-empty list of them, got {value!r}')
    return depths


@register_arch()
class MambaCSR(SRSkeleton):
    """MambaCSR (official kwargs; the official YAML ``network_g`` builds it unchanged).

    Args:
        img_size, patch_size: bookkeeping only (any input size works).
        in_chans: input/output bands (the RGB mean is subtracted only for 3 bands).
        upscale: 2^n or 3.
        embed_dim: channels C (>= 24: the CAB squeezes by 24).
        d_state: SSM state size of the residual blocks.
        depths: blocks per full-resolution group. depths2: blocks per half-resolution group (int or list).
        mlp_ratio: MLP hidden = int(mlp_ratio * C).
        img_range: pixel range multiplier.
        upsampler: 'pixelshuffle', or '' (official default: no tail, forward returns the input).
        resi_connection: '1conv' or '3conv'.
        dual_interleaved_scan: interleave window sizes and row/column orders over blocks.
        cross_scale_scan: the Final variant (half-resolution branch + cross-scale fusion); needs
            H, W multiples of 16, so other sizes are reflect-padded and the output cropped.
        scan_size: local window size s.
        drop_rate: dropout after the patch embeddings. drop_path_rate: stochastic depth (max).
        norm_layer: norm of the patch embeddings and the final norm. patch_norm: use them.
        use_checkpoint: gradient checkpointing per block.
        exact_cross_scale_inverse: merge the column-first cross-scale directions with their exact
            inverse (official: wrong for non-square window grids; keep False for official weights).
        scan_backend: force a selective-scan backend (None: automatic).
    """

    size_requirements = SizeRequirements(multiple_of=CROSS_SCALE_MULTIPLE, pad_mode='reflect')

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 64, patch_size: int = 1, in_chans: int = 3,
                 upscale: int = 4, embed_dim: int = 180, d_state: int = 16,
                 depths: Sequence[int] = (6, 6, 6, 6, 6, 6), depths2: Union[int, Sequence[int]] = (6,),
                 mlp_ratio: float = 2., img_range: float = 1., upsampler: str = '', resi_connection: str = '1conv',
                 dual_interleaved_scan: bool = True, cross_scale_scan: bool = False, scan_size: int = 8,
                 drop_rate: float = 0., drop_path_rate: float = 0.1,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, patch_norm: bool = True,
                 use_checkpoint: bool = False, exact_cross_scale_inverse: bool = False,
                 scan_backend: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__()
        warn_unknown_kwargs('MambaCSR', kwargs, 'the official constructor swallows them too')
        if embed_dim < 24:
            raise ValueError(f'MambaCSR: embed_dim must be >= 24 (the CAB squeezes channels by 24), got {embed_dim}')
        if upsampler not in ('pixelshuffle', ''):
            raise ValueError(f"MambaCSR: upsampler must be 'pixelshuffle' or '' (no tail), got {upsampler!r}")
        if upsampler == '':
            warnings.warn("MambaCSR: upsampler='' (the official default) builds no reconstruction tail and the "
                          "network returns its input; the official configurations use 'pixelshuffle'", stacklevel=2)
        depths, depths2 = _as_depths(depths, 'depths'), _as_depths(depths2, 'depths2')
        self.setup_skeleton(in_chans, img_range, rgb_mean_for(in_chans, DIV2K_RGB_MEAN))
        self.img_size, self.patch_size, self.upscale = img_size, patch_size, upscale
        self.embed_dim, self.mlp_ratio, self.cross_scale_scan = embed_dim, mlp_ratio, cross_scale_scan
        if not cross_scale_scan:
            self.size_requirements = SizeRequirements()

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        patch_norm_layer = norm_layer if patch_norm else None
        self.patch_embed = PatchEmbed(embed_dim, patch_norm_layer)
        self.pos_drop = nn.Dropout(drop_rate)
        drop_rates = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()

        def group(depth: int, first_rate: int, group_scan_size: int) -> ResidualGroup:
            rates = [drop_rates[min(first_rate + j, len(drop_rates) - 1)] for j in range(depth)]
            schedule = direction_schedule(depth, group_scan_size, dual_interleaved_scan, cross_scale_scan)
            blocks = [ResidualLocalMambaBlock(embed_dim, directions, rate, d_state, mlp_ratio, scan_backend)
                      for directions, rate in zip(schedule, rates)]
            return ResidualGroup(blocks, embed_dim, resi_connection, use_checkpoint)

        starts = [sum(depths[:i]) for i in range(len(depths))]
        self.layers = nn.ModuleList(group(d, s, scan_size) for d, s in zip(depths, starts))
        if cross_scale_scan:
            self.patch_embed2 = PatchEmbed(embed_dim, patch_norm_layer)
            self.pos_drop2 = nn.Dropout(drop_rate)
            # as the official code, half-resolution group i reuses the drop-path rates of group i
            # (clamped where the official slicing fails: depths2[i] > depths[i])
            starts2 = [sum(depths[:i]) for i in range(len(depths2))]
            self.layers2 = nn.ModuleList(group(d, s, LOW_RES_SCAN_SIZE) for d, s in zip(depths2, starts2))
            self.layers3 = nn.ModuleList(CrossScaleSS2D(embed_dim, scan_backend, exact_cross_scale_inverse)
                                         for _ in depths2)
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = resi_connection_conv(embed_dim, resi_connection)
        self.upsampler = upsampler
        if upsampler:
            self.build_tail(upsampler, upscale, embed_dim, in_chans)
        self.apply(init_linear_and_layernorm)

    def forward_features(self, x: Tensor) -> Tensor:
        """Deep features (B, C, H, W) -> (B, C, H, W); H, W multiples of 16 for cross_scale_scan."""
        x_size = (x.shape[2], x.shape[3])
        if self.cross_scale_scan:
            low = F.interpolate(x, scale_factor=0.5, mode='bilinear', align_corners=False)
            low_size = (low.shape[2], low.shape[3])
            low_tokens = self.pos_drop2(self.patch_embed2(low))
        tokens = self.pos_drop(self.patch_embed(x))
        for i, layer in enumerate(self.layers):
            tokens = layer(tokens, x_size)
            if self.cross_scale_scan and i < len(self.layers2):
                low_tokens = self.layers2[i](low_tokens, low_size)
                tokens = self.layers3[i](tokens, low_tokens, x_size)
        return to_map(self.norm(tokens), x_size)

    def restore(self, x: Tensor) -> Tensor:
        """As the official network: without a tail (upsampler '') the (normalised) input is returned unchanged."""
        return super().restore(x) if self.upsampler else x


OFFICIAL_KWARGS = dict(img_size=64, embed_dim=180, d_state=16, scan_size=8, depths=[6, 6, 6, 6, 6, 6],
                        depths2=[6], mlp_ratio=2, img_range=1., upsampler='pixelshuffle', resi_connection='1conv',
                        dual_interleaved_scan=True)
_CARD_COMMON = dict(
    arch='MambaCSR',
    paper='Y. Ren, X. Li, M. Guo, B. Li, S. Zhao, Z. Chen, "MambaCSR: Dual-Interleaved Scanning for '
          'Compressed Image Super-Resolution With SSMs", arXiv:2408.11758 (2024)',
    doi='10.48550/arXiv.2408.11758',
    repo='https://github.com/renyulin-f/MambaCSR',
    repo_license='no LICENSE file (all rights reserved): rssr reimplements it; weights (x4, QF10) are not '
                 'redistributable',
    scales=(4,),
    kernels=('selective_scan',),
    amp={'bf16': True},  # the scan and its merge run in float32
)


def _variant_card(name: str, cross_scale_scan: bool, recipe: str, size_requirements: str, params: Dict[int, int],
                  macs: Tuple[float, float, float], x4_macs_by_kind: str) -> ModelCard:
    """The card of one of the two official variants (the final model, with the cross-scale scan, and ``_wo``,
    without it); ``macs`` at 64x64 LR for x2, x3 and x4, the x4 ones also by kind of operation as
    scripts/benchmark_archs.py counts them."""
    flops = {scale: f'{total:.2f} G MACs' for scale, total in zip((2, 3, 4), macs)}
    flops[4] += f' ({x4_macs_by_kind}; scripts/benchmark_archs.py)'
    return ModelCard(name=name, kwargs={**OFFICIAL_KWARGS, 'cross_scale_scan': cross_scale_scan},
                     size_requirements=size_requirements, recipe=f'options/train/MambaCSR/{recipe}', params=params,
                     flops=flops, **_CARD_COMMON)


register_card(_variant_card(
    'mambacsr', cross_scale_scan=True, recipe='train_MambaCSR_Final_x4.yml',
    size_requirements='H and W multiples of 16 (other sizes are reflect-padded and cropped back)',
    params={2: 21_904_130, 3: 22_088_770, 4: 22_051_842}, macs=(90.03, 90.82, 92.53),
    x4_macs_by_kind='conv 16.24 G, linear 51.69 G, einsum 6.85 G, selective scan 17.75 G analytic'))
register_card(_variant_card(
    'mambacsr_wo', cross_scale_scan=False, recipe='train_MambaCSR_wo_x4.yml', size_requirements='any size',
    params={2: 18_224_891, 3: 18_409_531, 4: 18_372_603}, macs=(82.38, 83.17, 84.88),
    x4_macs_by_kind='conv 15.76 G, linear 47.78 G, einsum 5.95 G, selective scan 15.39 G analytic'))
