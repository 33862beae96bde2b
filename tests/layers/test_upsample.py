"""SwinIR-style upsamplers and the SwinIR reconstruction tail (rssr.layers.upsample): shapes, checkpoint keys,
the scale each tail produces, and the errors that name the arch."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from rssr.layers.upsample import SwinIRTail, Upsample, UpsampleOneStep, check_swinir_head


class TinyTail(SwinIRTail, nn.Module):
    """Only a tail, over 8 feature channels and 3 bands."""

    def __init__(self, upsampler: str, upscale: int) -> None:
        super().__init__()
        self.build_tail(upsampler, upscale, embed_dim=8, out_chans=3)


@pytest.mark.parametrize('scale, keys', [(2, ['0']), (3, ['0']), (4, ['0', '2']), (8, ['0', '2', '4'])])
def test_upsample_shapes_and_checkpoint_keys(scale, keys):
    upsample = Upsample(scale, 8)
    assert sorted({k.split('.')[0] for k in upsample.state_dict()}) == keys
    assert upsample(torch.rand(1, 8, 3, 5)).shape == (1, 8, 3 * scale, 5 * scale)


def test_upsample_rejects_other_scales_and_one_step_takes_any():
    with pytest.raises(ValueError, match='scale 5 is not supported'):
        Upsample(5, 8)
    one_step = UpsampleOneStep(5, 8, 4)
    assert list(one_step.state_dict()) == ['0.weight', '0.bias']
    assert one_step(torch.rand(2, 8, 3, 2)).shape == (2, 4, 15, 10)


@pytest.mark.parametrize('upsampler, upscale, output_scale, modules', [
    ('pixelshuffle', 2, 2, ['conv_before_upsample', 'conv_last', 'upsample']),
    ('pixelshuffledirect', 3, 3, ['upsample']),
    ('nearest+conv', 4, 4, ['conv_before_upsample', 'conv_hr', 'conv_last', 'conv_up1', 'conv_up2']),
    ('', 4, 1, ['conv_last']),
])
def test_tail_keys_and_output_scale(upsampler, upscale, output_scale, modules):
    tail = TinyTail(upsampler, upscale)
    assert sorted({key.split('.')[0] for key in tail.state_dict()}) == modules
    assert tail.output_scale == output_scale
    body, normalised_input = torch.rand(2, 8, 3, 5), torch.rand(2, 3, 3, 5)
    assert tail.reconstruct(body, normalised_input).shape == (2, 3, 3 * output_scale, 5 * output_scale)


def test_no_upsampling_tail_adds_the_input():
    tail = TinyTail('', 4)
    body, normalised_input = torch.rand(1, 8, 4, 4), torch.rand(1, 3, 4, 4)
    assert torch.equal(tail.reconstruct(body, normalised_input), normalised_input + tail.conv_last(body))


def test_nearest_conv_tail_by_definition():
    tail = TinyTail('nearest+conv', 4)
    body = torch.rand(1, 8, 3, 2)

    def lrelu(x):
        return F.leaky_relu(x, 0.2)

    out = F.leaky_relu(tail.conv_before_upsample[0](body), 0.01)
    out = lrelu(tail.conv_up1(F.interpolate(out, scale_factor=2, mode='nearest')))
    out = lrelu(tail.conv_up2(F.interpolate(out, scale_factor=2, mode='nearest')))
    expected = tail.conv_last(lrelu(tail.conv_hr(out)))
    assert torch.allclose(tail.reconstruct(body, torch.zeros(1, 3, 3, 2)), expected)


def test_pixelshuffle_tail_by_definition_with_a_contiguous_output():
    tail = TinyTail('pixelshuffle', 4)
    body = torch.rand(2, 8, 3, 5)
    out = F.leaky_relu(tail.conv_before_upsample[0](body), 0.01)
    for conv in (tail.upsample[0], tail.upsample[2]):
        out = F.pixel_shuffle(conv(out), 2)
    result = tail.reconstruct(body, torch.zeros(2, 3, 3, 5))
    assert result.is_contiguous()
    assert torch.allclose(result, tail.conv_last(out), atol=1e-6)


def test_tail_errors_name_the_model():
    with pytest.raises(ValueError, match=r"TinyTail: upsampler must be one of .*got 'bicubic'"):
        TinyTail('bicubic', 2)
    with pytest.raises(ValueError, match="TinyTail: upsampler 'nearest\\+conv' supports only upscale 4, got 2"):
        TinyTail('nearest+conv', 2)


def test_swinir_head_check_keeps_the_official_meaning_of_unknown_upsamplers():
    assert check_swinir_head('Net', 'pixelshuffle', 4, '1conv') == 'pixelshuffle'
    with pytest.warns(UserWarning, match="Net: upsampler 'nearest\\+conv' is not one of"):
        assert check_swinir_head('Net', 'nearest+conv', 4, '1conv') == ''
    with pytest.raises(ValueError, match="Net: resi_connection must be one of"):
        check_swinir_head('Net', '', 4, '2conv')
    with pytest.raises(ValueError, match="Net: upscale=5 is not supported by upsampler='pixelshuffle'"):
        check_swinir_head('Net', 'pixelshuffle', 5, '1conv')
