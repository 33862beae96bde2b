"""Spectral losses: ratio-index consistency (ConvFormerSR's idea), spectral angle (SAM) and relative L1.

**RatioIndexLoss is rssr's formulation of an idea from ConvFormerSR** (Li et al., IEEE TGRS 62,
2024, doi:10.1109/TGRS.2023.3340043): "a spectral loss based on the remote sensing ratio index to
mitigate domain shift induced by cross-sensors". The paper's exact formula (which indices, norm,
weight, resolution) is not public, and the official repository has no loss code, so this is not
the authors' loss: it compares normalised-difference indices of the SR output and the HR target,

    I_k(x) = clip((x_a - x_b) / safe(x_a + x_b), -1, 1)
    L = loss_weight * (1/K) * sum_k mean_pixels |I_k(SR) - I_k(HR)|      (or squared, criterion 'l2')

with the bands a, b of each index k resolved through ``band_order``; the mean runs over valid pixels
(not masked by ``nodata`` or a weight, and with a defined target index: |a + b| >= eps).

Data scale: indices are computed on the tensors as given (after the optional per-band ``scale`` /
``offset``), which must be proportional to reflectance. Any single global factor cancels
(DN, DN / 10000 and [0, 1] reflectance give the same loss, up to ``eps``); per-band normalisation
(mean / std) or offsets do not, so undo them with ``scale`` / ``offset`` or feed un-normalised data.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from rssr.band_names import band_position
from rssr.registry import register_loss

BandRef = Union[str, int]

NAMED_INDICES: Dict[str, Tuple[str, str]] = {
    'NDVI': ('nir', 'red'),       # vegetation
    'NDWI': ('green', 'nir'),     # open water (McFeeters 1996)
    'MNDWI': ('green', 'swir1'),  # modified NDWI (Xu 2006)
    'NDBI': ('swir1', 'nir'),     # built-up
    'NGRDI': ('green', 'red'),    # visible-only greenness
}
"""Normalised-difference indices by name: (a, b) in ND = (a - b) / (a + b), as band names."""

REDUCTIONS = ('mean', 'sum', 'none')


def normalized_difference(a: Tensor, b: Tensor, eps: float = 1e-6) -> Tensor:
    """(a - b) / (a + b), the denominator kept at least ``eps`` away from 0 (sign kept, 0 counts as +),
    clipped to [-1, 1] (the range for non-negative bands) so no pixel can dominate a loss.
    Gradients are bounded by about 1 / eps."""
    total = a + b
    safe_total = torch.where(total >= 0, total.clamp(min=eps), total.clamp(max=-eps))
    return ((a - b) / safe_total).clamp(-1., 1.)


def _reduce(per_pixel: Tensor, weight: Tensor, reduction: str) -> Tensor:
    """Weighted reduction of (B, K, H, W) over pixels then the K terms ('mean'; a term with no weight at
    all, e.g. a fully masked band, is left out rather than counted as 0), or a plain sum."""
    weighted = per_pixel * weight
    if reduction == 'none':
        return weighted
    if reduction == 'sum':
        return weighted.sum()
    total_weight = weight.expand_as(per_pixel).sum(dim=(0, 2, 3))
    per_term = weighted.sum(dim=(0, 2, 3)) / total_weight.clamp(min=1e-12)
    present = total_weight > 0
    return per_term[present].mean() if bool(present.any()) else per_term.sum()


def _pixel_weight(weight: Optional[Tensor], like: Tensor) -> Tensor:
    """A (B, 1 or C, H, W) weight / validity mask, or ones."""
    if weight is None:
        return torch.ones_like(like[:, :1], dtype=torch.float32)
    if weight.dim() != 4 or weight.shape[0] != like.shape[0] or weight.shape[2:] != like.shape[2:] \
            or weight.shape[1] not in (1, like.shape[1]):
        raise ValueError(f'loss weight must be (B, 1, H, W) or (B, C, H, W) matching {tuple(like.shape)}, '
                         f'got {tuple(weight.shape)}')
    return weight.float()


def _check_pair(pred: Tensor, target: Tensor, loss: str) -> None:
    if pred.shape != target.shape or pred.dim() != 4:
        raise ValueError(f'{loss}: pred and target must both be (B, C, H, W) of the same shape, '
                         f'got {tuple(pred.shape)} and {tuple(target.shape)}')


@register_loss()
class RatioIndexLoss(nn.Module):
    """Spectral ratio-index loss: L1 / L2 between normalised-difference indices of SR and HR.

    rssr's formulation of ConvFormerSR's ratio-index spectral loss (the paper's exact formula is not
    public; see the module docstring for the definition and the data-scale assumption).

    Args:
        loss_weight: factor on the loss (BasicSR convention).
        indices: index names from :data:`NAMED_INDICES` (NDVI, NDWI, MNDWI, NDBI, NGRDI) and/or
            explicit (a, b) pairs meaning (a - b) / (a + b); a and b are band names from
            ``band_order`` or channel numbers.
        band_order: the name of each channel of the model's bands, e.g. [blue, green, red, nir]
            (case-insensitive). Needed for named indices and named pairs.
        criterion: 'l1' (default) or 'l2' on the index difference.
        eps: smallest |a + b| in the data's units (see :func:`normalized_difference`).
        scale, offset: optional per-band (or global) affine map applied to both images before the
            indices, reflectance = x * scale + offset, to undo a dataset's normalisation.
        nodata: target value marking missing pixels; a pixel is left out of index k when either of
            its two target bands equals it. Pixels where the target's a + b is below ``eps`` (its
            index is undefined, e.g. all-zero nodata) are always left out.
        reduction: 'mean' (weighted mean over pixels, averaged over the indices), 'sum' or 'none'
            (the (B, K, H, W) weighted differences).
    """

    def __init__(self, loss_weight: float = 1.0, indices: Sequence[Union[str, Sequence[BandRef]]] = ('NDVI', 'NDWI'),
                 band_order: Optional[Sequence[str]] = None, criterion: str = 'l1', eps: float = 1e-6,
                 scale: Union[float, Sequence[float], None] = None, offset: Union[float, Sequence[float], None] = None,
                 nodata: Optional[float] = None, reduction: str = 'mean') -> None:
        super().__init__()
        if criterion not in ('l1', 'l2'):
            raise ValueError(f"RatioIndexLoss: criterion must be 'l1' or 'l2', got {criterion!r}")
        if reduction not in REDUCTIONS:
            raise ValueError(f'RatioIndexLoss: reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if eps <= 0:
            raise ValueError(f'RatioIndexLoss: eps must be > 0, got {eps}')
        if isinstance(indices, str):
            indices = [indices]
        if not indices:
            raise ValueError('RatioIndexLoss: give at least one index')
        self.loss_weight, self.criterion, self.eps = loss_weight, criterion, eps
        self.nodata, self.reduction = nodata, reduction
        self.band_order = [str(name).lower() for name in band_order] if band_order is not None else None
        self.index_names: List[str] = []
        self.band_pairs: List[Tuple[int, int]] = []
        for index in indices:
            name, pair = self._resolve(index)
            self.index_names.append(name)
            self.band_pairs.append(pair)
        self.num_bands_needed = max(max(pair) for pair in self.band_pairs) + 1
        self.scale, self.offset = scale, offset

    def _resolve(self, index: Union[str, Sequence[BandRef]]) -> Tuple[str, Tuple[int, int]]:
        """(display name, (channel a, channel b)) of one index entry, or a ValueError saying what is missing."""
        if isinstance(index, str):
            key = index.upper()
            if key not in NAMED_INDICES:
                raise ValueError(f'RatioIndexLoss: unknown index {index!r}; known: {", ".join(NAMED_INDICES)}, '
                                 f'or give an explicit band pair such as [nir, red]')
            bands = NAMED_INDICES[key]
            return key, (self._channel(bands[0], key), self._channel(bands[1], key))
        if len(index) != 2:
            raise ValueError(f'RatioIndexLoss: an explicit index is a pair (a, b), got {index!r}')
        name = f'ND({index[0]},{index[1]})'
        return name, (self._channel(index[0], name), self._channel(index[1], name))

    def _channel(self, band: BandRef, index_name: str) -> int:
        if isinstance(band, int):
            if band < 0:
                raise ValueError(f'RatioIndexLoss: {index_name} uses channel {band}; channels are numbered from 0')
            if self.band_order is not None and band >= len(self.band_order):
                raise ValueError(f'RatioIndexLoss: {index_name} uses channel {band} but band_order has only '
                                 f'{len(self.band_order)} bands: {self.band_order}')
            return band
        if self.band_order is None:
            raise ValueError(f'RatioIndexLoss: {index_name} needs band {band!r}; set band_order to the names '
                             f'of the model\'s bands, e.g. [blue, green, red, nir]')
        position = band_position(str(band), self.band_order)
        if position is None:
            needed = NAMED_INDICES.get(index_name, ())
            needs = f' (it needs {" and ".join(needed)})' if needed else ''
            raise ValueError(f'RatioIndexLoss: index {index_name} needs band {str(band).lower()!r}{needs}, but the '
                             f'data has only {self.band_order}; drop {index_name} from indices or use data with '
                             f'that band')
        return position

    def _to_reflectance(self, x: Tensor) -> Tensor:
        x = x.float()
        channels = x.shape[1]
        for value, is_scale in ((self.scale, True), (self.offset, False)):
            if value is None:
                continue
            per_band = torch.as_tensor(value, dtype=x.dtype, device=x.device).flatten()
            if per_band.numel() not in (1, channels):
                raise ValueError(f'RatioIndexLoss: {"scale" if is_scale else "offset"} has {per_band.numel()} '
                                 f'values for {channels} bands')
            per_band = per_band.view(1, -1, 1, 1)
            x = x * per_band if is_scale else x + per_band
        return x

    def indices_of(self, x: Tensor) -> Tensor:
        """(B, K, H, W) index maps of an image (B, C, H, W), in float32."""
        return self._indices(self._to_reflectance(x))

    def _indices(self, reflectance: Tensor) -> Tensor:
        return torch.stack([normalized_difference(reflectance[:, a], reflectance[:, b], self.eps)
                            for a, b in self.band_pairs], dim=1)

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        _check_pair(pred, target, 'RatioIndexLoss')
        if pred.shape[1] < self.num_bands_needed:
            raise ValueError(f'RatioIndexLoss: indices {self.index_names} need {self.num_bands_needed} bands '
                             f'(band_order {self.band_order}) but the images have {pred.shape[1]}')
        target_reflectance = self._to_reflectance(target.detach())
        difference = self.indices_of(pred) - self._indices(target_reflectance)
        per_pixel = difference.abs() if self.criterion == 'l1' else difference.square()
        pixel_weight = _pixel_weight(weight, pred)
        per_band = pixel_weight.shape[1] != 1
        weights = []
        for a, b in self.band_pairs:
            w = pixel_weight[:, a:a + 1] * pixel_weight[:, b:b + 1] if per_band else pixel_weight
            w = w * ((target_reflectance[:, a:a + 1] + target_reflectance[:, b:b + 1]).abs() >= self.eps)
            if self.nodata is not None:
                w = w * ((target[:, a:a + 1] != self.nodata) & (target[:, b:b + 1] != self.nodata))
            weights.append(w)
        return self.loss_weight * _reduce(per_pixel, torch.cat(weights, dim=1), self.reduction)

    def extra_repr(self) -> str:
        return (f'indices={self.index_names}, band_pairs={self.band_pairs}, criterion={self.criterion!r}, '
                f'loss_weight={self.loss_weight}')


@register_loss()
class SAMLoss(nn.Module):
    """Spectral angle mapper loss: mean angle (radians) between the band vectors of SR and HR pixels.

    angle = arccos(<p, t> / (|p| |t|)), computed in float64 (so near-identical spectra get accurate
    small angles, not float32's ~3e-4 rad floor) and clamped just inside [-1, 1] so that identical
    spectra have finite gradients. Pixels where |p| |t| < eps (an all-zero spectrum has no
    angle) are left out. Invariant to a per-pixel brightness factor, it complements a pixel loss.

    Args:
        loss_weight: factor on the loss.
        eps: smallest norm product.
        reduction: 'mean' (weighted by ``weight``), 'sum' or 'none' ((B, 1, H, W) angles).
    """

    _COSINE_LIMIT = 1. - 1e-12

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-8, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f'SAMLoss: reduction must be one of {REDUCTIONS}, got {reduction!r}')
        self.loss_weight, self.eps, self.reduction = loss_weight, eps, reduction

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """pred, target (B, C, H, W); weight (B, 1, H, W) per-pixel weight / validity mask."""
        _check_pair(pred, target, 'SAMLoss')
        pred, target = pred.double(), target.detach().double()
        dot = (pred * target).sum(dim=1, keepdim=True)
        norms = pred.norm(dim=1, keepdim=True) * target.norm(dim=1, keepdim=True)
        cosine = (dot / norms.clamp(min=self.eps)).clamp(-self._COSINE_LIMIT, self._COSINE_LIMIT)
        angle = torch.arccos(cosine)
        pixel_weight = _pixel_weight(weight, pred)
        if pixel_weight.shape[1] != 1:
            raise ValueError(f'SAMLoss: weight must be per pixel (B, 1, H, W), got {tuple(pixel_weight.shape)}')
        return self.loss_weight * _reduce(angle, pixel_weight * (norms >= self.eps), self.reduction).float()


@register_loss()
class RelativeL1Loss(nn.Module):
    """L1 error relative to the target's magnitude: mean over pixels and bands of

        |pred - target| / (|target| + eps)

    Dark pixels (water, shadow) count as much as bright ones in relative terms, where a plain L1
    (or an L1 on band-standardised values) lets their small absolute errors through; on such
    pixels band ratios (NDVI, NDWI) and spectral angles are most sensitive to those errors.
    The denominator uses the target only (no gradient), so the gradient is bounded by 1 / eps.

    Args:
        loss_weight: factor on the loss.
        eps: added to |target|, in the data's units (e.g. 0.01 for reflectance in [0, 1]); it bounds
            the weight of near-zero targets. The loss is not scale-invariant: give physical values.
        reduction: 'mean' (weighted by ``weight``, per band then averaged), 'sum' or 'none'.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 0.01, reduction: str = 'mean') -> None:
        super().__init__()
        if reduction not in REDUCTIONS:
            raise ValueError(f'RelativeL1Loss: reduction must be one of {REDUCTIONS}, got {reduction!r}')
        if eps <= 0:
            raise ValueError(f'RelativeL1Loss: eps must be > 0 (it bounds 1 / (|target| + eps)), got {eps}')
        self.loss_weight, self.eps, self.reduction = loss_weight, eps, reduction

    def forward(self, pred: Tensor, target: Tensor, weight: Optional[Tensor] = None) -> Tensor:
        """pred, target (B, C, H, W); weight (B, 1 or C, H, W) per-pixel weight / validity mask."""
        _check_pair(pred, target, 'RelativeL1Loss')
        target = target.detach().float()
        relative = (pred.float() - target).abs() / (target.abs() + self.eps)
        return self.loss_weight * _reduce(relative, _pixel_weight(weight, pred), self.reduction)

    def extra_repr(self) -> str:
        return f'eps={self.eps}, loss_weight={self.loss_weight}'
