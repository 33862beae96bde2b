"""MambaCSR's compressed-LR data: deterministic JPEG degradation, the LR-preparation script, dataset round trips."""
import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

import rssr  # noqa: F401  (registers rssr datasets, makes basicsr importable)
from rssr.data.degradations import DegradationPipeline, jpeg_compress
from rssr.data.scene_degradation_dataset import SceneDegradationDataset
from testkit import REPO

from basicsr.data.paired_image_dataset import PairedImageDataset

SCRIPT = REPO / 'scripts' / 'prepare_mambacsr_lr.py'
QUALITIES = (10, 20, 30, 40)


def load_script():
    spec = importlib.util.spec_from_file_location('prepare_mambacsr_lr', SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def textured_image(height: int, width: int, seed: int) -> np.ndarray:
    """An 8-bit BGR image with edges, gradients and noise (so JPEG at each QF loses something)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    checkerboard = ((xx // 6 + yy // 6) % 2) * 200
    base = np.stack([xx * 255 // max(width - 1, 1), yy * 255 // max(height - 1, 1), checkerboard])
    noisy = base.transpose(1, 2, 0) + rng.normal(0, 25, (height, width, 3))
    return np.clip(noisy, 0, 255).astype(np.uint8)


@pytest.fixture(scope='module')
def hr_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp('mambacsr') / 'HR'
    folder.mkdir()
    for name, (h, w), seed in (('a', (50, 38), 0), ('b', (32, 44), 1)):  # 50x38 is not a multiple of 4
        cv2.imwrite(str(folder / f'{name}.png'), textured_image(h, w, seed))
    return folder


@pytest.fixture(scope='module')
def prepared(hr_folder) -> Path:
    out = hr_folder.parent / 'out'
    load_script().prepare(hr_folder, out, QUALITIES, scale=4)
    return out


def test_jpeg_is_deterministic_and_lower_quality_loses_more():
    image = torch.from_numpy(textured_image(40, 48, 3)[:, :, ::-1].transpose(2, 0, 1).copy()).float() / 255
    errors = []
    for quality in QUALITIES:
        first, second = jpeg_compress(image, quality), jpeg_compress(image, quality)
        assert torch.equal(first, second)
        assert torch.equal(torch.round(first * 255), first * 255)  # decoded 8-bit values
        errors.append((first - image).abs().mean().item())
    assert errors == sorted(errors, reverse=True) and errors[-1] > 0


def test_random_quality_is_reproducible_given_a_seed():
    hr = torch.rand(3, 32, 32)
    pipeline = DegradationPipeline([{'type': 'bicubic'}, {'type': 'jpeg', 'quality': [10, 40]}], scale=4)
    outputs = [pipeline(hr, np.random.default_rng(seed)) for seed in range(6)]
    assert torch.equal(outputs[0], pipeline(hr, np.random.default_rng(0)))
    assert len({o.numpy().tobytes() for o in outputs}) > 1  # the seed picks the quality


@pytest.mark.parametrize('quality', QUALITIES)
def test_prepared_lr_round_trips_through_paired_and_on_the_fly_datasets(hr_folder, prepared, quality):
    script = load_script()
    paired = PairedImageDataset({
        'phase': 'val', 'scale': 4, 'dataroot_gt': str(hr_folder), 'dataroot_lq': str(prepared / f'LR_q{quality}'),
        'filename_tmpl': '{}', 'io_backend': {'type': 'disk'}})
    on_the_fly = SceneDegradationDataset({
        'phase': 'val', 'scale': 4, 'dataroot_gt': str(hr_folder), 'gt_size': None, 'name': 'hr',
        'degradations': [{'type': 'bicubic'}, {'type': 'jpeg', 'quality': quality}]})
    assert len(paired) == len(on_the_fly) == 2
    for index in range(2):
        item, fly = paired[index], on_the_fly[index]
        hr = script.read_rgb(Path(item['gt_path']))
        expected = script.compressed_lr(hr, 4, quality)
        assert torch.equal(item['lq'], expected)
        assert torch.equal(item['gt'], hr[:, :expected.shape[1] * 4, :expected.shape[2] * 4])
        assert Path(fly['gt_path']).name == Path(item['gt_path']).name
        assert torch.allclose(fly['lq'], item['lq'], atol=1e-6)


def test_prepare_cli_and_errors(hr_folder, tmp_path):
    script = load_script()
    script.main(['--hr', str(hr_folder), '--out', str(tmp_path), '--qualities', '30'])
    assert sorted(p.name for p in (tmp_path / 'LR_q30').iterdir()) == ['a.png', 'b.png']
    lr = cv2.imread(str(tmp_path / 'LR_q30' / 'a.png'))
    assert lr.shape == (12, 9, 3)
    with pytest.raises(ValueError, match='101'):
        script.prepare(hr_folder, tmp_path, [101])
    with pytest.raises(FileNotFoundError, match='No images'):
        script.list_images(tmp_path)  # holds only the LR_q30 folder
