"""SwinIR-style pixel-shuffle upsamplers, shared by the archs that end in one.

Both are ``nn.Sequential`` subclasses so their parameters keep the official checkpoint keys
(``upsample.0.weight``, ``upsample.2.weight``, ...).
"""
from __future__ import annotations

import warnings

from torch import Tensor, nn

from rssr.layers.residual_group import RESI_CONNECTIONS

SWINIR_UPSAMPLERS = ('pixelshuffle', 'pixelshuffledirect', '')


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


def check_swinir_head(arch: str, upsampler: str, upscale: int, resi_connection: str) -> None:
    """Validate the SwinIR-style reconstruction options at construction, naming the arch.

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


class SwinIRTail:
    """Mixin building and running SwinIR's reconstruction tail on the model itself.

    The layers are attributes of the model, so checkpoints keep the official keys
    (``conv_before_upsample.0``, ``upsample.0``, ``conv_last``):
    'pixelshuffle': conv 3x3 -> 64 + LeakyReLU(0.01), :class:`Upsample`, conv 3x3 -> out bands;
    'pixelshuffledirect': :class:`UpsampleOneStep`; anything else: no upsampling, a conv 3x3 -> out
    bands added to the (normalised) input.
    """

    tail_features = 64

    def build_tail(self, upsampler: str, upscale: int, embed_dim: int, out_chans: int) -> None:
        if upsampler == 'pixelshuffle':
            self.conv_before_upsample = nn.Sequential(nn.Conv2d(embed_dim, self.tail_features, 3, 1, 1),
                                                      nn.LeakyReLU(inplace=True))
            self.upsample = Upsample(upscale, self.tail_features)
            self.conv_last = nn.Conv2d(self.tail_features, out_chans, 3, 1, 1)
        elif upsampler == 'pixelshuffledirect':
            self.upsample = UpsampleOneStep(upscale, embed_dim, out_chans)
        else:
            self.conv_last = nn.Conv2d(embed_dim, out_chans, 3, 1, 1)

    def reconstruct(self, body: Tensor, normalised_input: Tensor) -> Tensor:
        """Deep features (B, C, H, W) -> output in the normalised range."""
        if self.upsampler == 'pixelshuffle':
            return self.conv_last(self.upsample(self.conv_before_upsample(body)))
        if self.upsampler == 'pixelshuffledirect':
            return self.upsample(body)
        return normalised_input + self.conv_last(body)
