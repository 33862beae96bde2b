"""Model zoo: every named configuration builds at x2/x3/x4 and has a complete card; rssr.info runs."""
import os
import subprocess
import sys

import pytest
import torch

import rssr
from rssr.registry import ARCHS
from testkit import REPO

EXPECTED = {'convmambasr', 'mambacsr', 'mambacsr_wo', 'repmamba', 'repmamba_deploy', 'convformersr', 'lstmconvsr'}


def test_every_arch_has_a_named_configuration():
    assert EXPECTED <= set(rssr.list_models())
    archs_with_cards = {rssr.model_card(name).arch for name in rssr.list_models()}
    assert archs_with_cards >= {'ConvMambaSR', 'MambaCSR', 'RepMamba', 'ConvFormerSR', 'LSTMConvSR'}


@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_card_is_complete(name):
    card = rssr.model_card(name)
    assert card.arch in ARCHS
    assert card.paper and card.doi and card.repo and card.repo_license and card.recipe
    assert card.size_requirements and card.amp
    assert set(card.params) == {2, 3, 4} and all(n > 0 for n in card.params.values())


@pytest.mark.parametrize('scale', [2, 3, 4])
@pytest.mark.parametrize('name', sorted(EXPECTED))
def test_create_model_matches_card_parameter_count(name, scale):
    model = rssr.create_model(name, scale=scale)
    assert sum(p.numel() for p in model.parameters()) == rssr.model_card(name).params[scale]


def test_create_model_overrides_and_pretrained(tmp_path):
    model = rssr.create_model('repmamba', scale=2, in_chans=4)
    torch.save({'params_ema': {f'module.{k}': v for k, v in model.state_dict().items()}}, tmp_path / 'w.pth')
    again = rssr.create_model('repmamba', scale=2, in_chans=4, pretrained=str(tmp_path / 'w.pth'))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    out = again.eval()(torch.rand(1, 4, 8, 10))
    assert out.shape == (1, 4, 16, 20)


def test_unknown_model_name_suggests_close_names():
    with pytest.raises(KeyError, match="in the rssr zoo; did you mean 'mambacsr'"):
        rssr.create_model('mambacrs')


def test_info_command_reports_backends_their_usability_and_names(tmp_path):
    """With a mamba_ssm whose import raises OSError (a CUDA build for another torch): a reason, no traceback."""
    (tmp_path / 'mamba_ssm').mkdir()
    (tmp_path / 'mamba_ssm' / '__init__.py').write_text('raise OSError("libcudart.so.12: cannot open shared object")')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path), str(REPO)])}
    result = subprocess.run([sys.executable, '-m', 'rssr.info'], capture_output=True, text=True, check=True, env=env)
    assert 'convmambasr: selective_scan (cpu: torch)' in result.stdout
    assert 'basicsr' in result.stdout and 'RSSRModel' in result.stdout
    assert ('cpu mamba_ssm: not usable (importing mamba_ssm failed (OSError: libcudart.so.12: cannot open shared '
            'object))') in result.stdout
    assert 'cpu triton: not usable (' in result.stdout
    assert 'Traceback' not in result.stdout + result.stderr
