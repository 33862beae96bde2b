"""The contract every zoo model keeps, checked for each name in ``rssr.list_models()`` (in the manner of
timm's tests/test_models.py and spandrel's test helpers): forward and backward at odd LR sizes with an output
of exactly (H * output_scale, W * output_scale) and a finite gradient for every parameter, bf16 autocast on the
CPU, gradient checkpointing that changes nothing but memory, a strict state_dict round trip, a warning for an
unknown keyword, and declared size requirements whose valid sizes run unpadded.

Official sizes are far too slow for a CPU test suite, so each model is built small: the overrides below shrink
depth and width and keep what makes the model that model (upsampler, scan kind, scale). The conformance and
per-arch tests (test_<arch>.py) cover the official configurations.
"""
from __future__ import annotations

import inspect
import io
from typing import Any, Dict, Tuple

import pytest
import torch
from torch import Tensor, nn

import rssr
from rssr.checkpoint import extract_state_dict, read_checkpoint
from rssr.layers.padding import SizeRequirements, pad_to_valid
from rssr.registry import ARCHS

SMALL_OVERRIDES: Dict[str, Dict[str, Any]] = {
    'convformersr': dict(embed_dim=16, depths=[1], num_heads=[2], mlp_ratio=2., num_block=1),
    # ConvMambaSR's channel attention squeezes embed_dim by 30: a narrower model skips it, leaving its
    # activation's parameters without a gradient.
    'convmambasr': dict(embed_dim=30, depths=[1], RCG_num=1, d_state=4, mlp_ratio=1.),
    'convmambasr_s2_x4': dict(embed_dim=30, depths=[1], RCG_num=1, d_state=4),
    'lstmconvsr': dict(embed_dim=16, depths=[1], CNN_num=1, mlp_ratio=2.),
    'mambacsr': dict(embed_dim=24, d_state=4, depths=[1], depths2=[1], mlp_ratio=1.),
    'mambacsr_wo': dict(embed_dim=24, d_state=4, depths=[1], depths2=[1], mlp_ratio=1.),
    'repmamba': dict(depths=[1], num_heads=[1], mlp_ratio=1.),  # embed_dim 64 is hard-wired in the design
    'repmamba_deploy': dict(depths=[1], num_heads=[1], mlp_ratio=1.),
    'repmamba_s2_x4': dict(depths=[1], num_heads=[1], mlp_ratio=1.),
}
MODELS = rssr.list_models()
ODD_LR_SIZES = ((7, 9), (13, 10))
# (scale, bands (None: the card's), odd LR size) of the forward/backward contract: every scale, 3 to 6 bands.
CONFIGURATIONS = ((4, None, ODD_LR_SIZES[0]), (4, None, ODD_LR_SIZES[1]), (2, 3, (5, 7)), (3, 6, (9, 5)))


def small_model(name: str, seed: int = 0, **kwargs: Any) -> nn.Module:
    """The zoo model ``name`` at the default scale, shrunk by SMALL_OVERRIDES, initialised from ``seed``."""
    torch.manual_seed(seed)
    return rssr.create_model(name, **SMALL_OVERRIDES[name], **kwargs)


def lr_batch(name: str, height: int, width: int, seed: int = 1) -> Tensor:
    """A (1, bands, height, width) LR batch in [0, 1) with the model's band count."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(1, rssr.model_card(name).in_chans, height, width, generator=generator)


def expected_shape(model: nn.Module, lr: Tensor) -> Tuple[int, ...]:
    batch, bands, height, width = lr.shape
    return batch, bands, height * model.output_scale, width * model.output_scale


def takes_use_checkpoint(name: str) -> bool:
    return 'use_checkpoint' in inspect.signature(ARCHS.get(rssr.model_card(name).arch)).parameters


def outputs_and_gradients(model: nn.Module, lr: Tensor) -> Tuple[Tensor, Dict[str, Tensor]]:
    """The output for ``lr`` and the gradient of a fixed scalar of it for every non-empty parameter that requires
    one (at small widths a channel attention can squeeze to zero channels, leaving empty weights)."""
    model.zero_grad(set_to_none=True)
    output = model(lr)
    (output * torch.linspace(-1, 1, output.numel()).view_as(output)).sum().backward()
    return output.detach(), {name: p.grad for name, p in model.named_parameters() if p.requires_grad and p.numel()}


def test_every_zoo_model_has_small_overrides():
    """A new zoo entry must say how to build it small here, or the contract would not cover it."""
    assert sorted(SMALL_OVERRIDES) == MODELS


@pytest.mark.parametrize('name', MODELS)
def test_forward_and_backward_at_every_scale_band_count_and_odd_size(name):
    """At scales 2, 3 and 4, with 3 to 6 bands, on batches of two odd non-square LR images: the output has the
    scaled shape and is finite, the input and every parameter get a finite gradient, and (in eval) the output
    is the one of the input padded to a valid size, cropped back. Outputs are contiguous in the default memory
    format at batch 2 and 1 (layers may run channels-last inside; BasicSR's discriminators ``view`` them)."""
    assert small_model(name).output_scale == 4  # create_model's default scale
    for scale, bands, (height, width) in CONFIGURATIONS:
        model = small_model(name, scale=scale, **({} if bands is None else {'in_chans': bands})).train()
        bands = bands or rssr.model_card(name).in_chans
        lr = torch.rand(2, bands, height, width, generator=torch.Generator().manual_seed(scale)).requires_grad_()
        output, gradients = outputs_and_gradients(model, lr)
        assert output.shape == expected_shape(model, lr) and model.output_scale == scale
        assert torch.isfinite(output).all() and output.is_contiguous()
        missing = [key for key, grad in gradients.items() if grad is None]
        assert not missing, f'no gradient reaches {missing}'
        assert all(torch.isfinite(grad).all() for grad in gradients.values())
        assert torch.isfinite(lr.grad).all() and lr.grad.abs().sum() > 0
        with torch.no_grad():
            padded = model.eval()(pad_to_valid(lr.detach(), model.size_requirements))
            torch.testing.assert_close(model(lr.detach()), padded[..., :height * scale, :width * scale])
            assert model(lr.detach()[:1]).is_contiguous()


@pytest.mark.parametrize('name', MODELS)
def test_a_wrong_band_count_is_named(name):
    bands = rssr.model_card(name).in_chans
    with pytest.raises(ValueError, match=rf'expects \(B, {bands}, H, W\).*got shape \(1, {bands + 1}, 8, 8\)'):
        small_model(name)(torch.rand(1, bands + 1, 8, 8))


@pytest.mark.parametrize('name', MODELS)
def test_bf16_autocast_forward_on_cpu_is_close_to_float32(name):
    model = small_model(name).eval()
    lr = lr_batch(name, *ODD_LR_SIZES[0])
    with torch.no_grad():
        reference = model(lr)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            output = model(lr)
    assert output.shape == expected_shape(model, lr)
    assert torch.isfinite(output).all()
    assert (output.float() - reference).abs().max() < 0.05 * reference.abs().max()


def count_module_calls_during(step) -> int:
    """How many module forwards run while ``step()`` runs (checkpointing re-runs blocks in backward)."""
    calls = []
    handle = nn.modules.module.register_module_forward_hook(lambda *_: calls.append(1))
    try:
        step()
    finally:
        handle.remove()
    return len(calls)


@pytest.mark.parametrize('name', [name for name in MODELS if takes_use_checkpoint(name)])
def test_gradient_checkpointing_changes_nothing_but_memory(name):
    """In training, with stochastic depth drawing the same numbers in both runs (checkpointing replays them)."""
    plain, checkpointed = (small_model(name, drop_path_rate=0.5, **extra).train() for extra in ({}, {
        'use_checkpoint': True}))
    lr = lr_batch(name, *ODD_LR_SIZES[1])
    torch.manual_seed(7)
    expected_output, expected_gradients = outputs_and_gradients(plain, lr)
    torch.manual_seed(7)
    output, gradients = outputs_and_gradients(checkpointed, lr)
    torch.testing.assert_close(output, expected_output)
    assert gradients.keys() == expected_gradients.keys()
    for key, gradient in gradients.items():
        torch.testing.assert_close(gradient, expected_gradients[key], msg=f'gradient of {key}')
    recomputed = count_module_calls_during(lambda: checkpointed(lr).sum().backward())
    assert recomputed > count_module_calls_during(lambda: plain(lr).sum().backward()), 'nothing was recomputed'


@pytest.mark.parametrize('name', MODELS)
def test_state_dict_round_trip_is_strict_and_exact(name):
    trained = small_model(name, seed=0).eval()
    buffer = io.BytesIO()
    torch.save(trained.state_dict(), buffer)
    buffer.seek(0)
    fresh = small_model(name, seed=1).eval()
    fresh.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    lr = lr_batch(name, *ODD_LR_SIZES[0])
    with torch.no_grad():
        assert torch.equal(fresh(lr), trained(lr))


@pytest.mark.parametrize('name', [name for name in MODELS if rssr.model_card(name).weights])
def test_shipped_weights_load_strictly_into_the_card_configuration(name):
    """``pretrained=True`` (offline: the weights ship with rssr) holds exactly the shipped file's weights, which
    fit the card's configuration strictly and are not its initialisation."""
    card = rssr.model_card(name)
    trained = rssr.create_model(name, pretrained=True).eval()
    network = getattr(trained, 'net', trained)  # weights with a band normalisation come back inside it
    shipped = extract_state_dict(read_checkpoint(card.weights_path()))
    held = network.state_dict()
    assert held.keys() == shipped.keys()
    assert all(torch.equal(held[key], shipped[key].to(held[key].dtype)) for key in shipped)
    fresh = rssr.create_model(name, scale=card.weights_scale).eval()
    lr = lr_batch(name, *ODD_LR_SIZES[0])
    with torch.no_grad():
        initialised = fresh(lr)
        fresh.load_state_dict(shipped, strict=True)  # the card's configuration takes the file as it is
        output = trained(lr)
        assert not torch.allclose(fresh(lr), initialised)
    assert trained.output_scale == fresh.output_scale  # the wrapper reports its network's scale
    assert output.shape == expected_shape(trained, lr) and torch.isfinite(output).all()


@pytest.mark.parametrize('name', MODELS)
def test_unknown_keyword_warns(name):
    with pytest.warns(UserWarning, match="ignoring unknown keyword argument.*'not_an_option'"):
        small_model(name, not_an_option=1)


@pytest.mark.parametrize('name', MODELS)
def test_valid_sizes_run_without_padding(name):
    """The declared size requirement is enough: at every kind of size it accepts (the smallest, wide and tall
    ones, those the odd sizes round up to) the network runs with padding switched off, and its output is what
    the padded model gives. (1 x 1 is left out: ConvMambaSR refuses it by name, see test_convmambasr.)"""
    model = small_model(name).eval()
    requirements = model.size_requirements
    assert isinstance(requirements, SizeRequirements)
    unpadded = small_model(name).eval()
    unpadded.size_requirements = SizeRequirements()
    smallest = requirements.valid_size(1, 2)[1]
    wanted = [(1, 2), (1, 2 * smallest + 1), (2 * smallest + 1, 1), *ODD_LR_SIZES]
    for odd_height, odd_width in wanted:
        height, width = requirements.valid_size(odd_height, odd_width)
        assert height >= odd_height and width >= odd_width
        assert requirements.valid_size(height, width) == (height, width)
        lr = lr_batch(name, height, width)
        with torch.no_grad():
            output = model(lr)
            assert torch.equal(output, unpadded(lr))
        assert output.shape == expected_shape(model, lr)
