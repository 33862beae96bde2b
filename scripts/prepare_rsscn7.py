"""RSSCN7 for ConvMambaSR / LSTMConvSR: seeded per-class train/val split, HR as is, MATLAB-bicubic LR.

Input: the RSSCN7 download (7 class folders of 400 x 400 images). The official repositories do not
document their split; this recipe keeps ``--val-per-class`` images of every class for validation
(seeded shuffle, default 20 -> 140 val / 2660 train) and writes the layout of ``docs/datasets.md``::

    python scripts/prepare_rsscn7.py --input RSSCN7 --output datasets/RSSCN7 --scales 2 3 4 --seed 0
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import rssr  # noqa: F401  (makes basicsr importable)
from rssr.errors import user_errors
from rssr.preparation import add_common_arguments, images_by_class, load_image, seeded_class_split, write_sr_split


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--val-per-class', type=int, default=20)
    args = parser.parse_args(argv)
    with user_errors('scripts/prepare_rsscn7.py'):
        prepare(args)


def prepare(args: argparse.Namespace) -> None:
    splits = seeded_class_split(images_by_class(args.input), {'val': args.val_per_class, 'train': None}, args.seed)
    for split, items in splits.items():
        images = (load_image(path, f'{cls}_{path.stem}') for cls, path in items)
        write_sr_split(images, args.output, split, args.scales, total=len(items))


if __name__ == '__main__':
    main()
