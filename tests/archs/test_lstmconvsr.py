"""LSTMConvSR: official outputs, strict loading, parameter counts, any input size, gradients."""
import warnings

import pytest
import torch
import yaml

import rssr
from rssr.archs.lstmconvsr import LSTMConvSR, MatrixLSTMCell
from testkit import CONFORMANCE, REPO

OPTIONS = REPO / 'options'
OFFICIAL_PARAMS = {2: 19_056_963, 3: 19_241_603, 4: 19_204_675}
TINY = dict(embed_dim=8, depths=[1], mlp_ratio=2., CNN_num=1)


def load_cases(name):
    return torch.load(CONFORMANCE / name, weights_only=True)['cases']


CASES = [(name, case) for name in ('lstmconvsr.pt', 'lstmconvsr_extra.pt') for case in load_cases(name)]


def official_model(case, **extra):
    model = LSTMConvSR(**case['kwargs'], **extra).eval()
    model.load_state_dict({k: v.float() for k, v in case['state_dict'].items()}, strict=True)
    return model


@pytest.mark.parametrize('case', [c for _, c in CASES], ids=[f'{f}:{c["name"]}' for f, c in CASES])
def test_matches_official_outputs(case):
    model = official_model(case)
    assert sum(p.numel() for p in model.parameters()) == case['param_count']
    with torch.no_grad():
        output = model(case['input'])
    assert output.shape == case['output'].shape
    assert (output - case['output']).abs().max().item() <= 1e-4


@pytest.mark.parametrize('backend', ['parallel', 'chunkwise'])
def test_matches_official_output_with_either_mlstm_form(backend):
    case = load_cases('lstmconvsr.pt')[0]
    model = official_model(case, mlstm_backend=backend)
    assert {cell.backend for cell in model.modules() if isinstance(cell, MatrixLSTMCell)} == {backend}
    with torch.no_grad():
        assert (model(case['input']) - case['output']).abs().max().item() <= 1e-4


def test_wavelet_buffers_are_in_the_state_dict_and_used():
    case = load_cases('lstmconvsr_extra.pt')[1]
    model = official_model(case)
    buffer_keys = [k for k in model.state_dict() if '.Down.wt.' in k]
    assert len(buffer_keys) == 3 * 4 and all(k.rsplit('.', 1)[1] in ('h0_col', 'h1_col', 'h0_row', 'h1_row')
                                             for k in buffer_keys)
    with torch.no_grad():
        reference = model(case['input'])
        model.NB_layers[0].residual_group.blocks[0].lstm.att.HILBERTCURVE.Down.wt.h1_row.mul_(-1.0)
        assert (model(case['input']) - reference).abs().max() > 1e-4


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_official_parameter_counts(scale):
    with torch.device('meta'):
        model = rssr.create_model('lstmconvsr', scale=scale)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[scale]
    default_counts = torch.load(CONFORMANCE / 'lstmconvsr.pt', weights_only=True)['default_param_counts']
    assert default_counts[f'x{scale}'] == OFFICIAL_PARAMS[scale] == rssr.model_card('lstmconvsr').params[scale]


@pytest.mark.parametrize('options_file', sorted((OPTIONS / 'train' / 'LSTMConvSR').glob('*.yml'))
                         + sorted((OPTIONS / 'test' / 'LSTMConvSR').glob('*.yml')), ids=lambda p: p.name)
def test_recipe_network_builds_unchanged(options_file):
    network = yaml.safe_load(options_file.read_text())['network_g']
    assert network.pop('type') == 'LSTMConvSR'
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        with torch.device('meta'):
            model = LSTMConvSR(**network)
    assert model.embed_dim == 128 and len(model.NB_layers) == 4


def test_unknown_keywords_warn_and_official_unused_ones_do_not():
    with pytest.warns(UserWarning, match=r"ignoring unknown keyword argument\(s\) 'window_size'"):
        LSTMConvSR(**TINY, window_size=8)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        LSTMConvSR(**TINY, drop_path_rate=0.2, patch_norm=False, norm_layer=torch.nn.LayerNorm)


def test_configuration_errors_are_named():
    with pytest.raises(ValueError, match='resi_connection must be one of'):
        LSTMConvSR(**TINY, resi_connection='2conv')
    with pytest.raises(ValueError, match="upscale=5 is not supported by upsampler='pixelshuffle'"):
        LSTMConvSR(**TINY, upscale=5)
    with pytest.raises(ValueError, match='embed_dim must be a multiple of 4.*got 10'):
        LSTMConvSR(**{**TINY, 'embed_dim': 10})
    model = LSTMConvSR(**TINY, in_chans=4)
    with pytest.raises(ValueError, match=r'expects \(B, 4, H, W\) input \(in_chans=4\), got shape \(1, 3, 8, 8\)'):
        model(torch.rand(1, 3, 8, 8))


@pytest.mark.parametrize('lr_size,valid', [((5, 7), (8, 8)), ((4, 4), (4, 4)), ((1, 1), (4, 4)), ((2, 9), (16, 16)),
                                           ((100, 30), (128, 128)), ((64, 64), (64, 64)), ((33, 8), (64, 64))])
def test_size_requirements_are_the_official_ones(lr_size, valid):
    """Square LR tiles of side 2 * 2^p, p >= 1: the smallest one holding the input."""
    assert LSTMConvSR.size_requirements.valid_size(*lr_size) == valid


def test_the_mlstm_parameters_learn():
    """Beyond the contract's shapes and finite gradients (tests/archs/test_contract.py): the mLSTM's own
    projections and gates get a non-zero gradient."""
    torch.manual_seed(0)
    model = LSTMConvSR(upscale=2, in_chans=4, **TINY)
    model(torch.rand(2, 4, 5, 7)).square().mean().backward()
    vil = model.NB_layers[0].residual_group.blocks[0].lstm.att.HILBERTCURVE.layer
    assert vil.q_proj.weight.grad.abs().sum() > 0 and vil.mlstm_cell.fgate.weight.grad.abs().sum() > 0


def test_no_upsampler_keeps_the_size():
    model = LSTMConvSR(upscale=4, in_chans=1, upsampler='', **TINY).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 1, 6, 10)).shape == (1, 1, 6, 10)


def test_official_init_overrides_the_xlstm_gate_init():
    model = LSTMConvSR(**TINY)
    layer = model.NB_layers[0].residual_group.blocks[0].lstm.att.rowwise_from_top_left.layer
    assert torch.equal(layer.mlstm_cell.fgate.bias, torch.zeros(4))  # official quirk: ViL's linspace(3, 6) is lost
    assert torch.equal(layer.learnable_skip, torch.ones(16))
    assert layer.q_proj.weight.std().item() == pytest.approx((2 / (5 * 8)) ** 0.5, rel=0.5)
