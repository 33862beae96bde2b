"""rssr's option checker on real option files of BasicSR, HAT, MambaIR and Real-ESRGAN (issue 14).

The files under tests/fixtures/option_corpus/ are unchanged copies (see its README). Their data and
checkpoint paths are rewritten to temporary files, so only the options themselves are judged:
every valid file is accepted, the broken ones are refused with the key named, and typos of known
keys are still refused with the closest name.

HAT's, MambaIR's and Real-HAT's own classes are not installed here, so the test registers stand-ins
under their names (only for its duration): subclasses of BasicSR's SRModel/SRGANModel and
PairedImageDataset, HAT's arch with the real constructor's signature, and MambaIR's archs as
constructors taking any keyword (the real ones import mamba_ssm, which is not installed here).
HATModel's stand-in reads the same extra options as the real one (``network_g.window_size``, the
top-level ``tile``), so the test also shows that keys a model's source reads are accepted.
Real-ESRGAN's types resolve to BasicSR 1.4.2's own copies (``RealESRGANModel_basicsr``, ...), as
BasicSR's registry does.
"""
import tempfile
import warnings
from pathlib import Path
from typing import Any, Dict

import pytest
import yaml
from torch import nn

import rssr  # noqa: F401  (registries filled)
from rssr.basicsr.options import OptionsError, check_options
from testkit import FIXTURES

from basicsr.data.paired_image_dataset import PairedImageDataset
from basicsr.models.sr_model import SRModel
from basicsr.models.srgan_model import SRGANModel
from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

CORPUS = FIXTURES / 'option_corpus'
BROKEN = {
    'basicsr/train_EDVR_L_x4_SR_REDS.yml': 'network_g.ema_decay is not an option of arch EDVR',
    'basicsr/test_RCAN.yml': 'the top-level key `val:` is missing',
}
VALID = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.rglob('*.yml') if str(p.relative_to(CORPUS)) not in BROKEN)


class HATModel(SRModel):
    """Stand-in for HAT's model: reads what the real one reads beyond SRModel."""

    def pre_process(self) -> None:
        self.window_size = self.opt['network_g']['window_size']
        self.scale = self.opt.get('scale', 1)

    def tile_process(self) -> None:
        self.tile_size, self.tile_pad = self.opt['tile']['tile_size'], self.opt['tile']['tile_pad']


class RealHATGANModel(SRGANModel):
    """Stand-in for HAT's Real-HAT GAN model (the real one reads its degradation options too)."""


class MambaIRModel(SRModel):
    """Stand-in for MambaIR's model."""


class MambaIRv2Model(SRModel):
    """Stand-in for MambaIRv2's model."""


class ImageNetPairedDataset(PairedImageDataset):
    """Stand-in for HAT's ImageNet dataset."""


class HAT(nn.Module):
    """Stand-in for HAT's arch: the real constructor's signature (XPixelGroup/HAT hat_arch.py)."""

    def __init__(self, img_size=64, patch_size=1, in_chans=3, embed_dim=96, depths=(6, 6, 6, 6),
                 num_heads=(6, 6, 6, 6), window_size=7, compress_ratio=3, squeeze_factor=30, conv_scale=0.01,
                 overlap_ratio=0.5, mlp_ratio=4., qkv_bias=True, qk_scale=None, drop_rate=0., attn_drop_rate=0.,
                 drop_path_rate=0.1, norm_layer=nn.LayerNorm, ape=False, patch_norm=True, use_checkpoint=False,
                 upscale=2, img_range=1., upsampler='', resi_connection='1conv', **kwargs) -> None:
        super().__init__()


def _arch_taking_any_keyword(name: str) -> type:
    def __init__(self, **kwargs: Any) -> None:
        nn.Module.__init__(self)
    return type(name, (nn.Module,), {'__init__': __init__})


STAND_INS = [(MODEL_REGISTRY, c) for c in (HATModel, RealHATGANModel, MambaIRModel, MambaIRv2Model)] + \
    [(DATASET_REGISTRY, ImageNetPairedDataset), (ARCH_REGISTRY, HAT)] + \
    [(ARCH_REGISTRY, _arch_taking_any_keyword(n)) for n in ('MambaIR', 'MambaIRv2')]


@pytest.fixture(autouse=True)
def stand_ins():
    for registry, component in STAND_INS:
        registry._obj_map[component.__name__] = component
    yield
    for registry, component in STAND_INS:
        registry._obj_map.pop(component.__name__, None)


def with_temporary_paths(opt: Dict[str, Any], tmp_path: Path) -> Dict[str, Any]:
    """Point every dataset folder / meta-info file and checkpoint at a fresh temporary one."""
    made = iter(range(10_000))

    def fresh(is_folder: bool) -> str:
        path = tmp_path / f'data{next(made)}'
        path.mkdir() if is_folder else path.touch()
        return str(path)

    for spec in (opt.get('datasets') or {}).values():
        for key, value in spec.items():
            if value is not None and (key.startswith('dataroot') or key in ('meta_info_file', 'meta_info')):
                is_folder = key.startswith('dataroot')
                spec[key] = [fresh(is_folder) for _ in value] if isinstance(value, list) else fresh(is_folder)
    for key, value in (opt.get('path') or {}).items():
        if value and (key.startswith('pretrain_network') or key == 'resume_state'):
            opt['path'][key] = fresh(False)
    return opt


def check(relative: str, tmp_path: Path, edit=None) -> Dict[str, Any]:
    """check_options on a corpus file with temporary paths, after ``edit(opt)`` if given."""
    tmp_path = Path(tempfile.mkdtemp(dir=tmp_path))
    opt = with_temporary_paths(yaml.safe_load((CORPUS / relative).read_text()), tmp_path)
    if edit is not None:
        edit(opt)
    path = tmp_path / Path(relative).name
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return check_options(str(path), is_train=Path(relative).name.startswith(('train_', 'finetune_')))


def test_the_corpus_covers_every_source():
    assert {Path(v).parts[0] for v in VALID} == {'basicsr', 'hat', 'mambair', 'realesrgan'} and len(VALID) >= 20


@pytest.mark.parametrize('relative', VALID)
def test_valid_option_file_is_accepted(relative, tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # keys the code may ignore are warnings, never refusals
        check(relative, tmp_path)


@pytest.mark.parametrize('relative', sorted(BROKEN))
def test_broken_option_file_is_refused_naming_the_key(relative, tmp_path):
    with pytest.raises(OptionsError, match=BROKEN[relative].replace('`', '.')):
        check(relative, tmp_path)


def _set(section: str, key: str, value: Any):
    def edit(opt: Dict[str, Any]) -> None:
        target = opt
        for part in section.split('.') if section else []:
            target = target[part]
        target[key] = value
    return edit


@pytest.mark.parametrize('section, typo, meant', [
    ('datasets.train', 'batch_size_per_gup', 'batch_size_per_gpu'),
    ('val', 'val_freqq', 'val_freq'),
    ('network_g', 'num_feats', 'num_feat'),          # EDSR's constructor has no **kwargs
    ('train', 'total_iters', 'total_iter'),
    ('logger', 'save_checkpoint_frq', 'save_checkpoint_freq'),
    ('', 'manual_seeed', 'manual_seed'),
])
def test_typo_of_a_known_key_is_refused_with_the_closest_name(section, typo, meant, tmp_path):
    with pytest.raises(OptionsError) as raised:
        check('basicsr/train_EDSR_Mx2.yml', tmp_path, _set(section, typo, 1))
    assert f'{section + "." if section else "<top level>."}{typo} is not an option' in str(raised.value)
    assert repr(meant) in str(raised.value)


def test_rssr_model_train_typo_is_refused(tmp_path):
    def edit(opt):
        opt['model_type'] = 'RSSRModel'
        opt['train']['grad_clip_nrom'] = 1.0
    expected = "train.grad_clip_nrom is not an option of model RSSRModel.*'grad_clip_norm'"
    with pytest.raises(OptionsError, match=expected):
        check('basicsr/train_EDSR_Mx2.yml', tmp_path, edit)


def test_key_another_component_reads_only_warns(tmp_path):
    """net_d_iters is SRGANModel's: under EDSR's SRModel it has no effect, but it is no typo."""
    read_elsewhere = r'train.net_d_iters is read by [\w, ]*SRGANModel[\w, ]*, not by model SRModel'
    with pytest.warns(UserWarning, match=read_elsewhere):
        check('basicsr/train_EDSR_Mx2.yml', tmp_path, _set('train', 'net_d_iters', 1))


def test_unknown_key_nobody_reads_and_no_near_miss_only_warns(tmp_path):
    not_read = 'datasets.train.my_project_flag is not read by dataset type PairedImageDataset'
    with pytest.warns(UserWarning, match=not_read):
        check('basicsr/train_EDSR_Mx2.yml', tmp_path, _set('datasets.train', 'my_project_flag', 1))


def test_top_level_keys_the_model_reads_are_accepted(tmp_path):
    """HATModel's source reads ``tile``: no warning about it (the stand-in arch warns about its **kwargs)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        check('hat/HAT_SRx4.yml', tmp_path, _set('', 'tile', {'tile_size': 64, 'tile_pad': 8}))
    assert not [w for w in caught if 'tile' in str(w.message)]


def test_legacy_use_shuffle_warns_that_it_has_no_effect(tmp_path):
    with pytest.warns(UserWarning, match='datasets.train.use_shuffle is read by no code of BasicSR'):
        check('hat/train_HAT_SRx2_from_scratch.yml', tmp_path)


def test_optimizers_come_from_the_model_source(tmp_path):
    """BasicSR 1.4.2's get_optimizer builds Adam only; RSSRModel declares Adam, AdamW and SGD."""
    adamw = _set('train.optim_g', 'type', 'AdamW')
    with pytest.raises(OptionsError, match="optim_g.type 'AdamW' is not offered by model SRModel .choose from Adam"):
        check('basicsr/train_EDSR_Mx2.yml', tmp_path, adamw)

    def rssr_adamw(opt):
        adamw(opt)
        opt['model_type'] = 'RSSRModel'
    check('basicsr/train_EDSR_Mx2.yml', tmp_path, rssr_adamw)


def _rename(section: str, key: str, typo: str):
    def edit(opt: Dict[str, Any]) -> None:
        target = opt
        for part in section.split('.'):
            target = target[part]
        target[typo] = target.pop(key)
    return edit


@pytest.mark.parametrize('relative, section, key, typo', [
    ('hat/HAT_SRx4.yml', 'network_g', 'embed_dim', 'embed_dimm'),  # HAT's constructor takes **kwargs
    ('basicsr/test_EDSR_Mx2.yml', 'val.metrics.psnr', 'test_y_channel', 'test_y_chanel'),  # as does calculate_psnr
    ('basicsr/train_EDSR_Mx2.yml', 'path', 'pretrain_network_g', 'pretrain_network_gg'),
    ('basicsr/train_EDSR_Mx2.yml', 'datasets.train.io_backend', 'type', 'tpye'),
    ('mambair/train_MambaIR_SR_x2.yml', 'dist_params', 'backend', 'bakend'),
])
def test_misspelt_key_of_an_official_file_is_refused_naming_both(relative, section, key, typo, tmp_path):
    """A key of an official file, misspelt where it stands: even where **kwargs would swallow the typo."""
    with pytest.raises(OptionsError) as raised:
        check(relative, tmp_path, _rename(section, key, typo))
    named = [p.message for p in raised.value.problems if p.key == f'{section}.{typo}']
    assert named and f'did you mean {key!r}?' in named[0], str(raised.value)


def test_near_miss_of_an_argument_the_file_gives_only_warns(tmp_path):
    """Official files carry extra keys next to the argument they resemble (MambaIR's window_size beside
    img_size): with the argument given, the extra key is passed on to **kwargs with a warning."""
    with pytest.warns(UserWarning, match=r'network_g\.mlp_ratios is not a named argument of arch HAT \(which takes '
                                         r"\*\*kwargs\); it is passed on but may be ignored; did you mean 'mlp_ratio'"):
        check('hat/HAT_SRx4.yml', tmp_path, _set('network_g', 'mlp_ratios', 2))
