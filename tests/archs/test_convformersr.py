"""ConvFormerSR: official conformance, strict loading with the official buffers, parameter counts,
forward/backward for many band counts and sizes, configuration errors, and autocast safety."""

import pytest
import torch

import rssr
from rssr.archs.convformersr import ChannelSelfAttention, ConvFormerSR
from testkit import CONFORMANCE


def _cases(file_name):
    fixture = torch.load(CONFORMANCE / file_name, weights_only=True)
    return [pytest.param(case, id=case['name']) for case in fixture['cases']]


# convformersr.pt: the shared official fixture; convformersr_extra.pt: more official outputs
# (clamped window, no patch norm, no qkv bias, qk_scale, 6 bands, x3, x1, patch_size 2, window 8)
# made by make_convformersr_extra.py.
CASES = _cases('convformersr.pt') + _cases('convformersr_extra.pt')


@pytest.mark.parametrize('case', CASES)
def test_matches_official_outputs(case):
    model = ConvFormerSR(**case['kwargs']).eval()
    ours = model.state_dict()
    official = case['state_dict']
    assert list(ours) == list(official)
    assert {k: tuple(v.shape) for k, v in ours.items()} == {k: tuple(v.shape) for k, v in official.items()}
    for key, value in official.items():  # buffers are computed, and equal the official ones
        if key.endswith(('attn_mask', 'relative_position_index')):
            assert torch.equal(ours[key], value.to(ours[key].dtype)), key
    model.load_state_dict(official, strict=True)
    with torch.no_grad():
        output = model(case['input'].float())
    assert output.shape == case['output'].shape
    assert (output - case['output']).abs().max().item() <= 1e-4


@pytest.mark.parametrize('scale, expected', [(2, 16_300_435), (3, 16_485_075), (4, 16_448_147)])
def test_parameter_counts_at_official_defaults(scale, expected):
    with torch.device('meta'):  # shapes only: no memory, no init time
        model = ConvFormerSR(upscale=scale)
    assert sum(p.numel() for p in model.parameters()) == expected
    masks = [b for name, b in model.named_buffers() if name.endswith('attn_mask')]
    assert len(masks) == 12 and all(m.shape == (64, 64, 64) for m in masks)


def test_default_is_x3_and_zoo_card_builds_4_band_model():
    with torch.device('meta'):
        assert ConvFormerSR().upscale == 3
        model = rssr.create_model('convformersr', scale=3, in_chans=4)
    assert sum(p.numel() for p in model.parameters()) == 16_486_516
    assert rssr.model_card('convformersr').params[3] == 16_485_075


def test_mask_buffer_shape_follows_img_size_and_window():
    model = ConvFormerSR(img_size=(24, 16), window_size=4, embed_dim=16, depths=[2], num_heads=[2], num_block=1)
    state = model.state_dict()
    assert state['RAG_Layers.0.attn.blocks.1.attn_mask'].shape == (24, 16, 16)
    assert 'RAG_Layers.0.attn.blocks.0.attn_mask' not in state
    assert state['RAG_Layers.0.attn.blocks.0.attn.relative_position_index'].shape == (16, 16)


TINY = dict(embed_dim=16, depths=[1, 1], num_heads=[2, 4], window_size=4, img_size=8, mlp_ratio=2., num_block=2)


def test_only_first_num_block_stages_run():
    model = ConvFormerSR(**{**TINY, 'depths': [1, 1, 1], 'num_heads': [2, 2, 2]})
    model(torch.rand(1, 3, 8, 8)).mean().backward()
    assert model.RAG_Layers[2].conv.weight.grad is None
    assert model.RAG_Layers[1].conv.weight.grad is not None


def test_sizes_the_official_code_cannot_run():
    # window clamped to 6 does not divide window_size 8: padded to a multiple of 24 instead of crashing
    model = ConvFormerSR(img_size=6, embed_dim=16, depths=[2], num_heads=[2], num_block=1, upscale=2).eval()
    with torch.no_grad():
        assert model(torch.rand(1, 3, 10, 13)).shape == (1, 3, 20, 26)
        # a 2x3 input is too small for one reflect pad to 8
        assert ConvFormerSR(upscale=2, **TINY).eval()(torch.rand(1, 3, 2, 3)).shape == (1, 3, 4, 6)


def test_unknown_kwargs_warn_with_their_names():
    with pytest.warns(UserWarning, match="'upsampler'.*SwinIR"):
        ConvFormerSR(upsampler='pixelshuffle', **TINY)
    with pytest.warns(UserWarning, match="'windw_size'"):
        ConvFormerSR(windw_size=8, **TINY)


@pytest.mark.parametrize('overrides, message', [
    (dict(embed_dim=8, num_heads=[2, 2]), 'embed_dim must be >= 16'),
    (dict(num_heads=[3, 2]), r'not divisible by num_heads\[0\] = 3'),
    (dict(upscale=5), 'upscale 5 is not supported'),
    (dict(num_block=3), 'num_block 3 must be between 0 and len'),
    (dict(rgb_mean=[0.4, 0.4]), 'rgb_mean has 2 values but in_chans is 3'),
    (dict(num_heads=[2]), 'fewer entries than depths'),
])
def test_configuration_errors_are_clear(overrides, message):
    with pytest.raises(ValueError, match=message):
        ConvFormerSR(**{**TINY, **overrides})


@pytest.mark.parametrize('dtype', [torch.bfloat16, torch.float16])
def test_channel_attention_energy_stays_float32_under_autocast(dtype):
    # 256x256 pixels: the energy (~2e5) overflows float16 and loses all resolution in bfloat16
    torch.manual_seed(0)
    attention = ChannelSelfAttention()
    with torch.no_grad():
        attention.gamma.fill_(1.)
    x = (torch.rand(1, 8, 256, 256) * 2).to(dtype)
    with torch.no_grad():
        reference = attention(x.float())
        with torch.autocast('cpu', dtype=dtype):
            mixed = attention(x)
        features = x.reshape(1, 8, -1)
        energy = features @ features.transpose(1, 2)  # what a plain low-precision CAM would compute
        naive = (torch.softmax(energy.amax(-1, keepdim=True) - energy, -1) @ features + features).float()
    assert mixed.dtype == dtype and torch.isfinite(mixed).all()
    error = (mixed.float() - reference).abs().max().item()
    assert error < 0.02
    naive_error = (naive.view_as(reference) - reference).abs().max().item()
    assert not torch.isfinite(naive).all() or naive_error > 5 * error

