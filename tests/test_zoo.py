"""Model zoo: every named configuration builds at x2/x3/x4 and has a complete card; rssr.info runs."""
import importlib.util
import os
import subprocess
import sys
from dataclasses import replace

import pytest
import torch

import rssr
from rssr import zoo
from rssr.registry import ARCHS
from rssr.weights import SHIPPED_MODELS
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


def _zoo_page_script():
    """scripts/make_zoo_table.py as a module (render() builds docs/model_zoo.md in memory)."""
    spec = importlib.util.spec_from_file_location('make_zoo_table', REPO / 'scripts' / 'make_zoo_table.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_page_is_current():
    script = _zoo_page_script()
    assert script.DOCS == REPO / 'docs' / 'model_zoo.md'
    assert script.DOCS.read_text(encoding='utf-8') == script.render(), \
        'docs/model_zoo.md is stale: run python scripts/make_zoo_table.py'


def test_a_new_card_makes_the_zoo_page_stale(monkeypatch):
    script = _zoo_page_script()
    monkeypatch.setitem(zoo._CARDS, 'repmamba_tiny', replace(rssr.model_card('repmamba'), name='repmamba_tiny'))
    page = script.render()
    assert '| `repmamba_tiny` | `RepMamba` |' in page and page != script.DOCS.read_text(encoding='utf-8')


def test_zoo_page_lists_the_shipped_weights_with_their_bands_and_radiometry():
    page = _zoo_page_script().render()
    shipped = page.split('## Shipped weights')[1].split('## Compute')[0]
    rows = {line.split(' | ')[0].strip('| `'): line for line in shipped.splitlines() if line.startswith('| `')}
    assert set(rows) == set(SHIPPED_MODELS) == {'convmambasr_s2_x4', 'repmamba_s2_x4'}
    main_rows = {line.split(' | ')[0].strip('| `'): line for line in page.split('## Shipped weights')[0].splitlines()
                 if line.startswith('| `')}
    for name, row in rows.items():
        assert '| x4 | B02, B03, B04, B08 | `sentinel2` (value = DN x 0.0001) | mode image, ' in row, row
        assert '| x4, shipped |' in main_rows[name]
    assert '| none |' in main_rows['repmamba']
