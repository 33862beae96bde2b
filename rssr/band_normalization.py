"""Per-band normalisation around an SR network, outside the (faithfully ported) arch.

Reflectance sits in about 0.02..0.5 with band means near 0.1, far from the zero-mean, unit-range
inputs the archs were designed for. :class:`BandNormalizedSR` standardises each band before the
network and inverts it after::

    x_n = (x - mean) / std          out = net(x_n) [+ bicubic(x_n)] * std + mean

YAML (top level, read by ``RSSRModel``; stored with every checkpoint it saves)::

    band_normalization:
      mode: dataset      # dataset: training-set mean/std | image: mean/std of each LR input | none
      mean: [..]         # mode dataset, optional: computed from datasets.train when absent
      std: [..]
      residual: none     # none | bicubic: the network predicts the residual over bicubic(x_n)
      eps: 0.001         # floor for std (physical units), against flat images in mode image

:class:`BandNormalization` is that configuration (validated, serialisable as checkpoint metadata);
:class:`BandNormalizedSR` applies it. The wrapper's ``state_dict`` is the inner network's, so
checkpoints keep the arch's own keys and official weights load strictly into the inner network.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, replace
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.errors import UserError
from rssr.layers.arch_wrapper import ArchWrapper
from rssr.utils import closest_names

MODES = ('none', 'dataset', 'image')
RESIDUALS = ('none', 'bicubic')
OPTION_KEYS = ('mode', 'mean', 'std', 'residual', 'eps')
DEFAULT_EPS = 1e-3
METADATA_KEY = 'band_normalization'
"""Name of the checkpoint entry (.pth) / metadata field (.safetensors) holding the normalisation."""

class BandNormalizationError(UserError, ValueError):
    """The ``band_normalization`` options (or stored metadata) are malformed or incomplete."""


Statistics = Tuple[Tensor, Tensor]
"""(mean, std), each (N or 1, C, 1, 1), in physical units."""


def _floats(values: Optional[Sequence[Any]], what: str) -> Optional[Tuple[float, ...]]:
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise BandNormalizationError(f'band_normalization.{what} must be a list of numbers, one per band, '
                                     f'not {values!r}')
    return tuple(float(v) for v in values)


def unknown_option_keys(spec: Mapping[Any, Any]) -> Dict[str, str]:
    """For each key of a ``band_normalization`` mapping that is not an option, the sentence naming it
    with the closest option (the option checker lists them all, :meth:`BandNormalization.from_options`
    refuses the first)."""
    unknown = {}
    for key in spec:
        if key not in OPTION_KEYS:
            close = closest_names(str(key), OPTION_KEYS, n=1)
            hint = f'; did you mean {close[0]!r}?' if close else f'; valid: {", ".join(OPTION_KEYS)}'
            unknown[str(key)] = f'band_normalization.{key} is not an option{hint}'
    return unknown


@dataclass(frozen=True)
class BandNormalization:
    """How inputs are normalised: ``mode``, dataset ``mean``/``std`` (physical units, one per band),
    ``residual`` over bicubic, ``eps`` floor for std, and ``source`` (where the statistics came from)."""

    mode: str = 'none'
    mean: Optional[Tuple[float, ...]] = None
    std: Optional[Tuple[float, ...]] = None
    residual: str = 'none'
    eps: float = DEFAULT_EPS
    source: str = ''

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise BandNormalizationError(f'band_normalization.mode must be one of {", ".join(MODES)}, '
                                         f'not {self.mode!r}')
        if self.residual not in RESIDUALS:
            raise BandNormalizationError(f'band_normalization.residual must be one of {", ".join(RESIDUALS)}, '
                             f'not {self.residual!r}')
        if (self.mean is None) != (self.std is None):
            raise BandNormalizationError('band_normalization needs both mean and std, or neither (then they are '
                                         'computed from datasets.train)')
        if self.mean is not None:
            if self.mode != 'dataset':
                raise BandNormalizationError(f'band_normalization.mean/std are only used with mode: dataset, '
                                             f'not mode: {self.mode}')
            if len(self.mean) != len(self.std):
                raise BandNormalizationError(f'band_normalization.mean has {len(self.mean)} values but std has '
                                             f'{len(self.std)}')
            if min(self.std) <= 0:
                raise BandNormalizationError(f'band_normalization.std must be positive, got {list(self.std)}')
        if self.eps <= 0:
            raise BandNormalizationError(f'band_normalization.eps must be positive, got {self.eps}')

    @classmethod
    def from_options(cls, spec: Optional[Mapping[str, Any]]) -> 'BandNormalization':
        """From the YAML mapping (None or missing keys: defaults); unknown keys are errors."""
        if spec is None:
            return cls()
        if not isinstance(spec, Mapping):
            raise BandNormalizationError(f'band_normalization must be a mapping (mode:, mean:, std:, residual:), '
                                         f'not {spec!r}')
        unknown = unknown_option_keys(spec)
        if unknown:
            raise BandNormalizationError(next(iter(unknown.values())))
        return cls(mode=str(spec.get('mode', 'none')), mean=_floats(spec.get('mean'), 'mean'),
                   std=_floats(spec.get('std'), 'std'), residual=str(spec.get('residual', 'none')),
                   eps=float(spec.get('eps', DEFAULT_EPS)), source='options' if spec.get('mean') is not None else '')

    @classmethod
    def from_metadata(cls, metadata: Optional[Mapping[str, Any]]) -> 'BandNormalization':
        """From a checkpoint's stored entry (None: no normalisation)."""
        if metadata is None:
            return cls()
        known = {key: metadata[key] for key in (*OPTION_KEYS, 'source') if key in metadata}
        return replace(cls.from_options({k: v for k, v in known.items() if k != 'source'}),
                       source=str(known.get('source', 'checkpoint')))

    def to_metadata(self) -> dict:
        """Plain, JSON-able entry stored with checkpoints."""
        return {'mode': self.mode, 'mean': None if self.mean is None else list(self.mean),
                'std': None if self.std is None else list(self.std), 'residual': self.residual,
                'eps': self.eps, 'source': self.source}

    def with_statistics(self, mean: Sequence[float], std: Sequence[float], source: str) -> 'BandNormalization':
        return replace(self, mean=tuple(float(v) for v in mean), std=tuple(float(v) for v in std), source=source)

    @property
    def is_identity(self) -> bool:
        """True when the network sees and returns physical values unchanged."""
        return self.mode == 'none' and self.residual == 'none'

    @property
    def needs_statistics(self) -> bool:
        """True for mode dataset without mean/std yet."""
        return self.mode == 'dataset' and self.mean is None

    def describe(self) -> str:
        """One line for logs, ``rssr.info --weights`` and model cards."""
        if self.is_identity:
            return 'none (the network sees physical values)'
        parts = [f'mode {self.mode}']
        if self.mode == 'dataset' and self.mean is not None:
            parts.append('mean [' + ', '.join(f'{v:.6g}' for v in self.mean) + ']')
            parts.append('std [' + ', '.join(f'{v:.6g}' for v in self.std) + ']')
        if self.mode == 'image':
            parts.append('mean/std of each input (of the whole scene in rssr.infer)')
        if self.mode != 'none':
            parts.append(f'std floor {self.eps:g}')
        parts.append(f'residual {self.residual}')
        if self.source:
            parts.append(f'statistics from {self.source}')
        return ', '.join(parts)


def masked_band_statistics(x: Tensor, valid: Optional[Tensor], eps: float) -> Statistics:
    """Per-sample, per-band mean and std (population) of (N, C, H, W) ``x`` over pixels where ``valid``
    (N, 1, H, W) is nonzero; std floored at ``eps``. Samples without a valid pixel get mean 0."""
    x = x.float()
    weight = torch.ones_like(x[:, :1]) if valid is None else (valid > 0.5).to(x.dtype)
    count = weight.sum(dim=(2, 3), keepdim=True).clamp(min=1.0)
    mean = (x * weight).sum(dim=(2, 3), keepdim=True) / count
    variance = (((x - mean) ** 2) * weight).sum(dim=(2, 3), keepdim=True) / count
    return mean, variance.sqrt().clamp(min=eps)


class BandNormalizedSR(ArchWrapper):
    """``net`` between per-band normalisation and its inverse, optionally predicting a bicubic residual.

    ``forward(lq, valid=None)`` takes and returns physical values; ``valid`` (N, 1, h, w) marks LR
    pixels that are not nodata: they alone enter per-image statistics. Nodata pixels must arrive
    filled in (:func:`rssr.io.fill_nodata`, as rssr's datasets and ``rssr.infer`` read them), so that
    the network sees no false edge around them. Training uses the steps separately
    (:meth:`statistics`, :meth:`normalize`, :meth:`predict_normalized`, :meth:`denormalize`) to put
    the pixel loss in normalised space and spectral losses on physical values.
    """

    def __init__(self, net: nn.Module, normalization: BandNormalization,
                 fixed_statistics: Optional[Statistics] = None) -> None:
        if normalization.needs_statistics and fixed_statistics is None:
            raise BandNormalizationError('band_normalization mode dataset has no mean/std: give them in the options, '
                                         'compute them with scripts/compute_band_stats.py, or train (they are '
                                         'computed from datasets.train at the start)')
        super().__init__(net)
        self.normalization = normalization
        self.fixed_statistics = fixed_statistics

    def with_statistics(self, mean: Tensor, std: Tensor) -> 'BandNormalizedSR':
        """The same network with fixed statistics (N or 1, C, 1, 1), e.g. those of a whole scene, so that
        every tile or partition of it is normalised alike."""
        return BandNormalizedSR(self.net, self.normalization, (mean, std.clamp(min=self.normalization.eps)))

    def statistics(self, lq: Tensor, valid: Optional[Tensor] = None) -> Optional[Statistics]:
        """(mean, std) applied to ``lq`` (N, C, h, w): fixed, the dataset's, or ``lq``'s own; None for mode none."""
        if self.fixed_statistics is not None:
            mean, std = self.fixed_statistics
            return mean.to(lq.device, torch.float32), std.to(lq.device, torch.float32)
        if self.normalization.mode == 'none':
            return None
        if self.normalization.mode == 'image':
            return masked_band_statistics(lq, valid, self.normalization.eps)
        shape = (1, len(self.normalization.mean), 1, 1)
        mean = torch.tensor(self.normalization.mean, device=lq.device, dtype=torch.float32).view(shape)
        std = torch.tensor(self.normalization.std, device=lq.device, dtype=torch.float32).view(shape)
        return mean, std.clamp(min=self.normalization.eps)

    @staticmethod
    def normalize(x: Tensor, statistics: Optional[Statistics]) -> Tensor:
        """(x - mean) / std."""
        if statistics is None:
            return x
        if statistics[0].shape[1] != x.shape[1]:
            raise BandNormalizationError(f'band_normalization has statistics for {statistics[0].shape[1]} bands but '
                                         f'the input has {x.shape[1]} bands')
        return (x - statistics[0]) / statistics[1]

    @staticmethod
    def denormalize(x: Tensor, statistics: Optional[Statistics]) -> Tensor:
        """x * std + mean: back to physical values."""
        return x if statistics is None else x * statistics[1] + statistics[0]

    def predict_normalized(self, lq_normalized: Tensor) -> Tensor:
        """The network's output in normalised space (plus the bicubic upsampling with residual: bicubic)."""
        output = self.net(lq_normalized)
        if self.normalization.residual == 'bicubic':  # in float32, also under autocast
            output = output.float() + F.interpolate(lq_normalized.float(), size=output.shape[-2:], mode='bicubic',
                                                    align_corners=False)
        return output

    def forward(self, lq: Tensor, valid: Optional[Tensor] = None) -> Tensor:
        statistics = self.statistics(lq, valid)
        output = self.predict_normalized(self.normalize(lq, statistics))
        return self.denormalize(output.float() if statistics is not None else output, statistics)


def resolve_band_normalization(spec: Optional[Mapping[str, Any]], stored: Optional[Mapping[str, Any]]
                               ) -> BandNormalization:
    """The options' ``band_normalization`` (``spec``), else the checkpoint's (``stored``); mode dataset
    without mean/std in the options takes them from the checkpoint when it has them (else the result
    still :attr:`~BandNormalization.needs_statistics`)."""
    from_checkpoint = BandNormalization.from_metadata(stored)
    if spec is None:
        return from_checkpoint
    normalization = BandNormalization.from_options(spec)
    if not from_checkpoint.is_identity and \
            (from_checkpoint.mode, from_checkpoint.residual) != (normalization.mode, normalization.residual):
        warnings.warn(f'band_normalization of the options (mode {normalization.mode}, residual '
                      f'{normalization.residual}) differs from the one stored with the weights '
                      f'({from_checkpoint.describe()}); the options win')
    if normalization.needs_statistics and from_checkpoint.mode == 'dataset' and from_checkpoint.mean is not None:
        return normalization.with_statistics(from_checkpoint.mean, from_checkpoint.std, from_checkpoint.source)
    return normalization


def with_normalization(net: nn.Module, normalization: BandNormalization) -> nn.Module:
    """``net`` wrapped in :class:`BandNormalizedSR`, or ``net`` itself when the normalisation is the identity."""
    return net if normalization.is_identity else BandNormalizedSR(net, normalization)


__all__ = ['BandNormalization', 'BandNormalizationError', 'BandNormalizedSR', 'masked_band_statistics',
           'resolve_band_normalization', 'with_normalization', 'METADATA_KEY', 'MODES', 'RESIDUALS']
