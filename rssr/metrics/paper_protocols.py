"""Named evaluation protocols: the metric settings each paper's numbers were computed with.

Use one from YAML by adding ``protocol`` to a metric; explicit keys still override::

    val:
      metrics:
        psnr: {type: calculate_multiband_psnr, protocol: lstmconvsr}
        ssim: {type: calculate_multiband_ssim, protocol: lstmconvsr}

Every protocol works on [0, 1] images (as BasicSR reads 8-bit files). ``to_8bit: round`` is
BasicSR's ``tensor2img`` (clamp to [0, 1], x255, round); ``clip`` clamps and scales without rounding.
Sources: the official option files and evaluation scripts of each paper's repository.
"""
from __future__ import annotations

from typing import Any, Dict

_BASICSR_Y = {'channels': 'y', 'crop_border': 4, 'to_8bit': 'round', 'data_range': 255.0}

#: protocol name -> metric kind ('psnr', 'ssim') -> metric options.
PROTOCOLS: Dict[str, Dict[str, Dict[str, Any]]] = {
    # options/train_ConvMambaSR_x4_RSSCN7_bic.yml: BasicSR calculate_psnr, crop_border 4, test_y_channel false.
    'convmambasr': {
        'psnr': {'channels': 'rgb', 'crop_border': 4, 'to_8bit': 'round', 'data_range': 255.0},
        'ssim': {'channels': 'rgb', 'crop_border': 4, 'to_8bit': 'round', 'data_range': 255.0, 'padding': 'valid'},
    },
    # options/train_LSTMConvSR_x4_potsdam_bic.yml: BasicSR PSNR and SSIM, crop_border 4, test_y_channel true.
    'lstmconvsr': {'psnr': dict(_BASICSR_Y), 'ssim': dict(_BASICSR_Y, padding='valid')},
    # MambaCSR test options: BasicSR PSNR and SSIM, crop_border 4, Y channel.
    'mambacsr': {'psnr': dict(_BASICSR_Y), 'ssim': dict(_BASICSR_Y, padding='valid')},
    # Rep-Mamba eval_4x_new.py: PSNR of pred*255 clipped (not rounded) vs uint8 GT, RGB, no crop, range 255;
    # SSIM on unclamped [0, 1] RGB tensors, Gaussian 11/1.5, zero-padded 'same' convolution (borders count).
    'repmamba': {
        'psnr': {'channels': 'rgb', 'crop_border': 0, 'to_8bit': 'clip', 'data_range': 255.0},
        'ssim': {'channels': 'rgb', 'crop_border': 0, 'to_8bit': None, 'data_range': 1.0, 'padding': 'zero'},
    },
}

PAPERS = {'convmambasr': 'ConvMambaSR', 'lstmconvsr': 'LSTMConvSR', 'mambacsr': 'MambaCSR', 'repmamba': 'Rep-Mamba'}


def protocol_options(protocol: str, kind: str) -> Dict[str, Any]:
    """The options ``protocol`` fixes for metric ``kind``; a clear error for unknown names."""
    if protocol not in PROTOCOLS:
        raise ValueError(f'Unknown metric protocol {protocol!r}; known: {", ".join(PROTOCOLS)}.')
    if kind not in PROTOCOLS[protocol]:
        raise ValueError(f'Protocol {protocol!r} defines no {kind} metric; it defines '
                         f'{", ".join(PROTOCOLS[protocol])}.')
    return dict(PROTOCOLS[protocol][kind])
