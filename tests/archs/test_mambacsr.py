"""MambaCSR: conformance with the official code, strict loading, parameter counts, any-size forward/backward."""

import pytest
import torch

import rssr  # noqa: F401
from rssr.archs.mambacsr import MambaCSR, direction_schedule
from rssr.zoo import create_model, list_models, model_card
from testkit import CONFORMANCE, REPO

FIXTURE = torch.load(CONFORMANCE / 'mambacsr.pt', weights_only=True)
EXTRA = torch.load(CONFORMANCE / 'mambacsr_extra.pt', weights_only=True)
CASES = FIXTURE['cases'] + EXTRA['cases']

OFFICIAL_NETWORK_G = dict(type='MambaCSR', img_size=64, in_chans=3, upscale=4, embed_dim=180, d_state=16, scan_size=8,
                          depths=[6, 6, 6, 6, 6, 6], depths2=[6], mlp_ratio=2, img_range=1., upsampler='pixelshuffle',
                          resi_connection='1conv', dual_interleaved_scan=True, cross_scale_scan=True)


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_matches_official_outputs(case):
    model = MambaCSR(**case['kwargs']).eval()
    state = {k: v.float() if v.is_floating_point() else v for k, v in case['state_dict'].items()}
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == case['param_count']
    with torch.no_grad():
        out = model(case['input'])
    assert out.shape == case['output'].shape
    assert (out - case['output']).abs().max().item() <= 1e-4


@pytest.mark.parametrize('key,name,scale', [(f'{p}x{s}', n, s) for p, n in (('', 'mambacsr'), ('wo_', 'mambacsr_wo'))
                                             for s in (2, 3, 4)])
def test_official_parameter_counts(key, name, scale):
    with torch.device('meta'):  # same module tree, no weight initialisation cost
        model = create_model(name, scale=scale)
    count = sum(p.numel() for p in model.parameters())
    assert count == FIXTURE['default_param_counts'][key] == model_card(name).params[scale]
    assert 'mean' not in model.state_dict()  # the official RGB mean is no checkpoint entry


def test_official_yaml_network_g_builds_unchanged():
    kwargs = {k: v for k, v in OFFICIAL_NETWORK_G.items() if k != 'type'}
    with torch.device('meta'):
        model = MambaCSR(**kwargs)
    keys = model.state_dict().keys()
    assert len(keys) == 1532
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert shapes['layers.0.residual_group.blocks.0.self_attention.x_proj_weight'] == (2, 44, 360)
    assert shapes['layers3.0.x_proj_weight'] == (4, 44, 360)
    assert shapes['layers3.0.A_logs'] == (1440, 16)
    assert shapes['layers3.0.mlp.fc1.weight'] == (720, 180)
    assert shapes['layers.0.residual_group.blocks.0.conv_block.cab.0.weight'] == (7, 180, 3, 3)


def test_broken_official_defaults_work():
    with torch.device('meta'), pytest.warns(UserWarning, match="upsampler=''"):
        model = MambaCSR(cross_scale_scan=True)  # float mlp_ratio=2. and int depths2=6 in the official code
    assert model.layers[0].residual_group.blocks[0].mlp.fc1.out_features == 360
    assert len(model.layers2) == 1 and len(model.layers2[0].residual_group.blocks) == 6


def test_identity_without_upsampler_like_the_official_default():
    with pytest.warns(UserWarning):
        model = MambaCSR(embed_dim=24, depths=[1], d_state=4)
    x = torch.rand(1, 3, 5, 7)
    assert torch.allclose(model(x), x, atol=1e-6)


def test_unknown_kwargs_warn_and_bad_arguments_raise():
    with pytest.warns(UserWarning, match='window_size'):
        MambaCSR(embed_dim=24, depths=[1], upsampler='pixelshuffle', window_size=8)
    with pytest.raises(ValueError, match='embed_dim'):
        MambaCSR(embed_dim=12, upsampler='pixelshuffle')
    with pytest.raises(ValueError, match='pixelshuffledirect'):
        MambaCSR(embed_dim=24, upsampler='pixelshuffledirect')
    with pytest.raises(ValueError, match='depths2'):
        MambaCSR(embed_dim=24, depths2=[], upsampler='pixelshuffle', cross_scale_scan=True)
    model = MambaCSR(embed_dim=24, depths=[1], upsampler='pixelshuffle', in_chans=4)
    with pytest.raises(ValueError, match=r'\(B, 4, H, W\)'):
        model(torch.rand(1, 3, 8, 8))


def test_direction_schedule():
    assert direction_schedule(5, 4, True, False)[2:] == [('w64', 'w64_flip'), ('c_w64', 'c_w64_flip'),
                                                         ('w4', 'w4_flip')]
    assert direction_schedule(2, 8, False, True) == [('w32', 'w32_flip'), ('c_w32', 'c_w32_flip')]
    assert direction_schedule(6, 8, False, True)[1] == ('c_w8', 'c_w8_flip')
    assert direction_schedule(1, 8, False, False) == [('w8', 'w8_flip', 'c_w8', 'c_w8_flip')]


def test_size_requirements_and_zoo_cards():
    assert {'mambacsr', 'mambacsr_wo'} <= set(list_models('mambacsr*'))
    with torch.device('meta'):
        final, wo = create_model('mambacsr'), create_model('mambacsr_wo')
    assert final.size_requirements.valid_size(17, 32) == (32, 32)
    assert wo.size_requirements.valid_size(17, 31) == (17, 31)


TINY = dict(embed_dim=24, depths2=[1], d_state=4, scan_size=4, mlp_ratio=1, upsampler='pixelshuffle', drop_path_rate=0.)


def test_the_cross_scale_scan_learns():
    """Beyond the contract's shapes and finite gradients (tests/archs/test_contract.py): the cross-scale scan of
    the Final variant gets a non-zero gradient at a size it pads inside (11 x 13 -> 16 x 16)."""
    torch.manual_seed(0)
    # one Final block keeps the sequential reference scan affordable (its shallow groups scan 32x32 windows)
    model = MambaCSR(**TINY, depths=[1], upscale=2, in_chans=3, cross_scale_scan=True)
    model(torch.rand(1, 3, 11, 13)).square().mean().backward()
    assert model.layers3[0].x_proj_weight.grad.abs().sum() > 0


@pytest.mark.parametrize('variant,cross', [('Final', True), ('wo', False)])
def test_recipe_files_hold_the_official_recipe(variant, cross):
    import yaml
    root = REPO / 'options'
    train = yaml.safe_load((root / 'train' / 'MambaCSR' / f'train_MambaCSR_{variant}_x4.yml').read_text())
    network = {k: v for k, v in train['network_g'].items() if k != 'type'}
    assert network == {**{k: v for k, v in OFFICIAL_NETWORK_G.items() if k != 'type'}, 'cross_scale_scan': cross}
    recipe = train['train']
    assert (recipe['optim_g']['lr'], recipe['optim_g']['betas'], recipe['ema_decay']) == (2e-4, [0.9, 0.99], 0.999)
    assert (recipe['scheduler']['milestones'], recipe['scheduler']['gamma'], recipe['total_iter']) == (
        [150000, 250000, 275000], 0.5, 300000)
    assert train['datasets']['train']['gt_size'] == 256 and train['datasets']['train']['batch_size_per_gpu'] == 4
    assert train['val']['metrics']['psnr'] == {'type': 'calculate_psnr', 'crop_border': 4, 'test_y_channel': True}
    for quality in (10, 20, 30, 40):
        test = yaml.safe_load((root / 'test' / 'MambaCSR' / f'test_MambaCSR_{variant}_x4_q{quality}.yml').read_text())
        assert test['network_g'] == train['network_g']
        assert all(d['dataroot_lq'].endswith(f'LR_q{quality}') for d in test['datasets'].values())
        assert set(test['val']['metrics']) == {'psnr', 'ssim'}


def test_partitioned_forward_stitches_partitions_like_a_whole_image_forward():
    import torch.nn.functional as F

    from rssr.basicsr.models.mambacsr_model import mirror_pad, partitioned_forward
    from rssr.registry import MODELS
    assert MODELS.get('MambaCSRModel').test is not None
    calls = []

    def nearest_x3(x):  # local, so stitching errors would show
        calls.append(tuple(x.shape[-2:]))
        assert x.shape[-2] % 16 == 0 and x.shape[-1] % 16 == 0
        return F.interpolate(x, scale_factor=3, mode='nearest')

    lq = torch.rand(2, 3, 37, 50)
    out = partitioned_forward(nearest_x3, lq, scale=3, split_size=16, padding_size=16)
    assert torch.equal(out, F.interpolate(lq, scale_factor=3, mode='nearest'))
    assert len(calls) == 3 * 4  # (37 // 16 + 1) x (50 // 16 + 1) partitions
    padded = mirror_pad(torch.arange(5.).view(1, 1, 1, 5), 4)
    assert padded.shape[-2:] == (2, 8) and padded[0, 0, 0].tolist() == [0, 1, 2, 3, 4, 4, 3, 2]
