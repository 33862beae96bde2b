"""Checkpoint loading: wrappers, prefixes, formats, unsafe pickles, readable mismatch errors."""
import pickle

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from rssr.checkpoint import CheckpointError, load_weights


def tiny_net(width: int = 4) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, width, 3), nn.ReLU(), nn.Conv2d(width, 3, 1))


def assert_same_weights(a: nn.Module, b: nn.Module) -> None:
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name


def test_basicsr_checkpoint_prefers_params_ema_and_strips_module_prefix(tmp_path):
    source, other = tiny_net(), tiny_net()
    with torch.no_grad():
        for p in other.parameters():
            p.add_(1)
    ema = {f'module.{k}': v for k, v in source.state_dict().items()}
    torch.save({'params': other.state_dict(), 'params_ema': ema}, tmp_path / 'net_g_latest.pth')
    target = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 3, 1))
    load_weights(target, tmp_path / 'net_g_latest.pth')
    assert_same_weights(target, source)
    load_weights(target, tmp_path / 'net_g_latest.pth', key='params')
    assert_same_weights(target, other)


@pytest.mark.parametrize('wrapper', ['state_dict', 'model'])
def test_common_wrappers(tmp_path, wrapper):
    source = tiny_net()
    torch.save({wrapper: source.state_dict(), 'epoch': 3}, tmp_path / 'w.pth')
    target = tiny_net(4)
    nn.init.zeros_(target[0].weight)
    load_weights(target, tmp_path / 'w.pth')
    assert_same_weights(target, source)


def test_safetensors(tmp_path):
    source = tiny_net()
    save_file(source.state_dict(), str(tmp_path / 'w.safetensors'))
    target = tiny_net()
    nn.init.zeros_(target[2].bias)
    load_weights(target, tmp_path / 'w.safetensors')
    assert_same_weights(target, source)


class _RunsCode:
    def __reduce__(self):
        return (print, ('pwned',))


def test_pickle_that_runs_code_is_refused(tmp_path, capsys):
    path = tmp_path / 'evil.pth'
    with open(path, 'wb') as f:
        pickle.dump({'params': _RunsCode()}, f)
    with pytest.raises(CheckpointError, match='weights_only'):
        load_weights(tiny_net(), path)
    assert 'pwned' not in capsys.readouterr().out


def test_mismatch_error_lists_missing_unexpected_and_shapes(tmp_path):
    wide = tiny_net(8).state_dict()
    wide['extra.weight'] = torch.zeros(1)
    del wide['2.bias']
    with pytest.raises(CheckpointError) as info:
        load_weights(tiny_net(4), wide)
    message = str(info.value)
    assert 'missing from checkpoint (1)' in message and '2.bias' in message
    assert 'unexpected in checkpoint (1)' in message and 'extra.weight' in message
    assert '0.weight: checkpoint (8, 3, 3, 3) vs model (4, 3, 3, 3)' in message


def test_missing_file_is_named(tmp_path):
    with pytest.raises(CheckpointError, match='not found: .*nope.pth'):
        load_weights(tiny_net(), tmp_path / 'nope.pth')
