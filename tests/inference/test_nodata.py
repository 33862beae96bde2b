"""Scene inference with nodata: NaN is nodata in every band, the network never sees it, the output marks it,
and valid pixels next to nodata keep their quality (issue 24)."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import rssr
from rssr import infer
from rssr.inference import OutputOptions, TilingOptions, super_resolve_scene
from testkit import REPO, SENTINEL2, LocalNet, smooth_dn, write_geotiff

SCALE = 2


def nan_scene(path: Path, dtype: str = 'float32') -> Path:
    """A 4-band 24 x 30 reflectance scene without a nodata tag; NaN in one band of three pixels."""
    values = (smooth_dn(4, 24, 30) * 1e-4).astype(dtype)
    values[2, 5, 7] = np.nan  # one band only
    values[0, 10, 0] = np.nan  # at the scene border
    values[3, 20, 25:27] = np.nan
    return write_geotiff(path, values, nodata=None)


def footprints(valid: np.ndarray) -> np.ndarray:
    return np.repeat(np.repeat(valid, SCALE, 0), SCALE, 1)


@pytest.mark.parametrize('out_dtype', ['source', 'float32'])
def test_nan_in_one_band_is_nodata_in_every_output_band_and_never_reaches_the_network(tmp_path, out_dtype):
    source = nan_scene(tmp_path / 'nan.tif')
    net = LocalNet()
    out = super_resolve_scene(net, source, tmp_path / 'sr.tif', tiling=TilingOptions(16, 8, 2, 2),
                              output=OutputOptions(dtype=out_dtype), progress=False)
    lr_valid = np.ones((24, 30), bool)
    lr_valid[5, 7] = lr_valid[10, 0] = False
    lr_valid[20, 25:27] = False
    with rasterio.open(out) as dst:
        sr, nodata = dst.read(), dst.nodata
    assert np.isnan(nodata)
    invalid = ~footprints(lr_valid)
    assert np.isnan(sr[:, invalid]).all(), 'every band of a NaN pixel footprint is nodata'
    assert np.isfinite(sr[:, ~invalid]).all() and invalid.sum() == 4 * SCALE ** 2
    tiles = [x for x in net.inputs if x.any()]  # without the all-zero probe that measures the scale
    assert sum(x.shape[0] for x in tiles) == 3 * 2  # every tile of the 24 x 30 scene
    # the NaN pixels were fed as their neighbours' values, not as 0: nothing near 0 in the input
    assert min(float(x.min()) for x in tiles) > 0.01


def test_a_chosen_nodata_value_is_read_as_nodata_and_marks_integer_outputs(tmp_path):
    dn = smooth_dn(4, 20, 20)
    dn[:, 3:6, 4:9] = 65535  # a fill value the file does not declare
    source = write_geotiff(tmp_path / 'scene.tif', dn, nodata=None)
    kwargs = {'num_in_ch': 4, 'num_out_ch': 4, 'num_feat': 4, 'num_block': 1, 'upscale': SCALE}
    from basicsr.archs.srresnet_arch import MSRResNet
    torch.save({'params': MSRResNet(**kwargs).state_dict()}, tmp_path / 'net.pth')
    argv = ['--arch', 'MSRResNet', '--arch-kwargs', str(kwargs), '--weights', str(tmp_path / 'net.pth'),
            '--input', str(source), '--output', str(tmp_path / 'sr.tif'), '--tile', '16', '--overlap', '8',
            '--margin', '2', '--device', 'cpu', '--nodata', '65535']
    assert infer.main(argv) == 0
    with rasterio.open(tmp_path / 'sr.tif') as dst:
        sr = dst.read()
        assert dst.nodata == 65535 and dst.dtypes[0] == 'uint16'
    hole = np.zeros((20, 20), bool)
    hole[3:6, 4:9] = True
    assert (sr[:, footprints(hole)] == 65535).all() and (sr[:, ~footprints(hole)] < 65535).all()


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_valid_pixels_next_to_nodata_keep_their_quality_with_the_shipped_model(tmp_path):
    """Issue 24, Must 2: MAE of valid pixels within 1 and 2 LR pixels of nodata holes at most 1.25x their MAE
    without the holes (bundled val crop, bicubic LR 64 x 64, convmambasr_s2_x4). The band-mean fill rssr
    used before misses it: the measurement can fail."""
    edges = load_script('evaluate_nodata_edges')
    model = rssr.create_model('convmambasr_s2_x4', pretrained=True)
    errors = edges.evaluate_tile(model, SENTINEL2 / 'val_B02_B03_B04_B08.tif', 4, 0, tmp_path,
                                 fills={'band mean': edges.band_mean_fill})
    ratios = {name: {ring: errors[name][ring][0].mean() / errors[name][ring][1].mean() for ring in edges.RINGS}
              for name in errors}
    assert ratios[edges.RSSR][1] <= 1.25 and ratios[edges.RSSR][2] <= 1.25, ratios
    assert ratios['band mean'][1] > 1.25, ratios
