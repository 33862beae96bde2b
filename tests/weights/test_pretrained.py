"""Shipped Sentinel-2 x4 weights: their cards, loading with ``pretrained=True``, and the user's command
``python -m rssr.infer --model <name> --input lr.tif --output sr.tif`` (with and without
``--self-ensemble``) beating bicubic on the bundled val crop."""
from __future__ import annotations

from pathlib import Path
from typing import Tuple

import numpy as np
import pytest
import torch
import yaml

import rssr
from rssr import infer
from rssr.band_normalization import BandNormalizedSR
from rssr.data.degradations import bicubic_downsample
from rssr.io.raster import output_georeference, read_raster, resolve_radiometry, write_raster
from rssr.metrics.image_quality import calculate_multiband_psnr, calculate_ndvi_error, calculate_sam
from rssr.weights import SHIPPED_MODELS
from testkit import REPO

VAL_CROP = REPO / 'datasets' / 'sentinel2_demo' / 'val_B02_B03_B04_B08.tif'
SCALE = 4
HR_SIDE = 192  # a 48 x 48 LR input keeps each inference under a second
SENTINEL2 = resolve_radiometry('uint16', 4, preset='sentinel2')


@pytest.mark.parametrize('name', SHIPPED_MODELS)
def test_card_matches_its_recipe_and_the_weights_are_small(name: str) -> None:
    card = rssr.model_card(name)
    network = dict(yaml.safe_load((REPO / card.recipe).read_text(encoding='utf-8'))['network_g'])
    assert (network.pop('type'), network.pop('upscale'), network.pop('in_chans')) == (card.arch, SCALE, 4)
    assert network == dict(card.kwargs)
    assert card.weights_path().stat().st_size <= 5 * 2 ** 20
    assert 'DEMO GRADE' in card.weights_info and 'B02 B03 B04 B08' in card.weights_info


@pytest.mark.parametrize('name', SHIPPED_MODELS)
def test_create_model_pretrained_returns_the_trained_normalised_network(name: str) -> None:
    model = rssr.create_model(name, pretrained=True)
    assert isinstance(model, BandNormalizedSR)
    assert (model.normalization.mode, model.normalization.residual) == ('image', 'bicubic')
    assert sum(p.numel() for p in model.parameters()) == rssr.model_card(name).params[SCALE]
    untrained = rssr.create_model(name)
    assert any(not torch.equal(a, b) for a, b in zip(model.net.state_dict().values(), untrained.state_dict().values()))


@pytest.fixture(scope='module')
def val_lr(tmp_path_factory: pytest.TempPathFactory) -> Tuple[np.ndarray, np.ndarray, Path]:
    """HR reflectance of the val crop's top-left corner, its bicubic x1/4 LR, and that LR as a uint16 GeoTIFF."""
    hr = read_raster(VAL_CROP, radiometry=SENTINEL2, window=(0, 0, HR_SIDE, HR_SIDE)).values
    lr = bicubic_downsample(torch.from_numpy(hr), SCALE).numpy()
    path = tmp_path_factory.mktemp('val_lr') / 'val_lr.tif'
    write_raster(path, lr, output_georeference(VAL_CROP, (0, 0, HR_SIDE, HR_SIDE), zoom=1.0 / SCALE), SENTINEL2)
    return hr, read_raster(path, radiometry=SENTINEL2).values, path


@pytest.mark.parametrize('flags', [[], ['--self-ensemble']], ids=['plain', 'self_ensemble'])
@pytest.mark.parametrize('name', SHIPPED_MODELS)
def test_infer_with_shipped_model_beats_bicubic_on_the_val_crop(name: str, flags, val_lr, tmp_path: Path) -> None:
    from basicsr.utils.matlab_functions import imresize

    hr, lr, lr_path = val_lr
    output = tmp_path / 'sr.tif'
    assert infer.main(['--model', name, '--input', str(lr_path), '--output', str(output), '--device', 'cpu',
                       *flags]) == 0
    sr = torch.from_numpy(read_raster(output, radiometry=SENTINEL2).values).double()
    bicubic = imresize(torch.from_numpy(lr), SCALE).double()
    reference = torch.from_numpy(hr).double()
    psnr = {k: calculate_multiband_psnr(x, reference, data_range=1.0) for k, x in (('sr', sr), ('bic', bicubic))}
    sam = {k: calculate_sam(x, reference) for k, x in (('sr', sr), ('bic', bicubic))}
    ndvi = {k: calculate_ndvi_error(x, reference, red=2, nir=3) for k, x in (('sr', sr), ('bic', bicubic))}
    assert psnr['sr'] > psnr['bic'] + 0.5, psnr
    assert sam['sr'] < sam['bic'], sam
    assert ndvi['sr'] < ndvi['bic'], ndvi
