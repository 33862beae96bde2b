"""AID for Rep-Mamba: seeded 100 train / 30 test images per class, 512 x 512 centre crop, MATLAB-bicubic LR.

Rep-Mamba's ``RadomSelect.m`` takes 100 training and 30 test images from each of AID's 30 classes
(3,000 / 900) and crops rows/cols 44..555 (the 512 x 512 centre of the 600 x 600 originals);
``Downsample.m`` makes LR with MATLAB ``imresize(img, 1/s, 'bicubic')``. Its random selection is
not published, so the split here is seeded (record ``--seed`` with your results)::

    python scripts/prepare_aid.py --input AID --output datasets/AID --scales 2 3 4 --seed 0
"""
from __future__ import annotations

import argparse
from typing import Optional, Sequence

import rssr  # noqa: F401  (makes basicsr importable)
from rssr.errors import user_errors
from rssr.preparation import (
    add_common_arguments,
    center_crop,
    images_by_class,
    load_image,
    seeded_class_split,
    write_sr_split,
)


def main(argv: Optional[Sequence[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    add_common_arguments(parser)
    parser.add_argument('--train-per-class', type=int, default=100)
    parser.add_argument('--test-per-class', type=int, default=30)
    parser.add_argument('--crop', type=int, default=512, help='centre crop side')
    args = parser.parse_args(argv)
    with user_errors('scripts/prepare_aid.py'):
        prepare(args)


def prepare(args: argparse.Namespace) -> None:
    counts = {'train': args.train_per_class, 'test': args.test_per_class}
    for split, items in seeded_class_split(images_by_class(args.input), counts, args.seed).items():
        images = (center_crop(load_image(path, f'{cls}_{path.stem}'), args.crop) for cls, path in items)
        write_sr_split(images, args.output, split, args.scales, total=len(items))


if __name__ == '__main__':
    main()
