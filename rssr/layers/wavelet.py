"""One-level 2-D Haar wavelet transform with pytorch_wavelets' conventions, without the package.

``HaarDWT`` matches ``pytorch_wavelets.DWTForward(J=1, wave='haar', mode='zero')`` and
``HaarIDWT`` matches ``DWTInverse(wave='haar', mode='zero')``: same persistent filter buffers
(so checkpoints holding them load with ``strict=True``), same outputs, same band layout.

Conventions kept from pytorch_wavelets:
- the analysis buffers hold the *reversed* pywt decomposition filters (h0 = [s, s],
  h1 = [s, -s], s = 1/sqrt(2)) and are applied as a cross-correlation; synthesis buffers hold the
  reconstruction filters and are applied as a transposed convolution;
- ``*_col`` buffers (shape (1, 1, 2, 1)) filter along the **width** and ``*_row`` buffers (shape
  (1, 1, 1, 2)) along the **height** (the package passes them to its 2-D kernels in swapped roles);
- forward returns ``(yl, [yh])``: yl (B, C, H', W'), yh (B, C, 3, H', W') with the bands
  [height high-pass, width high-pass, both high-pass]; odd sides are zero-padded at the end.

Both transforms build four 2x2 kernels as outer products of the buffers and run one strided
(transposed) convolution, so a checkpoint's buffer values are honoured exactly.
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_HAAR_TAP = 1.0 / math.sqrt(2.0)


def _band_kernels(height_low: Tensor, height_high: Tensor, width_low: Tensor, width_high: Tensor) -> Tensor:
    """Four (1, 2, 2) kernels, one per band [LL, height-high, width-high, both-high]: outer products of taps."""
    pairs = ((height_low, width_low), (height_high, width_low), (height_low, width_high), (height_high, width_high))
    return torch.stack([along_h.reshape(2, 1) * along_w.reshape(1, 2) for along_h, along_w in pairs]).unsqueeze(1)


class _HaarFilters(nn.Module):
    """Holds four 2-tap filters as pytorch_wavelets' persistent buffers ``{prefix}{0,1}_{col,row}``."""

    def __init__(self, prefix: str, low: Tuple[float, float], high: Tuple[float, float]) -> None:
        super().__init__()
        self._prefix = prefix
        for band, taps in (('0', low), ('1', high)):
            self.register_buffer(f'{prefix}{band}_col', torch.tensor(taps).reshape(1, 1, 2, 1))
            self.register_buffer(f'{prefix}{band}_row', torch.tensor(taps).reshape(1, 1, 1, 2))

    def kernels(self, dtype: torch.dtype) -> Tensor:
        """(4, 1, 2, 2) kernels: ``*_row`` taps along the height, ``*_col`` taps along the width."""
        taps = {name: getattr(self, self._prefix + name).to(dtype) for name in ('0_row', '1_row', '0_col', '1_col')}
        return _band_kernels(taps['0_row'], taps['1_row'], taps['0_col'], taps['1_col'])

    def extra_repr(self) -> str:
        return "wave='haar', mode='zero'"


class HaarDWT(_HaarFilters):
    """One-level 2-D Haar analysis: x (B, C, H, W) -> (yl, [yh]) as pytorch_wavelets' DWTForward(J=1)."""

    def __init__(self) -> None:
        super().__init__('h', low=(_HAAR_TAP, _HAAR_TAP), high=(_HAAR_TAP, -_HAAR_TAP))

    def forward(self, x: Tensor) -> Tuple[Tensor, List[Tensor]]:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, w % 2, 0, h % 2))
        # The stride-2 2x2 correlation as four multiply-adds of the polyphase components (a single-channel
        # convolution over B*C images is many times slower on CPU).
        kernels = self.kernels(x.dtype)
        bands = sum(kernels[:, 0, row, col].view(4, 1, 1) * x[..., row::2, col::2].unsqueeze(-3)
                    for row in range(2) for col in range(2))
        return bands[:, :, 0], [bands[:, :, 1:]]


class HaarIDWT(_HaarFilters):
    """One-level 2-D Haar synthesis: (yl, [yh]) -> x (B, C, 2H', 2W') as pytorch_wavelets' DWTInverse."""

    def __init__(self) -> None:
        super().__init__('g', low=(_HAAR_TAP, _HAAR_TAP), high=(_HAAR_TAP, -_HAAR_TAP))

    def forward(self, coeffs: Tuple[Tensor, List[Tensor]]) -> Tensor:
        low, (high,) = coeffs
        b, c, h, w = low.shape
        bands = torch.cat([low.unsqueeze(2), high], dim=2).reshape(b * c, 4, h, w)
        x = F.conv_transpose2d(bands, self.kernels(low.dtype), stride=2)
        return x.reshape(b, c, 2 * h, 2 * w)
