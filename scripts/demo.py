"""rssr demo: train x4 SR on the bundled Sentinel-2 crop, then compare with bicubic on the val crop.

    python scripts/demo.py                      # full demo (a few minutes on a 2-core CPU)
    python scripts/demo.py --total_iter 20      # a quick smoke run

Training is ``python -m rssr.train -opt options/demo/sentinel2_x4_demo.yml`` (outputs under
./experiments). The network is whatever ``network_g`` in the options names. The evaluation
super-resolves the whole val crop with the trained weights, prints PSNR / SSIM of SR and of
bicubic against HR, and saves an ``LR-bicubic | SR | HR`` image under ./results/<name>/.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Dict

REPO = Path(__file__).resolve().parents[1]
DEFAULT_OPTIONS = 'options/demo/sentinel2_x4_demo.yml'


def train(options: str, total_iter: int | None) -> None:
    """Run rssr's training CLI on the options (optionally with fewer iterations)."""
    command = [sys.executable, '-m', 'rssr.train', '-opt', options]
    if total_iter is not None:
        command += ['--force_yml', f'train:total_iter={total_iter}']
    print('$', ' '.join(command), flush=True)
    result = subprocess.run(command)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def evaluate(options: str) -> Dict[str, Dict[str, float]]:
    """SR and bicubic vs HR on the val dataset's first item; save the side-by-side image."""
    import cv2
    import numpy as np
    import torch
    import torch.nn.functional as F

    import rssr  # noqa: F401  (registers rssr into BasicSR)
    from rssr.basicsr.options import load_yaml
    from rssr.checkpoint import load_weights

    from basicsr.archs import build_network
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_psnr, calculate_ssim
    from basicsr.utils import tensor2img

    opt = load_yaml(options)
    scale = int(opt['scale'])
    weights = Path('experiments') / opt['name'] / 'models' / 'net_g_latest.pth'
    net = build_network(dict(opt['network_g']))
    load_weights(net, weights)
    net.eval()
    val_opt = {**opt['datasets']['val'], 'phase': 'val', 'scale': scale}
    item = build_dataset(val_opt)[0]
    lq, hr = item['lq'][None], item['gt'][None]
    with torch.no_grad():
        sr = net(lq).clamp(0, 1)
    bicubic = F.interpolate(lq, scale_factor=scale, mode='bicubic', align_corners=False).clamp(0, 1)

    images = {name: tensor2img(tensor, rgb2bgr=True) for name, tensor in
              (('bicubic', bicubic), ('SR', sr), ('HR', hr))}
    scores = {name: {'PSNR': calculate_psnr(images[name], images['HR'], crop_border=scale),
                     'SSIM': calculate_ssim(images[name], images['HR'], crop_border=scale)}
              for name in ('bicubic', 'SR')}

    labelled = []
    for name, label in (('bicubic', 'LR, bicubic x4'), ('SR', f'SR ({opt["network_g"]["type"]})'), ('HR', 'HR')):
        header = np.full((28, images[name].shape[1], 3), 255, np.uint8)
        cv2.putText(header, label, (6, 20), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
        labelled.append(np.concatenate([header, images[name]], axis=0))
    gap = np.full((labelled[0].shape[0], 4, 3), 255, np.uint8)
    out_dir = Path('results') / opt['name']
    out_dir.mkdir(parents=True, exist_ok=True)
    out_path = out_dir / 'bicubic_sr_hr.png'
    cv2.imwrite(str(out_path), np.concatenate([labelled[0], gap, labelled[1], gap, labelled[2]], axis=1))

    print(f'\nx{scale} on {val_opt["dataroot_gt"]} ({hr.shape[-1]} x {hr.shape[-2]} HR), RGB 8-bit, '
          f'crop_border {scale}, weights {weights}')
    print('| method | PSNR (dB) | SSIM |\n|---|---|---|')
    for name, score in scores.items():
        method = 'bicubic' if name == 'bicubic' else f'{opt["network_g"]["type"]} (rssr demo)'
        print(f'| {method} | {score["PSNR"]:.2f} | {score["SSIM"]:.4f} |')
    print(f'side-by-side image: {out_path}')
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', default=DEFAULT_OPTIONS, help='demo option file (relative to the repository)')
    parser.add_argument('--total_iter', type=int, default=None, help='override train.total_iter')
    parser.add_argument('--eval_only', action='store_true', help='skip training; evaluate the latest weights')
    args = parser.parse_args()
    os.chdir(REPO)  # the options' data paths and ./experiments are relative to the repository
    if not args.eval_only:
        train(args.opt, args.total_iter)
    evaluate(args.opt)


if __name__ == '__main__':
    main()
