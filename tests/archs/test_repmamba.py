"""Rep-Mamba (official ``SMSR``): conformance with the official outputs, strict loading, parameter
counts, re-parameterised deployment, odd sizes, forward + backward on CPU."""
import io
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml
from torch import nn

import rssr  # noqa: F401  (registers everything)
from rssr.archs.repmamba import RepMamba, RepSS2D
from rssr.layers.reparam import ConvBN, FusedConvBN, FusedRepDWConv, RepDWConv
from testkit import CONFORMANCE, REPO

SHARED = torch.load(CONFORMANCE / 'repmamba.pt', weights_only=True)
EXTRA = torch.load(CONFORMANCE / 'repmamba_extra.pt', weights_only=True)
CASES = SHARED['cases'] + EXTRA['cases']
TINY = dict(embed_dim=64, depths=[1], mlp_ratio=1.0)


@pytest.fixture(autouse=True)
def _few_threads():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(threads)


def _official(case):
    model = RepMamba(**case['kwargs']).eval()
    model.load_state_dict(case['state_dict'], strict=True)
    return model


@pytest.mark.parametrize('case', CASES, ids=[c['name'] for c in CASES])
def test_official_outputs_unfused_and_fused(case):
    model = _official(case)
    assert list(model.state_dict()) == list(case['state_dict']), 'state_dict keys or their order differ'
    unfused_params = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        output = model(case['input'])
        assert (output - case['output']).abs().max() <= 1e-4
        model.switch_to_deploy()
        fused = model(case['input'])
    assert (fused - case['output_fused']).abs().max() <= 1e-4
    assert (fused - output).abs().max() <= 1e-5
    if 'param_count' in case:
        assert unfused_params == case['param_count']
        assert sum(p.numel() for p in model.parameters()) == case['param_count_fused']


def test_deploy_flag_builds_fused_structure_loads_unfused_checkpoint_and_round_trips():
    case = SHARED['cases'][1]
    deployed = RepMamba(**case['kwargs'], deploy=True).eval()
    assert not any(isinstance(m, (nn.BatchNorm2d, ConvBN, RepDWConv)) for m in deployed.modules())
    deployed.load_state_dict(case['state_dict'], strict=True)  # official (unfused) checkpoint, folded on load
    with torch.no_grad():
        output = deployed(case['input'])
    assert (output - case['output_fused']).abs().max() <= 1e-4

    switched = _official(case).switch_to_deploy()
    assert list(switched.state_dict()) == list(deployed.state_dict())
    buffer = io.BytesIO()
    torch.save(switched.state_dict(), buffer)
    reloaded = RepMamba(**case['kwargs'], deploy=True).eval()
    reloaded.load_state_dict(torch.load(io.BytesIO(buffer.getvalue()), weights_only=True), strict=True)
    with torch.no_grad():
        assert torch.equal(reloaded(case['input']), switched(case['input']))


def test_fused_layers_are_single_convolutions():
    model = RepMamba(**TINY, upscale=2).eval().switch_to_deploy()
    ss2d = model.layers[0].residual_group.blocks[0].attn_layer.m64.ss2d
    assert type(ss2d.conv2d) is FusedRepDWConv and ss2d.conv2d.weight.shape == (128, 1, 3, 3)
    assert type(ss2d.rewconv) is FusedRepDWConv and ss2d.rewconv.weight.shape == (64, 1, 3, 3)
    assert type(model.layers[0].residual_group.blocks[0].attn_layer.m8.conv) is FusedConvBN
    assert not any(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert model.switch_to_deploy() is model  # idempotent


def test_fused_checkpoint_into_unfused_model_says_to_use_deploy():
    fused_state = RepMamba(**TINY, upscale=2).eval().switch_to_deploy().state_dict()
    with pytest.raises(RuntimeError, match=r'fused \(deploy\) form.*deploy=True'):
        RepMamba(**TINY, upscale=2).load_state_dict(fused_state)


def test_official_default_parameter_counts():
    fused = SHARED['default_param_counts_fused']
    for scale in (2, 3, 4):
        model = RepMamba(upscale=scale)
        assert sum(p.numel() for p in model.parameters()) == SHARED['default_param_counts'][f'x{scale}']
        assert sum(p.numel() for p in RepMamba(upscale=scale, deploy=True).parameters()) == fused[f'x{scale}']
    assert (SHARED['default_param_counts']['x2'], SHARED['default_param_counts']['x3'],
            SHARED['default_param_counts']['x4'], fused['x4']) == (775_212, 783_867, 795_984, 784_464)
    assert 'mean' not in model.state_dict()


def test_every_parameter_learns():
    """Beyond the contract's finite gradients (tests/archs/test_contract.py): no Rep-Mamba parameter is dead
    (its re-parameterised branches all get a non-zero gradient)."""
    torch.manual_seed(0)
    model = RepMamba(**TINY, upscale=3, in_chans=4)
    model(torch.rand(2, 4, 5, 7)).square().mean().backward()
    assert [name for name, param in model.named_parameters() if not param.grad.abs().sum() > 0] == []


def test_odd_sizes_are_reflect_padded_to_even_and_cropped():
    model = RepMamba(**TINY, upscale=2).eval()
    lr = torch.rand(1, 3, 7, 5)
    with torch.no_grad():
        padded = model(F.pad(lr, (0, 1, 0, 1), mode='reflect'))
        assert torch.equal(model(lr), padded[..., :14, :10])
    assert RepMamba.size_requirements.valid_size(7, 5) == (8, 6)
    assert RepMamba.size_requirements.valid_size(1, 1) == (2, 2)
    with torch.no_grad():
        assert model(torch.rand(1, 3, 1, 1)).shape == (1, 3, 2, 2)


def test_scan_backend_reaches_every_ss2d():
    model = RepMamba(**TINY, scan_backend='reference')
    backends = {m.scan_backend for m in model.modules() if isinstance(m, RepSS2D)}
    assert backends == {'reference'}


def test_bad_arguments_give_clear_errors():
    with pytest.raises(ValueError, match='embed_dim must be 64'):
        RepMamba(embed_dim=60)
    with pytest.raises(ValueError, match="'nearest\\+conv' supports only upscale 4"):
        RepMamba(**TINY, upsampler='nearest+conv', upscale=2)
    with pytest.raises(ValueError, match='upsampler must be one of'):
        RepMamba(**TINY, upsampler='bilinear')
    with pytest.warns(UserWarning, match=r"unknown keyword argument\(s\) 'windw_size'"):
        RepMamba(**TINY, windw_size=8)
    model = RepMamba(**TINY, upscale=2)
    with pytest.raises(ValueError, match=r'expects \(B, 3, H, W\) input \(in_chans=3\), got shape \(1, 4, 6, 6\)'):
        model(torch.rand(1, 4, 6, 6))
    with pytest.raises(ValueError, match='absolute position embedding has 96 positions'):
        RepMamba(**TINY, upscale=1, upsampler='', ape=True, img_size=[8, 12])(torch.rand(1, 3, 8, 8))


def test_registered_names_and_zoo_cards():
    from basicsr.utils.registry import ARCH_REGISTRY
    assert ARCH_REGISTRY.get('RepMamba') is RepMamba and ARCH_REGISTRY.get('SMSR') is RepMamba
    card = rssr.model_card('repmamba_deploy')
    assert card.params[4] == 784_464 and card.kwargs == {'deploy': True}
    model = rssr.create_model('repmamba_deploy', scale=2, in_chans=4, depths=[1])
    assert model.deploy and model.in_chans == 4 and model.upscale == 2


@pytest.mark.parametrize('path', sorted(REPO.glob('options/*/RepMamba/*.yml')),
                         ids=lambda p: p.name)
def test_option_files_build_the_network(path):
    from basicsr.archs import build_network
    options = yaml.safe_load(path.read_text())
    network_options = dict(options['network_g'], depths=[1])  # one block keeps the test fast
    model = build_network(network_options)
    assert isinstance(model, RepMamba)
    assert model.upscale == options['scale']
    assert model.deploy == ('deploy' in path.stem)


def test_rssr_test_evaluates_the_fused_model_from_an_unfused_checkpoint(tmp_path):
    from rssr.test import main

    rng = np.random.default_rng(0)
    for folder, size in (('HR', 16), ('LR', 8)):
        (tmp_path / folder).mkdir()
        for i in range(2):
            cv2.imwrite(str(tmp_path / folder / f'{i}.png'), rng.integers(0, 256, (size, size, 3), dtype=np.uint8))
    torch.manual_seed(0)
    trained = RepMamba(**TINY, upscale=2)
    with torch.no_grad():  # training-mode passes give the BatchNorms non-trivial running statistics
        trained(torch.rand(2, 3, 8, 8))
    torch.save({'params': trained.state_dict()}, tmp_path / 'unfused.pth')

    options_dir = REPO / 'options' / 'test' / 'RepMamba'
    images = {}
    for stem in ('test_RepMamba_x2_AID', 'test_RepMamba_x2_AID_deploy'):
        opt = yaml.safe_load((options_dir / f'{stem}.yml').read_text())
        opt.update(num_gpu=0, name=stem)
        opt['network_g'].update(TINY)
        opt['datasets']['test_1'].update(dataroot_gt=str(tmp_path / 'HR'), dataroot_lq=str(tmp_path / 'LR'))
        opt['path']['pretrain_network_g'] = str(tmp_path / 'unfused.pth')
        (tmp_path / f'{stem}.yml').write_text(yaml.safe_dump(opt))
        cwd = Path.cwd()
        os.chdir(tmp_path)
        try:
            main(['-opt', f'{stem}.yml'])
        finally:
            os.chdir(cwd)
        saved = sorted((tmp_path / 'results' / stem).rglob('*.png'))
        assert len(saved) == 2
        images[stem] = [cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in saved]
    for unfused, fused in zip(images['test_RepMamba_x2_AID'], images['test_RepMamba_x2_AID_deploy']):
        assert unfused.shape == (16, 16, 3) and np.abs(unfused.astype(int) - fused.astype(int)).max() <= 1
