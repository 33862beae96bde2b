"""The skeleton every rssr SR network shares, written once.

All five ports follow SwinIR's outline, so each arch only builds its layers and its deep body::

    forward = check bands -> pad to a valid size -> normalise -> shallow (conv_first)
              -> deep (forward_features, conv_after_body, + shallow) -> tail -> denormalise -> crop

:class:`SRSkeleton` runs that outline; an arch sets it up with :meth:`SRSkeleton.setup_skeleton`
(bands, pixel range, band mean), builds ``conv_first``, ``forward_features``, ``conv_after_body`` and
a :class:`rssr.layers.upsample.SwinIRTail`, and declares ``size_requirements`` when the official network
accepts only some input sizes. Every arch thereby exposes ``output_scale`` and ``size_requirements``.
:func:`warn_unknown_kwargs` is the one warning for constructor keywords an arch does not know.
"""
from __future__ import annotations

import warnings
from typing import Any, Mapping, Sequence, Tuple

import torch
from torch import Tensor, nn

from rssr.layers.padding import SizeRequirements, check_bands, crop_output, pad_to_valid
from rssr.layers.upsample import SwinIRTail

DIV2K_RGB_MEAN = (0.4488, 0.4371, 0.4040)
"""Per-channel RGB mean of DIV2K, which SwinIR-family networks subtract from 3-band input."""


def warn_unknown_kwargs(arch: str, kwargs: Mapping[str, Any], note: str = '') -> None:
    """Warn (UserWarning) that ``arch`` ignores the keywords in ``kwargs``; nothing when there are none.

    The official constructors swallow unknown keywords silently, so a misspelt ``network_g`` entry would
    otherwise go unnoticed. ``note`` (e.g. why the official class accepts them) ends the message.
    """
    if not kwargs:
        return
    message = f'{arch}: ignoring unknown keyword argument(s) {", ".join(repr(k) for k in sorted(kwargs))}'
    warnings.warn(f'{message} ({note})' if note else message, UserWarning, stacklevel=3)


def rgb_mean_for(in_chans: int, rgb_mean: Sequence[float] = DIV2K_RGB_MEAN) -> Tuple[float, ...]:
    """The band mean SwinIR-family archs subtract: ``rgb_mean`` for 3-band input, 0 for any other band count."""
    return tuple(rgb_mean) if in_chans == 3 else (0.,)


class SRSkeleton(SwinIRTail, nn.Module):
    """Base class running the shared outline (see the module doc); subclasses build the layers.

    A subclass calls :meth:`setup_skeleton` and ``build_tail`` in its constructor and defines
    ``conv_first``, ``forward_features(shallow) -> deep`` and ``conv_after_body``; it overrides
    :meth:`check_input` for extra input checks or :meth:`restore` for a different body.

    Attributes:
        size_requirements: LR sizes the network accepts natively; other sizes are padded to the
            nearest valid size and the output cropped back (default: any size).
        output_scale: output size / input size (set by ``build_tail``; 1 without an upsampler).
    """

    size_requirements: SizeRequirements = SizeRequirements()
    output_scale: int = 1

    def setup_skeleton(self, in_chans: int, img_range: float, mean: Sequence[float]) -> None:
        """Record the band count and pixel range; ``mean`` (one value, or one per band) becomes the
        non-persistent buffer ``mean`` (not in official state_dicts)."""
        self.in_chans, self.img_range = in_chans, img_range
        self.register_buffer('mean', torch.tensor(tuple(mean), dtype=torch.float32).view(1, -1, 1, 1),
                             persistent=False)

    def check_input(self, x: Tensor) -> None:
        """Raise a clear error for an input the network cannot take (here: not (B, in_chans, H, W))."""
        check_bands(x, self.in_chans, type(self).__name__)

    def normalise(self, x: Tensor) -> Tensor:
        """Input in [0, 1] -> (x - mean) * img_range, the range the network computes in."""
        return (x - self.mean.type_as(x)) * self.img_range

    def denormalise(self, y: Tensor) -> Tensor:
        """Inverse of :meth:`normalise`."""
        return y / self.img_range + self.mean.type_as(y)

    def restore(self, x: Tensor) -> Tensor:
        """Normalised LR (B, in_chans, h, w) -> normalised SR: shallow conv, deep body with a global skip, tail."""
        shallow = self.conv_first(x)
        deep = self.conv_after_body(self.forward_features(shallow)) + shallow
        return self.reconstruct(deep, x)

    def forward(self, x: Tensor) -> Tensor:
        """x (B, in_chans, H, W) in [0, 1], any H and W -> (B, in_chans, H * output_scale, W * output_scale),
        contiguous in the default memory format (layers inside may run channels-last; a BasicSR discriminator
        ``view``s what it is given)."""
        self.check_input(x)
        height, width = x.shape[-2:]
        x = self.normalise(pad_to_valid(x, self.size_requirements))
        return crop_output(self.denormalise(self.restore(x)), height, width, self.output_scale).contiguous()
