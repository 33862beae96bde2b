"""Band normalisation: statistics (with nodata), round trip, checkpoints, rssr.test / rssr.infer, residual, DDP."""
from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F
import yaml
from rasterio.windows import Window
from torch import nn

import rssr  # noqa: F401  (registries filled)
from rssr.band_normalization import BandNormalization, BandNormalizedSR, masked_band_statistics
from rssr.basicsr.datasets import build_dataset_from_options
from rssr.basicsr.loading import load_model
from rssr.checkpoint import read_checkpoint, stored_band_normalization
from rssr.data import band_statistics
from rssr.data.band_statistics import dataset_band_statistics, scene_band_statistics
from rssr.errors import UserError
from rssr.io import read_raster, resolve_radiometry
from rssr.losses.spectral import SAMLoss
from testkit import REPO, run_torchrun, runtime_options, write_pairs

from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.losses.basic_loss import L1Loss
from basicsr.models import build_model

SENTINEL2 = REPO / 'datasets' / 'sentinel2_demo'
NODATA = 0
SCALE = 2
NET = {'type': 'MSRResNet', 'num_in_ch': 4, 'num_out_ch': 4, 'num_feat': 8, 'num_block': 1, 'upscale': SCALE}
NET_KWARGS = {k: v for k, v in NET.items() if k != 'type'}


def sentinel2_crop(path: Path, size: int = 48, with_nodata: bool = True, source: str = 'train') -> Path:
    """A crop of a bundled 4-band Sentinel-2 GeoTIFF (uint16 DN), with a nodata block."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(SENTINEL2 / f'{source}_B02_B03_B04_B08.tif') as src:
        window = Window(40, 30, size, size)
        dn = src.read(window=window)
        profile = dict(src.profile, height=size, width=size, transform=src.window_transform(window),
                       nodata=NODATA if with_nodata else None, tiled=False)
    if with_nodata:
        dn[:, 3:11, 5:20] = NODATA
        dn[2, 30, 30] = NODATA  # one band at nodata makes the whole pixel invalid
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(dn)
    return path


def numpy_statistics(path: Path):
    with rasterio.open(path) as src:
        dn = src.read().astype(np.float64)
    valid = ~np.any(dn == NODATA, axis=0)
    values = dn[:, valid] / 10000.0
    return values.mean(axis=1), values.std(axis=1), int(valid.sum())


def scene_train_options(tmp_path: Path, normalization=None, **train) -> dict:
    crop = sentinel2_crop(tmp_path / 'train.tif')
    opt = {'name': 'bn', 'model_type': 'RSSRModel', 'scale': SCALE, 'num_gpu': 0, 'manual_seed': 0,
           'datasets': {'train': {'name': 'crop', 'type': 'SceneDegradationDataset', 'dataroot_gt': str(crop),
                                  'radiometry': 'sentinel2', 'gt_size': 16, 'num_patches': 4,
                                  'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}},
           'network_g': dict(NET), 'path': {},
           'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [9]},
                     'total_iter': 2, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, **train},
           'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}}
    if normalization is not None:
        opt['band_normalization'] = normalization
    return runtime_options(opt, tmp_path)


def reflectance_batch(seed: int = 0, size: int = 2, lr: int = 8):
    generator = torch.Generator().manual_seed(seed)
    gt = 0.05 + 0.3 * torch.rand(size, 4, lr * SCALE, lr * SCALE, generator=generator)
    return {'lq': F.avg_pool2d(gt, SCALE), 'gt': gt}


def manual_forward(net: nn.Module, lq: torch.Tensor, mean, std) -> torch.Tensor:
    mean, std = torch.tensor(mean).view(1, -1, 1, 1), torch.tensor(std).view(1, -1, 1, 1)
    with torch.no_grad():
        return net((lq - mean) / std) * std + mean


def trained_checkpoint(tmp_path: Path, fmt: str = 'pth', normalization=None) -> tuple:
    """(path, model) of a 1-step RSSRModel run with band normalisation mode dataset (stats computed)."""
    opt = scene_train_options(tmp_path, normalization or {'mode': 'dataset'})
    opt['logger']['checkpoint_format'] = fmt
    model = build_model(opt)
    model.feed_data(reflectance_batch())
    model.optimize_parameters(1)
    model.save_network(model.net_g, 'net_g', 1)
    return Path(opt['path']['models']) / f'net_g_1.{fmt}', model


# ---- statistics -------------------------------------------------------------------------------------
def test_dataset_statistics_match_numpy_and_leave_nodata_out(tmp_path, monkeypatch):
    crop = sentinel2_crop(tmp_path / 'crop.tif')
    mean, std, pixels = numpy_statistics(crop)
    monkeypatch.setattr(band_statistics, 'STRIP_PIXELS', 5 * 48)  # 5-row strips, merged
    opt = {'type': 'SceneDegradationDataset', 'dataroot_gt': str(crop), 'radiometry': 'sentinel2', 'gt_size': 16,
           'phase': 'train', 'scale': SCALE}
    statistics = dataset_band_statistics(build_dataset_from_options(opt))
    assert statistics.pixels == pixels == 48 * 48 - 8 * 15 - 1
    np.testing.assert_allclose(statistics.mean, mean, rtol=1e-6)
    np.testing.assert_allclose(statistics.std, std, rtol=1e-6)

    lq_folder, gt_folder = tmp_path / 'lq', tmp_path / 'gt'
    gt_folder.mkdir(), lq_folder.mkdir()
    os.replace(crop, gt_folder / 'a.tif')
    sentinel2_crop(lq_folder / 'a.tif', size=24, with_nodata=False)
    paired = dataset_band_statistics(build_dataset_from_options(
        {'type': 'MultibandPairedDataset', 'dataroot_gt': str(gt_folder), 'dataroot_lq': str(lq_folder),
         'radiometry': 'sentinel2', 'phase': 'train', 'scale': SCALE, 'gt_size': 16}))
    assert paired == statistics


def test_basicsr_paired_image_dataset_statistics_match_numpy(tmp_path):
    folders = write_pairs(tmp_path, 3, hr_size=16)
    statistics = dataset_band_statistics(build_dataset_from_options(
        {'type': 'PairedImageDataset', **folders, 'io_backend': {'type': 'disk'}, 'phase': 'train', 'scale': 2,
         'gt_size': 8}))
    images = np.stack([cv2.imread(str(p))[:, :, ::-1] for p in sorted(Path(folders['dataroot_gt']).iterdir())])
    rgb = images.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(statistics.mean, rgb.mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(statistics.std, rgb.std(axis=0), rtol=1e-6)


def test_decimated_scene_statistics_stay_close(tmp_path):
    crop = sentinel2_crop(tmp_path / 'crop.tif')
    mean, std, _ = numpy_statistics(crop)
    decimated = scene_band_statistics(str(crop), None, resolve_radiometry('uint16', 4, 'sentinel2'), max_pixels=600)
    assert decimated.pixels < 600
    np.testing.assert_allclose(decimated.mean, mean, rtol=0.05)


def test_masked_per_image_statistics_ignore_nodata_and_floor_std():
    x = torch.rand(2, 3, 6, 6)
    valid = torch.ones(2, 1, 6, 6)
    valid[0, :, :2] = 0
    x[0, :, :2] = 100.0  # nodata values must not count
    x[1] = 0.5  # flat image: std floored
    mean, std = masked_band_statistics(x, valid, eps=1e-3)
    torch.testing.assert_close(mean[0, :, 0, 0], x[0, :, 2:].mean(dim=(1, 2)))
    torch.testing.assert_close(std[0, :, 0, 0], x[0, :, 2:].std(dim=(1, 2), unbiased=False))
    assert torch.all(std[1] == 1e-3)


# ---- the wrapper ------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['dataset', 'image'])
def test_normalize_denormalize_round_trip(mode):
    normalization = BandNormalization(mode=mode, mean=(0.1, 0.08, 0.07, 0.2) if mode == 'dataset' else None,
                                      std=(0.013, 0.02, 0.028, 0.067) if mode == 'dataset' else None)
    wrapper = BandNormalizedSR(nn.Identity(), normalization)
    x = reflectance_batch()['lq'].double()
    statistics = wrapper.statistics(x)
    statistics = tuple(s.double() for s in statistics)
    restored = wrapper.denormalize(wrapper.normalize(x, statistics), statistics)
    torch.testing.assert_close(restored, x, rtol=0, atol=1e-15)
    if mode == 'image':
        normalized = wrapper.normalize(x, statistics)
        torch.testing.assert_close(normalized.mean(dim=(2, 3)), torch.zeros(2, 4, dtype=torch.float64), rtol=0,
                                   atol=1e-5)


def test_wrapper_adds_no_checkpoint_keys_and_loads_strictly():
    net = MSRResNet(**NET_KWARGS)
    wrapper = BandNormalizedSR(net, BandNormalization(mode='image', residual='bicubic'))
    assert list(wrapper.state_dict()) == list(net.state_dict())
    fresh = MSRResNet(**NET_KWARGS)
    BandNormalizedSR(fresh, BandNormalization(mode='image')).load_state_dict(wrapper.state_dict(), strict=True)
    assert all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), net.state_dict().values()))


class ZeroNet(nn.Module):
    """An x2 'network' that predicts nothing: with residual bicubic the output is the bicubic upsampling."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.zeros(x.shape[0], x.shape[1], x.shape[2] * SCALE, x.shape[3] * SCALE)


@pytest.mark.parametrize('mode', ['none', 'dataset', 'image'])
def test_bicubic_residual_output_is_the_bicubic_upsampling_of_the_input(mode):
    normalization = BandNormalization(mode=mode, residual='bicubic', mean=(0.1,) * 4 if mode == 'dataset' else None,
                                      std=(0.02,) * 4 if mode == 'dataset' else None)
    lq = reflectance_batch()['lq']
    output = BandNormalizedSR(ZeroNet(), normalization)(lq)
    assert output.shape == (2, 4, 16, 16)
    bicubic = F.interpolate(lq, scale_factor=SCALE, mode='bicubic', align_corners=False)
    torch.testing.assert_close(output, bicubic, rtol=0, atol=1e-6)


def test_options_are_checked_with_names():
    with pytest.raises(UserError, match=r"band_normalization.residul is not an option; did you mean 'residual'"):
        BandNormalization.from_options({'mode': 'dataset', 'residul': 'bicubic'})
    with pytest.raises(ValueError, match='mode must be one of none, dataset, image'):
        BandNormalization.from_options({'mode': 'batch'})
    with pytest.raises(ValueError, match='mean has 2 values but std has 3'):
        BandNormalization.from_options({'mode': 'dataset', 'mean': [1, 2], 'std': [1, 2, 3]})


# ---- training ---------------------------------------------------------------------------------------
def test_training_normalises_pixel_loss_and_feeds_spectral_loss_physical_values(tmp_path):
    opt = scene_train_options(tmp_path, {'mode': 'dataset'}, spectral_opt={'type': 'SAMLoss', 'loss_weight': 0.5})
    model = build_model(opt)
    mean, std, _ = numpy_statistics(Path(opt['datasets']['train']['dataroot_gt']))
    np.testing.assert_allclose(model.band_normalization.mean, mean, rtol=1e-6)
    batch = reflectance_batch()
    model.feed_data(batch)
    model.optimize_parameters(1)
    output, gt = model.output, batch['gt']
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32).view(1, 4, 1, 1), torch.tensor(std).float().view(1, 4, 1, 1)
    expected_pixel = L1Loss()((output - mean_t) / std_t, (gt - mean_t) / std_t)
    torch.testing.assert_close(model.log_dict['l_pix'], expected_pixel.item(), rtol=1e-4, atol=0)
    torch.testing.assert_close(model.log_dict['l_spectral'], SAMLoss(loss_weight=0.5)(output, gt).item(), rtol=1e-4,
                               atol=0)


def test_training_with_per_image_statistics_and_nodata(tmp_path):
    model = build_model(scene_train_options(tmp_path, {'mode': 'image', 'residual': 'bicubic'}))
    batch = reflectance_batch()
    batch['lq_valid'] = torch.ones(2, 1, 8, 8)
    batch['lq_valid'][0, :, :3] = 0
    batch['lq'][0, :, :3] = 0.0
    batch['gt_valid'] = F.interpolate(batch['lq_valid'], scale_factor=SCALE)
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert torch.isfinite(model.output).all() and model.output.shape == batch['gt'].shape


# ---- checkpoints ------------------------------------------------------------------------------------
@pytest.mark.parametrize('fmt', ['pth', 'safetensors'])
def test_checkpoint_round_trip_keeps_statistics_and_the_arch_keys(tmp_path, fmt):
    path, model = trained_checkpoint(tmp_path, fmt)
    stored = BandNormalization.from_metadata(stored_band_normalization(path))
    assert stored == model.band_normalization and stored.mode == 'dataset' and len(stored.mean) == 4
    checkpoint = read_checkpoint(path)
    assert sorted(checkpoint['params']) == sorted(model.net_g.state_dict())
    net = MSRResNet(**NET_KWARGS)
    net.load_state_dict(checkpoint['params'], strict=True)


# ---- rssr.test and rssr.infer -----------------------------------------------------------------------
def test_rssr_test_uses_the_stored_statistics(tmp_path, monkeypatch):
    weights, trained = trained_checkpoint(tmp_path / 'train')
    normalization = trained.band_normalization
    lq_folder, gt_folder = tmp_path / 'val' / 'lq', tmp_path / 'val' / 'gt'
    lq_folder.mkdir(parents=True), gt_folder.mkdir(parents=True)
    lq = read_raster(sentinel2_crop(tmp_path / 'lq.tif', size=16, with_nodata=False, source='val'),
                     radiometry=resolve_radiometry('uint16', 4, 'sentinel2')).values
    profile = {'driver': 'GTiff', 'dtype': 'float32', 'count': 4}
    for folder, image in ((lq_folder, lq), (gt_folder, np.repeat(np.repeat(lq, SCALE, 1), SCALE, 2))):
        with rasterio.open(folder / 'a.tif', 'w', height=image.shape[1], width=image.shape[2], **profile) as dst:
            dst.write(image)
    options = {'name': 'bn_test', 'model_type': 'RSSRModel', 'scale': SCALE, 'num_gpu': 0, 'network_g': dict(NET),
               'datasets': {'test_1': {'name': 'val', 'type': 'MultibandPairedDataset', 'dataroot_gt': str(gt_folder),
                                       'dataroot_lq': str(lq_folder)}},
               'path': {'pretrain_network_g': str(weights)}, 'val': {'save_img': True}}
    (tmp_path / 'test.yml').write_text(yaml.safe_dump(options))
    monkeypatch.chdir(tmp_path)
    from rssr import test as rssr_test
    rssr_test.main(['-opt', 'test.yml'])  # exits only on errors
    [saved] = (tmp_path / 'results' / 'bn_test').rglob('*.tif')
    with rasterio.open(saved) as src:
        sr = src.read()
    expected = manual_forward(trained.net_g.eval(), torch.from_numpy(lq)[None], normalization.mean, normalization.std)
    np.testing.assert_allclose(sr, expected[0].numpy(), atol=1e-5)


def test_rssr_infer_uses_the_stored_statistics(tmp_path):
    weights, trained = trained_checkpoint(tmp_path / 'train', 'safetensors')
    normalization = trained.band_normalization
    scene = sentinel2_crop(tmp_path / 'scene.tif', size=40, with_nodata=False, source='val')
    from rssr import infer
    code = infer.main(['--arch', 'MSRResNet', '--arch-kwargs', json.dumps(NET_KWARGS),
                       '--weights', str(weights), '--input', str(scene), '--output', str(tmp_path / 'sr.tif'),
                       '--radiometry', 'sentinel2', '--out-dtype', 'float32', '--tile', '64', '--device', 'cpu'])
    assert code == 0
    with rasterio.open(tmp_path / 'sr.tif') as src:
        sr = src.read()
    lq = torch.from_numpy(read_raster(scene, radiometry=resolve_radiometry('uint16', 4, 'sentinel2')).values)[None]
    expected = manual_forward(trained.net_g.eval(), lq, normalization.mean, normalization.std)
    np.testing.assert_allclose(sr, expected[0].numpy(), atol=1e-5)
    model = load_model(arch='MSRResNet', arch_kwargs=NET_KWARGS,
                       weights=str(weights))
    assert isinstance(model, BandNormalizedSR) and model.normalization == normalization


def test_image_mode_at_inference_uses_the_statistics_of_the_whole_scene(tmp_path):
    weights, trained = trained_checkpoint(tmp_path / 'train', normalization={'mode': 'image'})
    scene = sentinel2_crop(tmp_path / 'scene.tif', size=40, with_nodata=False, source='val')
    from rssr.inference import OutputOptions, TilingOptions, super_resolve_scene
    model = load_model(arch='MSRResNet', arch_kwargs=NET_KWARGS,
                       weights=str(weights))
    super_resolve_scene(model, scene, tmp_path / 'sr.tif', radiometry_preset='sentinel2', device='cpu',
                        tiling=TilingOptions(tile=24, overlap=16, margin=6), output=OutputOptions(dtype='float32'),
                        progress=False)
    with rasterio.open(tmp_path / 'sr.tif') as src:
        sr = src.read()
    lq = torch.from_numpy(read_raster(scene, radiometry=resolve_radiometry('uint16', 4, 'sentinel2')).values)[None]
    mean = lq.double().mean(dim=(2, 3))[0]
    std = lq.double().std(dim=(2, 3), unbiased=False)[0]
    expected = manual_forward(trained.net_g.eval(), lq, mean.float().tolist(), std.float().tolist())
    np.testing.assert_allclose(sr, expected[0].numpy(), atol=1e-4)


# ---- DDP --------------------------------------------------------------------------------------------
DDP_SCRIPT = '''
import json, os, sys
import torch.distributed as dist
import rssr
from basicsr.models import build_model
sys.path[:0] = [{tests!r}, {testkit!r}]
from testkit import runtime_options
from test_band_normalization import reflectance_batch
import rssr.basicsr.models.sr_model as sr_model

dist.init_process_group('gloo')
rank = dist.get_rank()
if rank != 0:  # the statistics must come from rank 0
    sr_model.dataset_band_statistics = lambda *a, **k: (_ for _ in ()).throw(RuntimeError('computed on rank 1'))
opt = json.load(open('opt.json'))
opt.update(dist=True, rank=rank, world_size=2)
model = build_model(opt)
for step in (1, 2):
    model.feed_data(reflectance_batch(step + rank))
    model.optimize_parameters(step)
json.dump(model.band_normalization.to_metadata(), open(f'rank{{rank}}.json', 'w'))
dist.destroy_process_group()
'''


def test_ddp_two_gloo_processes_share_the_statistics_of_rank_zero(tmp_path):
    opt = scene_train_options(tmp_path, {'mode': 'dataset'})
    (tmp_path / 'opt.json').write_text(json.dumps(opt))
    (tmp_path / 'ddp.py').write_text(DDP_SCRIPT.format(tests=str(Path(__file__).parent), testkit=str(REPO / 'tests')))
    run_torchrun(['ddp.py'], tmp_path)
    ranks = [json.loads((tmp_path / f'rank{r}.json').read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] and ranks[0]['mode'] == 'dataset'
    mean, _, _ = numpy_statistics(Path(opt['datasets']['train']['dataroot_gt']))
    np.testing.assert_allclose(ranks[0]['mean'], mean, rtol=1e-6)


# ---- model cards and rssr.info ----------------------------------------------------------------------
def test_zoo_card_with_shipped_weights_loads_them_inside_their_normalisation(tmp_path, monkeypatch, capsys):
    from rssr import info, zoo
    weights, trained = trained_checkpoint(tmp_path, 'safetensors')
    card = zoo.ModelCard(name='tiny_s2', arch='MSRResNet', kwargs={'num_out_ch': 4, 'num_feat': 8, 'num_block': 1},
                         scale_kwarg='upscale', chans_kwarg='num_in_ch', in_chans=4, scales=(SCALE,),
                         weights=str(weights), weights_scale=SCALE, weights_info='demo grade, 1 iteration')
    monkeypatch.setitem(zoo._CARDS, card.name, card)
    monkeypatch.setattr(zoo.ARCHS, 'get', lambda name: MSRResNet)
    model = zoo.create_model('tiny_s2', pretrained=True)
    assert isinstance(model, BandNormalizedSR) and model.normalization == trained.band_normalization
    lq = reflectance_batch()['lq']
    expected = manual_forward(trained.net_g.eval(), lq, trained.band_normalization.mean, trained.band_normalization.std)
    torch.testing.assert_close(model(lq).detach(), expected, rtol=0, atol=1e-6)
    assert info.main(['--model', 'tiny_s2']) == 0
    card_text = capsys.readouterr().out
    assert 'demo grade, 1 iteration' in card_text and 'band normalisation: mode dataset, mean [' in card_text
    assert info.main(['--weights', str(weights)]) == 0
    assert trained.band_normalization.describe() in capsys.readouterr().out
