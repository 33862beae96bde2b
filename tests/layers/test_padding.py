"""Input-size requirements and the pad-then-crop helpers (rssr.layers.padding)."""
import pytest
import torch

from rssr.layers.padding import SizeRequirements, check_bands, crop_output, pad_to_valid


@pytest.mark.parametrize('requirements, size, valid', [
    (SizeRequirements(), (5, 7), (5, 7)),
    (SizeRequirements(multiple_of=4), (5, 8), (8, 8)),
    (SizeRequirements(min_side=4), (1, 9), (4, 9)),
    (SizeRequirements(square=True), (3, 6), (6, 6)),
    (SizeRequirements(multiple_of=2, min_side=4, square=True, power_of_two=True), (5, 9), (16, 16)),
])
def test_valid_size(requirements, size, valid):
    assert requirements.valid_size(*size) == valid


def test_pad_reflects_at_the_bottom_right_and_crop_undoes_it():
    x = torch.arange(12.).view(1, 1, 3, 4)
    padded = pad_to_valid(x, SizeRequirements(multiple_of=4))
    assert padded.shape == (1, 1, 4, 4)
    assert torch.equal(padded[..., :3, :], x) and torch.equal(padded[..., 3, :], x[..., 1, :])
    assert torch.equal(crop_output(padded.repeat_interleave(2, -1).repeat_interleave(2, -2), 3, 4, 2),
                       x.repeat_interleave(2, -1).repeat_interleave(2, -2))


def test_reflect_pads_in_steps_beyond_one_side_and_falls_back_to_replicate():
    x = torch.rand(1, 2, 2, 3)
    assert pad_to_valid(x, SizeRequirements(multiple_of=16)).shape == (1, 2, 16, 16)
    one_pixel = torch.rand(1, 1, 1, 1)
    assert torch.equal(pad_to_valid(one_pixel, SizeRequirements(min_side=2)), one_pixel.expand(1, 1, 2, 2))


def test_check_bands_names_the_arch_and_the_shape():
    check_bands(torch.rand(1, 4, 2, 2), 4, 'Net')
    with pytest.raises(ValueError, match=r'Net expects \(B, 4, H, W\) input \(in_chans=4\), got shape \(4, 2, 2\)'):
        check_bands(torch.rand(4, 2, 2), 4, 'Net')
