"""GAN training through ``python -m rssr.train``: BasicSR's SRGANModel / ESRGANModel with an rssr
generator (tiny ConvMambaSR), BasicSR's discriminators, and rssr's spectral losses in ``pixel_opt``
through :class:`rssr.basicsr.combined_loss.CombinedLoss` (no perceptual loss: VGG weights need a download)."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from testkit import REPO, SCALE, run_torchrun, train_options, write_pairs, write_yaml

GENERATOR = {'type': 'ConvMambaSR', 'upscale': SCALE, 'in_chans': 3, 'embed_dim': 32, 'depths': [1], 'RCG_num': 1,
             'd_state': 4, 'mlp_ratio': 1, 'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'}
PIXEL_AND_SPECTRAL = {'type': 'CombinedLoss', 'losses': [
    {'type': 'L1Loss', 'loss_weight': 1.0},
    {'type': 'SAMLoss', 'loss_weight': 0.1},
    {'type': 'RatioIndexLoss', 'indices': ['NGRDI'], 'band_order': ['red', 'green', 'blue'], 'loss_weight': 0.1},
]}
GAN_LOG = re.compile(r'iter:\s+(\d+),.*l_g_pix: (\S+) l_g_gan: (\S+) l_d_real: (\S+)')


def gan_options(tmp_path: Path, model_type: str, discriminator: dict, gt_size: int) -> dict:
    opt = train_options(tmp_path / 'data', name=f'gan_{model_type}', total_iter=3)
    opt['datasets']['train'].update(write_pairs(tmp_path / 'data' / 'gan_train', 2, hr_size=gt_size),
                                    gt_size=gt_size, batch_size_per_gpu=1)
    opt.update(model_type=model_type, network_g=GENERATOR, network_d=discriminator)
    opt['train'].update(
        optim_g={'type': 'Adam', 'lr': 1e-4}, optim_d={'type': 'Adam', 'lr': 1e-4},
        scheduler={'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
        pixel_opt=PIXEL_AND_SPECTRAL, net_d_iters=1, net_d_init_iters=0,
        gan_opt={'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                 'loss_weight': 0.005})
    return opt


@pytest.mark.parametrize('model_type, discriminator, gt_size', [
    ('ESRGANModel', {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 8, 'input_size': 128}, 128),
    ('SRGANModel', {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 8}, 32),
])
def test_gan_model_with_rssr_generator_trains_through_rssr_train(tmp_path, model_type, discriminator, gt_size):
    opt = gan_options(tmp_path, model_type, discriminator, gt_size)
    write_yaml(opt, tmp_path / 'gan.yml')
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
           'CUDA_VISIBLE_DEVICES': ''}
    result = subprocess.run([sys.executable, '-m', 'rssr.train', '-opt', 'gan.yml'], cwd=tmp_path, env=env,
                            text=True, capture_output=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    logged = {int(m.group(1)): [float(v) for v in m.group(2, 3, 4)] for m in GAN_LOG.finditer(output)}
    assert sorted(logged) == [1, 2, 3], output[-4000:]
    assert all(v == v and abs(v) < 1e3 for values in logged.values() for v in values)  # finite
    assert '# psnr:' in output  # validation after GAN training

    models = tmp_path / 'experiments' / opt['name'] / 'models'
    saved_g = torch.load(models / 'net_g_latest.pth', weights_only=True)['params']
    assert any(key.startswith('RSSG_layers.') for key in saved_g)  # the rssr generator was trained
    assert (models / 'net_d_latest.pth').is_file()


def test_combined_loss_sums_weighted_losses_and_passes_the_nodata_weight():
    import rssr  # noqa: F401

    from basicsr.losses import build_loss

    pred, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 8, 8)
    combined = build_loss({'type': 'CombinedLoss', 'loss_weight': 2.0, 'losses': PIXEL_AND_SPECTRAL['losses']})
    parts = [build_loss(dict(spec)) for spec in PIXEL_AND_SPECTRAL['losses']]
    assert combined(pred, target).item() == pytest.approx(2.0 * sum(loss(pred, target).item() for loss in parts))

    valid = torch.zeros(2, 1, 8, 8)
    valid[..., :4, :] = 1
    masked = combined(pred, target, weight=valid)
    assert masked.item() == pytest.approx(2.0 * sum(loss(pred, target, weight=valid).item() for loss in parts))
    assert masked.item() != pytest.approx(combined(pred, target).item())


def test_esrgan_under_torchrun_wraps_the_discriminator_in_ddp_on_the_cpu(tmp_path):
    """BasicSR's model_to_device asks CUDA for a device even on the CPU; rssr's wraps net_d (and
    net_g) in DDP under gloo, and validation (mid-run and final) runs on rank 0 alone."""
    opt = gan_options(tmp_path, 'ESRGANModel', {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 8,
                                                'input_size': 128}, 128)
    opt['val']['val_freq'] = 2
    write_yaml(opt, tmp_path / 'gan.yml')
    output = run_torchrun(['-m', 'rssr.train', '-opt', 'gan.yml', '--launcher', 'pytorch'], tmp_path)
    assert sorted(int(m.group(1)) for m in GAN_LOG.finditer(output)) == [1, 2, 3], output[-4000:]
    assert output.count('# psnr:') == 2  # iteration 2 and the end
