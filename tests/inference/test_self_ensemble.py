"""Geometric self-ensemble: the mean over the 8 flips/rotations, inside band normalisation, in rssr.infer."""
from __future__ import annotations

import numpy as np
import rasterio
import torch
from torch import nn

import rssr
from rssr import infer
from rssr.band_normalization import BandNormalization, BandNormalizedSR
from rssr.inference import SelfEnsemble, with_self_ensemble
from testkit import SENTINEL2


def dihedral_images(x: torch.Tensor):
    """The 8 images of ``x`` under the dihedral group, with the map back, built from transposes (not rot90)."""
    for transpose in (False, True):
        for flip_h in (False, True):
            for flip_w in (False, True):
                def forward(t, transpose=transpose, flip_h=flip_h, flip_w=flip_w):
                    t = t.transpose(-2, -1) if transpose else t
                    t = t.flip(-2) if flip_h else t
                    return t.flip(-1) if flip_w else t

                def back(t, transpose=transpose, flip_h=flip_h, flip_w=flip_w):
                    t = t.flip(-1) if flip_w else t
                    t = t.flip(-2) if flip_h else t
                    return t.transpose(-2, -1) if transpose else t
                yield forward, back


def small_sr_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(4, 32, 3, padding=1), nn.GELU(), nn.Conv2d(32, 4 * 4, 3, padding=1),
                         nn.PixelShuffle(2))


def test_self_ensemble_is_the_mean_over_the_eight_orientations():
    net = small_sr_net()
    x = torch.randn(2, 4, 9, 7)
    expected = torch.stack([back(net(forward(x))) for forward, back in dihedral_images(x)]).mean(0)
    with torch.no_grad():
        torch.testing.assert_close(SelfEnsemble(net)(x), expected.detach(), rtol=1e-5, atol=1e-6)
        assert not torch.allclose(net(x), expected, atol=1e-3)  # the orientations do disagree for this net


def test_self_ensemble_of_an_orientation_blind_network_changes_nothing():
    net = nn.Sequential(nn.Conv2d(4, 4, 1), nn.Upsample(scale_factor=2, mode='nearest'))
    x = torch.randn(1, 4, 6, 5)
    with torch.no_grad():
        torch.testing.assert_close(SelfEnsemble(net)(x), net(x))


def test_with_self_ensemble_wraps_the_arch_inside_band_normalisation():
    net = rssr.create_model('convmambasr', scale=2, in_chans=4, embed_dim=16, depths=[1], RCG_num=1, d_state=4,
                            mlp_ratio=1, upsampler='pixelshuffledirect')
    statistics = (torch.rand(1, 4, 1, 1), torch.rand(1, 4, 1, 1) + 0.5)
    model = BandNormalizedSR(net, BandNormalization(mode='image', residual='bicubic'), statistics)
    ensembled = with_self_ensemble(model)
    assert isinstance(ensembled, BandNormalizedSR) and isinstance(ensembled.net, SelfEnsemble)
    assert ensembled.fixed_statistics is statistics and ensembled.normalization == model.normalization
    assert ensembled.output_scale == 2 and ensembled.size_requirements == model.size_requirements
    assert list(ensembled.state_dict()) == list(model.state_dict())
    x = torch.rand(1, 4, 8, 8)
    mean, std = statistics
    with torch.no_grad():
        inner = SelfEnsemble(net)((x - mean) / std)
        bicubic = nn.functional.interpolate((x - mean) / std, scale_factor=2, mode='bicubic', align_corners=False)
        torch.testing.assert_close(ensembled(x), (inner + bicubic) * std + mean, rtol=1e-5, atol=1e-6)


def test_rssr_infer_self_ensemble_keeps_the_georeference(tmp_path):
    scene = SENTINEL2 / 'val_B02_B03_B04_B08.tif'
    lr = tmp_path / 'lr.tif'
    with rasterio.open(scene) as source:
        profile = source.profile
        profile.update(width=40, height=40, tiled=False)
        profile.pop('blockxsize', None)
        profile.pop('blockysize', None)
        with rasterio.open(lr, 'w', **profile) as target:
            target.write(source.read(window=((0, 40), (0, 40))))
    outputs = {}
    for flag in ([], ['--self-ensemble']):
        outputs[bool(flag)] = tmp_path / f'sr{len(flag)}.tif'
        assert infer.main(['--model', 'convmambasr_s2_x4', '--input', str(lr), '--output', str(outputs[bool(flag)]),
                           '--radiometry', 'sentinel2', '--device', 'cpu', '--tile', '24', '--overlap', '8',
                           '--margin', '2', *flag]) == 0
    with rasterio.open(outputs[True]) as sr, rasterio.open(outputs[False]) as plain, rasterio.open(lr) as source:
        assert sr.shape == (160, 160) and sr.crs == source.crs and sr.transform.a == source.transform.a / 4
        ensembled, single = sr.read().astype(np.float64), plain.read().astype(np.float64)
    assert 0 < np.abs(ensembled - single).mean() < 0.05 * single.mean()
