"""RatioIndexLoss, SAMLoss and RelativeL1Loss against hand-computed values, their gradients and their errors."""
import math

import pytest
import torch

import rssr  # noqa: F401  (registers the losses into BasicSR)
from rssr.losses.spectral import RatioIndexLoss, RelativeL1Loss, SAMLoss, normalized_difference

BGRN = ['blue', 'green', 'red', 'nir']


def image(*bands):
    """(1, C, 1, P) image from per-band pixel lists."""
    return torch.tensor([[[list(band)] for band in bands]], dtype=torch.float32)


# pixel 0: vegetation, pixel 1: water
PRED = image([0.05, 0.06], [0.10, 0.08], [0.10, 0.05], [0.50, 0.03])
TARGET = image([0.05, 0.06], [0.08, 0.09], [0.20, 0.04], [0.40, 0.01])


def test_ndvi_l1_and_l2_match_hand_computation():
    # NDVI pred: 0.4/0.6, -0.02/0.08; target: 0.2/0.6, -0.03/0.05
    diffs = [0.4 / 0.6 - 0.2 / 0.6, -0.02 / 0.08 - (-0.03 / 0.05)]
    l1 = RatioIndexLoss(indices=['NDVI'], band_order=BGRN)(PRED, TARGET)
    l2 = RatioIndexLoss(indices=['NDVI'], band_order=BGRN, criterion='l2', loss_weight=0.5)(PRED, TARGET)
    assert l1.item() == pytest.approx(sum(abs(d) for d in diffs) / 2, abs=1e-6)
    assert l2.item() == pytest.approx(0.5 * sum(d * d for d in diffs) / 2, abs=1e-6)


def test_indices_are_averaged_and_pairs_resolve_like_names():
    ndwi_pred = [(0.10 - 0.50) / 0.60, (0.08 - 0.03) / 0.11]
    ndwi_target = [(0.08 - 0.40) / 0.48, (0.09 - 0.01) / 0.10]
    ndvi = RatioIndexLoss(indices=['NDVI'], band_order=BGRN)(PRED, TARGET).item()
    ndwi = sum(abs(p - t) for p, t in zip(ndwi_pred, ndwi_target)) / 2
    both = RatioIndexLoss(indices=['ndvi', 'NDWI'], band_order=BGRN)(PRED, TARGET).item()
    assert both == pytest.approx((ndvi + ndwi) / 2, abs=1e-6)
    by_name = RatioIndexLoss(indices=[['nir', 'red'], ['green', 'nir']], band_order=BGRN)(PRED, TARGET)
    by_channel = RatioIndexLoss(indices=[[3, 2], [1, 3]])(PRED, TARGET)
    assert by_name.item() == pytest.approx(both, abs=1e-7) and by_channel.item() == pytest.approx(both, abs=1e-7)


def test_all_named_indices_on_six_bands():
    bands = ['blue', 'green', 'red', 'nir', 'swir1', 'swir2']
    loss = RatioIndexLoss(indices=['NDVI', 'NDWI', 'NDBI', 'MNDWI', 'NGRDI'], band_order=bands)
    assert loss.band_pairs == [(3, 2), (1, 3), (4, 3), (1, 4), (1, 2)]
    x = torch.rand(2, 6, 5, 7) + 0.01
    assert loss(x, x).item() == 0.


def test_global_scale_cancels_and_offsets_are_undone():
    loss = RatioIndexLoss(band_order=BGRN)
    reference = loss(PRED, TARGET)
    assert loss(PRED * 10000, TARGET * 10000).item() == pytest.approx(reference.item(), abs=1e-5)
    shift = torch.tensor([0.1, 0.2, 0.3, 0.4]).view(1, 4, 1, 1)
    undone = RatioIndexLoss(band_order=BGRN, scale=2., offset=shift.flatten().tolist())
    assert undone((PRED - shift) / 2, (TARGET - shift) / 2).item() == pytest.approx(reference.item(), abs=1e-6)
    assert loss(PRED + shift, TARGET + shift).item() != pytest.approx(reference.item(), abs=1e-3)


def test_gradient_reaches_pred_only():
    pred, target = PRED.clone().requires_grad_(), TARGET.clone().requires_grad_()
    RatioIndexLoss(band_order=BGRN)(pred, target).backward()
    assert pred.grad.abs().sum() > 0 and target.grad is None
    assert pred.grad[:, 0].abs().sum() == 0  # blue is in no index


def test_finite_gradients_at_zero_denominators():
    pred = torch.zeros(1, 4, 2, 3, requires_grad=True)
    target = torch.rand(1, 4, 2, 3)
    target[..., 0, :] = 0  # a row of all-zero (nodata-like) target pixels
    loss = RatioIndexLoss(band_order=BGRN)(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    assert pred.grad[..., 0, :].abs().sum() == 0  # undefined target index: pixel left out
    a, b = torch.zeros(3, requires_grad=True), torch.tensor([0., 1e-9, -1e-9])
    normalized_difference(a, b).sum().backward()
    assert torch.isfinite(a.grad).all()


def test_zero_target_everywhere_gives_zero_loss():
    pred = torch.rand(1, 4, 3, 3, requires_grad=True)
    loss = RatioIndexLoss(band_order=BGRN)(pred, torch.zeros(1, 4, 3, 3))
    loss.backward()
    assert loss.item() == 0 and torch.isfinite(pred.grad).all()


def test_nodata_and_weight_masks():
    loss = RatioIndexLoss(indices=['NDVI'], band_order=BGRN)
    first_only = loss(PRED[..., :1], TARGET[..., :1]).item()
    target = TARGET.clone()
    target[0, 2, 0, 1] = -1  # red nodata in pixel 1
    assert RatioIndexLoss(indices=['NDVI'], band_order=BGRN, nodata=-1)(PRED, target).item() == \
        pytest.approx(first_only, abs=1e-7)
    weight = torch.tensor([1., 0.]).view(1, 1, 1, 2)
    assert loss(PRED, TARGET, weight).item() == pytest.approx(first_only, abs=1e-7)
    band_weight = torch.ones(1, 4, 1, 2)
    band_weight[0, 0, 0, 0] = 0  # blue masked: NDVI unaffected
    assert loss(PRED, TARGET, band_weight).item() == pytest.approx(loss(PRED, TARGET).item(), abs=1e-7)


def test_missing_band_error_names_index_and_band():
    with pytest.raises(ValueError, match=r"NDVI needs band 'nir'.*\['red', 'green', 'blue'\]"):
        RatioIndexLoss(indices=['NDVI'], band_order=['red', 'green', 'blue'])
    with pytest.raises(ValueError, match='set band_order'):
        RatioIndexLoss(indices=['NDWI'])
    with pytest.raises(ValueError, match=r"unknown index 'EVI'.*NDVI"):
        RatioIndexLoss(indices=['EVI'], band_order=BGRN)
    with pytest.raises(ValueError, match='need 4 bands .* images have 3'):
        RatioIndexLoss(band_order=BGRN)(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))
    with pytest.raises(ValueError, match="criterion must be 'l1' or 'l2'"):
        RatioIndexLoss(band_order=BGRN, criterion='huber')


def test_sam_matches_hand_computed_angles():
    pred = image([1., 1., 1., 1.], [0., 1., 2., 1.], [0., 0., 2., 1.])
    target = image([0., 1., 2., 2.], [1., 0., 1., 2.], [0., 0., 2., 2.])
    expected = [math.pi / 2, math.pi / 4, math.acos(8 / 9), 0.]
    angles = SAMLoss(reduction='none')(pred, target).flatten().tolist()
    assert angles == pytest.approx(expected, abs=1e-5)
    assert SAMLoss(loss_weight=2.)(pred, target).item() == pytest.approx(2 * sum(expected) / 4, abs=1e-5)
    weight = torch.tensor([1., 0., 0., 0.]).view(1, 1, 1, 4)
    assert SAMLoss()(pred, target, weight).item() == pytest.approx(math.pi / 2, abs=1e-6)


def test_sam_gradients_finite_for_identical_and_zero_spectra():
    target = torch.rand(1, 4, 3, 3)
    for pred in (target.clone(), torch.zeros(1, 4, 3, 3), 3 * target):
        pred.requires_grad_()
        loss = SAMLoss()(pred, target)
        loss.backward()
        assert loss.item() < 1e-5 and torch.isfinite(pred.grad).all()


def test_losses_build_from_basicsr_options():
    from basicsr.losses import build_loss
    loss = build_loss({'type': 'RatioIndexLoss', 'loss_weight': 0.1, 'indices': ['NDVI', 'NDWI'],
                       'band_order': BGRN, 'criterion': 'l1'})
    assert loss(PRED, TARGET).item() == pytest.approx(0.1 * RatioIndexLoss(band_order=BGRN)(PRED, TARGET).item())
    assert isinstance(build_loss({'type': 'SAMLoss', 'loss_weight': 1.0}), SAMLoss)
    relative = build_loss({'type': 'RelativeL1Loss', 'loss_weight': 2.0, 'eps': 0.02})
    assert relative(PRED, TARGET).item() == pytest.approx(2 * RelativeL1Loss(eps=0.02)(PRED, TARGET).item())


def test_relative_l1_matches_hand_computation_per_band_then_mean():
    eps = 0.01
    per_band = [[abs(p - t) / (t + eps) for p, t in zip(pred, target)]
                for pred, target in zip(PRED[0, :, 0].tolist(), TARGET[0, :, 0].tolist())]
    expected = sum(sum(band) / 2 for band in per_band) / 4
    assert RelativeL1Loss(eps=eps)(PRED, TARGET).item() == pytest.approx(expected, rel=1e-6)
    assert RelativeL1Loss(loss_weight=0.5, eps=eps)(PRED, TARGET).item() == pytest.approx(0.5 * expected, rel=1e-6)
    unreduced = RelativeL1Loss(eps=eps, reduction='none')(PRED, TARGET)
    assert unreduced.flatten().tolist() == pytest.approx(sum(per_band, []), rel=1e-6)
    assert RelativeL1Loss(eps=eps, reduction='sum')(PRED, TARGET).item() == pytest.approx(
        sum(map(sum, per_band)), rel=1e-6)


def test_relative_l1_weighs_dark_pixels_up():
    # the same absolute error costs more on water (target 0.02) than on vegetation (target 0.4)
    target = image([0.4, 0.02])
    water_error = RelativeL1Loss()(target + torch.tensor([0., 0.01]).view(1, 1, 1, 2), target).item()
    land_error = RelativeL1Loss()(target + torch.tensor([0.01, 0.]).view(1, 1, 1, 2), target).item()
    assert water_error == pytest.approx(0.01 / 0.03 / 2, rel=1e-6)
    assert land_error == pytest.approx(0.01 / 0.41 / 2, rel=1e-6)


def test_relative_l1_gradients_bounded_and_target_untouched():
    pred = torch.tensor([[[[0.5, 0.0, -0.1]]]], requires_grad=True)
    target = torch.tensor([[[[0.0, 0.0, 0.3]]]], requires_grad=True)
    eps = 0.01
    RelativeL1Loss(eps=eps)(pred, target).backward()
    assert pred.grad.flatten().tolist() == pytest.approx([1 / eps / 3, 0.0, -1 / (0.3 + eps) / 3], rel=1e-5)
    assert target.grad is None


def test_relative_l1_weight_masks_pixels_and_bands():
    loss = RelativeL1Loss()
    first_only = loss(PRED[..., :1], TARGET[..., :1]).item()
    assert loss(PRED, TARGET, torch.tensor([1., 0.]).view(1, 1, 1, 2)).item() == pytest.approx(first_only, rel=1e-6)
    band_weight = torch.ones(1, 4, 1, 2)
    band_weight[0, 3] = 0  # NIR masked: the mean over the other three bands
    three_bands = RelativeL1Loss()(PRED[:, :3], TARGET[:, :3]).item()
    assert loss(PRED, TARGET, band_weight).item() == pytest.approx(three_bands, rel=1e-6)


def test_relative_l1_errors_name_the_problem():
    with pytest.raises(ValueError, match='RelativeL1Loss: eps must be > 0'):
        RelativeL1Loss(eps=0)
    with pytest.raises(ValueError, match="RelativeL1Loss: reduction must be one of .*'median'"):
        RelativeL1Loss(reduction='median')
    with pytest.raises(ValueError, match='RelativeL1Loss: pred and target must both be'):
        RelativeL1Loss()(torch.rand(1, 4, 2, 2), torch.rand(1, 3, 2, 2))
    with pytest.raises(ValueError, match=r'loss weight must be \(B, 1, H, W\) or \(B, C, H, W\)'):
        RelativeL1Loss()(torch.rand(1, 4, 2, 2), torch.rand(1, 4, 2, 2), torch.ones(1, 2, 2, 2))
