"""LSTMConvSR (Zhu et al., Remote Sensing 2025, 17(15), 2745): long- and short-range modelling
with a Vision-LSTM branch and a CNN branch side by side.

Every block runs two branches on the same feature map and fuses them with a 3x3 conv:
- the long-range branch (:class:`LSTMBranch`): three Vision-LSTM blocks, one per scan order
  (raster, reversed raster, Hilbert curve). Each one runs its mLSTM layer on a Haar-wavelet
  downsampled copy of the map ("HWD") and turns the result into a sigmoid spatial attention map
  that gates its input ("LSA"); a gated FFN follows;
- the short-range branch: a stack of PReLU residual blocks.

Port of the official ``Doswin/LSTMConvSR`` (Apache-2.0, on NX-AI's Vision-LSTM): same constructor
keywords and defaults, same checkpoint keys (including the wavelet filter buffers, which the
forward really filters with). Differences: any LR size works (the official accepts only square
inputs with side 2 * 2^p; rssr reflect-pads to the next such square and crops the output back),
the mLSTM switches to an exact chunkwise form with linear memory for long sequences
(``mlstm_backend`` forces a form), the Hilbert order and the wavelet transform are rssr's own
(no ``hilbertcurve`` / ``pytorch_wavelets``), ``use_checkpoint=True`` works, unknown keywords warn
and a bad ``resi_connection`` / ``upscale`` fails at construction.
"""
from __future__ import annotations

import math
from typing import Any, Callable, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rssr.layers.init import init_linear_and_layernorm
from rssr.layers.padding import SizeRequirements
from rssr.layers.residual_group import resi_connection_conv
from rssr.layers.sr_skeleton import DIV2K_RGB_MEAN, SRSkeleton, rgb_mean_for, warn_unknown_kwargs
from rssr.layers.tokens import to_map, to_tokens
from rssr.layers.upsample import check_swinir_head
from rssr.layers.wavelet import HaarDWT
from rssr.ops.hilbert import hilbert_scan_order
from rssr.ops.mlstm import mlstm
from rssr.registry import register_arch
from rssr.zoo import ModelCard, register_card

SCAN_DIRECTIONS = ('rowwise_from_top_left', 'rowwise_from_bot_right', 'hilbertcurve')


# ----------------------------------------------------------------------------- mLSTM layer


class ResidualWeightLayerNorm(nn.Module):
    """LayerNorm whose scale is stored as an offset: weight w (init 0) is applied as (1 + w)."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(dim))
        self.bias = nn.Parameter(torch.zeros(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        return F.layer_norm(x, (int(x.shape[-1]),), 1.0 + self.weight, self.bias, self.eps)  # int: ONNX tracing


class MultiHeadLayerNorm(ResidualWeightLayerNorm):
    """Per-head LayerNorm of the mLSTM output: h (B, NH, S, DH) -> (B, S, NH*DH), normalised over DH."""

    def forward(self, h: Tensor) -> Tensor:
        batch, heads, length, head_dim = h.shape
        h = F.layer_norm(h.transpose(1, 2), (int(head_dim),), eps=self.eps).reshape(batch, length, heads * head_dim)
        return h * (1.0 + self.weight) + self.bias


class LinearHeadwiseExpand(nn.Module):
    """Block-diagonal linear map: the channels are cut into blocks of 4, each with its own 4x4 matrix."""

    def __init__(self, dim: int, block_size: int = 4) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(dim // block_size, block_size, block_size))
        self.bias = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        blocks = x.unflatten(-1, (self.weight.shape[0], self.weight.shape[2]))
        return torch.einsum('...hi,hoi->...ho', blocks, self.weight).flatten(-2) + self.bias


class CausalConv1d(nn.Module):
    """Depthwise conv along the sequence that sees only the current and earlier tokens: (B, S, D) -> (B, S, D)."""

    def __init__(self, dim: int, kernel_size: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv1d(dim, dim, kernel_size, padding=kernel_size - 1, groups=dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(x.transpose(1, 2))[..., :x.shape[1]].transpose(1, 2)


class MatrixLSTMCell(nn.Module):
    """Gates from [q, k, v], the stabilised mLSTM (:func:`rssr.ops.mlstm.mlstm`), a per-head norm."""

    def __init__(self, dim: int, num_heads: int = 4, backend: Optional[str] = None) -> None:
        super().__init__()
        self.num_heads, self.backend = num_heads, backend
        self.igate = nn.Linear(3 * dim, num_heads)
        self.fgate = nn.Linear(3 * dim, num_heads)
        self.outnorm = MultiHeadLayerNorm(dim)

    def forward(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        gate_input = torch.cat([q, k, v], dim=-1)
        igate, fgate = self.igate(gate_input).transpose(1, 2), self.fgate(gate_input).transpose(1, 2)
        q, k, v = (t.unflatten(-1, (self.num_heads, -1)).transpose(1, 2) for t in (q, k, v))
        return self.outnorm(mlstm(q, k, v, igate, fgate, backend=self.backend))


class ViLLayer(nn.Module):
    """Vision-LSTM's mLSTM layer on a token grid, scanning it in one direction.

    tokens -> reorder -> proj_up -> [x_m | z]; a = silu(causal_conv(x_m)); q, k from a, v from x_m;
    h = (mLSTM(q, k, v) + learnable_skip * a) * silu(z) -> proj_down -> original order.
    """

    def __init__(self, dim: int, direction: str, expansion: int = 2, num_heads: int = 4, conv_kernel_size: int = 4,
                 mlstm_backend: Optional[str] = None) -> None:
        super().__init__()
        if direction not in SCAN_DIRECTIONS:
            raise ValueError(f'ViLLayer: direction must be one of {SCAN_DIRECTIONS}, got {direction!r}')
        self.dim, self.direction = dim, direction
        inner = expansion * dim
        self.proj_up = nn.Linear(dim, 2 * inner)
        self.q_proj = LinearHeadwiseExpand(inner)
        self.k_proj = LinearHeadwiseExpand(inner)
        self.v_proj = LinearHeadwiseExpand(inner)
        self.conv = CausalConv1d(inner, conv_kernel_size)
        self.mlstm_cell = MatrixLSTMCell(inner, num_heads, mlstm_backend)
        self.learnable_skip = nn.Parameter(torch.ones(inner))
        self.proj_down = nn.Linear(inner, dim)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """xLSTM's init (most of it is overridden by LSTMConvSR's model-wide Linear init)."""
        nn.init.normal_(self.proj_up.weight, std=math.sqrt(2 / (5 * self.dim)))
        nn.init.normal_(self.proj_down.weight, std=2 / math.sqrt(self.dim))
        for proj in (self.q_proj, self.k_proj, self.v_proj):
            nn.init.normal_(proj.weight, std=math.sqrt(2 / (5 * self.dim)))  # the embedding dim, not inner
            nn.init.zeros_(proj.bias)
        cell = self.mlstm_cell
        nn.init.zeros_(cell.fgate.weight)
        with torch.no_grad():
            cell.fgate.bias.copy_(torch.linspace(3.0, 6.0, cell.num_heads))
        nn.init.zeros_(cell.igate.weight)
        nn.init.normal_(cell.igate.bias, std=0.1)
        for bias in (self.proj_up.bias, self.proj_down.bias, cell.outnorm.weight, cell.outnorm.bias):
            nn.init.zeros_(bias)
        nn.init.ones_(self.learnable_skip)

    def _scan_order(self, grid: Tuple[int, int], device: torch.device) -> Optional[Tuple[Tensor, Tensor]]:
        """(order, inverse) index tensors, or None for the raster scans (done with flips)."""
        if self.direction != 'hilbertcurve':
            return None
        if grid[0] != grid[1]:
            raise ValueError(f'ViLLayer: the Hilbert scan needs a square token grid, got {grid[0]}x{grid[1]}')
        return hilbert_scan_order(grid[0], device)

    def forward(self, tokens: Tensor, grid: Tuple[int, int]) -> Tensor:
        order = self._scan_order(grid, tokens.device)
        if order is not None:
            tokens = tokens[:, order[0]]
        elif self.direction == 'rowwise_from_bot_right':
            tokens = tokens.flip(1)
        x_mlstm, z = self.proj_up(tokens).chunk(2, dim=-1)
        x_conv = F.silu(self.conv(x_mlstm))
        h = self.mlstm_cell(self.q_proj(x_conv), self.k_proj(x_conv), self.v_proj(x_mlstm))
        out = self.proj_down((h + self.learnable_skip * x_conv) * F.silu(z))
        if order is not None:
            return out[:, order[1]]
        return out.flip(1) if self.direction == 'rowwise_from_bot_right' else out


# ----------------------------------------------------------------------------- long-range branch


class WaveletDownsampling(nn.Module):
    """Haar DWT to half size, the four sub-bands [LL, H-high, W-high, HW-high] stacked, 1x1 conv, depthwise 3x3."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.wt = HaarDWT()
        self.conv = nn.Sequential(nn.Conv2d(4 * dim, dim, 1), nn.Conv2d(dim, dim, 3, 1, 1, groups=dim))

    def forward(self, x: Tensor) -> Tensor:
        low, (high,) = self.wt(x)
        return self.conv(torch.cat([low, *high.unbind(2)], dim=1))


class SpatialAttentionUpsampling(nn.Module):
    """The "LSTM spatial attention": bilinear x2, 3x3 conv to one channel, sigmoid, times the full-size input."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(dim, 1, 3, 1, 1, bias=False)

    def forward(self, features: Tensor, x: Tensor) -> Tensor:
        features = F.interpolate(features, scale_factor=2, mode='bilinear', align_corners=False)
        return torch.sigmoid(self.conv(features)) * x


class ViLBlock(nn.Module):
    """One scan direction on a map: x -> gate(x) * x, the gate from an mLSTM layer run at half resolution."""

    def __init__(self, dim: int, direction: str, mlstm_backend: Optional[str] = None) -> None:
        super().__init__()
        self.norm = ResidualWeightLayerNorm(dim)
        self.layer = ViLLayer(dim, direction, mlstm_backend=mlstm_backend)
        self.Down = WaveletDownsampling(dim)
        self.Up = SpatialAttentionUpsampling(dim)

    def forward(self, x: Tensor) -> Tensor:
        down = self.Down(x)
        grid = (down.shape[-2], down.shape[-1])
        tokens = to_tokens(down)
        tokens = tokens + self.layer(self.norm(tokens), grid)
        return self.Up(to_map(tokens, grid), x)


class ViLBlockPair(nn.Module):
    """The three scan directions applied one after the other (raster, reversed raster, Hilbert)."""

    def __init__(self, dim: int, mlstm_backend: Optional[str] = None) -> None:
        super().__init__()
        self.rowwise_from_top_left = ViLBlock(dim, 'rowwise_from_top_left', mlstm_backend)
        self.rowwise_from_bot_right = ViLBlock(dim, 'rowwise_from_bot_right', mlstm_backend)
        self.HILBERTCURVE = ViLBlock(dim, 'hilbertcurve', mlstm_backend)

    def forward(self, x: Tensor) -> Tensor:
        return self.HILBERTCURVE(self.rowwise_from_bot_right(self.rowwise_from_top_left(x)))


class GatedFFN(nn.Module):
    """fc2(relu(fc1(x))^2) * sigmoid(fc(x)), all without bias."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc = nn.Linear(dim, dim, bias=False)
        self.fc1 = nn.Linear(dim, hidden, bias=False)
        self.fc2 = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.relu(self.fc1(x)).square()) * torch.sigmoid(self.fc(x))


class LSTMBranch(nn.Module):
    """x + gamma1 * ViLBlockPair(x), then tokens + gamma2 * FFN(LayerNorm(tokens))."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, mlstm_backend: Optional[str] = None) -> None:
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.att = ViLBlockPair(dim, mlstm_backend)
        self.ffn = GatedFFN(dim, int(dim * mlp_ratio))
        self.gamma1 = nn.Parameter(torch.ones(dim))
        self.gamma2 = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.gamma1[:, None, None] * self.att(x)
        tokens = to_tokens(x)
        tokens = tokens + self.gamma2 * self.ffn(self.ln(tokens))
        return to_map(tokens, (x.shape[-2], x.shape[-1]))


# ----------------------------------------------------------------------------- short-range branch and body


class PReLUResidualBlock(nn.Module):
    """x + res_scale * conv2(prelu(conv1(x))): PReLU (init 0.2) and a learnable scalar res_scale (init 1)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.res_scale = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.conv2 = nn.Conv2d(dim, dim, 3, 1, 1)
        self.prelu = nn.PReLU(num_parameters=1, init=0.2)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv2(self.prelu(self.conv1(x))) * self.res_scale


class LongShortBlock(nn.Module):
    """conv(cat([cnn(x), lstm(x)])): both branches read the block input (CNN features first)."""

    def __init__(self, dim: int, mlp_ratio: float = 4.0, CNN_num: int = 12,
                 mlstm_backend: Optional[str] = None) -> None:
        super().__init__()
        self.lstm = LSTMBranch(dim, mlp_ratio, mlstm_backend)
        self.cnn = nn.Sequential(*(PReLUResidualBlock(dim) for _ in range(CNN_num)))
        self.conv = nn.Conv2d(2 * dim, dim, 3, 1, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(torch.cat([self.cnn(x), self.lstm(x)], dim=1))


class BlockStack(nn.Module):
    """Blocks applied in sequence (key ``blocks``), optionally gradient-checkpointed one by one."""

    def __init__(self, blocks: Sequence[nn.Module], use_checkpoint: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.use_checkpoint = use_checkpoint

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return x


class LongShortGroup(nn.Module):
    """x + conv(blocks(x)) over a feature map (keys ``residual_group.blocks.{j}``, ``conv``)."""

    def __init__(self, dim: int, depth: int, mlp_ratio: float, CNN_num: int, resi_connection: str,
                 use_checkpoint: bool, mlstm_backend: Optional[str]) -> None:
        super().__init__()
        self.residual_group = BlockStack([LongShortBlock(dim, mlp_ratio, CNN_num, mlstm_backend) for _ in range(depth)],
                                         use_checkpoint)
        self.conv = resi_connection_conv(dim, resi_connection)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(self.residual_group(x)) + x


# ----------------------------------------------------------------------------- network


@register_arch()
class LSTMConvSR(SRSkeleton):
    """LSTMConvSR: shallow conv, groups of long/short-range blocks, SwinIR-style reconstruction head.

    Args:
        upscale: scale factor. img_range: input scale after mean subtraction.
        in_chans: input = output bands. embed_dim: feature channels C.
        depths: blocks per group (one group per entry).
        drop_rate: dropout on the shallow features.
        mlp_ratio: FFN hidden width int(C * mlp_ratio). CNN_num: residual blocks per CNN branch.
        drop_path_rate, norm_layer, patch_norm: accepted for compatibility; unused, as in the official code.
        use_checkpoint: gradient checkpointing per block (saves memory, costs a re-forward).
        upsampler: 'pixelshuffle' (scale 2^n or 3), 'pixelshuffledirect' (any scale: one conv and
            pixel shuffle), anything else: no upsampling (output size = input size).
        resi_connection: '1conv' or '3conv', the conv closing each group and the body.
        rgb_mean: mean subtracted from 3-band input (other band counts use 0).
        mlstm_backend: rssr extension; 'parallel' or 'chunkwise' forces the mLSTM form (None: by length).
    """

    size_requirements = SizeRequirements(multiple_of=2, min_side=4, square=True, power_of_two=True, pad_mode='reflect')

    def __init__(self, upscale: int = 2, img_range: float = 1., in_chans: int = 3, embed_dim: int = 96,
                 depths: Sequence[int] = (6, 6, 6, 6), drop_rate: float = 0., mlp_ratio: float = 4.,
                 CNN_num: int = 12, drop_path_rate: float = 0.1, norm_layer: Callable[[int], nn.Module] = nn.LayerNorm,
                 patch_norm: bool = True, use_checkpoint: bool = False, upsampler: str = 'pixelshuffle',
                 resi_connection: str = '1conv', rgb_mean: Sequence[float] = DIV2K_RGB_MEAN,
                 mlstm_backend: Optional[str] = None, **kwargs: Any) -> None:
        super().__init__()
        warn_unknown_kwargs('LSTMConvSR', kwargs)
        tail = check_swinir_head('LSTMConvSR', upsampler, upscale, resi_connection)
        self._check_config(in_chans, rgb_mean, embed_dim)
        self.setup_skeleton(in_chans, img_range, rgb_mean_for(in_chans, rgb_mean))
        self.embed_dim, self.upscale = embed_dim, upscale

        self.conv_first = nn.Conv2d(in_chans, embed_dim, 3, 1, 1)
        self.pos_drop = nn.Dropout(p=drop_rate)
        self.NB_layers = nn.ModuleList(
            LongShortGroup(embed_dim, depth, mlp_ratio, CNN_num, resi_connection, use_checkpoint, mlstm_backend)
            for depth in depths)
        self.conv_after_body = resi_connection_conv(embed_dim, resi_connection)
        self.build_tail(tail, upscale, embed_dim, in_chans)
        self.apply(init_linear_and_layernorm)

    @staticmethod
    def _check_config(in_chans: int, rgb_mean: Sequence[float], embed_dim: int) -> None:
        if embed_dim % 4:
            raise ValueError(f'LSTMConvSR: embed_dim must be a multiple of 4 (the mLSTM layers split 2 * embed_dim '
                             f'into 4 heads and blocks of 4 channels), got {embed_dim}')
        if in_chans == 3 and len(rgb_mean) != 3:
            raise ValueError(f'LSTMConvSR: rgb_mean needs 3 values for 3-band input, got {list(rgb_mean)}')

    def forward_features(self, x: Tensor) -> Tensor:
        """Shallow features (B, C, H, W) -> dropout, then the long/short-range groups."""
        x = self.pos_drop(x).contiguous(memory_format=torch.channels_last)  # the convs run faster so
        for group in self.NB_layers:
            x = group(x)
        return x


OFFICIAL_KWARGS = dict(img_range=1., embed_dim=128, depths=(1, 1, 1, 1), mlp_ratio=4., CNN_num=12,
                       upsampler='pixelshuffle', resi_connection='1conv', rgb_mean=DIV2K_RGB_MEAN)

register_card(ModelCard(
    name='lstmconvsr',
    arch='LSTMConvSR',
    kwargs=OFFICIAL_KWARGS,
    paper='Q. Zhu, G. Zhang, X. Wang, J. Huang. LSTMConvSR: Joint Long-Short-Range Modeling via '
          'LSTM-First-CNN-Next Architecture for Remote Sensing Image Super-Resolution. '
          'Remote Sensing 17(15), 2745, 2025',
    doi='10.3390/rs17152745',
    repo='https://github.com/Doswin/LSTMConvSR',
    repo_license='Apache-2.0 (no pretrained weights published)',
    scales=(4,),
    size_requirements='any H x W (reflect-padded to a square of side 2*2^p >= 4, output cropped back)',
    kernels=('mlstm',),
    recipe='options/train/LSTMConvSR/train_LSTMConvSR_x4_Potsdam_bic.yml',
    params={2: 19_056_963, 3: 19_241_603, 4: 19_204_675},
    amp={'bf16': True},
    flops={scale: f'{macs} G MACs (fvcore on the official code, parallel mLSTM; no DWT / element-wise ops)'
           for scale, macs in ((2, '77.91'), (3, '78.70'), (4, '80.41'))},
))
