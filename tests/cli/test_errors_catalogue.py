"""The bad-input catalogue of docs/errors.md, row by row: each ends in one paragraph naming the culprit,
its exit code and no traceback, and leaves no partial output behind.

Every case builds its bad input in ``tmp_path`` and runs the real CLI: ``main(argv)`` in this process
(monkeypatching only what cannot be made for real on a test machine: memory exhaustion, a full disk),
or a subprocess for the rows marked ``subprocess`` (exit status, DataLoader workers, OS permissions).
"""
from __future__ import annotations

import errno
import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

import cv2
import numpy as np
import pytest
import torch

from testkit import REPO, SCALE, make_pair_folders, smooth_dn, train_options, write_geotiff, write_pairs, write_yaml

DOCS = REPO / 'docs' / 'errors.md'
TINY_EDSR = {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': SCALE}
TINY_MSRRESNET = {'type': 'MSRResNet', 'num_in_ch': 4, 'num_out_ch': 4, 'num_feat': 4, 'num_block': 1, 'upscale': 4}
PARTIAL_FILE = re.compile(r'\.partial|rssr-partial')


@dataclass
class Run:
    """How a case runs: the CLI's argv, its working directory, folders that must hold no partial file, and paths
    that must not exist afterwards."""

    argv: List[str]
    cwd: Path
    checked_folders: List[Path] = field(default_factory=list)
    patch: Optional[Callable[[pytest.MonkeyPatch], None]] = None
    absent: List[Path] = field(default_factory=list)  # what a refused run must not create


@dataclass
class Case:
    tool: str
    exit_code: int
    expected: List[str]  # regular expressions the message must match
    build: Callable[[Path], Run]
    subprocess: bool = False


CASES: Dict[str, Case] = {}


def case(name: str, tool: str, exit_code: int, *expected: str, subprocess: bool = False):
    def register(build: Callable[[Path], Run]) -> Callable[[Path], Run]:
        CASES[name] = Case(tool, exit_code, list(expected), build, subprocess)
        return build
    return register


# ---- builders -----------------------------------------------------------------------------------
def rgb_train(tmp: Path, **changes) -> Dict:
    """BasicSR's stock SRModel + PairedImageDataset on 4 RGB x2 pairs (32 / 16 pixels), 2 iterations."""
    opt = train_options(tmp / 'data', name='errs', total_iter=2, with_val=False)
    opt.pop('deterministic')
    opt['model_type'] = 'SRModel'
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 1e-3}
    opt['logger']['save_checkpoint_freq'] = 1000
    opt.update(changes)
    return opt


def rgb_test(tmp: Path, weights: Optional[Path] = None) -> Dict:
    """BasicSR's stock SRModel testing TINY_EDSR (trained weights: random) on 2 RGB x2 pairs."""
    pairs = write_pairs(tmp / 'data' / 'test', 2, seed=3)
    if weights is None:
        weights = save_weights(tmp / 'net_g.pth', TINY_EDSR)
    dataset = {'name': 'tiny_test', 'type': 'PairedImageDataset', **pairs, 'io_backend': {'type': 'disk'}}
    return {'name': 'errs_test', 'model_type': 'SRModel', 'scale': SCALE, 'num_gpu': 0,
            'datasets': {'test_1': dataset}, 'network_g': dict(TINY_EDSR),
            'path': {'pretrain_network_g': str(weights), 'strict_load_g': True},
            'val': {'save_img': True, 'suffix': None,
                    'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': SCALE}}}}


def save_weights(path: Path, network: Dict) -> Path:
    import rssr  # noqa: F401  (registers rssr's archs; first, as it makes basicsr importable)

    from basicsr.utils.registry import ARCH_REGISTRY

    kwargs = {k: v for k, v in network.items() if k != 'type'}
    torch.save({'params': ARCH_REGISTRY.get(network['type'])(**kwargs).state_dict()}, path)
    return path


def train_run(tmp: Path, opt: Dict, **run) -> Run:
    write_yaml(opt, tmp / 'opt.yml')
    return Run(['-opt', str(tmp / 'opt.yml')], tmp, [tmp / 'experiments'], **run)


def evaluation_run(tmp: Path, opt: Dict, **run) -> Run:
    write_yaml(opt, tmp / 'opt.yml')
    return Run(['-opt', str(tmp / 'opt.yml')], tmp, [tmp / 'results'], **run)


def truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def multiband_train(tmp: Path, gt_size: int = 16, **dataset_changes) -> Dict:
    """RSSRModel + MultibandPairedDataset on 4-band GeoTIFF x4 pairs (64 / 16 pixels)."""
    folders = make_pair_folders(tmp / 'data', 4, names=('a', 'b', 'c'))
    opt = rgb_train(tmp)
    opt.update(model_type='RSSRModel', scale=4, network_g=dict(TINY_MSRRESNET))
    opt['datasets']['train'] = {'name': 'tiles', 'type': 'MultibandPairedDataset', **folders, 'gt_size': gt_size,
                                'radiometry': 'sentinel2', 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 1,
                                **dataset_changes}
    return opt


def infer_run(tmp: Path, *flags: str, **run) -> Run:
    """rssr.infer of a 4-band 40 x 40 GeoTIFF scene with TINY_MSRRESNET weights; ``flags`` (flag, value, ...)
    replace or add to the defaults."""
    scene = write_geotiff(tmp / 'scene.tif', smooth_dn(4, 40, 40))
    weights = save_weights(tmp / 'net_g.pth', TINY_MSRRESNET)
    options = {'--arch': 'MSRResNet', '--arch-kwargs': str({k: v for k, v in TINY_MSRRESNET.items() if k != 'type'}),
               '--weights': str(weights), '--input': str(scene), '--output': str(tmp / 'sr.tif'), '--device': 'cpu',
               '--tile': '32', '--overlap': '8', '--margin': '2'}
    options.update(zip(flags[::2], flags[1::2]))
    return Run([word for flag_and_value in options.items() for word in flag_and_value], tmp, [tmp], **run)


def raise_in_forward(error: BaseException) -> Callable[[pytest.MonkeyPatch], None]:
    """Make every network forward raise ``error`` (how an allocation failure surfaces)."""
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        def forward(self, *args, **kwargs):
            raise error
        from basicsr.archs.edsr_arch import EDSR
        from basicsr.archs.srresnet_arch import MSRResNet
        monkeypatch.setattr(EDSR, 'forward', forward)
        monkeypatch.setattr(MSRResNet, 'forward', forward)
    return patch


def disk_full(monkeypatch: pytest.MonkeyPatch) -> None:
    """torch.save writes half a file, then the disk is full."""
    def save(obj, path, *args, **kwargs):
        Path(path).write_bytes(b'PK\x03\x04 half a checkpoint')
        raise OSError(errno.ENOSPC, 'No space left on device', str(path))
    monkeypatch.setattr(torch, 'save', save)


# ---- rssr.train with BasicSR's SRModel + PairedImageDataset -------------------------------------
@case('train-band-count', 'rssr.train', 2, r'Band count mismatch: \S+/lr/00\d\.png', r'has 3 bands',
      r'network_g \(MSRResNet\) takes 4 \(num_in_ch: 4\)', r'Set network_g\.num_in_ch')
def _(tmp):
    return train_run(tmp, rgb_train(tmp, network_g={**TINY_MSRRESNET, 'upscale': SCALE}))


@case('train-corrupt-image', 'rssr.train', 2, r'Cannot decode image \S+/hr/002\.png', 'damaged, truncated',
      'Replace or remove it')
def _(tmp):
    opt = rgb_train(tmp)
    Path(opt['datasets']['train']['dataroot_gt'], '002.png').write_bytes(b'\x89PNG garbage')
    return train_run(tmp, opt)


@case('train-truncated-image', 'rssr.train', 2, r'Cannot decode image \S+/lr/001\.png')
def _(tmp):
    opt = rgb_train(tmp)
    truncate(Path(opt['datasets']['train']['dataroot_lq'], '001.png'))
    return train_run(tmp, opt)


@case('train-corrupt-image-in-worker', 'rssr.train', 2, r'^rssr\.train: Cannot decode image \S+/hr/002\.png')
def _(tmp):
    opt = rgb_train(tmp)
    opt['datasets']['train']['num_worker_per_gpu'] = 1
    Path(opt['datasets']['train']['dataroot_gt'], '002.png').write_bytes(b'\x89PNG garbage')
    return train_run(tmp, opt)


@case('train-non-image-file', 'rssr.train', 2, r'Cannot decode image \S+/notes\.txt', 'not an image')
def _(tmp):
    opt = rgb_train(tmp)
    for folder in ('dataroot_gt', 'dataroot_lq'):
        Path(opt['datasets']['train'][folder], 'notes.txt').write_text('captured 2024-05-01\n')
    return train_run(tmp, opt)


@case('train-sizes-off-scale', 'rssr.train', 2, r'LQ/GT sizes do not match scale 2: GT \S+/hr/00\d\.png is 32 x 32',
      r'LQ \S+/lr/00\d\.png is 15 x 15', 'Make the LQ images with scale 2')
def _(tmp):
    opt = rgb_train(tmp)
    lq_folder = Path(opt['datasets']['train']['dataroot_lq'])
    for path in lq_folder.glob('*.png'):
        cv2.imwrite(str(path), cv2.imread(str(path))[:15, :15])
    return train_run(tmp, opt)


@case('train-wrong-scale', 'rssr.train', 2, r'do not match scale 4', r'is 16 x 16, which x4 is 64 x 64',
      r'The data is x2: set scale: 2')
def _(tmp):
    opt = rgb_train(tmp, scale=4)
    opt['network_g']['upscale'] = 4
    return train_run(tmp, opt)


@case('train-lq-larger-than-gt', 'rssr.train', 2, r'GT \S+/lr/00\d\.png is 16 x 16', r'LQ \S+/hr/00\d\.png is 32 x 32',
      'probably swapped')
def _(tmp):
    opt = rgb_train(tmp)
    train = opt['datasets']['train']
    train['dataroot_gt'], train['dataroot_lq'] = train['dataroot_lq'], train['dataroot_gt']
    return train_run(tmp, opt)


@case('train-gt-size-larger-than-images', 'rssr.train', 2, r'LQ \S+/lr/00\d\.png is 16 x 16, smaller than the LQ '
      r'patch 24 x 24 \(gt_size 48 / scale 2\): lower gt_size')
def _(tmp):
    opt = rgb_train(tmp)
    opt['datasets']['train']['gt_size'] = 48
    return train_run(tmp, opt)


@case('train-empty-folders', 'rssr.train', 2, r'dataset train \(tiny_train\) is empty: no images in dataroot_gt \S+/hr',
      r'dataroot_lq \S+/lr')
def _(tmp):
    opt = rgb_train(tmp)
    for folder in ('dataroot_gt', 'dataroot_lq'):
        for path in Path(opt['datasets']['train'][folder]).iterdir():
            path.unlink()
    return train_run(tmp, opt)


@case('train-gt-without-lq', 'rssr.train', 2, r'GT folder \S+/hr and LQ folder \S+/lr of dataset train \(tiny_train\)',
      r'no LQ image for GT 003\.png \(expected 003\.png in the LQ folder')
def _(tmp):
    opt = rgb_train(tmp)
    Path(opt['datasets']['train']['dataroot_lq'], '003.png').unlink()
    return train_run(tmp, opt)


@case('train-lq-names-differ', 'rssr.train', 2, r'no LQ image for GT 000\.png, 001\.png, 002\.png, 003\.png '
      r'\(expected 000x2\.png', r"filename_tmpl '\{\}x2'", r'no GT image for LQ 000\.png')
def _(tmp):
    opt = rgb_train(tmp)
    opt['datasets']['train']['filename_tmpl'] = '{}x2'
    return train_run(tmp, opt)


@case('train-meta-info-lists-missing-file', 'rssr.train', 2, r'2 image files of dataset train \(tiny_train\) do not '
      r'exist \(listed in meta_info_file \S+/meta_info\.txt\): \S+/lr/004\.png, \S+/hr/004\.png')
def _(tmp):
    opt = rgb_train(tmp)
    (tmp / 'meta_info.txt').write_text(''.join(f'{i:03d}.png (32,32,3)\n' for i in range(5)))
    opt['datasets']['train']['meta_info_file'] = str(tmp / 'meta_info.txt')
    return train_run(tmp, opt)


@case('train-lmdb-not-lmdb', 'rssr.train', 2, r'io_backend lmdb from dataroot_gt \S+/hr, dataroot_lq \S+/lr, which is '
      r'not a readable LMDB', 'create_lmdb.py')
def _(tmp):
    opt = rgb_train(tmp)
    opt['datasets']['train']['io_backend'] = {'type': 'lmdb'}
    return train_run(tmp, opt)


@case('train-lmdb-unreadable', 'rssr.train', 2, r'io_backend lmdb from dataroot_gt \S+/hr\.lmdb', 'not a readable LMDB')
def _(tmp):
    opt = rgb_train(tmp)
    train = opt['datasets']['train']
    for folder in ('dataroot_gt', 'dataroot_lq'):
        lmdb_folder = tmp / (Path(train[folder]).name + '.lmdb')
        lmdb_folder.mkdir()
        (lmdb_folder / 'meta_info.txt').write_text(''.join(f'{i:03d}.png (32,32,3) 1\n' for i in range(4)))
        (lmdb_folder / 'data.mdb').write_bytes(b'copied halfway' * 100)
        train[folder] = str(lmdb_folder)
    train['io_backend'] = {'type': 'lmdb'}
    return train_run(tmp, opt)


@case('train-pretrained-other-config', 'rssr.train', 2, r'path\.pretrain_network_g: Checkpoint does not fit the model '
      r'\(EDSR <- \S+/other\.pth\)', r'shape mismatch', r'checkpoint \(16, 3, 3, 3\) vs model \(8, 3, 3, 3\)')
def _(tmp):
    opt = rgb_train(tmp)
    opt['path']['pretrain_network_g'] = str(save_weights(tmp / 'other.pth', {**TINY_EDSR, 'num_feat': 16}))
    return train_run(tmp, opt)


@case('train-pretrained-other-arch', 'rssr.train', 2, r'path\.pretrain_network_g: Checkpoint does not fit the model',
      r'missing from checkpoint', r'unexpected in checkpoint')
def _(tmp):
    opt = rgb_train(tmp)
    srresnet = {'type': 'MSRResNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    opt['path']['pretrain_network_g'] = str(save_weights(tmp / 'srresnet.pth', srresnet))
    return train_run(tmp, opt)


@case('train-pretrained-missing', 'rssr.train', 2, r'pretrain_network_g\S*:? .*\S+/nope\.pth')
def _(tmp):
    opt = rgb_train(tmp)
    opt['path']['pretrain_network_g'] = str(tmp / 'nope.pth')
    return train_run(tmp, opt)


@case('train-pretrained-truncated', 'rssr.train', 2, r'path\.pretrain_network_g: Cannot read checkpoint \S+/net_g\.pth')
def _(tmp):
    opt = rgb_train(tmp)
    opt['path']['pretrain_network_g'] = str(truncate(save_weights(tmp / 'net_g.pth', TINY_EDSR)))
    return train_run(tmp, opt)


@case('train-resume-other-run', 'rssr.train', 2, r'path\.resume_state \S+/2\.state \(iteration 2\) needs the network '
      r'weights \S+/experiments/errs/models/net_g_2\.pth', 'belongs to another run')
def _(tmp):
    states = tmp / 'elsewhere' / 'experiments' / 'earlier_run' / 'training_states'
    states.mkdir(parents=True)
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': []}, states / '2.state')
    opt = rgb_train(tmp)
    opt['path']['resume_state'] = str(states / '2.state')
    return train_run(tmp, opt)


@case('train-resume-truncated', 'rssr.train', 2, r'path\.resume_state: Cannot read checkpoint \S+/2\.state')
def _(tmp):
    state = tmp / '2.state'
    torch.save({'epoch': 0, 'iter': 2, 'optimizers': [], 'schedulers': []}, state)
    opt = rgb_train(tmp)
    opt['path']['resume_state'] = str(truncate(state))
    return train_run(tmp, opt)


@case('train-auto-resume-damaged-state', 'rssr.train', 2, r'path\.resume_state \(the newest state: delete it and '
      r'--auto_resume continues from the one before\): Cannot read checkpoint \S+/training_states/4\.state: the '
      r'file is damaged or truncated')
def _(tmp):
    states = tmp / 'experiments' / 'errs' / 'training_states'
    states.mkdir(parents=True)
    (states / '4.state').write_bytes(b'')
    run = train_run(tmp, rgb_train(tmp))
    run.argv.append('--auto_resume')
    return run


@case('train-out-of-memory', 'rssr.train', 4, r'out of memory while network_g \(EDSR\) ran on \S+/lr/00\d\.png',
      r'input 2 x 3 x 8 x 8', 'batch_size_per_gpu')
def _(tmp):
    error = RuntimeError('[enforce fail at alloc_cpu.cpp:121] data. DefaultCPUAllocator: not enough memory: '
                         'you tried to allocate 21474836480 bytes.')
    return train_run(tmp, rgb_train(tmp), patch=raise_in_forward(error))


@case('train-disk-full-on-save', 'rssr.train', 5, r'Cannot write checkpoint \S+/models/net_g_1\.pth: No space left',
      'Free disk space')
def _(tmp):
    opt = rgb_train(tmp)
    opt['logger']['save_checkpoint_freq'] = 1
    return train_run(tmp, opt, patch=disk_full)


@case('train-experiments-not-writable', 'rssr.train', 5, r'cannot write \S*experiments\S*: (permission denied|'
      r'operation not permitted|read-only file system)', 'Run from a folder you can write to', subprocess=True)
def _(tmp):
    run = train_run(tmp, rgb_train(tmp))
    run.cwd = Path('/sys')  # not writable, even by root
    return run


# ---- rssr.train with rssr's datasets and RSSRModel ----------------------------------------------
@case('train-mixed-band-counts', 'rssr.train', 2, r'Band count mismatch: GT \S+/GT/b\.tif gives 3 bands but GT '
      r'\S+/GT/a\.tif gives 4')
def _(tmp):
    opt = multiband_train(tmp)
    for folder, size in (('dataroot_gt', 64), ('dataroot_lq', 16)):
        write_geotiff(Path(opt['datasets']['train'][folder], 'b.tif'), smooth_dn(3, size, size))
    return train_run(tmp, opt)


@case('train-band-name-missing', 'rssr.train', 2, r"Band 'B99' not found in \S+\.tif; its band descriptions are: "
      r'B01, B02, B03, B04')
def _(tmp):
    return train_run(tmp, multiband_train(tmp, bands=['B01', 'B02', 'B03', 'B99']))


@case('train-band-selected-twice', 'rssr.train', 2, r"Band 2 \(B02\) of \S+\.tif is selected twice, as 'B02' and 2 "
      r'in the band selection B01, B02, 2, B04; select each band once')
def _(tmp):
    return train_run(tmp, multiband_train(tmp, bands=['B01', 'B02', 2, 'B04']))


@case('train-patch-larger-than-images', 'rssr.train', 2, r'LQ \S+\.tif is 16 x 16, smaller than the LQ patch 32 x 32 '
      r'\(gt_size 128 / scale 4\): lower gt_size')
def _(tmp):
    return train_run(tmp, multiband_train(tmp, gt_size=128))


@case('train-unknown-radiometry', 'rssr.train', 2, r"Unknown radiometry preset 'sentinel3'; known: sentinel2")
def _(tmp):
    return train_run(tmp, multiband_train(tmp, radiometry='sentinel3'))


@case('train-nodata-only-scene', 'rssr.train', 2, r'No 16 x 16 window with at least 50% valid pixels found in 20 tries '
      r'in \S+/empty\.tif', 'lower min_valid_fraction')
def _(tmp):
    scene = write_geotiff(tmp / 'empty.tif', np.zeros((4, 64, 64), dtype=np.uint16), nodata=0)
    opt = multiband_train(tmp)
    opt['datasets']['train'] = {'name': 'scenes', 'type': 'SceneDegradationDataset', 'dataroot_gt': str(scene),
                                'gt_size': 16, 'num_patches': 4, 'radiometry': 'sentinel2',
                                'num_worker_per_gpu': 0, 'batch_size_per_gpu': 1}
    return train_run(tmp, opt)


# ---- rssr.test ----------------------------------------------------------------------------------
@case('test-band-selected-twice', 'rssr.test', 2, r"Band 3 \(B03\) of \S+\.tif is selected twice, as 3 and 'B03'")
def _(tmp):
    folders = make_pair_folders(tmp / 'data', 4, names=('a',))
    dataset = {'name': 'tiles', 'type': 'MultibandPairedDataset', **folders, 'bands': [3, 'B03', 2, 1]}
    opt = {'name': 'errs_test', 'model_type': 'RSSRModel', 'scale': 4, 'num_gpu': 0, 'datasets': {'test_1': dataset},
           'network_g': dict(TINY_MSRRESNET), 'val': {'save_img': True},
           'path': {'pretrain_network_g': str(save_weights(tmp / 'net_g.pth', TINY_MSRRESNET))}}
    return evaluation_run(tmp, opt)


@case('test-band-count', 'rssr.test', 2, r'Band count mismatch: \S+/lr/00\d\.png has 3 bands but network_g '
      r'\(MSRResNet\) takes 4')
def _(tmp):
    network = {**TINY_MSRRESNET, 'upscale': SCALE}
    opt = rgb_test(tmp, save_weights(tmp / 'four.pth', network))
    opt['network_g'] = network
    return evaluation_run(tmp, opt)


@case('test-sizes-off-scale', 'rssr.test', 2, r'LQ/GT sizes do not match scale 2: GT \S+/hr/00\d\.png is 30 x 30',
      r'LQ \S+/lr/00\d\.png is 16 x 16')
def _(tmp):
    opt = rgb_test(tmp)
    for path in Path(opt['datasets']['test_1']['dataroot_gt']).glob('*.png'):
        cv2.imwrite(str(path), cv2.imread(str(path))[:30, :30])
    return evaluation_run(tmp, opt)


@case('test-wrong-scale', 'rssr.test', 2, r'do not match scale 4', r'The data is x2: set scale: 2')
def _(tmp):
    network = {**TINY_EDSR, 'upscale': 4}
    opt = rgb_test(tmp, save_weights(tmp / 'x4.pth', network))
    opt.update(scale=4, network_g=network)
    return evaluation_run(tmp, opt)


@case('test-corrupt-image', 'rssr.test', 2, r'Cannot decode image \S+/lr/001\.png')
def _(tmp):
    opt = rgb_test(tmp)
    Path(opt['datasets']['test_1']['dataroot_lq'], '001.png').write_bytes(b'')
    return evaluation_run(tmp, opt)


@case('test-pretrained-other-config', 'rssr.test', 2, r'path\.pretrain_network_g: Checkpoint does not fit the model',
      r'checkpoint \(16, 3, 3, 3\) vs model \(8, 3, 3, 3\)')
def _(tmp):
    return evaluation_run(tmp, rgb_test(tmp, save_weights(tmp / 'other.pth', {**TINY_EDSR, 'num_feat': 16})))


@case('test-pretrained-truncated', 'rssr.test', 2, r'path\.pretrain_network_g: Cannot read checkpoint \S+/net_g\.pth')
def _(tmp):
    return evaluation_run(tmp, rgb_test(tmp, truncate(save_weights(tmp / 'net_g.pth', TINY_EDSR))))


@case('test-empty-folders', 'rssr.test', 2, r'dataset test \(tiny_test\) is empty')
def _(tmp):
    opt = rgb_test(tmp)
    for folder in ('dataroot_gt', 'dataroot_lq'):
        shutil.rmtree(opt['datasets']['test_1'][folder])
        os.makedirs(opt['datasets']['test_1'][folder])
    return evaluation_run(tmp, opt)


@case('test-out-of-memory', 'rssr.test', 4, r'out of memory while network_g \(EDSR\) ran on \S+/lr/000\.png '
      r'\(input 1 x 3 x 16 x 16\)', 'crop large validation/test images into tiles', 'rssr.infer')
def _(tmp):
    return evaluation_run(tmp, rgb_test(tmp), patch=raise_in_forward(torch.OutOfMemoryError(
        'CUDA out of memory. Tried to allocate 20.00 GiB')))


@case('test-results-not-writable', 'rssr.test', 5, r'cannot write \S*results\S*')
def _(tmp):
    run = evaluation_run(tmp, rgb_test(tmp))
    run.cwd = Path('/sys')
    return run


# ---- rssr.infer ---------------------------------------------------------------------------------
@case('infer-arch-kwargs-malformed', 'rssr.infer', 2, r'--arch-kwargs')
def _(tmp):
    return infer_run(tmp, '--arch-kwargs', '{num_in_ch: 4, num_feat: [4}')


@case('infer-arch-kwargs-not-mapping', 'rssr.infer', 2, r'--arch-kwargs must be a mapping')
def _(tmp):
    return infer_run(tmp, '--arch-kwargs', '[4, 4]')


@case('infer-input-missing', 'rssr.infer', 2, r'Input not found: \S+/nowhere\.tif')
def _(tmp):
    return infer_run(tmp, '--input', str(tmp / 'nowhere.tif'))


@case('infer-unsupported-file', 'rssr.infer', 2, r'Cannot read raster \S+/scene\.txt')
def _(tmp):
    (tmp / 'scene.txt').write_text('not a raster')
    return infer_run(tmp, '--input', str(tmp / 'scene.txt'))


@case('infer-corrupt-raster', 'rssr.infer', 2, r'\S+/broken\.tif')
def _(tmp):
    truncate(write_geotiff(tmp / 'broken.tif', smooth_dn(4, 40, 40)))
    return infer_run(tmp, '--input', str(tmp / 'broken.tif'))


@case('infer-empty-input-folder', 'rssr.infer', 2, r'No rasters \(\.tif.*\) in folder \S+/empty')
def _(tmp):
    (tmp / 'empty').mkdir()
    return infer_run(tmp, '--input', str(tmp / 'empty'), '--output', str(tmp / 'out'))


@case('infer-band-name-missing', 'rssr.infer', 2, r"Band 'B99' not found in \S+/scene\.tif; its band descriptions are: "
      r'B01, B02, B03, B04')
def _(tmp):
    return infer_run(tmp, '--bands', 'B01,B02,B03,B99')


@case('infer-band-out-of-range', 'rssr.infer', 2, r'Band 9 is out of range for \S+/scene\.tif, which has 4 bands')
def _(tmp):
    return infer_run(tmp, '--bands', '1,2,3,9')


@case('infer-band-count', 'rssr.infer', 2, r'The model takes 4 bands but 3 bands are selected from \S+/scene\.tif')
def _(tmp):
    return infer_run(tmp, '--bands', '1,2,3')


@case('infer-output-exists', 'rssr.infer', 2, r'Output \S+/sr\.tif already exists; pass .*--overwrite')
def _(tmp):
    (tmp / 'sr.tif').write_bytes(b'an earlier result')
    return infer_run(tmp)


@case('infer-png-for-4-bands', 'rssr.infer', 2, r'A PNG holds 1 or 3 bands of uint8/uint16; the output \S+/sr\.png '
      r'would have 4 bands of uint16\. Write a \.tif')
def _(tmp):
    return infer_run(tmp, '--output', str(tmp / 'sr.png'))


@case('infer-png-for-float32', 'rssr.infer', 2, r'the output \S+/sr\.png would have 4 bands of float32')
def _(tmp):
    return infer_run(tmp, '--output', str(tmp / 'sr.png'), '--out-dtype', 'float32')


def cpu_bf16(native: bool) -> Callable[[pytest.MonkeyPatch], None]:
    """Make this CPU have native bfloat16 or not."""
    def patch(monkeypatch: pytest.MonkeyPatch) -> None:
        from rssr.inference import precision
        monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: native)
    return patch


@case('infer-amp-bf16-not-native', 'rssr.infer', 2, r'--amp bf16 on this CPU: it has no native bfloat16 '
      r'instructions \(AVX512-BF16, AMX or Arm BF16\).*Run without --amp')
def _(tmp):
    return infer_run(tmp, '--amp', 'bf16', patch=cpu_bf16(False), absent=[tmp / 'sr.tif'])


@case('infer-amp-fp16-on-cpu', 'rssr.infer', 2, r'--amp fp16 runs on GPUs only; on the CPU use --amp bf16')
def _(tmp):
    return infer_run(tmp, '--amp', 'fp16', patch=cpu_bf16(True), absent=[tmp / 'sr.tif'])


@case('infer-output-unknown-format', 'rssr.infer', 2, r'Output \S+/sr\.jpg: rssr\.infer writes GeoTIFF '
      r'\(\.tif, \.tiff\) or PNG \(\.png\), not \.jpg')
def _(tmp):
    return infer_run(tmp, '--output', str(tmp / 'sr.jpg'))


@case('infer-output-folder-is-a-file', 'rssr.infer', 2, r'Output \S+/scene\.tif/sr\.tif: \S+/scene\.tif is a file, '
      r'not a folder')
def _(tmp):
    return infer_run(tmp, '--output', str(tmp / 'scene.tif' / 'sr.tif'))


@case('infer-band-selected-twice', 'rssr.infer', 2, r"Band 2 \(B02\) of \S+/scene\.tif is selected twice, as 'B02' "
      r'and 2')
def _(tmp):
    return infer_run(tmp, '--bands', 'B01,B02,2,B04')


@case('infer-nodata-out-of-range', 'rssr.infer', 2, r'--nodata -1 is not a uint16 value \(0\.\.65535\), the data type '
      r'of \S+/scene\.tif')
def _(tmp):
    return infer_run(tmp, '--nodata', '-1')


@case('infer-nodata-not-an-integer', 'rssr.infer', 2, r'--nodata 0\.5 is not a uint16 value')
def _(tmp):
    return infer_run(tmp, '--nodata', '0.5')


@case('infer-unknown-radiometry', 'rssr.infer', 2, r"Unknown radiometry preset 'sentinel3'; known: sentinel2")
def _(tmp):
    return infer_run(tmp, '--radiometry', 'sentinel3')


def shipped_infer_run(tmp: Path, *flags: str, bands: int = 4, nodata: Optional[float] = None) -> Run:
    """rssr.infer --model convmambasr_s2_x4 (its card names B02 B03 B04 B08) of a 24 x 24 GeoTIFF scene whose
    bands are described as the first ``bands`` of those."""
    scene = write_geotiff(tmp / 'scene.tif', smooth_dn(bands, 24, 24), nodata=nodata,
                          descriptions=['B02', 'B03', 'B04', 'B08'][:bands])
    return Run(['--model', 'convmambasr_s2_x4', '--input', str(scene), '--output', str(tmp / 'sr.tif'),
                '--radiometry', 'sentinel2', '--device', 'cpu', *flags], tmp, [tmp])


@case('infer-bands-in-another-order', 'rssr.infer', 2, r'--bands B08,B04,B03,B02 selects the bands B08, B04, B03, B02 '
      r"of \S+/scene\.tif, but convmambasr_s2_x4's model card takes them in the order B02, B03, B04, B08: use "
      r'--bands B02,B03,B04,B08')
def _(tmp):
    return shipped_infer_run(tmp, '--bands', 'B08,B04,B03,B02')


@case('infer-band-count-names-the-bands', 'rssr.infer', 2, r'The model takes 4 bands \(B02, B03, B04, B08, as '
      r"convmambasr_s2_x4's model card names them\) but 3 bands are selected from \S+/scene\.tif \(bands 1 \(B02\), "
      r'2 \(B03\), 3 \(B04\)\)')
def _(tmp):
    return shipped_infer_run(tmp, bands=3)


@case('infer-all-nodata-scene', 'rssr.infer', 2, r'Band statistics of \S+/scene\.tif \(bands 1, 2, 3, 4\): no valid '
      r'pixel \(every pixel is nodata')
def _(tmp):
    run = shipped_infer_run(tmp)
    write_geotiff(tmp / 'scene.tif', np.full((4, 24, 24), np.nan, np.float32), nodata=None,
                  descriptions=['B02', 'B03', 'B04', 'B08'])
    return run


@case('infer-weights-truncated', 'rssr.infer', 2, r'Cannot read checkpoint \S+/net_g\.pth')
def _(tmp):
    run = infer_run(tmp)
    truncate(tmp / 'net_g.pth')
    return run


@case('infer-unknown-zoo-model', 'rssr.infer', 2, r"No model named 'convmambasrr' in the rssr zoo; did you mean "
      r"'convmambasr'")
def _(tmp):
    run = infer_run(tmp)
    run.argv[run.argv.index('--arch'):run.argv.index('--arch') + 4] = ['--model', 'convmambasrr']
    return run


@case('infer-no-weights', 'rssr.infer', 2, r'No weights: pass --weights')
def _(tmp):
    run = infer_run(tmp)
    del run.argv[run.argv.index('--weights'):run.argv.index('--weights') + 2]
    return run


@case('infer-weights-empty', 'rssr.infer', 2, r'Cannot read checkpoint \S+/empty\.pth: the file is damaged or '
      r'truncated \(EOFError: empty file\)')
def _(tmp):
    (tmp / 'empty.pth').write_bytes(b'')
    return infer_run(tmp, '--weights', str(tmp / 'empty.pth'))


@case('infer-weights-other-config', 'rssr.infer', 2,
      r'Checkpoint does not fit the model \(MSRResNet <- \S+/other\.pth\)', r'shape mismatch')
def _(tmp):
    save_weights(tmp / 'other.pth', {**TINY_MSRRESNET, 'num_feat': 8})
    return infer_run(tmp, '--weights', str(tmp / 'other.pth'))


@case('infer-weights-missing', 'rssr.infer', 2, r'Checkpoint file not found: \S+/nope\.pth')
def _(tmp):
    return infer_run(tmp, '--weights', str(tmp / 'nope.pth'))


@case('infer-tiling-invalid', 'rssr.infer', 2,
      r'Need 0 <= 2\*margin < overlap < tile; got margin 2, overlap 40, tile 32')
def _(tmp):
    return infer_run(tmp, '--overlap', '40')


@case('infer-out-of-memory', 'rssr.infer', 4, r'out of memory while super-resolving a batch of tiles: lower --tile')
def _(tmp):
    return infer_run(tmp, patch=raise_in_forward(torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 9 GiB')))


@case('infer-output-not-writable', 'rssr.infer', 5, r'cannot write /sys/sr_out')
def _(tmp):
    write_geotiff(tmp / 'tiles' / 'a.tif', smooth_dn(4, 40, 40))
    return infer_run(tmp, '--input', str(tmp / 'tiles'), '--output', '/sys/sr_out')


@case('infer-output-file-not-writable', 'rssr.infer', 5, r'cannot write /sys/sr\.tif: /sys is not writable '
      r'\(Permission denied\)', 'folder you can write to')
def _(tmp):
    return infer_run(tmp, '--output', '/sys/sr.tif')


# ---- typos in option files and arch keywords: refused before anything is created -----------------
def refused_options(tmp: Path, opt: Dict, creates: str = 'experiments') -> Run:
    """An option file the checker refuses: the run must not create its ``creates`` folder."""
    write_yaml(opt, tmp / 'opt.yml')
    return Run(['-opt', str(tmp / 'opt.yml')], tmp, [tmp], absent=[tmp / creates])


def renamed(mapping: Dict, key: str, typo: str) -> Dict:
    """``mapping`` with ``key`` renamed ``typo`` (in place, returned)."""
    mapping[typo] = mapping.pop(key)
    return mapping


@case('options-network-g-typo', 'rssr.train', 2, r"network_g\.embed_dimm is not an option of arch ConvMambaSR; did "
      r"you mean 'embed_dim'\? Its \*\*kwargs would swallow 'embed_dimm' and leave 'embed_dim' at its default")
def _(tmp):
    return refused_options(tmp, rgb_train(tmp, network_g={'type': 'ConvMambaSR', 'upscale': SCALE, 'embed_dimm': 8}))


@case('options-network-g-type-typo', 'rssr.train', 2,
      r"network_g\.typ is not an option; did you mean 'type'\? \(network_g needs a `type:` naming a registered arch\)")
def _(tmp):
    return refused_options(tmp, rgb_train(tmp, network_g=renamed(dict(TINY_EDSR), 'type', 'typ')))


@case('options-required-key-typo', 'rssr.train', 2,
      r"model_typ is not an option; did you mean 'model_type'\? \(the top-level key `model_type:` is missing\)")
def _(tmp):
    return refused_options(tmp, renamed(rgb_train(tmp), 'model_type', 'model_typ'))


@case('options-dataset-typo', 'rssr.train', 2,
      r"datasets\.train\.gt_szie is not an option of dataset type PairedImageDataset; did you mean 'gt_size'\?")
def _(tmp):
    opt = rgb_train(tmp)
    renamed(opt['datasets']['train'], 'gt_size', 'gt_szie')
    return refused_options(tmp, opt)


@case('options-io-backend-typo', 'rssr.train', 2, r"datasets\.train\.io_backend\.tpye is not an option; did you mean "
      r"'type'\? \(datasets\.train\.io_backend needs a `type:` \(disk, memcached, lmdb\)\)")
def _(tmp):
    opt = rgb_train(tmp)
    renamed(opt['datasets']['train']['io_backend'], 'type', 'tpye')
    return refused_options(tmp, opt)


@case('options-scheduler-typo', 'rssr.train', 2,
      r"train\.scheduler\.milestone is not an option of scheduler MultiStepLR; did you mean 'milestones'\?")
def _(tmp):
    opt = rgb_train(tmp)
    renamed(opt['train']['scheduler'], 'milestones', 'milestone')
    return refused_options(tmp, opt)


@case('options-logger-typo', 'rssr.train', 2, r"logger\.save_checkpoint_frq is not an option of BasicSR's training "
      r"logger; did you mean 'save_checkpoint_freq'")
def _(tmp):
    opt = rgb_train(tmp)
    renamed(opt['logger'], 'save_checkpoint_freq', 'save_checkpoint_frq')
    return refused_options(tmp, opt)


@case('options-dist-params-typo', 'rssr.train', 2,
      r"dist_params\.bakend is not an option of BasicSR's init_dist \(--launcher slurm\); did you mean 'backend'\?")
def _(tmp):
    return refused_options(tmp, rgb_train(tmp, dist_params={'bakend': 'nccl', 'port': 29500}))


@case('options-band-normalization-typo', 'rssr.train', 2,
      r"band_normalization\.residul is not an option; did you mean 'residual'\?")
def _(tmp):
    opt = multiband_train(tmp)
    opt['band_normalization'] = {'mode': 'image', 'residul': 'bicubic'}
    return refused_options(tmp, opt)


@case('options-metric-typo', 'rssr.test', 2, r"val\.metrics\.psnr\.test_y_chanel is not an option of metric "
      r"calculate_psnr; did you mean 'test_y_channel'\? Its \*\*kwargs would swallow 'test_y_chanel'")
def _(tmp):
    opt = rgb_test(tmp)
    opt['val']['metrics']['psnr']['test_y_chanel'] = True
    return refused_options(tmp, opt, creates='results')


@case('options-pretrain-path-typo', 'rssr.test', 2, r"path\.pretrain_network_gg is not an option of model SRModel or "
      r"BasicSR's pipeline; did you mean 'pretrain_network_g'\?")
def _(tmp):
    opt = rgb_test(tmp)
    renamed(opt['path'], 'pretrain_network_g', 'pretrain_network_gg')
    return refused_options(tmp, opt, creates='results')


@case('infer-arch-kwargs-typo', 'rssr.infer', 2, r"--arch-kwargs: 'd_statee' is not an option of ConvMambaSR; did you "
      r"mean 'd_state'\? Its \*\*kwargs would swallow 'd_statee'")
def _(tmp):
    run = infer_run(tmp, '--arch', 'ConvMambaSR', '--arch-kwargs', '{in_chans: 4, upscale: 4, d_statee: 8}')
    run.absent = [tmp / 'sr.tif']
    return run


@case('infer-arch-kwargs-unknown-key', 'rssr.infer', 2,
      r"--arch-kwargs: 'num_feats' is not an option of MSRResNet; did you mean 'num_feat'\? Its options are ")
def _(tmp):
    run = infer_run(tmp, '--arch-kwargs', '{num_in_ch: 4, num_out_ch: 4, num_feats: 4, num_block: 1, upscale: 4}')
    run.absent = [tmp / 'sr.tif']
    return run


@case('infer-options-network-g-typo', 'rssr.infer', 2, r"network_g in \S+/opt\.yml: 'embed_dimm' is not an option of "
      r"ConvMambaSR; did you mean 'embed_dim'\?")
def _(tmp):
    run = infer_run(tmp)
    write_yaml({'network_g': {'type': 'ConvMambaSR', 'in_chans': 4, 'upscale': 4, 'embed_dimm': 8}}, tmp / 'opt.yml')
    flags = dict(zip(run.argv[::2], run.argv[1::2]))
    del flags['--arch'], flags['--arch-kwargs']
    run.argv = [word for flag_and_value in {**flags, '--opt': str(tmp / 'opt.yml')}.items() for word in flag_and_value]
    run.absent = [tmp / 'sr.tif']
    return run


# ---- data preparation scripts -------------------------------------------------------------------
@case('prepare-rsscn7-no-input', 'scripts/prepare_rsscn7.py', 2, r'Input folder not found: \S+/RSSCN7')
def _(tmp):
    return Run(['--input', str(tmp / 'RSSCN7'), '--output', str(tmp / 'datasets/RSSCN7'), '--scales', '2', '3', '4',
                '--seed', '0'], tmp, [tmp])


@case('prepare-aid-no-input', 'scripts/prepare_aid.py', 2, r'Input folder not found: \S+/AID')
def _(tmp):
    return Run(['--input', str(tmp / 'AID'), '--output', str(tmp / 'datasets/AID'), '--scales', '2', '3', '4',
                '--seed', '0'], tmp, [tmp])


@case('prepare-aid-class-too-small', 'scripts/prepare_aid.py', 2, r'Class Airport has 2 images, fewer than the 130')
def _(tmp):
    (tmp / 'AID' / 'Airport').mkdir(parents=True)
    for index in range(2):
        cv2.imwrite(str(tmp / 'AID' / 'Airport' / f'airport_{index}.jpg'), np.zeros((600, 600, 3), np.uint8))
    return Run(['--input', str(tmp / 'AID'), '--output', str(tmp / 'datasets/AID')], tmp, [tmp / 'datasets'])


# ---- running ------------------------------------------------------------------------------------
def tiny_onnx(tmp: Path) -> Path:
    """TINY_MSRRESNET exported by rssr.export at tile 16 (4 bands, input convention rssr)."""
    pytest.importorskip('onnxruntime')
    from rssr.export import main as export_main

    weights = save_weights(tmp / 'net_g.pth', TINY_MSRRESNET)
    assert export_main(['--arch', 'MSRResNet', '--arch-kwargs',
                        str({k: v for k, v in TINY_MSRRESNET.items() if k != 'type'}), '--weights', str(weights),
                        '--tile', '16', '--output', str(tmp / 'tiny.onnx')]) == 0
    return tmp / 'tiny.onnx'


def onnx_infer_run(tmp: Path, model: Path, bands: int = 4, *flags: str) -> Run:
    scene = write_geotiff(tmp / 'scene.tif', smooth_dn(bands, 40, 40))
    return Run(['--onnx', str(model), '--input', str(scene), '--output', str(tmp / 'sr.tif'), '--overlap', '8',
                '--margin', '2', *flags], tmp, [tmp])


@case('infer-onnx-with-model-options', 'rssr.infer', 2, r'--onnx runs the exported model as it is; drop --model, '
      r'--self-ensemble')
def _(tmp):
    return onnx_infer_run(tmp, tiny_onnx(tmp), 4, '--model', 'convmambasr_s2_x4', '--self-ensemble')


@case('export-onnx-extra-missing', 'rssr.export', 2, r'onnx is not installed; .*pip install "rssr\[onnx\]"')
def _(tmp):
    return Run(['--model', 'repmamba_s2_x4', '--tile', '32', '--output', str(tmp / 'x.onnx')], tmp, [tmp],
               patch=lambda monkeypatch: monkeypatch.setitem(sys.modules, 'onnx', None),  # import onnx fails
               absent=[tmp / 'x.onnx'])


@case('export-tile-not-valid', 'rssr.export', 2, r'--tile 33 is not a tile size this model takes as it is .*multiples '
      r'of 2.*use --tile 34')
def _(tmp):
    pytest.importorskip('onnxruntime')
    return Run(['--model', 'repmamba_s2_x4', '--tile', '33', '--output', str(tmp / 'x.onnx')], tmp, [tmp],
               absent=[tmp / 'x.onnx'])


@case('infer-onnx-not-rssr', 'rssr.infer', 2, r'\S+/other\.onnx was not exported by rssr \(its metadata has no '
      r"'rssr' card")
def _(tmp):
    onnx = pytest.importorskip('onnx')
    pytest.importorskip('onnxruntime')
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'other',
                              [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1, 4, 16, 16])],
                              [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1, 4, 16, 16])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid('', 18)]), str(tmp / 'other.onnx'))
    return onnx_infer_run(tmp, tmp / 'other.onnx')


@case('infer-onnx-band-count', 'rssr.infer', 2, r'The model takes 4 bands but 3 bands are selected from \S+/scene\.tif')
def _(tmp):
    return onnx_infer_run(tmp, tiny_onnx(tmp), 3)


@case('infer-onnx-other-tile', 'rssr.infer', 2, r'\S+/tiny\.onnx was exported for 16-pixel tiles; drop --tile 32')
def _(tmp):
    return onnx_infer_run(tmp, tiny_onnx(tmp), 4, '--tile', '32')


def _cli_main(tool: str) -> Callable:
    if tool.startswith('scripts/'):
        import importlib.util
        spec = importlib.util.spec_from_file_location(Path(tool).stem, REPO / tool)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.main
    import importlib
    return importlib.import_module(tool).main


def _command(tool: str) -> List[str]:
    return [sys.executable, str(REPO / tool)] if tool.startswith('scripts/') else [sys.executable, '-m', tool]


def run_case(item: Case, run: Run, monkeypatch, capsys, env: Optional[Dict[str, str]] = None) -> tuple:
    """(exit code, stderr) of the case's CLI."""
    if item.subprocess or env:
        environment = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1', **(env or {})}
        proc = subprocess.run(_command(item.tool) + run.argv, cwd=run.cwd, env=environment, text=True,
                              capture_output=True, timeout=300)
        return proc.returncode, proc.stderr
    monkeypatch.chdir(run.cwd)
    monkeypatch.setattr(sys, 'argv', [item.tool])
    if run.patch is not None:
        run.patch(monkeypatch)
    main = _cli_main(item.tool)
    capsys.readouterr()
    fresh_basicsr_logger()
    try:
        code = main(run.argv)
    except SystemExit as stop:
        code = stop.code
    finally:
        fresh_basicsr_logger()
    return code, capsys.readouterr().err


def fresh_basicsr_logger() -> None:
    """Let the next in-process run set up BasicSR's logger again (its handlers hold this run's stderr and log)."""
    from basicsr.utils import logger as basicsr_logger

    logger = logging.getLogger('basicsr')
    for handler in list(logger.handlers):
        handler.close()
        logger.removeHandler(handler)
    basicsr_logger.initialized_logger.pop('basicsr', None)


def last_paragraph(stderr: str) -> str:
    """The CLI's final message: the lines after the last log/progress line."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    start = max((i for i, line in enumerate(lines) if line.startswith(('rssr', 'scripts/'))), default=0)
    return '\n'.join(lines[start:])


@pytest.mark.parametrize('name', sorted(CASES))
def test_bad_input_ends_in_one_paragraph(name, tmp_path, monkeypatch, capsys):
    item = CASES[name]
    run = item.build(tmp_path)
    before = files_in(run.checked_folders)
    code, stderr = run_case(item, run, monkeypatch, capsys)
    message = last_paragraph(stderr)
    assert code == item.exit_code, stderr[-3000:]
    assert 'Traceback' not in stderr, stderr[-3000:]
    assert message.startswith((item.tool + ': ', 'rssr: ')), stderr[-3000:]
    assert '\n\n' not in message
    for pattern in item.expected:
        assert re.search(pattern, message, re.MULTILINE), f'{pattern!r} not in:\n{message}'
    after = files_in(run.checked_folders)
    assert not [path for path in after if PARTIAL_FILE.search(path.name)]
    assert not [path for path in after - before if path.suffix in ('.pth', '.state')], 'checkpoint of a failed run'
    assert not [path for path in run.absent if path.exists()], 'created by a refused run'
    if item.tool == 'rssr.infer':
        assert not [path for path in after - before if path.is_file()], 'output of a failed rssr.infer'


def files_in(folders: List[Path]) -> set:
    return {path for folder in folders if folder.is_dir() for path in folder.rglob('*')}


def test_every_catalogue_row_is_documented_with_its_tool_and_exit_code():
    rows = {}
    for line in DOCS.read_text(encoding='utf-8').splitlines():
        match = re.match(r'\|\s*`([a-z0-9-]+)`\s*\|.*\|\s*`([^`]+)`\s*\|.*\|\s*(\d+)\s*\|$', line)
        if match:
            rows[match.group(1)] = (match.group(2), int(match.group(3)))
    assert rows == {name: (item.tool, item.exit_code) for name, item in CASES.items()}
    assert len(rows) >= 30


def test_rssr_debug_shows_the_traceback(tmp_path, monkeypatch, capsys):
    item = CASES['train-gt-without-lq']
    code, stderr = run_case(item, item.build(tmp_path), monkeypatch, capsys, env={'RSSR_DEBUG': '1'})
    assert code == 1
    assert 'Traceback (most recent call last)' in stderr and 'rssr.errors.DataError: GT folder' in stderr


def test_unknown_errors_keep_their_traceback(tmp_path, monkeypatch, capsys):
    item = CASES['train-out-of-memory']
    run = item.build(tmp_path)
    run.patch = raise_in_forward(KeyError('a bug in the network'))
    with pytest.raises(KeyError, match='a bug in the network'):
        run_case(item, run, monkeypatch, capsys)
