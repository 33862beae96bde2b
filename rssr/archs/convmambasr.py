"""ConvMambaSR (Zhu et al., Remote Sensing 2024, 16(17), 3254): a dual-branch SR network.

A Mamba branch (MambaIR residual state-space groups, 2-D selective scan in four directions) and a
CNN branch (EDSR residual blocks) process the same shallow features side by side. After every
stage a global-detail reconstruction module (GDRM) fuses the CNN features (through multi-scale
strip-conv spatial attention, MSSA) with the Mamba features (through parameter-free SimAM); the
fusion feeds the next CNN stage, while the Mamba branch runs on as its own chain.

Port of the official ``Doswin/ConvMambaSR`` (Apache-2.0): same constructor keywords and defaults,
same checkpoint keys. Differences: ``use_checkpoint=True`` works, unknown keywords warn, bad
``resi_connection`` / ``upscale`` fail at construction, a 1x1 input is rejected (the official
SimAM returns NaN there), and ``scan_backend`` selects the selective-scan kernel.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Sequence

import torch
from torch import Tensor, nn

from rssr.layers.attention_fusion import AttentionFusion
from rssr.layers.channel_attention import ChannelAttentionBlock
from rssr.layers.init import init_linear_and_layernorm
from rssr.layers.residual import residual_blocks
from rssr.layers.residual_group import ResidualGroup, resi_connection_conv
from rssr.layers.sr_skeleton import DIV2K_RGB_MEAN, SRSkeleton, rgb_mean_for, warn_unknown_kwargs
from rssr.layers.ss2d import VSSBlock
from rssr.layers.tokens import PatchEmbed, to_map
from rssr.layers.upsample import check_swinir_head
from rssr.registry import register_arch
from rssr.zoo import ModelCard, register_card


class StarReLU(nn.Module):
    """scale * relu(x)^2 + bias with learnable scalar ``scale`` (init 1) and ``bias`` (init 0)."""

    def __init__(self, scale_value: float = 1.0, bias_value: float = 0.0) -> None:
        super().__init__()
        self.relu = nn.ReLU()
        self.scale = nn.Parameter(torch.full((1,), scale_value))
        self.bias = nn.Parameter(torch.full((1,), bias_value))

    def forward(self, x: Tensor) -> Tensor:
        return self.scale * self.relu(x) ** 2 + self.bias


def star_relu_channel_attention_block(num_feat: int, is_light_sr: bool) -> ChannelAttentionBlock:
    """The VSSBlock's local branch: MambaIR's CAB with StarReLU activations (compress ratio 3, or 6 for
    light SR; squeeze factor 30)."""
    return ChannelAttentionBlock(num_feat, compress_ratio=6 if is_light_sr else 3, squeeze_factor=30,
                                 act_layer=StarReLU, attention_act_layer=StarReLU)


class SimAM(nn.Module):
    """Parameter-free 3-D attention (Yang et al. 2021): x * sigmoid(energy), per channel
    energy = (x - mean)^2 / (4 (var + lambda)) + 0.5 with var = sum((x - mean)^2) / (H*W - 1)."""

    def __init__(self, e_lambda: float = 1e-4) -> None:
        super().__init__()
        self.e_lambda = e_lambda

    def forward(self, x: Tensor) -> Tensor:
        n = x.shape[-2] * x.shape[-1] - 1
        sq_dev = (x - x.mean(dim=(2, 3), keepdim=True)).pow(2)
        energy = sq_dev / (4 * (sq_dev.sum(dim=(2, 3), keepdim=True) / n + self.e_lambda)) + 0.5
        return x * torch.sigmoid(energy)


class MSSA(nn.Module):
    """Multi-scale strip attention (after SegNeXt's MSCA): depthwise 3x3, then three depthwise
    strip pairs (1xk then kx1, k = 7, 13, 17) summed with it, a 1x1 conv, and x times the result."""

    strip_kernels = (7, 13, 17)

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv0 = nn.Conv2d(channels, channels, 3, padding=1, groups=channels)
        for i, k in enumerate(self.strip_kernels):
            self.add_module(f'conv{i}_1', nn.Conv2d(channels, channels, (1, k), padding=(0, k // 2), groups=channels))
            self.add_module(f'conv{i}_2', nn.Conv2d(channels, channels, (k, 1), padding=(k // 2, 0), groups=channels))
        self.conv3 = nn.Conv2d(channels, channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        attn = self.conv0(x)
        strips = [getattr(self, f'conv{i}_2')(getattr(self, f'conv{i}_1')(attn))
                  for i in range(len(self.strip_kernels))]
        for strip in strips:
            attn = attn + strip
        return self.conv3(attn) * x


class GlobalDetailReconstructionModule(AttentionFusion):
    """GDRM: conv1(MSSA(cnn features)) + conv2(SimAM(mamba features)).

    (The official names are crossed: ``conv_spat_attn`` is MSSA on the CNN input,
    ``mamba_chan_attn`` is SimAM on the Mamba input. The official code creates SimAM first; it has
    no parameters, so creating it second changes neither the initialisation nor the checkpoint.)
    """

    def __init__(self, channels: int) -> None:
        super().__init__(channels, conv_spat_attn=MSSA(channels), mamba_chan_attn=SimAM())


@register_arch()
class ConvMambaSR(SRSkeleton):
    """ConvMambaSR. Input (B, in_chans, H, W) in [0, 1]; output (B, in_chans, upscale*H, upscale*W).

    Args (official names and defaults):
        img_size, patch_size: accepted for YAML compatibility; they do not affect the network.
        in_chans: bands in and out; the DIV2K RGB mean is subtracted when 3, nothing otherwise.
        embed_dim: feature channels C.
        depths: VSSBlocks per stage; len(depths) stages.
        RCG_num: residual blocks per CNN stage.
        drop_rate: dropout on the embedded tokens.
        d_state: SSM state size. mlp_ratio: SS2D expansion (d_inner = int(mlp_ratio * C)).
        drop_path_rate: stochastic depth, linear over all VSSBlocks.
        norm_layer: norm class for tokens. patch_norm: normalise the embedded tokens.
        use_checkpoint: gradient checkpointing per VSSBlock (saves memory, costs a re-forward).
        upscale: scale factor. img_range: input scale after mean subtraction.
        upsampler: 'pixelshuffle' (scale 2^n or 3), 'pixelshuffledirect' (any scale, light SR:
            one conv + pixel shuffle, CAB ratio 6), or '' (no upsampling, output size = input size).
        resi_connection: '1conv' or '3conv', the conv closing each group and the body.
        scan_backend: rssr extension; force a selective-scan backend (None: automatic).
    """

    def __init__(self, img_size: int = 64, patch_size: int = 1, in_chans: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (6, 6, 6, 6), RCG_num: int = 12, drop_rate: float = 0.,
                 d_state: int = 16, mlp_ratio: float = 2., drop_path_rate: float = 0.1,
                 norm_layer: Callable[[int], nn.Module] = nn.LayerNorm, patch_norm: bool = True,
                 use_checkpoint: bool = False, upscale: int = 2, img_range: float = 1., upsampler: str = '',
                 resi_connection: str = '1conv', scan_backend: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__()
        warn_unknown_kwargs('ConvMambaSR', kwargs)
        tail = check_swinir_head('ConvMambaSR', upsampler, upscale, resi_connection)
        self.setup_skeleton(in_chans, img_range, rgb_mean_for(in_chans, DIV2K_RGB_MEAN))
        self.embed_dim, self.upscale = embed_dim, upscale
        is_light_sr = upsampler == 'pixelshuffledirect'
        num_stages = len(depths)

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.patch_embed = PatchEmbed(embed_dim, norm_layer if patch_norm else None)
        self.pos_drop = nn.Dropout(p=drop_rate)
        block_drop_paths = torch.linspace(0, drop_path_rate, sum(depths), device='cpu').tolist()
        self.RSSG_layers = nn.ModuleList()
        for stage, depth in enumerate(depths):
            first = sum(depths[:stage])
            blocks = [VSSBlock(embed_dim, star_relu_channel_attention_block(embed_dim, is_light_sr),
                               drop_path=block_drop_paths[first + j], norm_layer=nn.LayerNorm, d_state=d_state,
                               expand=mlp_ratio, scan_backend=scan_backend)
                      for j in range(depth)]
            self.RSSG_layers.append(ResidualGroup(blocks, embed_dim, resi_connection, use_checkpoint))
        self.norm = norm_layer(embed_dim)
        self.layers_after_RSSG = nn.ModuleList(nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) for _ in depths)
        self.RCG_Layers = nn.ModuleList(nn.Sequential(residual_blocks(RCG_num, embed_dim)) for _ in depths)
        self.layers_after_RCG = nn.ModuleList(nn.Conv2d(embed_dim, embed_dim, 3, 1, 1) for _ in depths)
        self.GDRM_Layers = nn.ModuleList(GlobalDetailReconstructionModule(embed_dim) for _ in range(num_stages))
        self.conv_after_body = resi_connection_conv(embed_dim, resi_connection)

        self.build_tail(tail, upscale, embed_dim, in_chans)
        self.apply(init_linear_and_layernorm)

    def forward_features(self, shallow: Tensor) -> Tensor:
        """Both branches over all stages; returns the last GDRM output (B, C, H, W)."""
        size = (shallow.shape[-2], shallow.shape[-1])
        tokens = self.pos_drop(self.patch_embed(shallow))
        fused = shallow.contiguous(memory_format=torch.channels_last)  # the CNN branch's depthwise convs run faster so
        for mamba_group, after_mamba, cnn_group, after_cnn, gdrm in zip(
                self.RSSG_layers, self.layers_after_RSSG, self.RCG_Layers, self.layers_after_RCG, self.GDRM_Layers):
            tokens = mamba_group(tokens, size)
            mamba = after_mamba(to_map(self.norm(tokens), size))
            fused = gdrm(after_cnn(cnn_group(fused)), mamba)
        return fused

    def check_input(self, x: Tensor) -> None:
        super().check_input(x)
        if x.shape[-2] * x.shape[-1] < 2:
            raise ValueError('ConvMambaSR needs at least 2 pixels per image: its SimAM attention divides by '
                             f'H*W - 1, so a {x.shape[-2]}x{x.shape[-1]} input gives NaN')


OFFICIAL_KWARGS = dict(img_size=48, embed_dim=96, depths=(6, 6, 6, 6), RCG_num=16, d_state=16, mlp_ratio=2.,
                       img_range=1., upsampler='pixelshuffle', resi_connection='1conv')

register_card(ModelCard(
    name='convmambasr',
    arch='ConvMambaSR',
    kwargs=OFFICIAL_KWARGS,
    paper='Q. Zhu, G. Zhang, X. Zou, X. Wang, J. Huang, X. Li. ConvMambaSR: Leveraging State-Space Models and '
          'CNNs in a Dual-Branch Architecture for Remote Sensing Imagery Super-Resolution. Remote Sensing 16(17), '
          '3254, 2024',
    doi='10.3390/rs16173254',
    repo='https://github.com/Doswin/ConvMambaSR',
    repo_license='Apache-2.0 (no pretrained weights published)',
    scales=(4,),
    size_requirements='any H x W except 1x1 (no padding)',
    kernels=('selective_scan',),
    amp={'bf16': True, 'fp16': True},  # the scan itself always runs in float32
    recipe='options/train/ConvMambaSR/train_ConvMambaSR_x4_RSSCN7_bic.yml',
    params={2: 16_538_123, 3: 16_722_763, 4: 16_685_835},
    flops={scale: f'{total} G MACs (conv {conv} G + linear 5.44 G + einsum 3.32 G, FlopCounterMode; '
                  f'+ selective scan 10.95 G analytic; elementwise and norms not counted)'
           for scale, total, conv in ((2, 77.08, 57.38), (3, 77.87, 58.17), (4, 79.58, 59.88))},
))
