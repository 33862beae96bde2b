"""rssr.io: multiband reads with band selection, radiometry and nodata; georeferenced writes."""
import numpy as np
import pytest
import rasterio
from affine import Affine

from rssr.io import (
    RADIOMETRY_PRESETS,
    Radiometry,
    RasterError,
    fill_nodata,
    output_georeference,
    output_nodata,
    read_raster,
    read_raster_info,
    resolve_radiometry,
    values_to_dn,
    write_raster,
)
from testkit import CRS_UTM18N, SENTINEL2, TRANSFORM, smooth_dn, write_geotiff


def test_geotiff_round_trip_keeps_crs_descriptions_nodata_and_scales_transform(tmp_path):
    dn = smooth_dn(4, 16, 20)
    dn[:, 0, 0] = 0  # a nodata pixel
    src = write_geotiff(tmp_path / 'lr.tif', dn, nodata=0, descriptions=['B02', 'B03', 'B04', 'B08'])
    radiometry = resolve_radiometry('uint16', 4, preset='sentinel2')
    lr = read_raster(src, radiometry=radiometry)
    assert lr.values.dtype == np.float32 and lr.values.shape == (4, 16, 20)
    assert not lr.valid[0, 0] and lr.valid.sum() == 16 * 20 - 1
    np.testing.assert_allclose(lr.values[:, 1:, 1:], dn[:, 1:, 1:] * 1e-4, rtol=1e-6)

    sr = lr.values.repeat(4, axis=1).repeat(4, axis=2)
    sr_valid = lr.valid.repeat(4, axis=0).repeat(4, axis=1)
    out = write_raster(tmp_path / 'sr.tif', sr, output_georeference(src, zoom=4), radiometry, sr_valid)
    with rasterio.open(out) as result:
        assert result.count == 4 and result.dtypes[0] == 'uint16'
        assert result.crs == CRS_UTM18N
        assert result.transform == TRANSFORM @ Affine.scale(0.25)
        assert result.transform.a == 2.5 and result.transform.c == TRANSFORM.c
        assert result.descriptions == ('B02', 'B03', 'B04', 'B08')
        assert result.nodata == 0
        written = result.read()
    np.testing.assert_array_equal(written, dn.repeat(4, axis=1).repeat(4, axis=2))


def test_window_georeference_and_band_selection_by_name_and_number(tmp_path):
    dn = smooth_dn(6, 32, 32)
    src = write_geotiff(tmp_path / 'scene.tif', dn, nodata=None)
    part = read_raster(src, bands=['B05', 2], window=(8, 4, 10, 12))
    np.testing.assert_allclose(part.values * 65535, dn[[4, 1], 8:18, 4:16], rtol=1e-6)
    assert part.band_numbers == [5, 2]
    georef = output_georeference(src, window=(8, 4, 10, 12), zoom=1, bands=['B05', 2])
    assert georef.transform == TRANSFORM @ Affine.translation(4, 8)
    assert georef.descriptions == ('B05', 'B02')


def test_reflectance_above_one_is_not_clipped_and_presets_apply_offsets(tmp_path):
    dn = np.full((2, 4, 4), 12000, dtype=np.uint16)
    src = write_geotiff(tmp_path / 'bright.tif', dn, nodata=None)
    values = read_raster(src, radiometry=resolve_radiometry('uint16', 2, preset='sentinel2')).values
    assert np.allclose(values, 1.2)
    values = read_raster(src, radiometry=resolve_radiometry('uint16', 2, preset='sentinel2_pb04')).values
    assert np.allclose(values, 1.1)
    assert RADIOMETRY_PRESETS['landsat_c2_l2_sr'] == (2.75e-5, -0.2)
    with pytest.raises(ValueError, match='dn_scale has 3 values but 2 bands'):
        resolve_radiometry('uint16', 2, scale=[1, 2, 3])


def test_band_out_of_range_names_file_and_count(tmp_path):
    src = write_geotiff(tmp_path / 'four.tif', smooth_dn(4, 8, 8))
    with pytest.raises(RasterError, match=r'Band 5 is out of range for .*four\.tif, which has 4 bands'):
        read_raster(src, bands=[1, 5])
    with pytest.raises(RasterError, match=r"Band 'B11' not found in .*four\.tif.*B01, B02, B03, B04"):
        read_raster(src, bands=['B11'])


def test_corrupt_and_missing_rasters_name_the_file(tmp_path):
    bad = tmp_path / 'broken.tif'
    bad.write_bytes(b'II*\x00 this is not a tiff')
    with pytest.raises(RasterError, match=r'Cannot read raster .*broken\.tif'):
        read_raster_info(bad)
    with pytest.raises(RasterError, match=r'not found: .*nothere\.tif'):
        read_raster(tmp_path / 'nothere.tif')


def test_window_outside_raster_is_an_error(tmp_path):
    src = write_geotiff(tmp_path / 'small.tif', smooth_dn(2, 8, 8))
    with pytest.raises(RasterError, match=r'outside .*small\.tif \(8 x 8 pixels\)'):
        read_raster(src, window=(4, 4, 8, 8))


def test_valid_pixels_equal_to_nodata_are_kept_valid_when_written(tmp_path):
    src = write_geotiff(tmp_path / 'ref.tif', smooth_dn(1, 4, 4), nodata=0)
    values = np.zeros((1, 4, 4), dtype=np.float32)  # valid zeros would read back as nodata
    valid = np.ones((4, 4), dtype=bool)
    valid[0, 0] = False
    out = write_raster(tmp_path / 'out.tif', values, output_georeference(src), Radiometry((1.0,), (0.0,)), valid)
    back = read_raster(out, radiometry=Radiometry((1.0,), (0.0,)))
    assert back.valid.sum() == 15 and not back.valid[0, 0]


def test_png_reads_in_rgb_order_and_writes_back_identically(tmp_path):
    import cv2
    src = SENTINEL2 / 'val_rgb.png'
    rgb = read_raster(src, window=(0, 0, 32, 48))
    bgr = cv2.imread(str(src))[:32, :48]
    np.testing.assert_allclose(rgb.values * 255, bgr[..., ::-1].transpose(2, 0, 1), atol=1e-3)
    georef = output_georeference(src, window=(0, 0, 32, 48))
    out = write_raster(tmp_path / 'x.png', rgb.values, georef, resolve_radiometry('uint8', 3), driver='PNG')
    np.testing.assert_array_equal(cv2.imread(str(out)), bgr)


def test_jpeg_decodes_like_opencv_and_pil(tmp_path):
    import cv2
    path = tmp_path / 'x.jpg'
    cv2.imwrite(str(path), cv2.imread(str(SENTINEL2 / 'val_rgb.png'))[:40, :40], [cv2.IMWRITE_JPEG_QUALITY, 20])
    ours = read_raster(path, window=(4, 8, 16, 20), radiometry=resolve_radiometry('uint8', 3, scale=1.0))
    np.testing.assert_array_equal(ours.values, cv2.imread(str(path))[4:20, 8:28, ::-1].transpose(2, 0, 1))


def test_fill_nodata_continues_the_image_and_keeps_valid_pixels():
    rows, cols = np.mgrid[0:40, 0:50].astype(np.float32)
    values = np.stack([0.1 + 0.002 * rows + 0.001 * cols, 0.3 - 0.003 * cols])
    valid = np.ones((40, 50), bool)
    valid[10:18, 20:31] = False
    holed = np.where(valid, values, 0.0).astype(np.float32)
    filled = fill_nodata(holed, valid)
    np.testing.assert_array_equal(filled[:, valid], values[:, valid])
    # a smooth image is continued across the hole: far closer than the 0 it held or the band mean
    assert np.abs(filled - values)[:, ~valid].max() < 0.01
    assert np.abs(values[:, ~valid] - values[:, valid].mean(axis=1)[:, None]).max() > 0.02
    assert fill_nodata(values, np.ones((40, 50), bool)) is values
    assert not fill_nodata(values, np.zeros((40, 50), bool)).any()


def test_nan_in_one_band_makes_the_pixel_nodata_in_every_band(tmp_path):
    values = np.full((3, 6, 8), 0.2, np.float32)
    values[1, 2, 3] = np.nan
    values[2, 4, 5] = np.inf
    src = write_geotiff(tmp_path / 'nan.tif', values, nodata=None)
    lr = read_raster(src)
    assert lr.valid.sum() == 6 * 8 - 2 and not lr.valid[2, 3] and not lr.valid[4, 5]
    assert np.isfinite(lr.values).all() and np.isfinite(lr.filled()).all()
    np.testing.assert_allclose(lr.filled(), 0.2)


@pytest.mark.parametrize('dtype,declared,invalid,expected', [
    ('uint16', 0, True, 0), ('uint16', None, True, 0), ('int16', None, True, -32768), ('uint8', None, False, None),
    ('float32', None, False, 'nan'), ('float32', -9999.0, True, -9999.0), ('uint16', float('nan'), True, 0)])
def test_output_nodata_is_declared_else_nan_for_floats_else_chosen_when_needed(dtype, declared, invalid, expected):
    chosen = output_nodata(dtype, declared, invalid_pixels=invalid)
    assert (np.isnan(chosen) if expected == 'nan' else chosen == expected)


def test_invalid_pixels_of_an_integer_output_without_nodata_get_a_tagged_nodata(tmp_path):
    src = write_geotiff(tmp_path / 'plain.tif', smooth_dn(2, 8, 8), nodata=None)
    valid = np.ones((8, 8), bool)
    valid[0, :3] = False
    georef = output_georeference(src)
    radiometry = resolve_radiometry('uint16', 2)
    out = write_raster(tmp_path / 'out.tif', read_raster(src).values, georef, radiometry, valid)
    with rasterio.open(out) as result:
        assert result.nodata == 0 and (result.read()[:, 0, :3] == 0).all() and (result.read()[:, valid] > 0).all()
    with pytest.raises(ValueError, match='3 invalid pixels to write as uint16 without a nodata value'):
        values_to_dn(read_raster(src).values, georef, radiometry, valid)


@pytest.mark.parametrize('bands,twice', [(['B03', 1, 3], "Band 3 \\(B03\\) .* is selected twice, as 'B03' and 3"),
                                         ([2, 2], "Band 2 \\(B02\\) .* is selected twice, as 2 and 2")])
def test_a_band_selected_twice_is_an_error_naming_it(tmp_path, bands, twice):
    src = write_geotiff(tmp_path / 'scene.tif', smooth_dn(4, 8, 8))
    with pytest.raises(RasterError, match=twice + r' in the band selection .*; select each band once'):
        read_raster(src, bands=bands)
