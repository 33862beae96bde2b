"""SwinIR-style upsamplers and the SwinIR reconstruction tail, shared by every arch.

The upsamplers are ``nn.Sequential`` subclasses so their parameters keep the official checkpoint keys
(``upsample.0.weight``, ``upsample.2.weight``, ...).
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.layers.residual_group import RESI_CONNECTIONS

SWINIR_UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', '')
TAIL_UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', 'nearest+conv', '')
"""Tails :class:`SwinIRTail` builds; ``SWINIR_UPSAMPLERS`` are those of SwinIR's classic-SR outline."""


def is_power_of_two(scale: int) -> bool:
    """True for 1, 2, 4, 8, ... (the scales :class:`Upsample` builds from x2 steps)."""
    return scale >= 1 and scale & (scale - 1) == 0


class Upsample(nn.Sequential):
    """Upsample ``num_feat``-channel features by ``scale`` keeping the channel count.

    Scale 2^k is k steps of [3x3 conv num_feat -> 4*num_feat, PixelShuffle(2)]; scale 3 is one
    [3x3 conv num_feat -> 9*num_feat, PixelShuffle(3)] step. Scale 1 is the empty sequence
    (identity), as in SwinIR. Any other scale raises ``ValueError``.
    """

    def __init__(self, scale: int, num_feat: int) -> None:
        layers: list[nn.Module] = []
        if is_power_of_two(scale):
            for _ in range(scale.bit_length() - 1):
                layers += [nn.Conv2d(num_feat, 4 * num_feat, 3, 1, 1), nn.PixelShuffle(2)]
        elif scale == 3:
            layers += [nn.Conv2d(num_feat, 9 * num_feat, 3, 1, 1), nn.PixelShuffle(3)]
        else:
            raise ValueError(f'Upsample: scale {scale} is not supported; use a power of two (2, 4, 8) or 3, '
                             f"or a one-step upsampler ('pixelshuffledirect') for other scales")
        super().__init__(*layers)
        self.scale, self.num_feat = scale, num_feat


class UpsampleOneStep(nn.Sequential):
    """One 3x3 conv num_feat -> scale^2 * num_out_ch and one PixelShuffle(scale): the light-SR head.

    Works for any integer scale >= 1.
    """

    def __init__(self, scale: int, num_feat: int, num_out_ch: int) -> None:
        if scale < 1:
            raise ValueError(f'UpsampleOneStep: scale must be a positive integer, got {scale}')
        super().__init__(nn.Conv2d(num_feat, scale * scale * num_out_ch, 3, 1, 1), nn.PixelShuffle(scale))
        self.scale, self.num_feat, self.num_out_ch = scale, num_feat, num_out_ch


def check_swinir_head(arch: str, upsampler: str, upscale: int, resi_connection: str) -> str:
    """Validate the SwinIR-style reconstruction options at construction, naming the arch; returns the
    tail to build (``upsampler``, or '' for an unknown one).

    The official code fails late (at forward) on a bad ``resi_connection`` or scale; an unknown
    ``upsampler`` silently means no upsampling there, which is kept but warned about.
    """
    if resi_connection not in RESI_CONNECTIONS:
        raise ValueError(f'{arch}: resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}')
    if upsampler == 'pixelshuffle' and not (is_power_of_two(upscale) or upscale == 3):
        raise ValueError(f"{arch}: upscale={upscale} is not supported by upsampler='pixelshuffle' "
                         f"(2^n or 3 only); use upsampler='pixelshuffledirect' for other integer scales")
    if upsampler == 'pixelshuffledirect' and (not isinstance(upscale, int) or upscale < 1):
        raise ValueError(f'{arch}: upscale must be a positive integer, got {upscale!r}')
    if upsampler not in SWINIR_UPSAMPLERS:
        warnings.warn(f'{arch}: upsampler {upsampler!r} is not one of {SWINIR_UPSAMPLERS}; as in the official '
                      f'code it means no upsampling (output size = input size)', stacklevel=3)
        return ''
    return upsampler


class SwinIRTail:
    """Mixin building and running SwinIR's reconstruction tail on the model itself.

    The layers are attributes of the model, so checkpoints keep the official keys
    (``conv_before_upsample.0``, ``upsample.0``, ``conv_up1``, ``conv_last``), one tail per ``upsampler``:

    - 'pixelshuffle': conv 3x3 -> 64 + LeakyReLU(0.01), :class:`Upsample`, conv 3x3 -> out bands;
    - 'pixelshuffledirect': :class:`UpsampleOneStep` (light SR);
    - 'nearest+conv' (x4 only, SwinIR's real-SR tail): conv 3x3 -> 64 + LeakyReLU(0.01), twice
      [nearest x2, conv 3x3, LeakyReLU(0.2)], conv 3x3 (``conv_hr``) + LeakyReLU(0.2), conv 3x3 -> out bands;
    - '': no upsampling, a conv 3x3 -> out bands added to the (normalised) input.
    """

    tail_features = 64

    def build_tail(self, upsampler: str, upscale: int, embed_dim: int, out_chans: int) -> None:
        """Build the tail for ``upsampler`` (one of :data:`TAIL_UPSAMPLERS`) and set ``output_scale``."""
        if upsampler not in TAIL_UPSAMPLERS:
            raise ValueError(f'{type(self).__name__}: upsampler must be one of {TAIL_UPSAMPLERS}, got {upsampler!r}')
        if upsampler == 'nearest+conv' and upscale != 4:
            raise ValueError(f"{type(self).__name__}: upsampler 'nearest+conv' supports only upscale 4, got {upscale}")
        self.upsampler = upsampler
        self.output_scale = upscale if upsampler else 1
        if upsampler == 'pixelshuffledirect':
            self.upsample = UpsampleOneStep(upscale, embed_dim, out_chans)
            return
        if upsampler:
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, self.tail_features, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
        if upsampler == 'pixelshuffle':
            self.upsample = Upsample(upscale, self.tail_features)
        elif upsampler == 'nearest+conv':
            self.conv_up1 = nn.Conv2d(self.tail_features, self.tail_features, 3, 1, 1)
            self.conv_up2 = nn.Conv2d(self.tail_features, self.tail_features, 3, 1, 1)
            self.conv_hr = nn.Conv2d(self.tail_features, self.tail_features, 3, 1, 1)
            self.lrelu = nn.LeakyReLU(negative_slope=0.2, inplace=True)
        self.conv_last = nn.Conv2d(self.tail_features if upsampler else embed_dim, out_chans, 3, 1, 1)

    def reconstruct(self, body: Tensor, normalised_input: Tensor) -> Tensor:
        """Deep features (B, C, H, W) -> output in the normalised range.

        The x2 pixel-shuffle tail runs channels-last (its convolutions and shuffles are the bulk of a
        compact network's work, and oneDNN runs them faster in that layout); the output is contiguous.
        """
        if self.upsampler == 'pixelshuffle':
            features = body.contiguous(memory_format=torch.channels_last)
            return self.conv_last(self.upsample(self.conv_before_upsample(features))).contiguous()
        if self.upsampler == 'pixelshuffledirect':
            return self.upsample(body)
        if self.upsampler == 'nearest+conv':
            out = self.conv_before_upsample(body)
            out = self.lrelu(self.conv_up1(F.interpolate(out, scale_factor=2, mode='nearest')))
            out = self.lrelu(self.conv_up2(F.interpolate(out, scale_factor=2, mode='nearest')))
            return self.conv_last(self.lrelu(self.conv_hr(out)))
        return normalised_input + self.conv_last(body)
