"""Rep-Mamba (official class ``SMSR``): re-parameterised vision Mamba for lightweight RS SR.

K. Jiang et al., "Rep-Mamba: Re-parameterization in Vision Mamba for Lightweight Remote Sensing
Image Super-Resolution", IEEE TGRS 63, 2025, doi:10.1109/TGRS.2025.3597745. Official code:
meigeni0929/Rep-Mamba (no license file); this is an independent implementation from the facts
(structure, names, numbers) so that official checkpoints load with ``strict=True``.

Network (paper names in brackets)::

    x -> conv_first -> tokens -> [residual group: blocks (LPFM) -> conv, + skip] x len(depths)
      -> norm -> conv_after_body (+ shallow features) -> upsampler

    LPFM block:   t = t + CSSP(t);  t = t + ConvFFN(norm2(t))
    CSSP:         channels 64 = 8 | 8 | 16 | 32 go through a cascade of RMBs m8, m16, m32, m64, each
                  fed with the previous output concatenated to the next fresh channel group
    RMB (m{c}):   y = x + RepSS2D(LayerNorm(x)); out = ConvBN_1x1_depthwise(y)
    RepSS2D:      in_proj -> RepDW(2c) -> SiLU -> split: half scanned in 4 directions at half
                  resolution (+ its high-frequency residual), half through RepDW(c);
                  concat -> LayerNorm -> * SiLU(z) -> out_proj

Deployment: ``switch_to_deploy()`` folds every RepDW and Conv+BN into one convolution in place;
``deploy=True`` builds that fused structure directly, and it also loads *unfused* (training /
official) checkpoints by folding them while loading. Training uses the unfused form; in eval mode the
unfused form already runs each block as its folded convolution (folded on the fly, every forward), so
the two forms cost about the same at inference.

Extension over the official code: odd H or W is reflect-padded to even and the output cropped back
(the official model raises on odd sizes); even sizes are computed exactly as officially.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.layers.init import init_linear_and_layernorm
from rssr.layers.padding import SizeRequirements
from rssr.layers.reparam import ConvBN, RepDWConv, reparameterize
from rssr.layers.residual_group import ResidualGroup, resi_connection_conv
from rssr.layers.sr_skeleton import DIV2K_RGB_MEAN, SRSkeleton, rgb_mean_for, warn_unknown_kwargs
from rssr.layers.ssm import DirectionalSSM
from rssr.layers.tokens import PatchEmbed, PatchUnEmbed, to_map, to_tokens
from rssr.ops.cross_scan import cross_merge, cross_scan
from rssr.registry import register_arch
from rssr.utils import to_2tuple
from rssr.zoo import ModelCard, register_card

EMBED_DIM = 64
CHANNEL_GROUPS = (8, 8, 16, 32)  # CSSP's split of the 64 channels, hard-wired in the official code


class RepSS2D(DirectionalSSM):
    """Rep-Mamba's SS2D on (B, H, W, d_model) features, H and W even.

    Half of the 2*d_model expanded channels are scanned (4 directions, at half resolution, plus
    the high-frequency residual lost by pooling); the other half go through a RepDW conv.

    Args:
        d_model: channels c. d_state: SSM state size. expand: expansion of in_proj (2).
        deploy: build the RepDW convs in fused form. scan_backend: selective-scan backend.
    """

    def __init__(self, d_model: int, d_state: int = 16, expand: float = 2., deploy: bool = False,
                 scan_backend: Optional[str] = None) -> None:
        half_model = d_model // 2
        expanded = int(expand * d_model)
        scan_channels = int(expand * half_model)
        super().__init__(scan_channels, d_state, math.ceil(half_model / 16), 4, scan_backend=scan_backend)
        self.d_model, self.expanded = d_model, expanded  # DirectionalSSM's d_inner = the scanned channels
        local_channels = expanded - scan_channels
        self.rewconv = RepDWConv.deploy_form(local_channels) if deploy else RepDWConv(local_channels)
        self.in_proj = nn.Linear(d_model, 2 * expanded, bias=False)
        self.conv2d = RepDWConv.deploy_form(expanded) if deploy else RepDWConv(expanded)
        self.act = nn.SiLU()
        self.out_norm = nn.LayerNorm(expanded)
        self.out_proj = nn.Linear(expanded, d_model, bias=False)

    def global_branch(self, x: Tensor) -> Tensor:
        """Directional scan of the 2x average-pooled map, upsampled back, plus the pooling residual."""
        height, width = x.shape[-2:]
        low = F.avg_pool2d(x, 2)
        high = x - F.interpolate(low, size=(height, width), mode='nearest')
        b, c, low_h, low_w = low.shape
        scanned = cross_merge(self.scan(cross_scan(low)), low_h, low_w).view(b, c, low_h, low_w)
        scanned = scanned.contiguous(memory_format=torch.channels_last)  # x's layout, so the sum needs no transpose
        return F.interpolate(scanned, scale_factor=2, mode='bilinear', align_corners=False).to(x.dtype) + high

    def forward(self, x: Tensor) -> Tensor:
        """x (B, H, W, d_model) -> (B, H, W, d_model)."""
        # in_proj's two halves as two products, each contiguous: u is then a channels-last map as it stands
        # (the depthwise convs run fastest so, and the permutes to and from (B, H, W, C) cost nothing)
        u_weight, gate_weight = self.in_proj.weight.chunk(2, dim=0)
        u, gate = F.linear(x, u_weight), F.linear(x, gate_weight)
        u = self.act(self.conv2d(u.permute(0, 3, 1, 2)))
        global_part, local_part = u.split([self.d_inner, self.expanded - self.d_inner], dim=1)
        local_part = self.rewconv(local_part.contiguous(memory_format=torch.channels_last))
        mixed = torch.cat([self.global_branch(global_part), local_part], dim=1)
        return self.out_proj(self.out_norm(mixed.permute(0, 2, 3, 1)) * F.silu(gate))


class RepMambaLayer(nn.Module):
    """RMB wrapper (official ``MambaLayer``): x + RepSS2D(LayerNorm(x)), then a depthwise 1x1 Conv+BN."""

    def __init__(self, channels: int, deploy: bool = False, scan_backend: Optional[str] = None) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.ss2d = RepSS2D(channels, deploy=deploy, scan_backend=scan_backend)
        conv_args = (channels, channels, 1, 1, 0)
        self.conv = (ConvBN.deploy_form(*conv_args, groups=channels) if deploy
                     else ConvBN(*conv_args, groups=channels))

    def forward(self, x: Tensor) -> Tensor:
        """x (B, C, H, W) -> (B, C, H, W)."""
        channels_last = x.permute(0, 2, 3, 1)
        return self.conv((self.ss2d(self.norm(channels_last)) + channels_last).permute(0, 3, 1, 2))


class ChannelCascadeSSM(nn.Module):
    """CSSP (official ``ccmamba``): RMBs over 8, 16, 32, 64 channels, each fed the previous output
    concatenated with the next untouched channel group (processed channels first)."""

    def __init__(self, deploy: bool = False, scan_backend: Optional[str] = None) -> None:
        super().__init__()
        widths = [sum(CHANNEL_GROUPS[:i + 1]) for i in range(len(CHANNEL_GROUPS))]  # 8, 16, 32, 64
        for width in widths:
            self.add_module(f'm{width}', RepMambaLayer(width, deploy, scan_backend))
        self.widths = widths

    def forward(self, x: Tensor) -> Tensor:
        """x (B, 64, H, W) -> (B, 64, H, W)."""
        first, *fresh_groups = x.split(CHANNEL_GROUPS, dim=1)
        out = first + self.m8(first)
        for width, fresh in zip(self.widths[1:], fresh_groups):
            # concatenated channels-last (along the last dim of (B, H, W, C)), as the next block reads them
            joined = torch.cat([out.permute(0, 2, 3, 1), fresh.permute(0, 2, 3, 1)], dim=-1).permute(0, 3, 1, 2)
            out = getattr(self, f'm{width}')(joined)
        return out


class DepthwiseConvGELU(nn.Module):
    """GELU(depthwise 5x5 conv) on a (B, C, H, W) map; key ``depthwise_conv.0``."""

    def __init__(self, channels: int, kernel_size: int = 5) -> None:
        super().__init__()
        self.depthwise_conv = nn.Sequential(
            nn.Conv2d(channels, channels, kernel_size, 1, kernel_size // 2, groups=channels), nn.GELU())

    def forward(self, x: Tensor) -> Tensor:
        return self.depthwise_conv(x)


class ConvFFN(nn.Module):
    """fc1 -> GELU -> a + GELU(DWConv5x5(a)) -> Dropout -> fc2 -> Dropout, on tokens (B, H*W, C)."""

    def __init__(self, in_features: int, hidden_features: int, drop: float = 0.) -> None:
        super().__init__()
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.dwconv = DepthwiseConvGELU(hidden_features)
        self.fc2 = nn.Linear(hidden_features, in_features)
        self.drop = nn.Dropout(drop)

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        hidden = self.act(self.fc1(tokens))
        hidden = hidden + to_tokens(self.dwconv(to_map(hidden, x_size)))
        return self.drop(self.fc2(self.drop(hidden)))


class RepMambaBlock(nn.Module):
    """LPFM (official ``HierarchicalTransformerBlock``): t + CSSP(t), then + ConvFFN(norm2(t))."""

    def __init__(self, dim: int, mlp_ratio: float, drop: float, norm_layer: Callable[[int], nn.Module],
                 deploy: bool = False, scan_backend: Optional[str] = None) -> None:
        super().__init__()
        self.norm2 = norm_layer(dim)
        self.mlp = ConvFFN(dim, int(dim * mlp_ratio), drop)
        self.attn_layer = ChannelCascadeSSM(deploy, scan_backend)

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        tokens = to_tokens(self.attn_layer(to_map(tokens, x_size))) + tokens
        return tokens + self.mlp(self.norm2(tokens), x_size)


@register_arch(aliases=('SMSR',))
class RepMamba(SRSkeleton):
    """Rep-Mamba super-resolution network; constructor = the official ``SMSR`` kwargs and defaults.

    Live args: in_chans (bands in = out), embed_dim (must be 64), depths (blocks per residual
    group), mlp_ratio, drop_rate, norm_layer, ape (+ img_size, patch_size for its length),
    patch_norm, use_checkpoint, upscale, img_range, upsampler ('pixelshuffledirect' default,
    'pixelshuffle', 'nearest+conv' (x4 only), '' = no upsampling, residual output),
    resi_connection ('1conv' or '3conv').
    Accepted but without effect, as in the official code: num_heads, base_win_size,
    value_drop_rate, drop_path_rate, hier_win_ratios (the official IndexError for
    depths[i] > len(hier_win_ratios), from dead window bookkeeping, is not reproduced).
    rssr additions: deploy (build the fused inference structure; loads fused or unfused
    checkpoints) and scan_backend (selective-scan backend, None = automatic).
    """

    size_requirements = SizeRequirements(multiple_of=2, min_side=2, pad_mode='reflect')

    def __init__(self, img_size: Union[int, Sequence[int]] = 64, patch_size: Union[int, Sequence[int]] = 1,
                 in_chans: int = 3, embed_dim: int = EMBED_DIM, depths: Sequence[int] = (1, 1, 1, 1, 1, 1),
                 num_heads: Sequence[int] = (1, 1, 1, 1, 1, 1), base_win_size: Sequence[int] = (8, 8),
                 mlp_ratio: float = 2., drop_rate: float = 0., value_drop_rate: float = 0.,
                 drop_path_rate: float = 0., norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 ape: bool = False, patch_norm: bool = True, use_checkpoint: bool = False, upscale: int = 4,
                 img_range: float = 1., upsampler: str = 'pixelshuffledirect', resi_connection: str = '1conv',
                 hier_win_ratios: Sequence[float] = (0.5, 1, 2, 4, 6, 8), deploy: bool = False,
                 scan_backend: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__()
        warn_unknown_kwargs('RepMamba', kwargs, 'the official SMSR swallows them silently; check the spelling in '
                                                'network_g')
        if embed_dim != EMBED_DIM:
            raise ValueError(f'RepMamba: embed_dim must be {EMBED_DIM} (the channel cascade splits 64 channels into '
                             f'{CHANNEL_GROUPS}, hard-wired in the official design), got {embed_dim}')
        self.setup_skeleton(in_chans, img_range, rgb_mean_for(in_chans, DIV2K_RGB_MEAN))
        self.upscale, self.embed_dim, self.ape, self.deploy = upscale, embed_dim, ape, deploy

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        self.patch_unembed = PatchUnEmbed(embed_dim)
        if ape:
            rows, cols = (s // p for s, p in zip(to_2tuple(img_size), to_2tuple(patch_size)))
            self.absolute_pos_embed = nn.Parameter(torch.zeros(1, rows * cols, embed_dim))
            nn.init.trunc_normal_(self.absolute_pos_embed, std=0.02)
        self.pos_drop = nn.Dropout(drop_rate)
        self.layers = nn.ModuleList(
            ResidualGroup([RepMambaBlock(embed_dim, mlp_ratio, drop_rate, norm_layer, deploy, scan_backend)
                           for _ in range(depth)], embed_dim, resi_connection, use_checkpoint)
            for depth in depths)
        self.norm = norm_layer(embed_dim)
        self.conv_after_body = resi_connection_conv(embed_dim, resi_connection)
        self.build_tail(upsampler, upscale, embed_dim, in_chans)
        self.apply(init_linear_and_layernorm)

    def no_weight_decay(self) -> set:
        """Names of parameters to keep out of weight decay (timm's convention); the SSM parameters
        ``A_logs`` and ``Ds`` are marked by their ``_no_weight_decay`` flag instead."""
        return {'absolute_pos_embed'}

    def forward_features(self, x: Tensor) -> Tensor:
        x_size = (x.shape[2], x.shape[3])
        tokens = self.patch_embed(x)
        if self.ape:
            if tokens.shape[1] != self.absolute_pos_embed.shape[1]:
                raise ValueError(f'RepMamba(ape=True): the absolute position embedding has '
                                 f'{self.absolute_pos_embed.shape[1]} positions (img_size / patch_size), but the '
                                 f'input has {x_size[0]}x{x_size[1]} = {tokens.shape[1]} pixels (after padding to '
                                 f'even sides); feed inputs of exactly img_size')
            tokens = tokens + self.absolute_pos_embed
        tokens = self.pos_drop(tokens)
        for layer in self.layers:
            tokens = layer(tokens, x_size)
        return self.patch_unembed(self.norm(tokens), x_size)

    def switch_to_deploy(self) -> 'RepMamba':
        """Fuse every RepDW and Conv+BN into a single convolution, in place; returns self.

        BatchNorms are folded with their running statistics, so the fused model equals the unfused
        one in eval mode (within float rounding). Irreversible: train the unfused form.
        """
        if not self.deploy:
            reparameterize(self)
            self.deploy = True
        return self


OFFICIAL_KWARGS: dict = {}  # the constructor defaults are the official configuration
_CARD_COMMON = dict(
    arch='RepMamba',
    paper='K. Jiang, M. Yang, Y. Xiao, J. Wu, G. Wang, X. Feng, J. Jiang, "Rep-Mamba: Re-parameterization in '
          'Vision Mamba for Lightweight Remote Sensing Image Super-Resolution", IEEE TGRS 63, 2025',
    doi='10.1109/TGRS.2025.3597745', repo='https://github.com/meigeni0929/Rep-Mamba',
    repo_license='none (no LICENSE file; rssr code is an independent implementation)', scales=(2, 3, 4),
    in_chans=3, size_requirements='any size (min 2x2): odd H/W reflect-padded to even and cropped back (rssr '
                                  'extension; the official model needs even sides)',
    kernels=('selective_scan',), amp={'bf16': True, 'fp16': True},  # the scan itself always runs in float32
    recipe='options/train/RepMamba/train_RepMamba_x4_AID.yml')
register_card(ModelCard(
    name='repmamba', kwargs=OFFICIAL_KWARGS, params={2: 775_212, 3: 783_867, 4: 795_984},
    flops={2: '2.681 G', 3: '2.717 G', 4: '2.766 G MACs (fvcore on the official code; selective scan not counted: '
                                          '+0.43 G by VMamba\'s 9LDN+LD)'},
    **_CARD_COMMON))
register_card(ModelCard(
    name='repmamba_deploy', kwargs={**OFFICIAL_KWARGS, 'deploy': True}, params={2: 763_692, 3: 772_347, 4: 784_464},
    flops={2: '2.631 G', 3: '2.667 G', 4: '2.716 G MACs (fvcore on the officially fused modules; selective scan not '
                                          'counted: +0.43 G by VMamba\'s 9LDN+LD)'},
    **_CARD_COMMON))
