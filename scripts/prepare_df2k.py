"""DF2K (DIV2K + Flickr2K) sub-images for MambaCSR: HR 480 x 480 every 240 px, aligned LR sub-images.

As BasicSR's ``extract_subimages.py`` (crop 480, step 240, thresh 0; LR crop 480/s, step 240/s):
the LR of each *whole* image is made first (MATLAB bicubic, then optionally OpenCV JPEG at each
``--qualities`` factor, as MambaCSR's LR_q<QF> data) and cut at the same places, so every LR
sub-image is exactly its HR sub-image's footprint. Writes ``train/HR``, ``train/LR_bicubic/X<s>``
and ``train/LR_q<QF>`` (x4 only, PNG, HR names)::

    python scripts/prepare_df2k.py --input DF2K_HR --output datasets/DF2K --scales 4 --qualities 10 20 30 40
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from tqdm import tqdm

import rssr  # noqa: F401  (makes basicsr importable)
from rssr.data.degradations import jpeg_compress
from rssr.preparation import (
    Image,
    add_common_arguments,
    bicubic_lr,
    list_images,
    load_image,
    mod_crop,
    save,
    tiles,
)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_arguments(parser, scales=(4,), seed=False)
    parser.add_argument('--crop', type=int, default=480)
    parser.add_argument('--step', type=int, default=240)
    parser.add_argument('--qualities', type=int, nargs='*', default=[], help='JPEG quality factors (x4 LR)')
    args = parser.parse_args(argv)
    for scale in args.scales:
        if args.crop % scale or args.step % scale:
            raise ValueError(f'--crop {args.crop} and --step {args.step} must be multiples of scale {scale}.')
    out = Path(args.output) / 'train'
    for path in tqdm(list_images(args.input), desc='DF2K sub-images', unit='image'):
        hr = mod_crop(load_image(path), math.lcm(*args.scales))  # HR and LR sub-images then line up
        if args.qualities and hr.georef.dtype != 'uint8':
            raise ValueError(f'JPEG LR needs 8-bit images; {path} is {hr.georef.dtype}.')
        for tile in tiles(hr, args.crop, args.step):
            save(tile, out / 'HR')
        for scale in args.scales:
            lr = bicubic_lr(hr, scale)
            variants = {f'LR_bicubic/X{scale}': lr}
            if scale == 4:
                for quality in args.qualities:
                    compressed = jpeg_compress(torch.from_numpy(lr.dn / 255.0), quality).numpy() * 255.0
                    variants[f'LR_q{quality}'] = Image(lr.name, np.rint(compressed).astype(np.float32), lr.georef,
                                                             lr.valid)
            for folder, image in variants.items():
                for tile in tiles(image, args.crop // scale, args.step // scale):
                    save(tile, out / folder)


if __name__ == '__main__':
    main()
