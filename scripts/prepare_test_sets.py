"""Rep-Mamba-style SR test sets from DOTA, DIOR or NWPU-RESISC45: seeded subset, centre crop, bicubic LR.

Each image is centre-cropped to ``--crop`` (default 512; images smaller than that, e.g. NWPU's
256 x 256, are kept whole) and its LR made with MATLAB bicubic (Rep-Mamba's own DIOR script used
PIL bicubic and no mod-crop, so its x3 SR was 513 px against a 512 px GT; here HR = s x LR).
Images are taken from every sub-folder (NWPU class folders, DOTA ``images/``) and named
``<sub-folder>_<name>``::

    python scripts/prepare_test_sets.py --dataset dior --input DIOR/JPEGImages-test --output datasets/DIOR \
        --count 100 --seed 0
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import rssr  # noqa: F401  (makes basicsr importable)
from rssr.preparation import (
    add_common_arguments,
    center_crop,
    list_images,
    load_image,
    seeded_subset,
    write_sr_split,
)

DATASETS = ('dota', 'dior', 'nwpu')


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', choices=DATASETS, required=True)
    add_common_arguments(parser)
    parser.add_argument('--count', type=int, default=None, help='images to draw (default: all)')
    parser.add_argument('--crop', type=int, default=512)
    args = parser.parse_args(argv)
    paths = seeded_subset(list_images(args.input), args.count, args.seed)

    def images():
        for path in paths:
            prefix = path.parent.name if path.parent != args.input else args.dataset
            image = load_image(path, f'{prefix}_{path.stem}')
            yield center_crop(image, args.crop) if min(image.dn.shape[1:]) >= args.crop else image

    write_sr_split(images(), args.output, 'test', args.scales, total=len(paths))


if __name__ == '__main__':
    main()
