"""Validation under ``torchrun`` (2 CPU processes, gloo): in the middle of training (``val_freq``) and
at the end, with and without EMA, for networks with buffers, through rssr's and BasicSR's model
classes. Every rank must finish, and the logged PSNR must be the single-process value of the
saved weights."""
from __future__ import annotations

import re
from pathlib import Path

import cv2
import pytest
import torch

from testkit import SCALE, run_torchrun, train_options, write_yaml

PSNR_LINE = re.compile(r'# psnr: (\S+)')

CONVMAMBASR = {'type': 'ConvMambaSR', 'upscale': SCALE, 'in_chans': 3, 'embed_dim': 32, 'depths': [1], 'RCG_num': 1,
               'd_state': 4, 'mlp_ratio': 1, 'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'}
CONVFORMERSR = {'type': 'ConvFormerSR', 'upscale': SCALE, 'in_chans': 3, 'embed_dim': 16, 'depths': [1],
                'num_heads': [2], 'window_size': 4, 'img_size': 8, 'mlp_ratio': 1., 'num_block': 1}


def single_process_psnr(opt: dict, weights: Path, param_key: str) -> float:
    """PSNR of the saved weights on the val pair, computed in this one process as BasicSR's metric does."""
    import rssr  # noqa: F401  (registers the archs)
    from rssr.checkpoint import load_weights, read_checkpoint

    from basicsr.metrics import calculate_psnr
    from basicsr.utils import img2tensor, tensor2img
    from basicsr.utils.registry import ARCH_REGISTRY

    kwargs = dict(opt['network_g'])
    net = ARCH_REGISTRY.get(kwargs.pop('type'))(**kwargs)
    load_weights(net, read_checkpoint(str(weights)), strict=True, key=param_key)
    val = opt['datasets']['val']
    lq, gt = (img2tensor(cv2.imread(str(next(Path(val[key]).glob('*.png')))).astype('float32') / 255.)
              for key in ('dataroot_lq', 'dataroot_gt'))
    with torch.no_grad():
        sr = net.eval()(lq[None])
    return calculate_psnr(tensor2img(sr), tensor2img(gt[None]), crop_border=SCALE)


@pytest.mark.parametrize('network, model_type, ema', [
    (CONVFORMERSR, 'SRModel', 0),  # validates through net_g: DDP-wrapped during training
    (CONVMAMBASR, 'RSSRModel', 0.9),  # validates through net_g_ema
], ids=['ConvFormerSR-SRModel', 'ConvMambaSR-RSSRModel-ema'])
def test_validation_mid_run_and_at_the_end_under_torchrun(tmp_path, network, model_type, ema):
    opt = train_options(tmp_path / 'data', name='ddp_val', total_iter=4)
    opt.update(model_type=model_type, network_g=network)
    opt['train']['optim_g'] = {'type': 'Adam', 'lr': 1e-3}
    if ema:
        opt['train']['ema_decay'] = ema
    opt['val']['val_freq'] = 2
    write_yaml(opt, tmp_path / 'ddp_val.yml')

    output = run_torchrun(['-m', 'rssr.train', '-opt', 'ddp_val.yml', '--launcher', 'pytorch'], tmp_path)

    assert "'world_size': 2" in output or 'world_size: 2' in output
    logged = [float(v) for v in PSNR_LINE.findall(output)]
    assert len(logged) == 3, output[-4000:]  # iterations 2 and 4, and the final validation
    weights = tmp_path / 'experiments' / 'ddp_val' / 'models' / 'net_g_latest.pth'
    expected = single_process_psnr(opt, weights, 'params_ema' if ema else 'params')
    assert logged[-1] == pytest.approx(expected, abs=1e-4)
