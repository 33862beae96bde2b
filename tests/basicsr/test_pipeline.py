"""The foundation: rssr imports on basicsr 1.4.2 (twice: tests/basicsr/test_registration.py), fills BasicSR's
registries without shadowing BasicSR's names, and a YAML made of rssr types runs through BasicSR's training pipeline."""
from __future__ import annotations

import logging
import sys
import types

import rssr  # noqa: F401  (registers rssr into BasicSR)
from testkit import train_options, write_yaml


def test_basicsr_modules_that_need_the_shims_import():
    import distutils.version  # noqa: F401  (basicsr 1.4.2 uses LooseVersion; Python 3.12 removed distutils)

    import basicsr.data.degradations as degradations  # imports torchvision.transforms.functional_tensor
    from basicsr.utils import img_util  # noqa: F401
    assert callable(degradations.rgb_to_grayscale)


def test_torchvision_shim_leaves_a_real_module_alone(monkeypatch):
    from rssr.basicsr import compat as _compat
    real = types.ModuleType('torchvision.transforms.functional_tensor')
    monkeypatch.setitem(sys.modules, 'torchvision.transforms.functional_tensor', real)
    _compat.install_torchvision_shim()
    assert sys.modules['torchvision.transforms.functional_tensor'] is real


def test_registry_contents_match_basicsr_and_never_shadow_its_names():
    from rssr import registry

    from basicsr.utils import registry as basicsr_registry
    pairs = {registry.ARCHS: basicsr_registry.ARCH_REGISTRY, registry.LOSSES: basicsr_registry.LOSS_REGISTRY,
             registry.METRICS: basicsr_registry.METRIC_REGISTRY, registry.DATASETS: basicsr_registry.DATASET_REGISTRY,
             registry.MODELS: basicsr_registry.MODEL_REGISTRY}
    for ours, theirs in pairs.items():
        for name, obj in ours:
            assert theirs.get(name) is obj, (ours.kind, name)
            assert obj.__module__.startswith('rssr.'), (ours.kind, name, obj.__module__)
    assert 'RSSRModel' in registry.MODELS
    for theirs, name in ((basicsr_registry.MODEL_REGISTRY, 'SRModel'), (basicsr_registry.LOSS_REGISTRY, 'L1Loss'),
                         (basicsr_registry.DATASET_REGISTRY, 'PairedImageDataset'),
                         (basicsr_registry.METRIC_REGISTRY, 'calculate_psnr'),
                         (basicsr_registry.ARCH_REGISTRY, 'EDSR')):
        assert theirs.get(name).__module__.startswith('basicsr.'), name


def test_yaml_of_rssr_types_runs_through_basicsr_training_pipeline(tmp_path, monkeypatch):
    """RSSRModel + rssr dataset (SceneDegradationDataset) + rssr loss + rssr metric, via train_pipeline."""
    import cv2
    import numpy as np
    scene = tmp_path / 'scene.png'
    cv2.imwrite(str(scene), cv2.GaussianBlur((np.random.default_rng(0).random((48, 48, 3)) * 255).astype(np.uint8),
                                             (5, 5), 1.5))
    opt = train_options(tmp_path / 'unused', name='rssr_types', total_iter=2, with_val=False)
    opt['datasets'] = {
        'train': {'name': 'scene', 'type': 'SceneDegradationDataset', 'dataroot_gt': str(scene), 'gt_size': 16,
                  'num_patches': 4, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2},
        'val': {'name': 'scene_val', 'type': 'SceneDegradationDataset', 'dataroot_gt': str(scene), 'gt_size': 32,
                'num_patches': 1}}
    opt['train']['pixel_opt'] = {'type': 'FFTLoss', 'loss_weight': 1.0}
    opt['val'] = {'val_freq': 2, 'save_img': True, 'metrics': {'psnr': {'type': 'calculate_multiband_psnr',
                                                                        'data_range': 1.0}}}
    write_yaml(opt, tmp_path / 'rssr_types.yml')
    monkeypatch.chdir(tmp_path)
    messages = []
    handler = logging.Handler(logging.INFO)  # BasicSR's log file belongs to the process's first pipeline run
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)  # an earlier test may have initialised it without a log file (WARNING)
    from rssr.train import main
    try:
        main(['-opt', 'rssr_types.yml'])
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    log = '\n'.join(messages)
    experiment = tmp_path / 'experiments' / 'rssr_types'
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert list((experiment / 'visualization').rglob('*_2.png'))
    assert 'Dataset [SceneDegradationDataset] - scene is built.' in log
    assert 'Model [RSSRModel] is created.' in log and '# psnr:' in log
