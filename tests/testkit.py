"""Test helpers shared by the whole suite: paths, synthetic georeferenced rasters, tiny RGB pairs and
option files, tiny multiband models, and a CPU ``torchrun`` launcher. Everything is generated into
``tmp_path``; nothing here is a fixture (those live in ``conftest.py``)."""
from __future__ import annotations

import copy
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import cv2
import numpy as np
import rasterio
import torch
import yaml
from affine import Affine
from rasterio.crs import CRS
from torch import nn

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / 'tests' / 'fixtures'
CONFORMANCE = FIXTURES / 'conformance'
SENTINEL2 = REPO / 'datasets' / 'sentinel2_demo'  # bundled crops of the real Sentinel-2 scene
CRS_UTM18N = CRS.from_epsg(32618)
TRANSFORM = Affine(10.0, 0.0, 435730.0, 0.0, -10.0, 4169220.0)


def run_torchrun(args: Sequence[str], cwd: Path, timeout: int = 240) -> str:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` on the CPU (gloo even on a GPU machine, one
    thread per rank); asserts it succeeded and returns its combined output: the launcher's, then rank 0's
    stdout and stderr, then rank 1's. Each rank writes to files of its own (torchrun ``--redirects``), so
    the two ranks' lines never interleave, even mid-line. A run past ``timeout`` is killed with its ranks."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
           'CUDA_VISIBLE_DEVICES': ''}
    logs = Path(tempfile.mkdtemp(prefix='rssr-torchrun-'))
    try:
        proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                                 '--log-dir', str(logs), '--redirects', '3', *args], cwd=cwd, env=env, text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
        output += ''.join(log.read_text(errors='replace') for rank in (0, 1) for stream in ('stdout', 'stderr')
                          for log in sorted(logs.glob(f'*/attempt_*/{rank}/{stream}.log')))
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    assert proc.returncode == 0, output[-4000:]
    return output


def band_names(count: int) -> list:
    return [f'B{i:02d}' for i in range(1, count + 1)]


def smooth_dn(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Textured uint16 reflectance-like DN (roughly 200..4000), distinct per band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    bands = [1500 + 700 * np.sin(xx / (3 + b) + b) * np.cos(yy / (4 + b)) + 300 * rng.random((height, width))
             + 100 * b for b in range(count)]
    return np.stack(bands).round().astype(np.uint16)


def write_geotiff(path: Path, dn: np.ndarray, nodata: Optional[float] = 0, descriptions: Optional[Sequence[str]] = None,
                  transform: Affine = TRANSFORM, crs: Optional[CRS] = CRS_UTM18N) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = dn.shape
    with rasterio.open(path, 'w', driver='GTiff', height=height, width=width, count=count, dtype=dn.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(dn)
        for band, name in enumerate(descriptions or band_names(count), start=1):
            dst.set_band_description(band, name)
    return path


def box_downsample(dn: np.ndarray, scale: int) -> np.ndarray:
    """Block mean: LQ pixel (i, j) is the mean of GT block (i, j) (rounded for integer types); makes crop
    alignment testable."""
    count, height, width = dn.shape
    blocks = dn[:, :height - height % scale, :width - width % scale].astype(np.float64)
    means = blocks.reshape(count, height // scale, scale, width // scale, scale).mean((2, 4))
    return (means.round() if np.issubdtype(dn.dtype, np.integer) else means).astype(dn.dtype)


def make_pair_folders(root: Path, count: int, names=('a', 'b'), gt_size: int = 64, scale: int = 4) -> dict:
    """GT/LQ GeoTIFF folders; LQ = block mean of GT with the transform scaled."""
    for i, name in enumerate(names):
        gt = smooth_dn(count, gt_size, gt_size, seed=i)
        write_geotiff(root / 'GT' / f'{name}.tif', gt)
        write_geotiff(root / 'LQ' / f'{name}.tif', box_downsample(gt, scale), transform=TRANSFORM @ Affine.scale(scale))
    return {'dataroot_gt': str(root / 'GT'), 'dataroot_lq': str(root / 'LQ')}


def tiny_model_opt(count: int, tmp: Path, datasets: dict, metrics: dict, scale: int = 4) -> dict:
    """Options for a CPU SRModel-style model with BasicSR's MSRResNet taking ``count`` bands."""
    return {
        'name': 'rs_test', 'model_type': 'RSSRModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'scale': scale, 'datasets': datasets,
        'network_g': {'type': 'MSRResNet', 'num_in_ch': count, 'num_out_ch': count, 'num_feat': 4, 'num_block': 1,
                      'upscale': scale},
        'path': {'pretrain_network_g': None, 'visualization': str(tmp / 'visualization')},
        'val': {'metrics': metrics, 'save_img': True, 'suffix': None},
    }


class LocalNet(nn.Module):
    """x2 SR net with an LR receptive-field radius of 2 pixels (translation-local). It keeps every input it
    is given in ``inputs`` and fails on a non-finite one: NaN must never reach a network."""

    def __init__(self, bands: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(bands, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, bands * 4, 3, padding=1),
                                  nn.PixelShuffle(2))
        self.inputs: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert torch.isfinite(x).all(), 'a non-finite value reached the network'
        self.inputs.append(x.detach().clone())
        return self.body(x) + nn.functional.interpolate(x, scale_factor=2, mode='nearest')


# Tiny RGB pairs and BasicSR option files (x2 EDSR), for the pipeline/CLI/training tests.
SCALE = 2


def write_pairs(root: Path, count: int, hr_size: int = 32, seed: int = 0) -> Dict[str, str]:
    """``count`` smooth random RGB HR images and their x2 LR versions; returns the two folders."""
    rng = np.random.default_rng(seed)
    folders = {'dataroot_gt': str(root / 'hr'), 'dataroot_lq': str(root / 'lr')}
    for folder in folders.values():
        os.makedirs(folder, exist_ok=True)
    for index in range(count):
        hr = cv2.GaussianBlur((rng.random((hr_size, hr_size, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        lr = cv2.resize(hr, (hr_size // SCALE, hr_size // SCALE), interpolation=cv2.INTER_AREA)
        cv2.imwrite(f'{folders["dataroot_gt"]}/{index:03d}.png', hr)
        cv2.imwrite(f'{folders["dataroot_lq"]}/{index:03d}.png', lr)
    return folders


def train_options(data_root: Path, name: str = 'tiny', total_iter: int = 8, with_val: bool = True) -> Dict[str, Any]:
    """A complete training option dict for EDSR(num_feat=8, num_block=1) on :func:`write_pairs` data."""
    train_set = write_pairs(data_root / 'train', 4)
    opt: Dict[str, Any] = {
        'name': name, 'model_type': 'RSSRModel', 'scale': SCALE, 'num_gpu': 'auto', 'manual_seed': 0,
        'deterministic': True,
        'datasets': {'train': {'name': 'tiny_train', 'type': 'PairedImageDataset', **train_set,
                               'io_backend': {'type': 'disk'}, 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
                               'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}},
        'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1,
                      'upscale': SCALE},
        'path': {},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.01},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'total_iter': total_iter, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
    }
    if with_val:
        val_set = write_pairs(data_root / 'val', 1, seed=1)
        opt['datasets']['val'] = {'name': 'tiny_val', 'type': 'PairedImageDataset', **val_set,
                                  'io_backend': {'type': 'disk'}}
        opt['val'] = {'val_freq': total_iter, 'save_img': False,
                      'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE, 'test_y_channel': False}}}
    return opt


def write_yaml(opt: Dict[str, Any], path: Path) -> Path:
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def runtime_options(opt: Dict[str, Any], root: Path) -> Dict[str, Any]:
    """What BasicSR's parse_options would make of ``opt`` for a single-process CPU training run."""
    opt = copy.deepcopy(opt)
    opt.update(is_train=True, dist=False, rank=0, world_size=1, num_gpu=0, auto_resume=False, root_path=str(root))
    experiments = root / 'experiments' / opt['name']
    opt['path'].update(experiments_root=str(experiments), models=str(experiments / 'models'),
                       training_states=str(experiments / 'training_states'), log=str(experiments),
                       visualization=str(experiments / 'visualization'))
    for folder in ('models', 'training_states'):
        os.makedirs(opt['path'][folder], exist_ok=True)
    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        dataset['scale'] = opt['scale']
    return opt
