"""The ConvFormerSR option files: valid for rssr's option checker, official network_g, losses that fit the bands."""
import warnings

import pytest
import torch

import rssr  # noqa: F401
from rssr.basicsr.options import check_options
from rssr.registry import ARCHS
from testkit import REPO

OPTIONS = REPO / 'options'
FILES = sorted(OPTIONS.glob('*/ConvFormerSR/*.yml'))
OFFICIAL_PARAMS = {  # official defaults at this scale and band count (architecture card, section 6)
    'train_ConvFormerSR_x3_4band_L1_ratioindex.yml': 16_486_516,
    'test_ConvFormerSR_x3_4band.yml': 16_486_516,
    'train_ConvFormerSR_x4_RGB.yml': 16_448_147,
    'test_ConvFormerSR_x4_RGB.yml': 16_448_147,
}


def test_every_recipe_has_a_train_and_a_test_file():
    names = {f.name for f in FILES}
    assert len(FILES) == 6 and set(OFFICIAL_PARAMS) <= names


@pytest.mark.parametrize('path', FILES, ids=lambda p: p.name)
def test_option_file_passes_the_checker(path, monkeypatch):
    # dataset folders and checkpoints are placeholders a user provides: only they may be missing
    monkeypatch.setattr('rssr.basicsr.options.os.path.exists', lambda p: True)
    monkeypatch.setattr('rssr.basicsr.options.os.path.isfile', lambda p: True)
    with warnings.catch_warnings():
        warnings.simplefilter('error')  # an unknown key would be a warning
        opt = check_options(str(path), is_train=path.parent.parent.name == 'train')
    network = dict(opt['network_g'])
    arch = ARCHS.get(network.pop('type'))
    with torch.device('meta'):
        model = arch(**network)
    assert model.upscale == opt['scale']
    if path.name in OFFICIAL_PARAMS:
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[path.name]
    spectral = (opt.get('train') or {}).get('spectral_opt')
    if spectral:
        from basicsr.losses import build_loss
        loss = build_loss(dict(spectral))
        assert len(loss.band_order) == network['in_chans'] == loss.num_bands_needed


def test_rssr_model_adds_spectral_opt_to_the_pixel_loss(tmp_path):
    from rssr.losses.spectral import RatioIndexLoss
    from testkit import runtime_options, train_options

    from basicsr.models import build_model

    opt = train_options(tmp_path / 'data', with_val=False)
    opt.pop('deterministic')  # global torch setting; not what this test is about
    spectral = {'indices': ['NGRDI'], 'band_order': ['red', 'green', 'blue'], 'loss_weight': 0.5}
    opt['train']['spectral_opt'] = {'type': 'RatioIndexLoss', **spectral}
    model = build_model(runtime_options(opt, tmp_path))
    gt = torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': torch.rand(2, 3, 8, 8), 'gt': gt})
    model.optimize_parameters(1)
    expected = RatioIndexLoss(**spectral)(model.output, gt).item()
    assert model.log_dict['l_spectral'] == pytest.approx(expected, rel=1e-5)
    assert 'l_pix' in model.log_dict
