"""Bicubic baseline for an rssr test option file: the same datasets and rssr metrics, SR = bicubic(LQ).

    python scripts/bicubic_baseline.py -opt options/test/ConvFormerSR/test_ConvFormerSR_x3_S2demo_cpu.yml

Each LQ item is upsampled by ``scale`` with MATLAB-style bicubic (basicsr ``imresize``, per band) and
scored against its GT with every rssr metric under ``val.metrics`` (float tensors, nodata mask, band
names from the raster), exactly as :class:`rssr.basicsr.models.multiband_validation.MultibandValidationMixin`
scores a network. Prints one Markdown row per test dataset.
"""
from __future__ import annotations

import argparse
from typing import Dict

import torch
from tqdm import tqdm

import rssr  # noqa: F401  (before basicsr: installs its shims, then fills its registries)
from rssr.basicsr.declarations import METRIC_KIND, METRIC_OPTIONS, declared
from rssr.basicsr.models.multiband_validation import MultibandValidationMixin
from rssr.basicsr.options import load_yaml

from basicsr.data import build_dataset
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import METRIC_REGISTRY


def bicubic_scores(opt: Dict, dataset_opt: Dict) -> Dict[str, float]:
    """Mean of each rssr metric of ``val.metrics`` over the dataset, for bicubic upsampling."""
    dataset = build_dataset({**dataset_opt, 'phase': 'test', 'scale': opt['scale']})
    metrics = opt['val']['metrics']
    totals = {name: 0.0 for name in metrics}
    for index in tqdm(range(len(dataset)), desc=dataset_opt['name']):
        item = dataset[index]
        sr, gt = imresize(item['lq'], float(opt['scale']))[None], item['gt'][None]
        valid = item['gt_valid'][None] if 'gt_valid' in item else None
        for name, metric_opt in metrics.items():
            options = {k: v for k, v in metric_opt.items() if k not in ('type', 'better')}
            metric = METRIC_REGISTRY.get(metric_opt['type'])
            metric_options = declared(metric, METRIC_OPTIONS)
            if declared(metric, METRIC_KIND) is None:
                raise ValueError(f'val.metrics.{name}: {metric_opt["type"]} is not an rssr metric')
            if 'scale' in metric_options:
                options.setdefault('scale', opt['scale'])
            if 'band_names' in metric_options and options.get('band_names') is None:
                options['band_names'] = MultibandValidationMixin._band_names(item)
            totals[name] += metric(img=sr, img2=gt, mask=valid, **options)
    return {name: total / len(dataset) for name, total in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('-opt', required=True, help='an rssr test option file')
    opt = load_yaml(parser.parse_args().opt)
    torch.set_grad_enabled(False)
    names = list(opt['val']['metrics'])
    print(f'| dataset | method | {" | ".join(names)} |')
    print('|---|---|' + '---|' * len(names))
    for dataset_opt in opt['datasets'].values():
        scores = bicubic_scores(opt, dataset_opt)
        cells = ' | '.join(f'{scores[n]:.4f}' for n in names)
        print(f'| {dataset_opt["name"]} | bicubic x{opt["scale"]} | {cells} |')


if __name__ == '__main__':
    main()
