"""rssr metrics against hand-computed values, torchmetrics, BasicSR, and each paper's protocol."""
import math

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import torchmetrics.functional.image as tmi

import rssr  # noqa: F401
from rssr.metrics.image_quality import (
    calculate_ergas,
    calculate_multiband_psnr,
    calculate_multiband_ssim,
    calculate_ndvi_error,
    calculate_rmse,
    calculate_sam,
    calculate_scc,
    calculate_uiqi,
    describe_metric,
)
from testkit import SENTINEL2

from basicsr.metrics import calculate_metric, calculate_psnr, calculate_ssim
from basicsr.utils import tensor2img
from basicsr.utils.matlab_functions import imresize


@pytest.fixture(scope='module')
def rgb_pair():
    """A fixed real pair: 64 x 64 crop of the Sentinel-2 RGB PNG and its x4 bicubic down/up version."""
    bgr = cv2.imread(str(SENTINEL2 / 'val_rgb.png'))[100:164, 200:264]
    gt = torch.from_numpy(bgr[..., ::-1].transpose(2, 0, 1).copy()).float()[None] / 255
    sr = imresize(imresize(gt[0], 0.25), 4)[None]
    return sr, gt


@pytest.fixture(scope='module')
def multiband_pair():
    g = torch.Generator().manual_seed(0)
    gt = 0.05 + 0.3 * torch.rand(2, 4, 32, 32, generator=g, dtype=torch.float64)
    sr = gt + 0.02 * torch.randn(2, 4, 32, 32, generator=g, dtype=torch.float64)
    return sr, gt


def test_hand_computed_values():
    gt = torch.full((1, 2, 4, 4), 0.5, dtype=torch.float64)
    assert calculate_multiband_psnr(gt + 0.1, gt, data_range=1.0) == pytest.approx(20.0)
    assert calculate_rmse(gt + 0.1, gt) == pytest.approx(0.1)
    assert calculate_multiband_psnr(gt, gt, data_range=1.0) == math.inf
    # SAM: spectra (1, 0) vs (1, 1) are 45 degrees apart everywhere
    a = torch.zeros(1, 2, 3, 3, dtype=torch.float64)
    a[:, 0] = 1
    assert calculate_sam(a, torch.ones_like(a)) == pytest.approx(45.0)
    # ERGAS: band RMSE 0.1 and 0.2, band means 0.5 and 1.0 -> 100/4 * sqrt((0.2^2 + 0.2^2) / 2) = 5
    ref = torch.stack([torch.full((4, 4), 0.5), torch.full((4, 4), 1.0)])[None].double()
    est = ref + torch.tensor([0.1, 0.2], dtype=torch.float64).view(1, 2, 1, 1)
    assert calculate_ergas(est, ref, scale=4) == pytest.approx(5.0)
    # NDVI: (0.5 - 0.1) / 0.6 vs (0.4 - 0.1) / 0.5
    sr = torch.tensor([0.1, 0.5], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    ref = torch.tensor([0.1, 0.4], dtype=torch.float64).view(1, 2, 1, 1).expand(1, 2, 3, 3)
    expected = abs(0.4 / 0.6 - 0.3 / 0.5)
    assert calculate_ndvi_error(sr, ref, red='B04', nir='B08', band_names=['B04', 'B08']) == pytest.approx(expected)
    identical = torch.rand(1, 3, 24, 24, dtype=torch.float64)
    assert calculate_multiband_ssim(identical, identical, data_range=1.0) == pytest.approx(1.0)
    assert calculate_uiqi(identical, identical) == pytest.approx(1.0)


def test_against_torchmetrics(multiband_pair):
    sr, gt = multiband_pair
    per_image = lambda f: torch.stack([f(sr[i:i + 1], gt[i:i + 1]) for i in range(2)]).mean().item()  # noqa: E731
    assert calculate_multiband_psnr(sr, gt, data_range=1.0) == pytest.approx(
        per_image(lambda a, b: tmi.peak_signal_noise_ratio(a, b, data_range=1.0)), abs=1e-5)  # tm: float32
    assert calculate_multiband_ssim(sr, gt, data_range=1.0, padding='reflect') == pytest.approx(
        tmi.structural_similarity_index_measure(sr, gt, data_range=1.0).item(), abs=1e-10)
    assert calculate_sam(sr, gt) == pytest.approx(math.degrees(tmi.spectral_angle_mapper(sr, gt).item()), abs=1e-9)
    assert calculate_ergas(sr, gt, scale=4) == pytest.approx(
        tmi.error_relative_global_dimensionless_synthesis(sr, gt, ratio=4).item(), abs=1e-10)
    assert calculate_scc(sr, gt) == pytest.approx(tmi.spatial_correlation_coefficient(sr, gt).item(), abs=1e-5)
    assert calculate_uiqi(sr, gt) == pytest.approx(tmi.universal_image_quality_index(sr, gt).item(), abs=1e-10)


def test_masked_pixels_are_left_out(multiband_pair):
    sr, gt = multiband_pair
    sr = sr.clone()
    sr[:, :, :12] = 5.0  # garbage where the mask says nodata
    mask = torch.ones(2, 1, 32, 32, dtype=torch.bool)
    mask[:, :, :12] = False
    for metric in (calculate_sam, calculate_rmse, calculate_uiqi):
        assert metric(sr, gt, mask=mask) == pytest.approx(metric(sr[..., 12:, :], gt[..., 12:, :]), abs=1e-10)
    assert calculate_multiband_ssim(sr, gt, data_range=1.0, mask=mask) == pytest.approx(
        calculate_multiband_ssim(sr[..., 12:, :], gt[..., 12:, :], data_range=1.0), abs=1e-10)
    assert calculate_ergas(sr, gt, scale=2, mask=mask) == pytest.approx(
        calculate_ergas(sr[..., 12:, :], gt[..., 12:, :], scale=2), abs=1e-10)


@pytest.mark.parametrize('protocol, y_channel', [('convmambasr', False), ('lstmconvsr', True), ('mambacsr', True)])
def test_basicsr_protocols_reproduce_basicsr_metrics(rgb_pair, protocol, y_channel):
    sr, gt = rgb_pair
    sr_img, gt_img = tensor2img(sr), tensor2img(gt)
    assert calculate_multiband_psnr(sr, gt, protocol=protocol) == pytest.approx(
        calculate_psnr(sr_img, gt_img, crop_border=4, test_y_channel=y_channel), abs=1e-5)
    assert calculate_multiband_ssim(sr, gt, protocol=protocol) == pytest.approx(
        calculate_ssim(sr_img, gt_img, crop_border=4, test_y_channel=y_channel), abs=1e-7)


def test_repmamba_protocol_reproduces_its_evaluation_script(rgb_pair):
    sr, gt = rgb_pair
    # PSNR: prediction x255 clipped, not rounded, vs the uint8 GT; RGB, no crop, range 255
    pred = (sr.double() * 255).clamp(0, 255)
    mse = ((pred - (gt.double() * 255).round()) ** 2).mean()
    assert calculate_multiband_psnr(sr, gt, protocol='repmamba') == pytest.approx(
        10 * math.log10(255 ** 2 / mse.item()), abs=1e-6)
    # SSIM: unclamped [0, 1] tensors, Gaussian 11/1.5, zero-padded 'same' convolution, C1 = 0.01^2
    window = torch.from_numpy(np.outer(*[cv2.getGaussianKernel(11, 1.5)] * 2)).view(1, 1, 11, 11).expand(3, 1, 11, 11)
    x, y = sr.double(), gt.double()
    conv = lambda t: F.conv2d(t, window, padding=5, groups=3)  # noqa: E731
    mx, my = conv(x), conv(y)
    vx, vy, cxy = conv(x * x) - mx ** 2, conv(y * y) - my ** 2, conv(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ssim_map = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    assert calculate_multiband_ssim(sr, gt, protocol='repmamba') == pytest.approx(ssim_map.mean().item(), abs=1e-9)


def test_works_from_basicsr_validation_on_8bit_bgr_images(rgb_pair):
    sr, gt = rgb_pair
    data = {'img': tensor2img(sr), 'img2': tensor2img(gt)}
    ours = calculate_metric(data, {'type': 'calculate_multiband_psnr', 'data_range': 255, 'crop_border': 4,
                                   'channels': 'y', 'better': 'higher'})
    assert ours == pytest.approx(calculate_psnr(data['img'], data['img2'], 4, test_y_channel=True), abs=1e-5)


def test_rgb_bands_select_visible_bands_of_multiband_images(multiband_pair):
    sr, gt = multiband_pair
    ours = calculate_multiband_psnr(sr, gt, data_range=1.0, channels='rgb', rgb_bands=[2, 1, 0])
    assert ours == pytest.approx(calculate_multiband_psnr(sr[:, [2, 1, 0]], gt[:, [2, 1, 0]], data_range=1.0))
    with pytest.raises(ValueError, match='4-band image needs rgb_bands'):
        calculate_multiband_psnr(sr, gt, data_range=1.0, channels='y')


def test_option_errors_are_clear(multiband_pair):
    sr, gt = multiband_pair
    with pytest.raises(TypeError, match='calculate_multiband_psnr needs data_range'):
        calculate_multiband_psnr(sr, gt)
    with pytest.raises(TypeError, match=r"unknown option\(s\) \['crop'\]"):
        calculate_sam(sr, gt, crop=4)
    with pytest.raises(ValueError, match="Unknown metric protocol 'srgan'"):
        calculate_multiband_psnr(sr, gt, protocol='srgan')
    with pytest.raises(ValueError, match=r'Image shapes differ: SR \(2, 4, 32, 32\) vs reference \(2, 4, 32, 30\)'):
        calculate_rmse(sr, gt[..., :30])
    with pytest.raises(ValueError, match=r"NDVI nir band 'B08' is not among the band names \['B1', 'B2'"):
        calculate_ndvi_error(sr, gt, band_names=['B1', 'B2', 'B04', 'B4'])


def test_describe_writes_the_protocol():
    text = describe_metric({'type': 'calculate_multiband_ssim', 'protocol': 'lstmconvsr', 'better': 'higher'})
    assert text == 'SSIM, Y (BT.601), crop 4, 8-bit (round), data_range 255.0, padding valid, LSTMConvSR protocol'
    assert describe_metric({'type': 'calculate_ergas', 'scale': 4}) == 'ERGAS, all bands, crop 0, scale 4'
