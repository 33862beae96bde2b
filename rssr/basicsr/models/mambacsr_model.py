"""MambaCSR's test-time procedure: overlapping partitions, each mirror-padded, stitched without blending.

The official ``MambaCSRModel`` (renyulin-f/MambaCSR) differs from SRModel only in ``test``, which
produced the paper's numbers: the LR is cut into (h // 192 + 1) x (w // 192 + 1) partitions that
overlap by a quarter partition, each partition is mirror-padded past the next multiple of
``padding_size`` (the top-level option key, 64 officially), super-resolved, cropped, and its core is
pasted into the output. :func:`partitioned_forward` reproduces it; ``model_type: MambaCSRModel``
uses it for validation and testing, so the official option files run unchanged.
"""
from __future__ import annotations

from typing import Callable, List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from rssr.basicsr.models.sr_model import RSSRModel
from rssr.registry import register_model

OFFICIAL_SPLIT_SIZE = 192
OFFICIAL_PADDING_SIZE = 64


def _partition_bounds(count: int, size: int, shave: int) -> List[Tuple[int, int]]:
    """Start/end of each of ``count`` partitions of ``size``, extended by ``shave`` into their neighbours."""
    return [(i * size - (shave if i > 0 else 0), (i + 1) * size + (shave if i < count - 1 else 0))
            for i in range(count)]


def mirror_pad(x: Tensor, padding_size: int) -> Tensor:
    """Extend (B, C, h, w) with its mirror image to the next multiple of ``padding_size`` strictly above
    each side (at most doubling it), as the official test does."""
    height, width = x.shape[-2:]
    target_h = (height // padding_size + 1) * padding_size
    target_w = (width // padding_size + 1) * padding_size
    x = torch.cat([x, x.flip(2)], dim=2)[:, :, :target_h]
    return torch.cat([x, x.flip(3)], dim=3)[:, :, :, :target_w]


def partitioned_forward(net: Callable[[Tensor], Tensor], lq: Tensor, scale: int,
                        split_size: int = OFFICIAL_SPLIT_SIZE, padding_size: int = OFFICIAL_PADDING_SIZE) -> Tensor:
    """Super-resolve lq (B, C, h, w) partition by partition, as the official MambaCSR test."""
    _, _, height, width = lq.shape
    parts_h, parts_w = height // split_size + 1, width // split_size + 1
    pad_h, pad_w = (-height) % parts_h, (-width) % parts_w
    image = F.pad(lq, (0, pad_w, 0, pad_h), mode='reflect') if pad_h or pad_w else lq
    size_h, size_w = image.shape[2] // parts_h, image.shape[3] // parts_w
    shave_h, shave_w = size_h // 4, size_w // 4
    rows = _partition_bounds(parts_h, size_h, shave_h)
    cols = _partition_bounds(parts_w, size_w, shave_w)
    output = None
    for i, (top, bottom) in enumerate(rows):
        for j, (left, right) in enumerate(cols):
            part = image[:, :, top:bottom, left:right]
            sr = net(mirror_pad(part, padding_size))[:, :, :part.shape[2] * scale, :part.shape[3] * scale]
            if output is None:
                output = sr.new_zeros(sr.shape[0], sr.shape[1], image.shape[2] * scale, image.shape[3] * scale)
            core_top, core_left = (shave_h if i > 0 else 0) * scale, (shave_w if j > 0 else 0) * scale
            output[:, :, i * size_h * scale:(i + 1) * size_h * scale, j * size_w * scale:(j + 1) * size_w * scale] = \
                sr[:, :, core_top:core_top + size_h * scale, core_left:core_left + size_w * scale]
    return output[:, :, :height * scale, :width * scale]


@register_model()
class MambaCSRModel(RSSRModel):
    """:class:`RSSRModel` whose validation/test runs :func:`partitioned_forward` (the official protocol).

    Reads the official top-level option ``padding_size`` (default 64). Training is unchanged. With
    ``band_normalization``, every partition is normalised with the statistics of the whole input.
    """

    top_level_option_keys = (*RSSRModel.top_level_option_keys, 'padding_size')  # rssr.basicsr.declarations

    def test(self) -> None:
        net = self.evaluation_net()
        was_training = net.training
        net.eval()
        with torch.no_grad():
            self.output = partitioned_forward(self.whole_input_network(net), self.lq, int(self.opt.get('scale', 1)),
                                              padding_size=int(self.opt.get('padding_size', OFFICIAL_PADDING_SIZE)))
        net.train(was_training)
