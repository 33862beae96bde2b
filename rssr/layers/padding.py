"""Input-size requirements of an arch, and the pad-then-crop wrapper that honours them.

Some official networks accept only certain LR sizes (even sides, multiples of 16, power-of-two
squares). rssr archs declare a :class:`SizeRequirements` as ``size_requirements`` and pad inputs
to the nearest valid size, cropping the output back, so any H x W works. Tiled inference reads the
same declaration.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import torch.nn.functional as F
from torch import Tensor


def _next_power_of_two(n: int) -> int:
    return 1 << max(0, (n - 1).bit_length())


@dataclass(frozen=True)
class SizeRequirements:
    """What LR sizes an arch accepts natively.

    Attributes:
        multiple_of: each side must be a multiple of this.
        min_side: smallest side accepted.
        square: H must equal W.
        power_of_two: each side must be ``multiple_of`` times a power of two.
        pad_mode: how inputs are padded up to a valid size ('reflect' or 'replicate' or 'constant').
    """

    multiple_of: int = 1
    min_side: int = 1
    square: bool = False
    power_of_two: bool = False
    pad_mode: str = 'reflect'

    def valid_size(self, height: int, width: int) -> Tuple[int, int]:
        """The smallest accepted (H, W) that is at least (height, width)."""
        sides = [max(height, self.min_side), max(width, self.min_side)]
        if self.square:
            sides = [max(sides)] * 2
        if self.power_of_two:
            sides = [self.multiple_of * _next_power_of_two(-(-s // self.multiple_of)) for s in sides]
        else:
            sides = [-(-s // self.multiple_of) * self.multiple_of for s in sides]
        return sides[0], sides[1]


def check_bands(x: Tensor, in_chans: int, arch: str) -> None:
    """Raise a clear error unless x is a (B, in_chans, H, W) batch (the archs' first conv would fail obscurely)."""
    if x.dim() != 4 or x.shape[1] != in_chans:
        raise ValueError(f'{arch} expects (B, {in_chans}, H, W) input (in_chans={in_chans}), '
                         f'got shape {tuple(x.shape)}')


def pad_to_valid(x: Tensor, requirements: SizeRequirements) -> Tensor:
    """Pad x (B, C, H, W) at the bottom and right to ``requirements.valid_size``."""
    height, width = (int(side) for side in x.shape[-2:])  # ints also where ONNX export traces sizes as tensors
    target_h, target_w = requirements.valid_size(height, width)
    if (target_h, target_w) == (height, width):
        return x
    mode = requirements.pad_mode
    while x.shape[-2] < target_h or x.shape[-1] < target_w:
        pad_h, pad_w = target_h - x.shape[-2], target_w - x.shape[-1]
        if mode == 'reflect':  # reflect cannot pad more than side - 1 at once
            pad_h, pad_w = min(pad_h, x.shape[-2] - 1), min(pad_w, x.shape[-1] - 1)
            if pad_h == pad_w == 0:
                mode = 'replicate'
                continue
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x


def crop_output(y: Tensor, lr_height: int, lr_width: int, scale: int) -> Tensor:
    """Crop an SR output made from a padded LR input back to (lr_height*scale, lr_width*scale)."""
    return y[..., :lr_height * scale, :lr_width * scale]
