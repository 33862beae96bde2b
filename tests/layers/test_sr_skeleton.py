"""The SR skeleton every arch shares (rssr.layers.sr_skeleton): the outline check -> pad -> normalise ->
shallow -> deep -> tail -> denormalise -> crop, the band mean, and the unknown-keyword warning."""
import warnings

import pytest
import torch
from torch import nn

from rssr.layers.padding import SizeRequirements
from rssr.layers.sr_skeleton import DIV2K_RGB_MEAN, SRSkeleton, rgb_mean_for, warn_unknown_kwargs


class TinyNet(SRSkeleton):
    """The smallest network on the skeleton: 3x3 convs around an identity body, x2 pixel-shuffle tail."""

    size_requirements = SizeRequirements(multiple_of=4)

    def __init__(self, in_chans: int = 3, img_range: float = 255., **kwargs) -> None:
        super().__init__()
        warn_unknown_kwargs('TinyNet', kwargs, 'a note')
        self.setup_skeleton(in_chans, img_range, rgb_mean_for(in_chans))
        self.conv_first = nn.Conv2d(in_chans, 8, 3, 1, 1)
        self.conv_after_body = nn.Conv2d(8, 8, 3, 1, 1)
        self.build_tail('pixelshuffle', 2, 8, in_chans)

    def forward_features(self, shallow: torch.Tensor) -> torch.Tensor:
        return torch.tanh(shallow)


def test_forward_is_the_outline():
    torch.manual_seed(0)
    model = TinyNet()
    x = torch.rand(2, 3, 5, 6)
    padded = torch.nn.functional.pad(x, (0, 2, 0, 3), mode='reflect')
    mean = torch.tensor(DIV2K_RGB_MEAN).view(1, 3, 1, 1)
    normalised = (padded - mean) * 255.
    shallow = model.conv_first(normalised)
    deep = model.conv_after_body(torch.tanh(shallow)) + shallow
    out = model.conv_last(model.upsample(model.conv_before_upsample(deep))) / 255. + mean
    assert model.output_scale == 2
    assert torch.allclose(model(x), out[..., :10, :12], atol=1e-5)


def test_normalise_round_trip_and_the_mean_is_not_in_the_state_dict():
    model = TinyNet()
    x = torch.rand(1, 3, 4, 4, dtype=torch.float64)
    assert model.normalise(x).dtype == torch.float64
    assert torch.allclose(model.denormalise(model.normalise(x)), x)
    assert 'mean' not in model.state_dict() and model.mean.shape == (1, 3, 1, 1)
    assert torch.equal(TinyNet(in_chans=4).mean, torch.zeros(1, 1, 1, 1))


def test_rgb_mean_only_for_three_bands():
    assert rgb_mean_for(3) == DIV2K_RGB_MEAN
    assert rgb_mean_for(3, (0.5, 0.5, 0.5)) == (0.5, 0.5, 0.5)
    assert rgb_mean_for(4) == rgb_mean_for(1) == (0.,)


def test_input_check_names_the_class():
    with pytest.raises(ValueError, match=r'TinyNet expects \(B, 3, H, W\) input'):
        TinyNet()(torch.rand(1, 4, 4, 4))


def test_unknown_kwargs_warning():
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        warn_unknown_kwargs('Net', {})
    with pytest.warns(UserWarning) as record:
        TinyNet(zeta=1, alpha=2)
    assert [str(w.message) for w in record] == [
        "TinyNet: ignoring unknown keyword argument(s) 'alpha', 'zeta' (a note)"]
    assert record[0].filename == __file__  # points at the constructor call, not at rssr
    with pytest.warns(UserWarning, match=r"^Net: ignoring unknown keyword argument\(s\) 'x'$"):
        warn_unknown_kwargs('Net', {'x': 1})
