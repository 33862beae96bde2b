"""Tiny paired images and option files for the foundation/training/CLI tests (generated into tmp_path)."""
from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any, Dict

import cv2
import numpy as np
import yaml

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
