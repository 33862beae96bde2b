"""Generic re-parameterisation helpers (rssr.layers.reparam): fusing equals the eval-mode branches."""
import pytest
import torch
from torch import nn

from rssr.layers.reparam import ConvBN, FusedConvBN, FusedRepDWConv, RepDWConv, reparameterize


def _randomise_batchnorms(module: nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            shape = bn.running_mean.shape
            bn.running_mean.copy_(torch.randn(shape, generator=generator))
            bn.running_var.copy_(torch.rand(shape, generator=generator) + 0.5)
            bn.weight.data.copy_(torch.randn(shape, generator=generator))
            bn.bias.data.copy_(torch.randn(shape, generator=generator))


@pytest.mark.parametrize('conv_args', [
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
    dict(in_channels=6, out_channels=6, kernel_size=3, padding=2, dilation=2, groups=3),
    dict(in_channels=5, out_channels=5, kernel_size=1, groups=5),
])
def test_convbn_fuse_matches_eval_forward(conv_args):
    block = ConvBN(**conv_args).eval()
    with torch.no_grad():
        _randomise_batchnorms(block, 0)
        x = torch.randn(2, conv_args['in_channels'], 9, 7)
        fused = block.fuse()
        assert type(fused) is FusedConvBN and not fused.training
        assert torch.allclose(fused(x), block(x), atol=1e-5)
        loaded = ConvBN.deploy_form(**conv_args)
        loaded.load_state_dict(block.state_dict(), strict=True)  # unfused keys, folded on load
        assert torch.allclose(loaded.weight, fused.weight) and torch.allclose(loaded.bias, fused.bias)


def test_repdw_fuse_matches_eval_forward_and_loads_unfused_keys():
    block = RepDWConv(8).eval()
    with torch.no_grad():
        _randomise_batchnorms(block, 1)
        x = torch.randn(1, 8, 6, 5)
        fused = block.fuse()
        assert type(fused) is FusedRepDWConv and fused.weight.shape == (8, 1, 3, 3)
        assert torch.allclose(fused(x), block(x), atol=1e-5)
        loaded = RepDWConv.deploy_form(8)
        loaded.load_state_dict(block.state_dict(), strict=True)
        assert torch.allclose(loaded(x), block(x), atol=1e-5)


def test_incomplete_unfused_checkpoint_names_the_missing_key():
    state = RepDWConv(4).state_dict()
    del state['conv1.bias']
    with pytest.raises(RuntimeError, match="misses 'conv1.bias'"):
        RepDWConv.deploy_form(4).load_state_dict(state)


def test_reparameterize_replaces_nested_blocks_in_place():
    model = nn.Sequential(ConvBN(3, 4, 3, padding=1), nn.Sequential(RepDWConv(4), nn.ReLU()), nn.Conv2d(4, 2, 1)).eval()
    with torch.no_grad():
        _randomise_batchnorms(model, 2)
        x = torch.randn(2, 3, 5, 5)
        expected = model(x)
        assert reparameterize(model) == 2
        assert not any(isinstance(m, (nn.BatchNorm2d, ConvBN, RepDWConv)) for m in model.modules())
        assert torch.allclose(model(x), expected, atol=1e-5)
