"""ConvMambaSR: equality with the official outputs, strict loading, parameter counts, training on
CPU at every scale and band count, checkpointing, and the errors a user can act on."""
import warnings

import pytest
import torch
import yaml

import rssr  # noqa: F401  (registries filled)
from rssr.archs.convmambasr import OFFICIAL_KWARGS, ConvMambaSR
from rssr.layers.ss2d import SS2D
from rssr.zoo import create_model, model_card
from testkit import CONFORMANCE, REPO

OFFICIAL_PARAMS = {2: 16_538_123, 3: 16_722_763, 4: 16_685_835}


def _cases():
    # convmambasr.pt: the shared official fixture; convmambasr_extra.pt: its notes say how it was made.
    for name in ('convmambasr.pt', 'convmambasr_extra.pt'):
        for case in torch.load(CONFORMANCE / name, weights_only=True)['cases']:
            yield pytest.param(case, id=case['name'])


def _tiny(**overrides):
    kwargs = dict(embed_dim=30, depths=[1], RCG_num=1, d_state=4, mlp_ratio=2., upsampler='pixelshuffle', upscale=4)
    kwargs.update(overrides)
    return ConvMambaSR(**kwargs)


@pytest.mark.parametrize('scan_backend', ['reference', 'torch'])
@pytest.mark.parametrize('case', list(_cases()))
def test_matches_official_outputs(case, scan_backend):
    model = ConvMambaSR(**case['kwargs'], scan_backend=scan_backend).eval()
    assert list(model.state_dict()) == list(case['state_dict'])  # parameters created in the official order
    model.load_state_dict(case['state_dict'], strict=True)  # float16 values cast into the float32 model
    with torch.no_grad():
        output = model(case['input'])
    assert output.shape == case['output'].shape
    assert (output - case['output']).abs().max().item() <= 1e-4


def test_state_dict_has_no_rgb_mean():
    model = _tiny()
    assert 'mean' not in model.state_dict()
    assert torch.allclose(model.mean.flatten(), torch.tensor([0.4488, 0.4371, 0.4040]))
    assert 'mean' not in _tiny(in_chans=4).state_dict()


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_official_parameter_counts(scale):
    with torch.device('meta'):
        model = ConvMambaSR(upscale=scale, in_chans=3, **OFFICIAL_KWARGS)
        zoo_model = create_model('convmambasr', scale=scale)
    assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[scale]
    assert sum(p.numel() for p in zoo_model.parameters()) == model_card('convmambasr').params[scale]


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_option_files_build_the_official_network(scale):
    for kind in ('train', 'test'):
        path = REPO / 'options' / kind / 'ConvMambaSR' / f'{kind}_ConvMambaSR_x{scale}_RSSCN7_bic.yml'
        network = dict(yaml.safe_load(path.read_text())['network_g'])
        assert network.pop('type') == 'ConvMambaSR'
        with warnings.catch_warnings():
            warnings.simplefilter('error')  # no unknown keyword
            with torch.device('meta'):
                model = ConvMambaSR(**network)
        assert sum(p.numel() for p in model.parameters()) == OFFICIAL_PARAMS[scale]


def test_the_scan_parameters_learn():
    """Beyond the contract's shapes and finite gradients (tests/archs/test_contract.py): the SSM's own
    parameters get a non-zero gradient through the scan."""
    torch.manual_seed(0)
    model = _tiny(upscale=2, in_chans=4)
    model(torch.rand(2, 4, 5, 7)).square().mean().backward()
    scan_params = model.RSSG_layers[0].residual_group.blocks[0].self_attention
    for name in ('x_proj_weight', 'dt_projs_weight', 'dt_projs_bias', 'A_logs', 'Ds'):
        assert getattr(scan_params, name).grad.abs().sum() > 0, name


@pytest.mark.parametrize('upsampler, scale, out_scale', [('pixelshuffledirect', 5, 5), ('', 4, 1)])
def test_other_upsamplers(upsampler, scale, out_scale):
    model = _tiny(upsampler=upsampler, upscale=scale, in_chans=4, resi_connection='3conv', patch_norm=False)
    assert 'patch_embed.norm.weight' not in model.state_dict()
    output = model(torch.rand(1, 4, 3, 6))
    assert output.shape == (1, 4, 3 * out_scale, 6 * out_scale)
    output.mean().backward()
    assert model.conv_first.weight.grad.abs().sum() > 0


def test_zero_channel_squeeze_keeps_official_shapes_and_runs():
    model = _tiny(embed_dim=16, in_chans=4)
    attention = model.RSSG_layers[0].residual_group.blocks[0].conv_blk.cab[3]
    assert attention.attention[1].weight.shape == (0, 16, 1, 1)
    assert model(torch.rand(1, 4, 3, 3)).shape == (1, 4, 12, 12)


def test_scan_backend_reaches_every_ss2d():
    model = _tiny(depths=[1, 2], scan_backend='reference')
    backends = [m.scan_backend for m in model.modules() if isinstance(m, SS2D)]
    assert backends == ['reference'] * 3


@pytest.mark.parametrize('kwargs, message', [
    (dict(resi_connection='2conv'), r"resi_connection must be one of \('1conv', '3conv'\), got '2conv'"),
    (dict(upscale=5), r"upscale=5 is not supported by upsampler='pixelshuffle'"),
])
def test_bad_configuration_fails_at_construction(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _tiny(**kwargs)


def test_bad_inputs_are_named():
    model = _tiny()
    with pytest.raises(ValueError, match=r'at least 2 pixels.*1x1'):
        model(torch.rand(1, 3, 1, 1))
    assert model(torch.rand(1, 3, 1, 4)).shape == (1, 3, 4, 16)  # a single row is fine
