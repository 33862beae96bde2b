"""Edge and frequency-domain pixel losses defined in the Rep-Mamba code (none is used by its
published training run, which trains with plain L1; they are offered for experiments).

* :class:`LaplacianEdgeLoss`: Charbonnier distance between the Laplacian-pyramid residuals
  (x - G(up(down(G(x))))) of output and target (the MPRNet ``EdgeLoss`` that Rep-Mamba ships).
* :class:`FFTLoss`: distance between 2-D Fourier spectra, in the two forms the Rep-Mamba code has.

The Charbonnier loss itself is BasicSR's ``CharbonnierLoss``: the official ``sqrt(d^2 + eps^2)`` with
eps = 1e-3 is BasicSR's ``sqrt(d^2 + eps)`` with ``eps: 1.0e-6``, so no second one is registered.

Both losses work for any band count, dtype and device (kernels are built on the input's device).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rssr.registry import register_loss

REDUCTIONS = ('none', 'mean', 'sum')
_BINOMIAL_5 = (0.05, 0.25, 0.4, 0.25, 0.05)


def _reduce(loss: Tensor, reduction: str) -> Tensor:
    if reduction == 'mean':
        return loss.mean()
    if reduction == 'sum':
        return loss.sum()
    return loss


def _check_reduction(owner: str, reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f'{owner}: reduction must be one of {REDUCTIONS}, got {reduction!r}')


def _check_shapes(owner: str, pred: Tensor, target: Tensor) -> None:
    if pred.shape != target.shape:
        raise ValueError(f'{owner}: prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ in shape')


def gaussian_blur_5x5(x: Tensor) -> Tensor:
    """Depthwise 5x5 blur with the separable kernel [.05, .25, .4, .25, .05], replicate padding."""
    taps = torch.tensor(_BINOMIAL_5, dtype=x.dtype, device=x.device)
    kernel = torch.outer(taps, taps).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode='replicate'), kernel, groups=x.shape[1])


def laplacian_residual(x: Tensor) -> Tensor:
    """x minus its blurred, 2x decimated, zero-insertion upsampled (x4 gain) and re-blurred self."""
    blurred = gaussian_blur_5x5(x)
    upsampled = torch.zeros_like(blurred)
    upsampled[..., ::2, ::2] = blurred[..., ::2, ::2] * 4
    return x - gaussian_blur_5x5(upsampled)


@register_loss()
class LaplacianEdgeLoss(nn.Module):
    """Charbonnier distance sqrt(d^2 + eps^2) between Laplacian residuals of pred and target.

    Args:
        loss_weight: multiplier of the loss.
        eps: Charbonnier epsilon (official 1e-3; it is squared).
        reduction: 'mean' (official), 'sum' or 'none'.
    """

    def __init__(self, loss_weight: float = 1.0, eps: float = 1e-3, reduction: str = 'mean') -> None:
        super().__init__()
        _check_reduction('LaplacianEdgeLoss', reduction)
        self.loss_weight, self.eps, self.reduction = loss_weight, eps, reduction

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes('LaplacianEdgeLoss', pred, target)
        diff = laplacian_residual(pred) - laplacian_residual(target)
        return self.loss_weight * _reduce(torch.sqrt(diff * diff + self.eps ** 2), self.reduction)


@register_loss()
class FFTLoss(nn.Module):
    """Distance between the 2-D FFTs (over H, W) of pred and target, per band.

    Args:
        loss_weight: multiplier of the loss (Rep-Mamba's train.py uses 0.1).
        criterion: 'modulus': |FFT2(pred) - FFT2(target)| (complex modulus, full spectrum; the
            ``fftLoss`` of losses.py); 'real_imag': L1 over the real and imaginary parts of the
            one-sided rFFT2 (the ``FFTLoss`` of train.py).
        reduction: 'mean' (official), 'sum' or 'none'.
    """

    CRITERIA = ('modulus', 'real_imag')

    def __init__(self, loss_weight: float = 1.0, criterion: str = 'modulus', reduction: str = 'mean') -> None:
        super().__init__()
        if criterion not in self.CRITERIA:
            raise ValueError(f'FFTLoss: criterion must be one of {self.CRITERIA}, got {criterion!r}')
        _check_reduction('FFTLoss', reduction)
        self.loss_weight, self.criterion, self.reduction = loss_weight, criterion, reduction

    def forward(self, pred: Tensor, target: Tensor, **kwargs) -> Tensor:
        _check_shapes('FFTLoss', pred, target)
        pred, target = pred.float(), target.float()  # half-precision FFTs need power-of-two sizes
        if self.criterion == 'modulus':
            loss = torch.abs(torch.fft.fft2(pred) - torch.fft.fft2(target))
        else:
            diff = torch.fft.rfft2(pred) - torch.fft.rfft2(target)
            loss = torch.stack([diff.real.abs(), diff.imag.abs()], dim=-1)
        return self.loss_weight * _reduce(loss, self.reduction)
