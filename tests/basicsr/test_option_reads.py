"""rssr.basicsr.option_reads derives the option keys a component reads from its source; the checker uses them."""
import warnings
from typing import Any, Dict

import pytest
import yaml

import rssr  # noqa: F401
from rssr.basicsr.option_reads import OptionReads, class_reads, compared_names
from rssr.basicsr.options import OptionsError, check_options, declare_option_keys, optimizers_offered

from basicsr.models.sr_model import SRModel
from basicsr.utils.registry import DATASET_REGISTRY, MODEL_REGISTRY


def test_basicsr_gan_model_keys_come_from_its_source_and_its_bases():
    reads = class_reads(MODEL_REGISTRY.get('ESRGANModel'))
    gan_keys = {'net_d_iters', 'net_d_init_iters', 'optim_d', 'gan_opt', 'ema_decay', 'pixel_opt'}
    assert gan_keys <= reads.known(('train',))
    assert {'pretrain_network_d', 'strict_load_d', 'param_key_g'} <= reads.known(('path',))
    assert reads.confident(('train',)) and reads.complete


def test_dataset_keys_follow_the_helpers_and_video_keys_are_found():
    reads = class_reads(DATASET_REGISTRY.get('REDSDataset'), ('datasets', '*'))
    video_keys = {'num_frame', 'dataroot_flow', 'interval_list', 'random_reverse', 'gt_size'}
    assert video_keys <= reads.known(('datasets', 'train'))  # any phase


class OpaqueModel(SRModel):
    """Hands its train options to a callable rssr cannot resolve, and reads a computed key."""

    def init_training_settings(self) -> None:
        handler = self.opt.get('handler_factory')
        handler(self.opt['train'])
        self.special = self.opt['val'][self.opt['name']]


def test_options_handed_to_unknown_code_make_the_section_open():
    reads = class_reads(OpaqueModel)
    assert not reads.confident(('train',)) and 'test_option_reads.py' in reads.open_paths[('train',)]
    assert not reads.confident(('val',)) and reads.confident(('logger',))


def test_basicsr_get_optimizer_builds_adam_only():
    assert list(compared_names(SRModel.get_optimizer, 'optim_type')) == ['Adam']
    assert set(optimizers_offered(MODEL_REGISTRY.get('RSSRModel'))) == {'Adam', 'AdamW', 'SGD'}


def _edsr_options(tmp_path) -> Dict[str, Any]:
    (tmp_path / 'gt').mkdir()
    (tmp_path / 'lq').mkdir()
    dataset = {'name': 'd', 'type': 'PairedImageDataset', 'dataroot_gt': str(tmp_path / 'gt'),
               'dataroot_lq': str(tmp_path / 'lq'), 'io_backend': {'type': 'disk'}, 'gt_size': 32,
               'batch_size_per_gpu': 1, 'num_worker_per_gpu': 0}
    return {'name': 'x', 'model_type': 'SRModel', 'scale': 2, 'num_gpu': 0,
            'network_g': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'upscale': 2},
            'datasets': {'train': dataset}, 'path': {},
            'train': {'optim_g': {'type': 'Adam', 'lr': 1e-4}, 'total_iter': 1,
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [1], 'gamma': 0.5},
                      'pixel_opt': {'type': 'L1Loss'}},
            'logger': {'print_freq': 1}}


def _check(opt: Dict[str, Any], tmp_path) -> None:
    path = tmp_path / 'o.yml'
    path.write_text(yaml.safe_dump(opt))
    check_options(str(path), is_train=True)


def test_declared_keys_are_accepted(tmp_path, monkeypatch):
    """The class-attribute protocol and declare_option_keys make keys valid (no warning)."""
    monkeypatch.setattr('rssr.basicsr.options._DECLARED', OptionReads())  # declarations last for the process
    class DeclaringDataset(DATASET_REGISTRY.get('PairedImageDataset')):
        option_keys = ('band_normalisation_stats',)
        top_level_option_keys = ('band_normalization_cache',)

    DATASET_REGISTRY._obj_map['DeclaringDataset'] = DeclaringDataset
    try:
        declare_option_keys('logger', ['thread_report'])
        opt = _edsr_options(tmp_path)
        opt['datasets']['train'].update(type='DeclaringDataset', band_normalisation_stats=True)
        opt['band_normalization_cache'] = 'x'
        opt['logger']['thread_report'] = True
        with warnings.catch_warnings():
            warnings.simplefilter('error')
            _check(opt, tmp_path)
    finally:
        DATASET_REGISTRY._obj_map.pop('DeclaringDataset')


def test_scheduler_type_comes_from_setup_schedulers(tmp_path):
    opt = _edsr_options(tmp_path)
    opt['train']['scheduler'] = {'type': 'CosineAnnealingLR', 'T_max': 10}
    with pytest.raises(OptionsError, match="scheduler.type 'CosineAnnealingLR' is not one of MultiStepLR, "
                                           "MultiStepRestartLR, CosineAnnealingRestartLR"):
        _check(opt, tmp_path)


def test_metric_near_miss_of_a_required_argument_is_an_error(tmp_path):
    opt = _edsr_options(tmp_path)
    opt['val'] = {'val_freq': 1, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_boarder': 2}}}
    with pytest.raises(OptionsError, match="val.metrics.psnr.crop_boarder is not an option of metric calculate_psnr; "
                                           "did you mean 'crop_border'"):
        _check(opt, tmp_path)
