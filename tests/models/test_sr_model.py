"""RSSRModel's training robustness, in process on CPU: AMP, NaN guard, accumulation, clipping,
optimizers, determinism and safetensors checkpoints."""
from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch

import rssr  # noqa: F401
from rssr.basicsr.models.sr_model import no_weight_decay_names, weight_decay_groups
from rssr.checkpoint import CheckpointError
from rssr.errors import NonFiniteLossError
from testkit import runtime_options, train_options

from basicsr.models import build_model
from basicsr.utils import get_root_logger, set_random_seed


def build(tmp_path: Path, logger=None, device: str = 'cpu', **train):
    opt = runtime_options(train_options(tmp_path / 'data', with_val=False), tmp_path)
    opt['num_gpu'] = 1 if device == 'cuda' else opt['num_gpu']
    opt['train'].update(train)
    opt['logger'].update(logger or {})
    set_random_seed(0)
    return build_model(opt)


def batch(seed: int = 0, size: int = 4):
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(size, 3, 8, 8, generator=generator),
            'gt': torch.rand(size, 3, 16, 16, generator=generator)}


def train_steps(model, steps: int):
    losses = []
    for step in range(1, steps + 1):
        model.feed_data(batch(step))
        model.optimize_parameters(step)
        losses.append(model.log_dict['l_pix'])
    return losses


def params(model):
    return [p.detach().clone() for p in model.get_bare_model(model.net_g).parameters()]


DEVICES = ['cpu', pytest.param('cuda', marks=pytest.mark.cuda)]  # the 'cpu' case is each 'cuda' case's twin


@pytest.mark.parametrize('device', DEVICES)
@pytest.mark.parametrize('amp, dtype', [('bf16', torch.bfloat16), ('fp16', torch.float16)])
def test_autocast_runs_the_network_in_half_precision_and_learns(tmp_path, device, amp, dtype):
    """The network computes in the autocast dtype on the device, the weights stay float32 there, fp16 gets a
    gradient scaler, and the loss falls over 8 steps."""
    model = build(tmp_path, device=device, amp=amp)
    dtypes = []
    model.net_g.conv_first.register_forward_hook(lambda module, args, out: dtypes.append((out.dtype, out.device.type)))
    model.feed_data(batch(0))
    losses = []
    for step in range(1, 9):
        model.optimize_parameters(step)
        losses.append(model.log_dict['l_pix'])
    assert dtypes[0] == (dtype, device)
    assert model.grad_scaler.is_enabled() == (amp == 'fp16')
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0]
    assert all(p.dtype == torch.float32 and p.device.type == device for p in model.net_g.parameters())


def test_nan_guard_stops_with_advice_and_leaves_weights_untouched(tmp_path):
    model = build(tmp_path)
    train_steps(model, 2)
    before = params(model)
    poisoned = batch(3)
    poisoned['lq'][0, 0, 0, 0] = float('nan')
    model.feed_data(poisoned)
    with pytest.raises(NonFiniteLossError, match=r'iteration 3: the loss is not finite \(l_pix=nan\).*--auto_resume '
                                                 r'after you lower train\.optim_g\.lr'):
        model.optimize_parameters(3)
    assert all(torch.equal(a, b) for a, b in zip(before, params(model)))


def test_nan_guard_catches_inf_gradients(tmp_path):
    model = build(tmp_path)
    model.feed_data(batch(0))
    model.net_g.conv_first.weight.register_hook(lambda grad: grad * float('inf'))
    with pytest.raises(NonFiniteLossError, match='gradient norm is not finite'):
        model.optimize_parameters(1)


def test_gradient_accumulation_matches_the_full_batch(tmp_path):
    full, accumulated = build(tmp_path / 'a'), build(tmp_path / 'b', grad_accum_steps=2)
    for model in (full, accumulated):
        model.feed_data(batch(0))
        model.optimize_parameters(1)
    assert full.log_dict['l_pix'] == pytest.approx(accumulated.log_dict['l_pix'], rel=1e-6)
    for a, b in zip(params(full), params(accumulated)):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_gradient_clipping_limits_the_global_norm(tmp_path):
    model = build(tmp_path, grad_clip_norm=1e-4)
    model.feed_data(batch(0))
    model.optimize_parameters(1)
    grads = [p.grad for p in model.net_g.parameters() if p.grad is not None]
    clipped = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    assert model.log_dict['grad_norm'] > 1e-3
    assert clipped.item() == pytest.approx(1e-4, rel=1e-3)


@pytest.mark.parametrize('name, cls', [('Adam', torch.optim.Adam), ('AdamW', torch.optim.AdamW),
                                       ('SGD', torch.optim.SGD)])
def test_optimizers(tmp_path, name, cls):
    optim = {'type': name, 'lr': 1e-3, **({'momentum': 0.9} if name == 'SGD' else {})}
    model = build(tmp_path, optim_g=optim)
    assert type(model.optimizer_g) is cls
    losses = train_steps(model, 2)
    assert all(torch.isfinite(torch.tensor(losses)))


def test_unknown_optimizer_names_the_choices(tmp_path):
    with pytest.raises(ValueError, match='Adam, AdamW, SGD'):
        build(tmp_path, optim_g={'type': 'Lion', 'lr': 1e-3})


def test_same_seed_gives_identical_losses(tmp_path):
    first = train_steps(build(tmp_path / 'a'), 4)
    second = train_steps(build(tmp_path / 'b'), 4)
    assert first == second


def test_safetensors_checkpoints_round_trip_params_and_ema(tmp_path):
    model = build(tmp_path, logger={'checkpoint_format': 'safetensors'}, ema_decay=0.5)
    train_steps(model, 2)
    model.save(epoch=0, current_iter=2)
    path = Path(model.opt['path']['models']) / 'net_g_2.safetensors'
    assert path.is_file() and not path.with_suffix('.pth').exists()
    restored = build(tmp_path / 'again')
    restored.load_network(restored.net_g, str(path), param_key='params_ema')
    for a, b in zip(model.net_g_ema.parameters(), restored.net_g.parameters()):
        assert torch.equal(a, b)
    state = torch.load(Path(model.opt['path']['training_states']) / '2.state', weights_only=True)
    assert state['iter'] == 2 and 'rng' in state and 'grad_scaler' in state


@pytest.mark.skipif(torch.cuda.is_available(), reason='the fallback is for machines without CUDA')
def test_num_gpu_without_cuda_falls_back_to_cpu(tmp_path):
    opt = runtime_options(train_options(tmp_path / 'data', with_val=False), tmp_path)
    opt['num_gpu'] = 1
    with pytest.warns(UserWarning, match='CUDA is not available'):
        model = build_model(opt)
    assert model.device.type == 'cpu'


def test_zoo_loader_reads_rssr_safetensors_checkpoints(tmp_path):
    from rssr.checkpoint import load_weights
    model = build(tmp_path, logger={'checkpoint_format': 'safetensors'}, ema_decay=0.5)
    train_steps(model, 1)
    model.save(epoch=0, current_iter=1)
    fresh = build(tmp_path / 'fresh').net_g
    load_weights(fresh, Path(model.opt['path']['models']) / 'net_g_1.safetensors')  # prefers params_ema
    assert all(torch.equal(a, b) for a, b in zip(model.net_g_ema.parameters(), fresh.parameters()))


class _SwinStyle(torch.nn.Module):
    """Parameters excluded from weight decay by each convention: a flag, a name, a keyword."""

    def __init__(self):
        super().__init__()
        self.flagged = torch.nn.Parameter(torch.ones(2))
        self.flagged._no_weight_decay = True
        self.absolute_pos_embed = torch.nn.Parameter(torch.ones(2))
        self.relative_position_bias_table = torch.nn.Parameter(torch.ones(2))
        self.conv = torch.nn.Conv2d(1, 1, 1)
        self.frozen = torch.nn.Parameter(torch.ones(2), requires_grad=False)

    def no_weight_decay(self):
        return {'absolute_pos_embed'}

    def no_weight_decay_keywords(self):
        return {'relative_position_bias'}


def test_weight_decay_groups_follow_the_mamba_and_swinir_conventions():
    net = _SwinStyle()
    assert no_weight_decay_names(net) == {'flagged', 'absolute_pos_embed', 'relative_position_bias_table'}
    decayed, exempt = weight_decay_groups(net, 0.01)
    assert decayed['params'] == [net.conv.weight, net.conv.bias] and 'weight_decay' not in decayed
    assert exempt == {'params': [net.flagged, net.absolute_pos_embed, net.relative_position_bias_table],
                      'weight_decay': 0.0}
    assert weight_decay_groups(net, 0) == [{'params': [p for p in net.parameters() if p.requires_grad]}]


TINY_MAMBA_NETS = {
    'ConvMambaSR': {'embed_dim': 8, 'depths': [1], 'RCG_num': 1, 'd_state': 4, 'mlp_ratio': 1},
    'RepMamba': {'embed_dim': 64, 'depths': [1], 'num_heads': [1], 'mlp_ratio': 1, 'ape': True, 'img_size': 8},
}


@pytest.mark.parametrize('arch', sorted(TINY_MAMBA_NETS))
def test_adamw_leaves_the_no_weight_decay_parameters_undecayed(tmp_path, arch, caplog, monkeypatch):
    monkeypatch.setattr(get_root_logger(), 'propagate', True)  # BasicSR's logger (set up first), seen by caplog
    caplog.set_level(logging.INFO, logger='basicsr')
    opt = runtime_options(train_options(tmp_path / 'data', with_val=False), tmp_path)
    opt['network_g'] = {'type': arch, 'upscale': 2, 'upsampler': 'pixelshuffledirect', **TINY_MAMBA_NETS[arch]}
    opt['train']['optim_g'] = {'type': 'AdamW', 'lr': 0.1, 'weight_decay': 0.01}
    model = build_model(opt)
    net = model.get_bare_model(model.net_g)
    exempt = {name for name, _ in net.named_parameters()
              if name.endswith(('.A_logs', '.Ds')) or name == 'absolute_pos_embed'}
    assert exempt and no_weight_decay_names(net) == exempt
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    for param in net.parameters():
        param.grad = torch.zeros_like(param)  # AdamW's step is then its weight decay alone
    model.optimizer_g.step()
    for name, param in net.named_parameters():
        factor = 1.0 if name in exempt else 1 - 0.1 * 0.01
        torch.testing.assert_close(param.detach(), before[name] * factor, rtol=0, atol=1e-7, msg=name)
    assert f'Weight decay 0.01: {len(exempt)} parameter tensors of {arch} are exempt' in caplog.text


def test_training_state_with_other_parameter_groups_is_refused_with_advice(tmp_path):
    """A state saved before the SSM parameters were exempt from weight decay (one optimizer group) cannot
    resume a run that builds two; the message says what to do instead of torch's bare ValueError."""
    opt = runtime_options(train_options(tmp_path / 'data', with_val=False), tmp_path)
    opt['network_g'] = {'type': 'ConvMambaSR', 'upscale': 2, 'upsampler': 'pixelshuffledirect',
                        **TINY_MAMBA_NETS['ConvMambaSR']}
    opt['train']['optim_g'] = {'type': 'AdamW', 'lr': 0.1, 'weight_decay': 0.01}
    model = build_model(opt)
    old = torch.optim.AdamW(model.net_g.parameters(), lr=0.1, weight_decay=0.01)
    state = {'epoch': 0, 'iter': 4, 'optimizers': [old.state_dict()],
             'schedulers': [s.state_dict() for s in model.schedulers]}
    with pytest.raises(CheckpointError, match=r'its optimizers have \[1\] parameter groups, this run builds \[2\]'
                                              r'.*weight_decay: 0'):
        model.resume_training(state)


def test_val_self_ensemble_averages_the_eight_orientations_and_is_a_checked_key(tmp_path):
    import yaml

    from rssr.basicsr.options import OptionsError, check_options
    from rssr.inference import SelfEnsemble

    opt = runtime_options(train_options(tmp_path / 'data'), tmp_path)
    opt['val']['self_ensemble'] = True
    set_random_seed(0)
    model = build_model(opt)
    data = batch()
    model.feed_data(data)
    model.test()
    with torch.no_grad():
        torch.testing.assert_close(model.output, SelfEnsemble(model.net_g)(data['lq']))
        assert not torch.allclose(model.output, model.net_g(data['lq']), atol=1e-4)
    written = train_options(tmp_path / 'data2')
    written['val']['self_ensemble'] = True
    (tmp_path / 'ok.yml').write_text(yaml.safe_dump(written))
    check_options(str(tmp_path / 'ok.yml'), is_train=True)
    del written['val']['self_ensemble']
    written['val']['self_ensembel'] = True
    (tmp_path / 'typo.yml').write_text(yaml.safe_dump(written))
    with pytest.raises(OptionsError, match='self_ensemble'):
        check_options(str(tmp_path / 'typo.yml'), is_train=True)
