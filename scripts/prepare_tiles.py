"""Potsdam / UAVid (or any large rasters) cut into tiles, split by source image, with bicubic LR.

Potsdam: ISPRS 6000 x 6000 orthophoto tiles (RGB, RGBIR GeoTIFFs; ``--bands`` picks bands, e.g.
``--bands 1 2 3`` for RGB from RGBIR, and GeoTIFF tiles keep their georeference). UAVid: 4K video
frames. Whole source images go to one split (no tile of a validation image is seen in training):
``--val-images`` are drawn with ``--seed`` (or listed by name with ``--val-names``)::

    python scripts/prepare_tiles.py --dataset potsdam --input Potsdam/2_Ortho_RGB --output datasets/Potsdam \
        --tile 512 --step 512 --val-images 4 --seed 0
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import rssr  # noqa: F401  (makes basicsr importable)
from rssr.preparation import add_common_arguments, list_images, load_image, seeded_subset, tiles, write_sr_split


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--dataset', choices=('potsdam', 'uavid', 'other'), required=True)
    add_common_arguments(parser)
    parser.add_argument('--tile', type=int, default=512, help='HR tile side')
    parser.add_argument('--step', type=int, default=None, help='tile stride (default: --tile, no overlap)')
    parser.add_argument('--val-images', type=int, default=0, help='source images kept for validation')
    parser.add_argument('--val-names', nargs='*', default=None, help='source image stems for validation')
    parser.add_argument('--bands', type=int, nargs='*', default=None, help='1-based bands to keep')
    args = parser.parse_args(argv)
    sources = list_images(args.input)
    if args.val_names is not None:
        unknown = sorted(set(args.val_names) - {p.stem for p in sources})
        if unknown:
            raise ValueError(f'--val-names not found in {args.input}: {unknown}')
        val = [p for p in sources if p.stem in args.val_names]
    else:
        val = seeded_subset(sources, args.val_images, args.seed) if args.val_images else []
    splits = {'train': [p for p in sources if p not in val], 'val': val}
    for split, paths in splits.items():
        images = (tile for path in paths for tile in tiles(load_image(path, bands=args.bands), args.tile,
                                                           args.step or args.tile))
        write_sr_split(images, args.output, split, args.scales)


if __name__ == '__main__':
    main()
