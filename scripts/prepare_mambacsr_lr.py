"""Write MambaCSR's compressed LR folders from an HR folder: bicubic x4, then OpenCV JPEG at each QF.

MambaCSR (arXiv:2408.11758) trains and tests on LR images made by downsampling HR x4 and
JPEG-compressing the result with OpenCV at quality factor 10, 20, 30 or 40. The official repository
ships no LR-generation script; this one uses MATLAB-like bicubic (BasicSR's ``imresize``,
antialiased, the SR standard) and the shared :func:`rssr.data.degradations.jpeg_compress`.

Each HR image is mod-cropped (top-left) to a multiple of the scale, downsampled, rounded to 8 bits,
JPEG-encoded and decoded, and the decoded pixels are stored losslessly as PNG under
``<out>/LR_q<QF>/<HR name>.png`` (BasicSR's PairedImageDataset pairs them with the HR files with
``filename_tmpl: '{}'``). Deterministic: the same HR gives bit-identical LR.

Usage::

    python scripts/prepare_mambacsr_lr.py --hr datasets/DF2K/HR --out datasets/DF2K --qualities 10 20 30 40
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Iterable, List, Sequence

import cv2
import numpy as np
import torch
from tqdm import tqdm

import rssr  # noqa: F401  (makes basicsr importable on current torchvision)
from rssr.data.degradations import bicubic_downsample, jpeg_compress

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff')
PAPER_QUALITIES = (10, 20, 30, 40)


def read_rgb(path: Path) -> torch.Tensor:
    """An 8-bit image file as an RGB float tensor (3, H, W) in [0, 1]."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f'Cannot read {path} as an 8-bit colour image')
    return torch.from_numpy(np.ascontiguousarray(bgr[:, :, ::-1].transpose(2, 0, 1))).float() / 255.0


def write_rgb(path: Path, image: torch.Tensor) -> None:
    """Store an RGB tensor (3, H, W) in [0, 1] as an 8-bit PNG."""
    rgb = np.clip(np.rint(image.numpy() * 255.0), 0, 255).astype(np.uint8)
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[::-1].transpose(1, 2, 0))):
        raise OSError(f'Cannot write {path}')


def compressed_lr(hr: torch.Tensor, scale: int, quality: int) -> torch.Tensor:
    """LR of an RGB HR tensor (3, H, W): top-left mod-crop, MATLAB bicubic 1/scale, JPEG at ``quality``."""
    height, width = hr.shape[-2] - hr.shape[-2] % scale, hr.shape[-1] - hr.shape[-1] % scale
    if height == 0 or width == 0:
        raise ValueError(f'An HR image of {hr.shape[-2]}x{hr.shape[-1]} is smaller than the scale {scale}')
    return jpeg_compress(bicubic_downsample(hr[:, :height, :width], scale), quality)


def list_images(folder: Path) -> List[Path]:
    found = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not found:
        raise FileNotFoundError(f'No images ({", ".join(IMAGE_EXTENSIONS)}) in {folder}')
    return found


def prepare(hr_folder: Path, out_folder: Path, qualities: Iterable[int] = PAPER_QUALITIES,
            scale: int = 4) -> List[Path]:
    """Write ``out_folder/LR_q<QF>/<name>.png`` for every HR image and quality; returns the LR folders."""
    qualities = [int(q) for q in qualities]
    for quality in qualities:
        if not 1 <= quality <= 100:
            raise ValueError(f'JPEG quality factors must be in 1..100, got {quality}')
    folders = [out_folder / f'LR_q{quality}' for quality in qualities]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    for path in tqdm(list_images(hr_folder), desc=f'LR x{scale} QF {qualities}', unit='img'):
        hr = read_rgb(path)
        for quality, folder in zip(qualities, folders):
            write_rgb(folder / f'{path.stem}.png', compressed_lr(hr, scale, quality))
    return folders


def main(argv: Sequence[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--hr', type=Path, required=True, help='folder of HR images')
    parser.add_argument('--out', type=Path, required=True, help='writes <out>/LR_q<QF>/ folders')
    parser.add_argument('--qualities', type=int, nargs='+', default=list(PAPER_QUALITIES), help='JPEG quality factors')
    parser.add_argument('--scale', type=int, default=4, help='downsampling factor')
    args = parser.parse_args(argv)
    for folder in prepare(args.hr, args.out, args.qualities, args.scale):
        print(folder)


if __name__ == '__main__':
    main()
