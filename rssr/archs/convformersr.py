"""ConvFormerSR: fusing transformers and CNNs for cross-sensor remote-sensing super-resolution.

J. Li, Y. Meng, C. Tao, Z. Zhang, X. Yang, Z. Wang, X. Wang, L. Li, W. Zhang, IEEE TGRS 62 (2024),
art. 5601115, doi:10.1109/TGRS.2023.3340043. Official code: github.com/junjieliwhu/ConvFormerSR
(Apache-2.0). This is an independent implementation with the official parameter names, so official
state_dicts load with ``strict=True`` and give the official outputs.

Two branches run on the same shallow features::

    x -> conv_first -> shallow ──┬─ transformer branch: RAG_0 -> RAG_1 -> ...   (tokens, never fed back)
                                 │        │ norm, layers_after_RAG_i (side output)
                                 │        v
                                 └─ CNN branch: RCG_i -> FFM_i(cnn, side) -> RCG_{i+1} ...
    conv_after_body(cnn) + shallow -> conv_before_upsample -> upsample -> conv_last

- RAG (residual attention group): Swin-style window-attention blocks whose input is also fed to a
  global channel-attention branch (GCAM: convs + DANet's channel attention, weight 0.01).
- RCG (residual convolution group): 16 EDSR-style residual blocks (LeakyReLU 0.2, scale 0.2).
- FFM (feature fusion module): CBAM spatial attention on the CNN features plus CBAM channel
  attention on the transformer features, each followed by a 3x3 conv, summed.

Whole-image operations: the GCAM channel attention and the FFM channel pooling see the whole
(padded) image, so **tiled inference gives different results from whole-image inference**, and the
channel-attention energy grows with H * W; it is computed in float32 even under autocast.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from rssr.layers.attention_fusion import AttentionFusion
from rssr.layers.init import init_linear_and_layernorm
from rssr.layers.mlp import DropPath, Mlp
from rssr.layers.padding import SizeRequirements
from rssr.layers.residual_group import BasicLayer
from rssr.layers.sr_skeleton import SRSkeleton, warn_unknown_kwargs
from rssr.layers.tokens import PatchEmbed, to_map, to_tokens
from rssr.layers.upsample import is_power_of_two
from rssr.layers.window_attention import WindowAttention, attend_in_windows, shifted_window_mask
from rssr.registry import register_arch
from rssr.utils import to_2tuple
from rssr.zoo import ModelCard, register_card

RCG_BLOCKS = 16
RCG_RES_SCALE = 0.2
GCAM_WEIGHT = 0.01
GCAM_COMPRESS_RATIO = 3
FFM_CHANNEL_RATIO = 16
FFM_SPATIAL_KERNEL = 7

# SwinIR-style keys that official ConvFormerSR YAMLs may carry; the official class swallows them.
SWINIR_OPTIONS = ('upsampler', 'resi_connection', 'ape', 'drop_rate', 'attn_drop_rate', 'use_checkpoint')


class ChannelSelfAttention(nn.Module):
    """DANet's channel attention module (CAM): out = gamma * softmax(rowmax(M) - M) F + x, M = F F^T.

    F is x as (B, C, H*W). ``rowmax(M) - M`` (softmax of -M, favouring the least similar channels)
    is kept literally, as in the official code. M sums over all H*W pixels, so it is computed in
    float32 with autocast off: in float16 it overflows above roughly 256x256 pixels.
    """

    def __init__(self) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1))

    def forward(self, x: Tensor) -> Tensor:
        batch, channels, height, width = x.shape
        with torch.autocast(device_type=x.device.type, enabled=False):
            features = x.float().reshape(batch, channels, height * width)
            energy = features @ features.transpose(1, 2)
            attention = torch.softmax(energy.amax(dim=-1, keepdim=True) - energy, dim=-1)
            out = (attention @ features).view(batch, channels, height, width)
            out = self.gamma.float() * out + x.float()
        return out.to(x.dtype)


class GlobalAttentionModule(nn.Module):
    """GCAM: [3x3 conv C -> C/3, GELU, 3x3 conv C/3 -> C] then channel self-attention over the whole map."""

    def __init__(self, dim: int, compress_ratio: int = GCAM_COMPRESS_RATIO) -> None:
        super().__init__()
        hidden = dim // compress_ratio
        self.conv1 = nn.Sequential(nn.Conv2d(dim, hidden, 3, 1, 1), nn.GELU(), nn.Conv2d(hidden, dim, 3, 1, 1))
        self.cam = ChannelSelfAttention()

    def forward(self, x: Tensor) -> Tensor:
        return self.cam(self.conv1(x))


class EnhancedAttentionBlock(nn.Module):
    """Swin block plus a GCAM branch: t' = t + W-MSA(norm1 t) + 0.01 GCAM(norm1 t); out = t' + MLP(norm2 t').

    Args:
        dim: channels; input_resolution: (H, W) token grid the ``attn_mask`` buffer is built for.
        num_heads, window_size, shift_size: window attention settings. When min(input_resolution)
            <= window_size the window is clamped to min(input_resolution) and shifting is disabled.
        mlp_ratio, qkv_bias, qk_scale, drop_path, norm_layer: as in Swin.
    """

    def __init__(self, dim: int, input_resolution: Tuple[int, int], num_heads: int, window_size: int,
                 shift_size: int, mlp_ratio: float, qkv_bias: bool, qk_scale: Optional[float],
                 drop_path: float, norm_layer: Callable[[int], nn.Module]) -> None:
        super().__init__()
        self.input_resolution = input_resolution
        if min(input_resolution) <= window_size:
            window_size, shift_size = min(input_resolution), 0
        self.window_size, self.shift_size = window_size, shift_size
        mask = shifted_window_mask(*input_resolution, window_size, shift_size) if shift_size > 0 else None
        self.register_buffer('attn_mask', mask)
        self.norm1 = norm_layer(dim)
        self.attn = WindowAttention(dim, window_size, num_heads, qkv_bias=qkv_bias, qk_scale=qk_scale)
        self.drop_path = DropPath(drop_path) if drop_path > 0. else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), act_layer=nn.GELU)
        self.conv_block = GlobalAttentionModule(dim)

    def window_mask(self, size: Tuple[int, int], device: torch.device) -> Optional[Tensor]:
        """The stored mask at ``input_resolution``; otherwise one computed for ``size`` (None if unshifted)."""
        if size == self.input_resolution:
            return self.attn_mask
        if self.shift_size == 0:
            return None
        return shifted_window_mask(*size, self.window_size, self.shift_size, device=device)

    def forward(self, tokens: Tensor, size: Tuple[int, int]) -> Tensor:
        batch, length, dim = tokens.shape
        normed = self.norm1(tokens).view(batch, size[0], size[1], dim)
        global_branch = to_tokens(self.conv_block(normed.permute(0, 3, 1, 2)))
        local_branch = attend_in_windows(normed, self.attn, self.shift_size, self.window_mask(size, tokens.device))
        tokens = tokens + self.drop_path(local_branch.reshape(batch, length, dim)) + global_branch * GCAM_WEIGHT
        return tokens + self.drop_path(self.mlp(self.norm2(tokens)))


class RAG(nn.Module):
    """Residual attention group: tokens + conv(blocks(tokens)) (keys ``attn.blocks.j``, ``conv``)."""

    def __init__(self, blocks: Sequence[nn.Module], dim: int) -> None:
        super().__init__()
        self.attn = BasicLayer(blocks)
        self.conv = nn.Conv2d(dim, dim, 3, 1, 1)

    def forward(self, tokens: Tensor, size: Tuple[int, int]) -> Tensor:
        return to_tokens(self.conv(to_map(self.attn(tokens, size), size))) + tokens


class ResidualLeakyBlock(nn.Module):
    """x + 0.2 * conv2(LeakyReLU_0.2(conv1(x))), 3x3 convs with PyTorch's default init (the RCG block)."""

    def __init__(self, dim: int, res_scale: float = RCG_RES_SCALE) -> None:
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.lrelu(self.conv1(x))) * self.res_scale


class CBAMSpatialAttention(nn.Module):
    """CBAM spatial attention: x * sigmoid(conv7x7([mean_c x, max_c x])), one weight per pixel."""

    def __init__(self, kernel_size: int = FFM_SPATIAL_KERNEL) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pooled = torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1)
        return x * torch.sigmoid(self.conv1(pooled))


class CBAMChannelAttention(nn.Module):
    """CBAM channel attention: x * sigmoid(fc(avgpool x) + fc(maxpool x)), pooled over the whole map."""

    def __init__(self, dim: int, ratio: int = FFM_CHANNEL_RATIO) -> None:
        super().__init__()
        self.fc = nn.Sequential(nn.Conv2d(dim, dim // ratio, 1, bias=False), nn.ReLU(),
                                nn.Conv2d(dim // ratio, dim, 1, bias=False))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.sigmoid(self.fc(x.mean(dim=(2, 3), keepdim=True)) + self.fc(x.amax(dim=(2, 3), keepdim=True)))


class FeatureFusionModule(AttentionFusion):
    """FFM: conv1(CBAM spatial attention(cnn)) + conv2(CBAM channel attention(transformer))."""

    def __init__(self, dim: int) -> None:
        super().__init__(dim, spat_attn=CBAMSpatialAttention(), chan_attn=CBAMChannelAttention(dim))


@register_arch()
class ConvFormerSR(SRSkeleton):
    """ConvFormerSR with the official constructor (defaults: embed_dim 96, 4 stages of 6 blocks, x3).

    Args:
        img_size: training LR patch size (int or (h, w)). Fixes the shape of the stored shifted-window
            masks and may clamp the window (see ``EnhancedAttentionBlock``); any input size works.
        patch_size: only divides img_size (features are never patchified).
        in_chans: bands in = bands out.
        embed_dim: feature channels (>= 16, divisible by every num_heads entry).
        depths, num_heads: blocks and heads per stage; len(depths) stages are built.
        window_size: attention window; inputs are reflect-padded to a multiple of it.
        mlp_ratio, qkv_bias, qk_scale, drop_path_rate, norm_layer, patch_norm: as in SwinIR.
        upscale: 1, 2^n or 3.
        img_range: input multiplied by it after mean subtraction.
        num_block: stages actually run: the first ``num_block`` of the len(depths) built (official).
        rgb_mean: per-band mean subtracted before and added after (first in_chans values); None = 0.
        **kwargs: accepted for YAML compatibility and ignored, as the official class does, with a warning.

    Extension over the official code (identical outputs wherever the official code runs): when the
    window is clamped to a size that does not divide ``window_size``, inputs are padded to a common
    multiple of both instead of crashing, and inputs too small for one reflect pad are padded in steps.

    Tiled and whole-image results differ: channel attention (GCAM) and the FFM channel pooling see
    the whole padded image.
    """

    def __init__(self, img_size: Union[int, Tuple[int, int]] = 64, patch_size: Union[int, Tuple[int, int]] = 1,
                 in_chans: int = 3, embed_dim: int = 96, depths: Sequence[int] = (6, 6, 6, 6),
                 num_heads: Sequence[int] = (6, 6, 6, 6), window_size: int = 8, mlp_ratio: float = 4.,
                 qkv_bias: bool = True, qk_scale: Optional[float] = None, drop_path_rate: float = 0.1,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, patch_norm: bool = True,
                 upscale: int = 3, img_range: float = 1., num_block: int = 4,
                 rgb_mean: Optional[Sequence[float]] = None, **kwargs: Any) -> None:
        super().__init__()
        note = 'the official class swallows them silently, check network_g for typos'
        swinir_options = sorted(set(kwargs) & set(SWINIR_OPTIONS))
        if swinir_options:
            note = f'SwinIR options ConvFormerSR does not have: {", ".join(swinir_options)}; {note}'
        warn_unknown_kwargs('ConvFormerSR', kwargs, note)
        depths, num_heads = list(depths), list(num_heads)
        _validate(in_chans, embed_dim, depths, num_heads, upscale, num_block, rgb_mean)
        self.setup_skeleton(in_chans, img_range, [0.] * in_chans if rgb_mean is None else list(rgb_mean)[:in_chans])
        self.upscale, self.window_size, self.num_block = upscale, window_size, num_block

        image_h, image_w = to_2tuple(img_size)
        patch_h, patch_w = to_2tuple(patch_size)
        resolution = (image_h // patch_h, image_w // patch_w)
        if min(resolution) < 1:
            raise ValueError(f'ConvFormerSR: img_size {img_size} // patch_size {patch_size} leaves no tokens')
        self.patches_resolution = resolution

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        block_drop_path = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.RAG_Layers = nn.ModuleList()
        for stage, depth in enumerate(depths):
            first = sum(depths[:stage])
            blocks = [EnhancedAttentionBlock(embed_dim, resolution, num_heads[stage], window_size,
                                             shift_size=0 if j % 2 == 0 else window_size // 2,
                                             mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, qk_scale=qk_scale,
                                             drop_path=block_drop_path[first + j], norm_layer=norm_layer)
                      for j in range(depth)]
            self.RAG_Layers.append(RAG(blocks, embed_dim))
        self.norm = norm_layer(embed_dim)
        self.layers_after_RAG = nn.ModuleList(nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) for _ in depths)
        self.RCG_Layers = nn.ModuleList(
            nn.Sequential(*(ResidualLeakyBlock(embed_dim) for _ in range(RCG_BLOCKS))) for _ in depths)
        self.FFM_Layers = nn.ModuleList(FeatureFusionModule(embed_dim) for _ in depths)
        self.conv_after_body = nn.Conv2d(embed_dim, embed_dim, 3, 1, 1)
        self.build_tail('pixelshuffle', upscale, embed_dim, in_chans)

        attention_window = min(window_size, min(resolution))
        self.size_requirements = SizeRequirements(multiple_of=math.lcm(window_size, attention_window),
                                                  pad_mode='reflect')
        self.apply(init_linear_and_layernorm)

    def forward_features(self, shallow: Tensor) -> Tensor:
        """Both branches and the fusions: shallow features (B, E, H, W) -> fused CNN features."""
        size = (shallow.shape[2], shallow.shape[3])
        tokens = self.patch_embed(shallow)
        cnn = shallow
        for stage in range(self.num_block):
            tokens = self.RAG_Layers[stage](tokens, size)
            side = self.layers_after_RAG[stage](to_map(self.norm(tokens), size))
            cnn = self.FFM_Layers[stage](self.RCG_Layers[stage](cnn), side)
        return cnn


def _validate(in_chans: int, embed_dim: int, depths: list, num_heads: list, upscale: int, num_block: int,
              rgb_mean: Optional[Sequence[float]]) -> None:
    """Clear errors for configurations the official code only fails on deep inside forward."""
    if in_chans < 1:
        raise ValueError(f'ConvFormerSR: in_chans must be >= 1, got {in_chans}')
    if embed_dim < FFM_CHANNEL_RATIO:
        raise ValueError(f'ConvFormerSR: embed_dim must be >= {FFM_CHANNEL_RATIO} (the fusion channel '
                         f'attention has embed_dim // {FFM_CHANNEL_RATIO} hidden channels), got {embed_dim}')
    if len(num_heads) < len(depths):
        raise ValueError(f'ConvFormerSR: num_heads {num_heads} has fewer entries than depths {depths}')
    for stage, heads in enumerate(num_heads[:len(depths)]):
        if embed_dim % heads:
            raise ValueError(f'ConvFormerSR: embed_dim {embed_dim} is not divisible by num_heads[{stage}] = {heads}')
    if not (is_power_of_two(upscale) or upscale == 3):
        raise ValueError(f'ConvFormerSR: upscale {upscale} is not supported; use 1, 2, 4, 8 (2^n) or 3')
    if not 0 <= num_block <= len(depths):
        raise ValueError(f'ConvFormerSR: num_block {num_block} must be between 0 and len(depths) = {len(depths)} '
                         f'(the first num_block of the built stages are run)')
    if rgb_mean is not None and len(rgb_mean) < in_chans:
        raise ValueError(f'ConvFormerSR: rgb_mean has {len(rgb_mean)} values but in_chans is {in_chans}; '
                         f'give one mean per band')


OFFICIAL_KWARGS = dict(img_size=64, patch_size=1, embed_dim=96, depths=[6, 6, 6, 6], num_heads=[6, 6, 6, 6],
                       window_size=8, mlp_ratio=4., qkv_bias=True, drop_path_rate=0.1, patch_norm=True,
                       img_range=1., num_block=4)

register_card(ModelCard(
    name='convformersr',
    arch='ConvFormerSR',
    kwargs=OFFICIAL_KWARGS,
    paper='J. Li et al., "ConvFormerSR: Fusing Transformers and Convolutional Neural Networks for '
          'Cross-Sensor Remote Sensing Imagery Super-Resolution", IEEE TGRS 62, 2024, art. 5601115',
    doi='10.1109/TGRS.2023.3340043',
    repo='https://github.com/junjieliwhu/ConvFormerSR',
    repo_license='Apache-2.0 (architecture only: no weights, training code or recipe published)',
    scales=(3,),
    in_chans=3,
    size_requirements='any size (reflect-padded to a multiple of window_size 8, output cropped); '
                      'tiled and whole-image results differ (global channel attention)',
    kernels=(),
    amp={'bf16': True, 'fp16': True},
    recipe='options/train/ConvFormerSR/train_ConvFormerSR_x3_4band_L1_ratioindex.yml',
    params={2: 16_300_435, 3: 16_485_075, 4: 16_448_147},
    flops={scale: f'{macs} G MACs (FlopCounterMode: convs, linears, attention and channel-attention matmuls)'
           for scale, macs in ((2, 69.46), (3, 70.25), (4, 71.96))},
))
