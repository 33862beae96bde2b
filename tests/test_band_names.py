"""The one band-name resolver (rssr.band_names) and the three places that use it: the spectral loss's
``band_order``, the NDVI metric's ``band_names`` and raster reading's ``bands`` accept the same names."""
import numpy as np
import pytest
import torch

from rssr.band_names import band_position
from rssr.io import read_raster_info, resolve_bands
from rssr.io.raster import RasterError
from rssr.losses.spectral import RatioIndexLoss
from rssr.metrics.image_quality import calculate_ndvi_error
from testkit import write_geotiff

S2 = ('B02', 'B03', 'B04', 'B08')
COMMON = ('blue', 'green', 'red', 'nir')


@pytest.mark.parametrize('band, expected', [('B08', 3), ('b08', 3), ('nir', 3), ('NIR', 3), ('B8', 3), ('red', 2),
                                            ('B4', 2), ('swir1', None), ('B05', None)])
def test_names_resolve_exactly_then_ignoring_case_then_by_common_name(band, expected):
    assert band_position(band, S2) == expected


def test_exact_names_win_and_ambiguous_or_unnamed_bands_do_not_match():
    assert band_position('B8', ('B08', 'B8')) == 1  # the exact name, not the alias
    assert band_position('nir', ('B08', 'B8')) is None  # two bands could be NIR: no guess
    assert band_position('red', (None, 'B04')) == 1
    assert band_position('B5', ('B05',)) is None  # Landsat's B5 (NIR) is not Sentinel-2's B05: no alias


def test_the_loss_the_metric_and_raster_reading_accept_each_others_names(tmp_path):
    pred = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(0)) + 0.1
    target = torch.rand(1, 4, 6, 6, generator=torch.Generator().manual_seed(1)) + 0.1
    by_common = RatioIndexLoss(indices=['NDVI'], band_order=list(COMMON))(pred, target)
    assert RatioIndexLoss(indices=['NDVI'], band_order=list(S2))(pred, target) == by_common

    assert calculate_ndvi_error(pred, target, red='red', nir='nir', band_names=list(S2)) == pytest.approx(
        calculate_ndvi_error(pred, target, red='B04', nir='B08', band_names=list(S2)))

    path = write_geotiff(tmp_path / 's2.tif', np.ones((4, 3, 3), np.uint16), descriptions=S2)
    assert resolve_bands(read_raster_info(path), ['nir', 'red', 'B03']) == [4, 3, 2]
    with pytest.raises(RasterError, match=r"Band 'swir1' not found in .*s2\.tif; its band descriptions are: B02"):
        resolve_bands(read_raster_info(path), ['swir1'])
