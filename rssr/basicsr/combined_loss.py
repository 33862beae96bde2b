"""``CombinedLoss``: several losses in the one slot a model offers, e.g. a spectral loss beside L1.

BasicSR's models (SRModel, SRGANModel, ESRGANModel, HATModel, ...) build exactly one pixel loss from
``train.pixel_opt``; only rssr's ``RSSRModel`` also reads ``train.spectral_opt``. To use
``RatioIndexLoss`` or ``SAMLoss`` with any other model, list them in ``pixel_opt``::

    pixel_opt:
      type: CombinedLoss
      losses:
        - {type: L1Loss, loss_weight: 1.0}
        - {type: SAMLoss, loss_weight: 0.1}

The model logs the sum under its pixel-loss name (``l_pix``, ``l_g_pix``). It lives in the bridge because
it builds its parts with BasicSR's ``build_loss`` (any registered loss, BasicSR's own included); the
bridge imports it when it connects rssr to BasicSR.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Sequence

from torch import Tensor, nn

from rssr.registry import register_loss


@register_loss()
class CombinedLoss(nn.Module):
    """The sum of the losses built from ``losses`` (BasicSR loss options, each with its own
    ``loss_weight``), times ``loss_weight``. A nodata ``weight`` is passed on to every loss."""

    def __init__(self, losses: Sequence[Dict[str, Any]], loss_weight: float = 1.0) -> None:
        super().__init__()
        from basicsr.losses import build_loss

        if not losses:
            raise ValueError('CombinedLoss: `losses` must list at least one loss, e.g. [{type: L1Loss}]')
        self.losses = nn.ModuleList(build_loss(dict(spec)) for spec in losses)
        self.loss_weight = loss_weight

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        extra = {} if weight is None else {'weight': weight}
        return self.loss_weight * sum(loss(pred, target, **extra) for loss in self.losses)
