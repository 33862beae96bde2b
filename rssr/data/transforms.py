"""Geometry for (C, H, W) multiband samples: mod-crop, aligned LQ/GT crop windows, flips and rotations.

BasicSR's transforms work on OpenCV (H, W, C) images; these work on channel-first arrays or tensors
of any band count and choose crop windows *before* pixels are read, so that only the window is read.
"""
from __future__ import annotations

import random
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch

from rssr.errors import DataError

Window = Tuple[int, int, int, int]  # (row_off, col_off, height, width)


def mod_crop_size(height: int, width: int, scale: int) -> Tuple[int, int]:
    """Largest (height, width) not above the given one that is a multiple of ``scale``."""
    return height - height % scale, width - width % scale


def check_pair_sizes(gt_hw: Tuple[int, int], lq_hw: Tuple[int, int], scale: int, gt_path: str, lq_path: str) -> None:
    """GT mod-cropped to ``scale`` must be exactly ``scale`` × LQ; raise naming both files otherwise."""
    cropped = mod_crop_size(*gt_hw, scale)
    if cropped != (lq_hw[0] * scale, lq_hw[1] * scale):
        raise DataError(
            f'LQ/GT sizes do not match scale {scale}: GT {gt_path} is {gt_hw[0]} x {gt_hw[1]} '
            f'(mod-cropped {cropped[0]} x {cropped[1]}) but LQ {lq_path} is {lq_hw[0]} x {lq_hw[1]}, '
            f'which x{scale} is {lq_hw[0] * scale} x {lq_hw[1] * scale}. '
            f'{pair_size_advice(gt_hw, lq_hw, scale)}')


def check_patch_fits(lq_hw: Tuple[int, int], gt_patch: Optional[int], scale: int, lq_path: str) -> None:
    """A training GT patch of ``gt_patch`` pixels (None: whole images) must fit in the LQ image at ``scale``."""
    lq_patch = (gt_patch or 0) // scale
    if min(lq_hw) < lq_patch:
        raise DataError(f'LQ {lq_path} is {lq_hw[0]} x {lq_hw[1]}, smaller than the LQ patch {lq_patch} x {lq_patch} '
                        f'(gt_size {gt_patch} / scale {scale}): lower gt_size or remove the images smaller than it.')


def pair_size_advice(gt_hw: Tuple[int, int], lq_hw: Tuple[int, int], scale: int) -> str:
    """What to do about an LQ/GT pair whose sizes do not match ``scale``."""
    if lq_hw[0] > gt_hw[0] or lq_hw[1] > gt_hw[1]:
        return 'The LQ image is larger than the GT: dataroot_gt and dataroot_lq are probably swapped.'
    factor = gt_hw[0] // lq_hw[0]
    if factor != scale and mod_crop_size(*gt_hw, factor) == (lq_hw[0] * factor, lq_hw[1] * factor):
        return f'The data is x{factor}: set scale: {factor} (and the arch\'s upscale), or make LQ x{scale}.'
    return f'Make the LQ images with scale {scale} from the GT images (e.g. scripts/prepare_tiles.py).'


def random_window(height: int, width: int, size: int, rng: random.Random, path: str = '') -> Window:
    """A random ``size`` × ``size`` window inside a ``height`` × ``width`` raster."""
    if height < size or width < size:
        raise DataError(f'{path or "Image"} is {height} x {width}, smaller than the patch size {size} x {size}.')
    return rng.randint(0, height - size), rng.randint(0, width - size), size, size


def paired_random_windows(lq_hw: Tuple[int, int], gt_patch: int, scale: int, rng: random.Random,
                          lq_path: str = '') -> Tuple[Window, Window]:
    """Aligned (LQ window, GT window): the GT window covers exactly the LQ window's ground at ``scale``."""
    if gt_patch % scale:
        raise DataError(f'gt_size {gt_patch} is not a multiple of scale {scale}.')
    row, col, size, _ = random_window(*lq_hw, gt_patch // scale, rng, lq_path)
    return (row, col, size, size), (row * scale, col * scale, gt_patch, gt_patch)


def augment(arrays: Sequence[np.ndarray], hflip: bool, rotation: bool, rng: random.Random) -> List[np.ndarray]:
    """The same random horizontal flip / vertical flip / transpose on every (C, H, W) array."""
    flip_h = hflip and rng.random() < 0.5
    flip_v = rotation and rng.random() < 0.5
    transpose = rotation and rng.random() < 0.5
    out = []
    for array in arrays:
        if flip_h:
            array = array[..., ::-1]
        if flip_v:
            array = array[..., ::-1, :]
        if transpose:
            array = np.swapaxes(array, -1, -2)
        out.append(np.ascontiguousarray(array))
    return out


def to_tensor(array: np.ndarray, dtype: Optional[torch.dtype] = torch.float32) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)
