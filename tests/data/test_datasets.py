"""Multiband datasets and degradations: alignment, band counts, nodata, reproducibility, bad input."""
import math
import random

import numpy as np
import pytest
import torch

import rssr  # noqa: F401  (registers the datasets)
from rssr.data.degradations import DegradationPipeline, bicubic_downsample, gaussian_kernel, jpeg_compress, sensor_sigma
from testkit import SENTINEL2, box_downsample, make_pair_folders, smooth_dn, write_geotiff

from basicsr.data import build_dataset


def paired_opt(folders, phase='train', **extra):
    opt = dict(name='pairs', type='MultibandPairedDataset', phase=phase, scale=4, gt_size=32, use_hflip=True,
               use_rot=True, **folders)
    opt.update(extra)
    return opt


@pytest.mark.parametrize('bands', [4, 6])
def test_paired_train_crops_stay_aligned_and_keep_every_band(tmp_path, bands):
    dataset = build_dataset(paired_opt(make_pair_folders(tmp_path, bands)))
    random.seed(3)
    for index in range(6):
        item = dataset[index % len(dataset)]
        assert item['lq'].shape == (bands, 8, 8) and item['gt'].shape == (bands, 32, 32)
        assert item['lq'].dtype == torch.float32
        block_mean = item['gt'].reshape(bands, 8, 4, 8, 4).mean((2, 4))
        assert torch.allclose(block_mean, item['lq'], atol=1 / 65535), 'LQ patch is not the GT patch downsampled'


def test_paired_val_mod_crops_gt_and_describes_georeference(tmp_path):
    folders = make_pair_folders(tmp_path, 4, gt_size=64)
    gt = smooth_dn(4, 66, 67)  # not a multiple of 4: mod-crop to 64 x 64
    write_geotiff(tmp_path / 'GT' / 'c.tif', gt)
    write_geotiff(tmp_path / 'LQ' / 'c.tif', box_downsample(gt, 4))
    dataset = build_dataset(paired_opt(folders, phase='val', radiometry='sentinel2'))
    item = dataset[2]
    assert item['gt'].shape == (4, 64, 64) and item['lq'].shape == (4, 16, 16)
    torch.testing.assert_close(item['gt'], torch.from_numpy(gt[:, :64, :64] * 1e-4).float())
    assert item['georef']['zoom'] == 4 and item['georef']['window'].tolist() == [0, 0, 16, 16]
    assert item['georef']['dn_scale'].tolist() == [1e-4] * 4


def test_band_selection_and_band_mismatch_errors_name_files_and_counts(tmp_path):
    folders = make_pair_folders(tmp_path, 4, names=('a',))
    dataset = build_dataset(paired_opt(folders, bands=['B04', 'B03', 'B02']))
    assert dataset[0]['gt'].shape[0] == 3
    with pytest.raises(ValueError, match=r'Band 7 is out of range for .*a\.tif, which has 4 bands'):
        build_dataset(paired_opt(folders, bands=[1, 7]))
    write_geotiff(tmp_path / 'LQ' / 'b.tif', smooth_dn(3, 16, 16))
    write_geotiff(tmp_path / 'GT' / 'b.tif', smooth_dn(4, 64, 64))
    mismatch = r'Band count mismatch: LQ .*LQ/b\.tif gives 3 bands but GT .*GT/b\.tif gives 4'
    with pytest.raises(ValueError, match=mismatch):
        build_dataset(paired_opt(folders))


def test_lq_gt_size_mismatch_names_both_files_and_sizes(tmp_path):
    folders = make_pair_folders(tmp_path, 4, names=('a',))
    write_geotiff(tmp_path / 'LQ' / 'a.tif', smooth_dn(4, 15, 16))
    expected = r'do not match scale 4: GT .*GT/a\.tif is 64 x 64 .* LQ .*LQ/a\.tif is 15 x 16, which x4 is 60 x 64'
    with pytest.raises(ValueError, match=expected):
        build_dataset(paired_opt(folders))


def test_empty_folder_missing_partner_and_corrupt_file(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(FileNotFoundError, match=r'No images .* found in .*empty'):
        build_dataset(paired_opt({'dataroot_gt': str(tmp_path / 'empty'), 'dataroot_lq': str(tmp_path / 'empty')}))
    folders = make_pair_folders(tmp_path, 4, names=('a',))
    write_geotiff(tmp_path / 'GT' / 'lonely.tif', smooth_dn(4, 64, 64))
    with pytest.raises(FileNotFoundError, match=r'No LQ image for GT .*lonely\.tif: expected .*LQ/lonely\.tif'):
        build_dataset(paired_opt(folders))
    (tmp_path / 'LQ' / 'lonely.tif').write_bytes(b'not a raster')
    with pytest.raises(ValueError, match=r'Cannot read raster .*LQ/lonely\.tif'):
        build_dataset(paired_opt(folders))


def scene_opt(path, phase='val', **extra):
    opt = dict(name='scene', type='SceneDegradationDataset', phase=phase, scale=4, dataroot_gt=[str(path)],
               gt_size=32, num_patches=3, radiometry='sentinel2', seed=5)
    opt.update(extra)
    return opt


def test_scene_dataset_is_reproducible_and_lr_is_matlab_bicubic():
    scene = SENTINEL2 / 'val_B02_B03_B04_B08.tif'
    steps = [{'type': 'bicubic'}, {'type': 'noise', 'sigma': [0.001, 0.002]}]
    first, second = (build_dataset(scene_opt(scene, degradations=steps)) for _ in range(2))
    for index in range(3):
        a, b = first[index], second[index]
        torch.testing.assert_close(a['lq'], b['lq'], rtol=0, atol=0)
        assert a['georef']['window'].tolist() == b['georef']['window'].tolist()
    clean = build_dataset(scene_opt(scene))[1]
    assert clean['gt'].shape == (4, 32, 32) and clean['lq'].shape == (4, 8, 8)
    from basicsr.utils.matlab_functions import imresize
    torch.testing.assert_close(clean['lq'], imresize(clean['gt'], 0.25))
    whole = build_dataset(scene_opt(scene, gt_size=None))
    assert len(whole) == 1 and whole[0]['gt'].shape == (4, 256, 256)


def test_scene_nodata_is_never_interpolated_into_valid_lr_pixels(tmp_path):
    dn = smooth_dn(4, 64, 64)
    dn[:, 20:30, 10:40] = 0
    a = write_geotiff(tmp_path / 'a.tif', dn, nodata=0)
    other = dn.copy()
    other[other == 0] = 65535  # same pixels, different nodata value and fill
    b = write_geotiff(tmp_path / 'b.tif', other, nodata=65535)
    steps = [{'type': 'blur', 'kind': 'gaussian', 'sigma': 1.0}, {'type': 'bicubic'}]
    item_a = build_dataset(scene_opt(a, gt_size=None, degradations=steps))[0]
    item_b = build_dataset(scene_opt(b, gt_size=None, degradations=steps))[0]
    valid = item_a['lq_valid'][0].bool()
    assert 0 < valid.sum() < valid.numel() and torch.equal(item_a['lq_valid'], item_b['lq_valid'])
    assert not valid[5:8, 2:10].any()  # LR rows 5..7 cover HR rows 20..31
    torch.testing.assert_close(item_a['lq'][:, valid], item_b['lq'][:, valid])
    assert item_a['gt_valid'][0, 20:30, 10:40].sum() == 0


def test_sensor_blur_has_the_requested_mtf_at_lr_nyquist():
    scale, mtf = 4, 0.3
    kernel = gaussian_kernel(sensor_sigma(mtf, scale), kernel_size=61)
    taps = torch.arange(61, dtype=torch.float64) - 30
    response = (kernel * torch.cos(2 * math.pi * taps / (2 * scale))).sum()
    assert abs(response.item() - mtf) < 1e-3


def test_jpeg_compress_matches_opencv_and_keeps_band_count():
    import cv2
    rgb = torch.from_numpy(cv2.imread(str(SENTINEL2 / 'val_rgb.png'))[:48, :48, ::-1].transpose(2, 0, 1).copy())
    img = rgb.float() / 255
    ok, encoded = cv2.imencode('.jpg', np.ascontiguousarray(rgb.numpy()[::-1].transpose(1, 2, 0)),
                               [cv2.IMWRITE_JPEG_QUALITY, 30])
    expected = cv2.imdecode(encoded, cv2.IMREAD_COLOR)[..., ::-1].transpose(2, 0, 1)
    np.testing.assert_array_equal((jpeg_compress(img, 30) * 255).round().numpy().astype(np.uint8), expected)
    assert jpeg_compress(torch.rand(5, 16, 16), 50).shape == (5, 16, 16)
    with pytest.raises(ValueError, match='quality must be in 1..100'):
        jpeg_compress(img, 0)


def test_pipeline_rejects_bad_steps_and_bicubic_keeps_bands():
    with pytest.raises(ValueError, match='exactly one bicubic'):
        DegradationPipeline([{'type': 'noise', 'sigma': 0.1}], scale=2)
    with pytest.raises(ValueError, match='Unknown degradation step'):
        DegradationPipeline([{'type': 'bicubic'}, {'type': 'sharpen'}], scale=2)
    assert bicubic_downsample(torch.rand(6, 12, 12), 3).shape == (6, 4, 4)


@pytest.mark.parametrize('shape, scale', [((4, 48, 48), 4), ((6, 12, 12), 3), ((3, 17, 23), 2), ((2, 9, 7), 3)])
def test_bicubic_downsample_equals_basicsr_matlab_imresize(shape, scale):
    """rssr's own MATLAB bicubic (plain torch) against BasicSR's ``imresize``: odd sizes, kernels wider than
    the image's edge, physical (DN) values."""
    from basicsr.utils.matlab_functions import imresize

    hr = torch.rand(shape, generator=torch.Generator().manual_seed(scale)) * 10000
    expected = imresize(hr.clone(), 1 / scale)
    assert bicubic_downsample(hr, scale).shape == expected.shape
    torch.testing.assert_close(bicubic_downsample(hr, scale), expected, rtol=0, atol=2e-3)


def nan_pair(root, phase_size=32):
    """Float32 reflectance GT/LQ x4 pair without a nodata tag: NaN in one band of a GT pixel and of an LQ pixel."""
    gt = (smooth_dn(4, phase_size, phase_size) * 1e-4).astype(np.float32)
    lq = box_downsample(gt, 4)
    gt[1, 3, 5] = np.nan
    lq[3, 6, 2] = np.nan
    write_geotiff(root / 'GT' / 't.tif', gt, nodata=None)
    write_geotiff(root / 'LQ' / 't.tif', lq, nodata=None)
    return {'dataroot_gt': str(root / 'GT'), 'dataroot_lq': str(root / 'LQ')}, gt, lq


def test_nan_is_nodata_in_every_band_and_filled_in_paired_items(tmp_path):
    folders, gt, lq = nan_pair(tmp_path)
    item = build_dataset(paired_opt(folders, phase='val'))[0]
    assert torch.isfinite(item['lq']).all() and torch.isfinite(item['gt']).all()
    assert item['lq_valid'][0, 6, 2] == 0 and item['lq_valid'].sum() == 8 * 8 - 1
    assert item['gt_valid'][0, 3, 5] == 0 and item['gt_valid'].sum() == 32 * 32 - 1
    # every band of the NaN pixel is filled from its neighbours, not set to 0
    neighbours = torch.from_numpy(lq[:, 5:8, 1:4].reshape(4, -1))
    low, high = neighbours.nan_to_num(1.0).min(dim=1).values, neighbours.nan_to_num(0.0).max(dim=1).values
    assert ((item['lq'][:, 6, 2] >= low) & (item['lq'][:, 6, 2] <= high)).all()
    torch.testing.assert_close(item['lq'][:, 0, 0], torch.from_numpy(lq[:, 0, 0]))


def test_scene_items_of_a_scene_with_nan_hold_no_nan(tmp_path):
    values = (smooth_dn(4, 64, 64) * 1e-4).astype(np.float32)
    values[2, 30:34, 20:26] = np.nan
    scene = write_geotiff(tmp_path / 'scene.tif', values, nodata=None)
    item = build_dataset(scene_opt(scene, gt_size=None, radiometry=None))[0]
    assert torch.isfinite(item['lq']).all() and torch.isfinite(item['gt']).all()
    assert item['gt_valid'][0, 30:34, 20:26].sum() == 0 and item['gt_valid'].sum() == 64 * 64 - 24
    assert item['gt'][:, 30:34, 20:26].min() > 0.01  # filled from the valid pixels around, not 0
    assert item['lq_valid'][0, 7:9, 5:7].sum() == 0 and item['lq_valid'].sum() < 16 * 16
