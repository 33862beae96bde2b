"""The losses of the Rep-Mamba code: Laplacian edge loss, FFT loss, and Charbonnier via BasicSR."""
import numpy as np
import pytest
import torch

import rssr  # noqa: F401  (registers the losses into BasicSR)
from rssr.losses.edge_frequency import FFTLoss, LaplacianEdgeLoss, laplacian_residual

DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.cuda)]  # the 'cpu' case is each CUDA case's twin


def _laplacian_residual_by_loops(image: np.ndarray) -> np.ndarray:
    """Independent reference for one (H, W) band: explicit 5x5 correlation with edge padding."""
    taps = np.array([0.05, 0.25, 0.4, 0.25, 0.05])
    kernel = np.outer(taps, taps)

    def blur(x):
        padded = np.pad(x, 2, mode='edge')
        out = np.zeros_like(x)
        for i in range(x.shape[0]):
            for j in range(x.shape[1]):
                out[i, j] = (padded[i:i + 5, j:j + 5] * kernel).sum()
        return out

    blurred = blur(image)
    upsampled = np.zeros_like(blurred)
    upsampled[::2, ::2] = 4 * blurred[::2, ::2]
    return image - blur(upsampled)


@pytest.mark.parametrize('device', DEVICES)
def test_laplacian_edge_loss_against_loops(device):
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 4, 7, 6, generator=generator, dtype=torch.float64)
    target = torch.rand(2, 4, 7, 6, generator=generator, dtype=torch.float64)
    residual = np.stack([[_laplacian_residual_by_loops(band) for band in image] for image in pred.numpy()])
    assert np.allclose(laplacian_residual(pred.to(device)).cpu().numpy(), residual, atol=1e-12)
    diff = residual - np.stack([[_laplacian_residual_by_loops(b) for b in image] for image in target.numpy()])
    expected = 0.5 * np.sqrt(diff ** 2 + 1e-6).mean()
    loss = LaplacianEdgeLoss(loss_weight=0.5)(pred.to(device), target.to(device))
    assert loss.device.type == device
    assert loss.item() == pytest.approx(expected, rel=1e-10)


def test_laplacian_edge_loss_hand_values():
    image = torch.rand(1, 3, 6, 6)
    # identical images: only the Charbonnier epsilon remains
    assert LaplacianEdgeLoss()(image, image).item() == pytest.approx(1e-3, rel=1e-6)
    # a constant image has a zero Laplacian residual away from the 2-pixel replicate border ...
    residual = laplacian_residual(torch.full((1, 1, 12, 12), 0.7, dtype=torch.float64))
    assert residual[..., 4:-4, 4:-4].abs().max() < 1e-12
    # ... so a constant offset between images costs only near the borders, far below the offset
    assert LaplacianEdgeLoss(eps=0)(image, image + 0.3).item() < 0.3


def test_edge_loss_gradient_flows():
    pred = torch.rand(1, 3, 8, 8, requires_grad=True)
    LaplacianEdgeLoss()(pred, torch.rand(1, 3, 8, 8)).backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0


@pytest.mark.parametrize('device', DEVICES)
def test_fft_loss_hand_values(device):
    zeros = torch.zeros(1, 1, 4, 4, device=device)
    half = torch.full((1, 1, 4, 4), 0.5, device=device)
    # FFT2 of a constant 0.5 on 4 x 4 is 8 at DC and 0 elsewhere
    assert FFTLoss()(zeros, half).item() == pytest.approx(8 / 16)  # mean over 16 moduli
    assert FFTLoss(criterion='real_imag')(zeros, half).item() == pytest.approx(8 / 24)  # 4 x 3 bins, re + im
    # a unit impulse has a flat spectrum of modulus 1
    impulse = torch.zeros(1, 1, 4, 4, device=device)
    impulse[..., 0, 0] = 1
    assert FFTLoss(loss_weight=0.1)(zeros, impulse).item() == pytest.approx(0.1)
    assert FFTLoss(reduction='sum')(zeros, impulse).item() == pytest.approx(16)


def test_fft_loss_against_numpy():
    generator = torch.Generator().manual_seed(1)
    pred, target = torch.rand(2, 4, 5, 6, generator=generator), torch.rand(2, 4, 5, 6, generator=generator)
    p, t = pred.double().numpy(), target.double().numpy()
    expected_modulus = np.abs(np.fft.fft2(p) - np.fft.fft2(t)).mean()
    diff = np.fft.rfft2(p) - np.fft.rfft2(t)
    expected_real_imag = np.concatenate([np.abs(diff.real), np.abs(diff.imag)]).mean()
    assert FFTLoss()(pred, target).item() == pytest.approx(expected_modulus, rel=1e-5)
    assert FFTLoss(criterion='real_imag')(pred, target).item() == pytest.approx(expected_real_imag, rel=1e-5)


def test_official_charbonnier_is_basicsr_charbonnier_with_eps_squared():
    from basicsr.losses import build_loss
    charbonnier = build_loss({'type': 'CharbonnierLoss', 'eps': 1e-6})  # official eps 1e-3, squared
    pred = torch.zeros(1, 1, 1, 2)
    target = torch.tensor([[[[0.0, 0.003]]]])
    expected = (1e-3 + np.sqrt(0.003 ** 2 + 1e-6)) / 2  # mean of sqrt(d^2 + 1e-3^2)
    assert charbonnier(pred, target).item() == pytest.approx(expected, rel=1e-5)


def test_losses_build_from_options_and_reject_bad_ones():
    from basicsr.losses import build_loss
    assert isinstance(build_loss({'type': 'LaplacianEdgeLoss', 'loss_weight': 0.05}), LaplacianEdgeLoss)
    assert build_loss({'type': 'FFTLoss', 'loss_weight': 0.1, 'criterion': 'real_imag'}).criterion == 'real_imag'
    with pytest.raises(ValueError, match="criterion must be one of \\('modulus', 'real_imag'\\)"):
        FFTLoss(criterion='phase')
    with pytest.raises(ValueError, match='reduction must be one of'):
        LaplacianEdgeLoss(reduction='max')
    with pytest.raises(ValueError, match=r'prediction \(1, 3, 4, 4\) and target \(1, 3, 4, 5\) differ'):
        FFTLoss()(torch.zeros(1, 3, 4, 4), torch.zeros(1, 3, 4, 5))
