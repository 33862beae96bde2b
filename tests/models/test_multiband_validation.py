"""MultibandValidationMixin: no band lost through validation, GeoTIFF/PNG outputs, band-count checks."""
import logging

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

import rssr  # noqa: F401  (first: makes basicsr importable)
from rssr.basicsr.models.multiband_validation import MultibandValidationMixin
from testkit import CRS_UTM18N, SENTINEL2, TRANSFORM, make_pair_folders, tiny_model_opt

from basicsr.data import build_dataloader, build_dataset
from basicsr.models.sr_model import SRModel


class MultibandModel(MultibandValidationMixin, SRModel):
    """The composition rssr's model class uses (kept local: registers nothing)."""


METRICS = {'psnr': {'type': 'calculate_multiband_psnr', 'data_range': 1.0},
           'sam': {'type': 'calculate_sam'},
           'ergas': {'type': 'calculate_ergas'}}


def validate(opt, dataset_opt):
    dataset = build_dataset(dataset_opt)
    model = MultibandModel(opt)
    model.validation(build_dataloader(dataset, dataset_opt), 7, None, save_img=True)
    return model


@pytest.mark.parametrize('bands', [4, 6])
def test_every_band_survives_validation_into_a_georeferenced_geotiff(tmp_path, bands):
    folders = make_pair_folders(tmp_path / 'data', bands, names=('tile',), gt_size=32)
    dataset_opt = dict(name='val_tiles', type='MultibandPairedDataset', phase='val', scale=4, radiometry='sentinel2',
                       **folders)
    opt = tiny_model_opt(bands, tmp_path, {'val': dataset_opt}, METRICS)
    records = []
    handler = logging.Handler(logging.INFO)
    handler.emit = lambda record: records.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        model = validate(opt, dataset_opt)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    log = '\n'.join(records)
    assert set(model.metric_results) == {'psnr', 'sam', 'ergas'}
    assert all(np.isfinite(v) for v in model.metric_results.values())
    assert opt['val']['metrics']['sam']['better'] == 'lower'
    assert f'sam: {model.metric_results["sam"]:.4f}' in log and '[SAM (degrees), all bands, crop 0]' in log
    assert '[ERGAS, all bands, crop 0, scale 4]' in log
    out = tmp_path / 'visualization' / 'val_tiles' / 'tile_rs_test.tif'
    with rasterio.open(out) as sr:
        assert sr.count == bands and sr.dtypes[0] == 'uint16' and (sr.height, sr.width) == (32, 32)
        assert sr.crs == CRS_UTM18N
        assert sr.transform == TRANSFORM  # LQ transform (40 m) scaled by 1/4
        assert sr.descriptions == tuple(f'B{i:02d}' for i in range(1, bands + 1))
        assert sr.nodata == 0


def test_scene_validation_saves_each_window_with_its_own_georeference(tmp_path):
    scene = SENTINEL2 / 'val_B02_B03_B04_B08.tif'
    dataset_opt = dict(name='s2', type='SceneDegradationDataset', phase='val', scale=4, dataroot_gt=[str(scene)],
                       gt_size=32, num_patches=2, radiometry='sentinel2', seed=1)
    opt = tiny_model_opt(4, tmp_path, {'val': dataset_opt}, dict(METRICS, ndvi={'type': 'calculate_ndvi_error'}))
    model = validate(opt, dataset_opt)
    assert 0 <= model.metric_results['ndvi'] < 2
    dataset = build_dataset(dataset_opt)
    for index in range(2):
        row, col, _, _ = dataset[index]['georef']['window'].tolist()
        with rasterio.open(tmp_path / 'visualization' / 's2' / f'val_B02_B03_B04_B08_r{row}_c{col}_rs_test.tif') as sr:
            with rasterio.open(scene) as source:
                assert sr.transform == source.transform @ Affine.translation(col, row)
            assert sr.descriptions == ('B02', 'B03', 'B04', 'B08') and sr.count == 4


def test_three_band_8bit_pngs_are_saved_as_png(tmp_path):
    import cv2
    gt_dir, lq_dir = tmp_path / 'GT', tmp_path / 'LQ'
    gt_dir.mkdir()
    lq_dir.mkdir()
    image = cv2.imread(str(SENTINEL2 / 'val_rgb.png'))[:32, :32]
    cv2.imwrite(str(gt_dir / 'p.png'), image)
    cv2.imwrite(str(lq_dir / 'p.png'), cv2.resize(image, (8, 8), interpolation=cv2.INTER_AREA))
    dataset_opt = dict(name='rgb', type='MultibandPairedDataset', phase='val', scale=4, dataroot_gt=str(gt_dir),
                       dataroot_lq=str(lq_dir))
    metrics = {'psnr': {'type': 'calculate_multiband_psnr', 'protocol': 'convmambasr'},
               'basicsr_psnr': {'type': 'calculate_psnr', 'crop_border': 4}}
    model = validate(tiny_model_opt(3, tmp_path, {'val': dataset_opt}, metrics), dataset_opt)
    assert model.metric_results['psnr'] == pytest.approx(model.metric_results['basicsr_psnr'], abs=1e-5)
    saved = cv2.imread(str(tmp_path / 'visualization' / 'rgb' / 'p_rs_test.png'))
    assert saved.shape == (32, 32, 3)


def test_network_band_count_mismatch_stops_before_training(tmp_path):
    folders = make_pair_folders(tmp_path / 'data', 4, names=('tile',), gt_size=32)
    dataset_opt = dict(name='train_tiles', type='MultibandPairedDataset', phase='train', scale=4, gt_size=16,
                       **folders)
    opt = tiny_model_opt(3, tmp_path, {'train': dataset_opt}, METRICS)
    with pytest.raises(ValueError, match=r'dataset train \(train_tiles\) yields 4 bands but network_g \(MSRResNet\) '
                                         r'takes 3'):
        MultibandModel(opt)


def test_basicsr_8bit_metric_refuses_more_than_three_bands(tmp_path):
    folders = make_pair_folders(tmp_path / 'data', 4, names=('tile',), gt_size=32)
    dataset_opt = dict(name='val_tiles', type='MultibandPairedDataset', phase='val', scale=4, **folders)
    opt = tiny_model_opt(4, tmp_path, {'val': dataset_opt}, {'psnr': {'type': 'calculate_psnr', 'crop_border': 4}})
    with pytest.raises(ValueError, match='calculate_psnr is an 8-bit BasicSR metric and cannot take 4 bands'):
        validate(opt, dataset_opt)


def test_pixel_weight_masks_nodata_for_losses(tmp_path):
    from basicsr.losses.basic_loss import L1Loss
    folders = make_pair_folders(tmp_path / 'data', 4, names=('tile',), gt_size=32)
    dataset_opt = dict(name='val_tiles', type='MultibandPairedDataset', phase='val', scale=4, **folders)
    model = MultibandModel(tiny_model_opt(4, tmp_path, {'val': dataset_opt}, METRICS))
    item = build_dataset(dataset_opt)[0]
    batch = {key: item[key][None] for key in ('lq', 'gt', 'lq_valid', 'gt_valid')}
    model.feed_data(batch)
    assert model.pixel_weight is None
    batch['gt_valid'][..., :8, :] = 0
    model.feed_data(batch)
    output = torch.zeros_like(model.gt)
    output[..., :8, :] = 100.0  # errors only where GT is nodata
    assert L1Loss()(output, model.gt, weight=model.pixel_weight) == pytest.approx(
        model.gt[..., 8:, :].abs().mean().item())


def test_nodata_is_written_as_nodata_and_left_out_of_metrics(tmp_path):
    from testkit import box_downsample, smooth_dn, write_geotiff
    gt = smooth_dn(4, 32, 32)
    lq = box_downsample(gt, 4)
    gt[:, :8, :] = 0
    lq[:, :2, :] = 0  # the top 8 HR rows are nodata in both
    write_geotiff(tmp_path / 'GT' / 't.tif', gt, nodata=0)
    write_geotiff(tmp_path / 'LQ' / 't.tif', lq, nodata=0, transform=TRANSFORM @ Affine.scale(4))
    dataset_opt = dict(name='nd', type='MultibandPairedDataset', phase='val', scale=4, radiometry='sentinel2',
                       dataroot_gt=str(tmp_path / 'GT'), dataroot_lq=str(tmp_path / 'LQ'))
    opt = tiny_model_opt(4, tmp_path, {'val': dataset_opt}, {'rmse': {'type': 'calculate_rmse'}})
    model = validate(opt, dataset_opt)
    with rasterio.open(tmp_path / 'visualization' / 'nd' / 't_rs_test.tif') as sr:
        written = sr.read()
    assert (written[:, :8] == 0).all() and (written[:, 8:] != 0).all()
    sr_values = torch.from_numpy(written[:, 8:].astype(np.float32) * 1e-4)
    expected = ((sr_values - torch.from_numpy(gt[:, 8:] * 1e-4).float()) ** 2).mean().sqrt().item()
    assert model.metric_results['rmse'] == pytest.approx(expected, abs=1e-4)  # SR written as uint16: 1e-4 steps


def test_six_band_training_step_through_rssr_model(tmp_path):
    from basicsr.utils.registry import MODEL_REGISTRY
    folders = make_pair_folders(tmp_path / 'data', 6, names=('a', 'b'), gt_size=32)
    dataset_opt = dict(name='train6', type='MultibandPairedDataset', phase='train', scale=4, gt_size=16,
                       use_hflip=True, use_rot=True, batch_size_per_gpu=2, num_worker_per_gpu=0, **folders)
    opt = tiny_model_opt(6, tmp_path, {'train': dataset_opt}, METRICS)
    opt.update(is_train=True, train={'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {
        'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}, 'total_iter': 1, 'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}})
    model = MODEL_REGISTRY.get('RSSRModel')(opt)
    batch = next(iter(build_dataloader(build_dataset(dataset_opt), dataset_opt)))
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert model.output.shape == (2, 6, 16, 16) and np.isfinite(model.log_dict['l_pix'])


def test_class_mean_aggregation_as_rep_mamba_reports_aid():
    from rssr.basicsr.models.multiband_validation import _image_class, _mean_of_class_means
    paths = ['GT/farmland/a.png', 'GT/farmland/b.png', 'GT/port/c.png']
    classes = [_image_class(p, 'class_folder') for p in paths]
    assert classes == ['farmland', 'farmland', 'port']
    assert _mean_of_class_means([30.0, 32.0, 40.0], classes) == pytest.approx((31.0 + 40.0) / 2)
    assert _mean_of_class_means([30.0, 32.0, 40.0], [_image_class(p, 'images') for p in paths]) == pytest.approx(34.0)
    assert _image_class('HR/Airport_12.png', 'class_prefix') == 'Airport'


def test_nan_in_validation_data_is_left_out_of_metrics_and_written_as_nan(tmp_path):
    from testkit import box_downsample, smooth_dn, write_geotiff
    gt = (smooth_dn(4, 32, 32) * 1e-4).astype(np.float32)
    lq = box_downsample(gt, 4)
    lq[2, 1, 5] = np.nan  # one band of one LQ pixel, no nodata tag
    write_geotiff(tmp_path / 'GT' / 't.tif', gt, nodata=None)
    write_geotiff(tmp_path / 'LQ' / 't.tif', lq, nodata=None, transform=TRANSFORM @ Affine.scale(4))
    dataset_opt = dict(name='nan', type='MultibandPairedDataset', phase='val', scale=4,
                       dataroot_gt=str(tmp_path / 'GT'), dataroot_lq=str(tmp_path / 'LQ'))
    model = validate(tiny_model_opt(4, tmp_path, {'val': dataset_opt}, METRICS), dataset_opt)
    assert all(np.isfinite(v) for v in model.metric_results.values())
    with rasterio.open(tmp_path / 'visualization' / 'nan' / 't_rs_test.tif') as sr:
        written, nodata = sr.read(), sr.nodata
    footprint = np.zeros((32, 32), bool)
    footprint[4:8, 20:24] = True
    assert np.isnan(nodata) and np.isnan(written[:, footprint]).all() and np.isfinite(written[:, ~footprint]).all()


def test_training_on_data_with_nan_masks_it_out_of_the_loss(tmp_path):
    from testkit import box_downsample, smooth_dn, write_geotiff

    from basicsr.utils.registry import MODEL_REGISTRY
    gt = (smooth_dn(4, 32, 32) * 1e-4).astype(np.float32)
    lq = box_downsample(gt, 4)
    gt[0, 10, 10] = np.nan
    lq[3, 6, 1] = np.nan
    write_geotiff(tmp_path / 'GT' / 't.tif', gt, nodata=None)
    write_geotiff(tmp_path / 'LQ' / 't.tif', lq, nodata=None)
    dataset_opt = dict(name='train_nan', type='MultibandPairedDataset', phase='train', scale=4, gt_size=32,
                       batch_size_per_gpu=1, num_worker_per_gpu=0, dataroot_gt=str(tmp_path / 'GT'),
                       dataroot_lq=str(tmp_path / 'LQ'))
    opt = tiny_model_opt(4, tmp_path, {'train': dataset_opt}, METRICS)
    opt.update(is_train=True, train={'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {
        'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}, 'total_iter': 1, 'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}})
    model = MODEL_REGISTRY.get('RSSRModel')(opt)
    model.feed_data(next(iter(build_dataloader(build_dataset(dataset_opt), dataset_opt))))
    assert torch.isfinite(model.lq).all() and torch.isfinite(model.gt).all()
    weight = model.pixel_weight[0, 0]
    assert weight[10, 10] == 0 and weight[24:28, 4:8].sum() == 0 and weight.sum() == 32 * 32 - 1 - 16
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_pix'])
