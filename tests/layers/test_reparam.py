"""Generic re-parameterisation helpers (rssr.layers.reparam): fusing equals the eval-mode branches."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rssr.layers.reparam import (
    ConvBN,
    FusedConvBN,
    FusedRepDWConv,
    RepDWConv,
    convolve,
    is_depthwise_pointwise,
    reparameterize,
)


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


def _convbn_by_definition(block: ConvBN, x: torch.Tensor) -> torch.Tensor:
    conv, bn = block.c, block.bn
    out = F.conv2d(x, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    return F.batch_norm(out, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=bn.training, eps=bn.eps)


@pytest.mark.parametrize('conv_args', [
    dict(in_channels=4, out_channels=6, kernel_size=3, stride=2, padding=1),
    dict(in_channels=5, out_channels=5, kernel_size=1, groups=5),  # depthwise 1x1: computed as a multiply-add
])
@pytest.mark.parametrize('training', [False, True])
def test_convbn_forward_and_gradients_equal_conv_then_batchnorm(conv_args, training):
    block = ConvBN(**conv_args).train(training)
    reference = ConvBN(**conv_args).train(training)
    with torch.no_grad():
        _randomise_batchnorms(block, 1)
    reference.load_state_dict(block.state_dict())
    x = torch.randn(2, conv_args['in_channels'], 9, 7)
    out, expected = block(x), _convbn_by_definition(reference, x)
    assert torch.allclose(out, expected, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    for name, parameter in block.named_parameters():
        assert torch.allclose(parameter.grad, dict(reference.named_parameters())[name].grad, rtol=1e-4, atol=1e-4)
    assert torch.equal(block.bn.running_mean, reference.bn.running_mean)  # batch statistics updated only in training


@pytest.mark.parametrize('training', [False, True])
def test_repdw_forward_and_gradients_equal_the_three_branches(training):
    block = RepDWConv(6).train(training)
    with torch.no_grad():
        _randomise_batchnorms(block, 2)
        block.conv1.bias.normal_()
    reference = RepDWConv(6).train(training)
    reference.load_state_dict(block.state_dict())
    x = torch.randn(2, 6, 8, 5)
    out = block(x)
    pointwise = reference.conv1
    expected = F.batch_norm(
        _convbn_by_definition(reference.conv, x) + F.conv2d(x, pointwise.weight, pointwise.bias, groups=6) + x,
        reference.bn.running_mean, reference.bn.running_var, reference.bn.weight, reference.bn.bias,
        training=training, eps=reference.bn.eps)
    assert torch.allclose(out, expected, atol=1e-5)
    out.square().sum().backward()
    expected.square().sum().backward()
    for name, parameter in block.named_parameters():
        assert torch.allclose(parameter.grad, dict(reference.named_parameters())[name].grad, rtol=1e-4, atol=1e-4)


def test_convolve_runs_a_depthwise_pointwise_conv_as_a_multiply_add():
    conv = nn.Conv2d(3, 3, 1, groups=3)
    assert is_depthwise_pointwise(conv)
    assert not is_depthwise_pointwise(nn.Conv2d(3, 3, 3, padding=1, groups=3))
    assert not is_depthwise_pointwise(nn.Conv2d(3, 6, 1, groups=3))
    x = torch.randn(2, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    assert torch.allclose(convolve(conv, x), F.conv2d(x, conv.weight, conv.bias, groups=3), atol=1e-6)
    no_bias = nn.Conv2d(3, 3, 1, groups=3, bias=False)
    assert torch.allclose(convolve(no_bias, x), F.conv2d(x, no_bias.weight, groups=3), atol=1e-6)
