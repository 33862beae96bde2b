"""Synthetic georeferenced rasters and a tiny multiband model for the data/io/metrics tests."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS

REPO = Path(__file__).resolve().parents[1]
SENTINEL2 = REPO / 'datasets' / 'sentinel2_demo'  # bundled crops of the real Sentinel-2 scene
CRS_UTM18N = CRS.from_epsg(32618)
TRANSFORM = Affine(10.0, 0.0, 435730.0, 0.0, -10.0, 4169220.0)


def run_torchrun(args: Sequence[str], cwd: Path, timeout: int = 240) -> str:
    """``torchrun --standalone --nproc_per_node=2 ARGS`` on the CPU (gloo even on a GPU machine, one
    thread per rank); asserts it succeeded and returns its combined output. A run past ``timeout`` is
    killed with its ranks."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1',
           'CUDA_VISIBLE_DEVICES': ''}
    proc = subprocess.Popen([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2',
                             *args], cwd=cwd, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the launcher and both ranks
    assert proc.returncode == 0, output[-4000:]
    return output


def band_names(count: int) -> list:
    return [f'B{i:02d}' for i in range(1, count + 1)]


def smooth_dn(count: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """Textured uint16 reflectance-like DN (roughly 200..4000), distinct per band."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    bands = [1500 + 700 * np.sin(xx / (3 + b) + b) * np.cos(yy / (4 + b)) + 300 * rng.random((height, width))
             + 100 * b for b in range(count)]
    return np.stack(bands).round().astype(np.uint16)


def write_geotiff(path: Path, dn: np.ndarray, nodata: Optional[float] = 0, descriptions: Optional[Sequence[str]] = None,
                  transform: Affine = TRANSFORM, crs: Optional[CRS] = CRS_UTM18N) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    count, height, width = dn.shape
    with rasterio.open(path, 'w', driver='GTiff', height=height, width=width, count=count, dtype=dn.dtype,
                       crs=crs, transform=transform, nodata=nodata) as dst:
        dst.write(dn)
        for band, name in enumerate(descriptions or band_names(count), start=1):
            dst.set_band_description(band, name)
    return path


def box_downsample(dn: np.ndarray, scale: int) -> np.ndarray:
    """Block mean: LQ pixel (i, j) is the mean of GT block (i, j); makes crop alignment testable."""
    count, height, width = dn.shape
    blocks = dn[:, :height - height % scale, :width - width % scale].astype(np.float64)
    blocks = blocks.reshape(count, height // scale, scale, width // scale, scale)
    return blocks.mean((2, 4)).round().astype(dn.dtype)


def make_pair_folders(root: Path, count: int, names=('a', 'b'), gt_size: int = 64, scale: int = 4) -> dict:
    """GT/LQ GeoTIFF folders; LQ = block mean of GT with the transform scaled."""
    for i, name in enumerate(names):
        gt = smooth_dn(count, gt_size, gt_size, seed=i)
        write_geotiff(root / 'GT' / f'{name}.tif', gt)
        write_geotiff(root / 'LQ' / f'{name}.tif', box_downsample(gt, scale), transform=TRANSFORM @ Affine.scale(scale))
    return {'dataroot_gt': str(root / 'GT'), 'dataroot_lq': str(root / 'LQ')}


def tiny_model_opt(count: int, tmp: Path, datasets: dict, metrics: dict, scale: int = 4) -> dict:
    """Options for a CPU SRModel-style model with BasicSR's MSRResNet taking ``count`` bands."""
    return {
        'name': 'rs_test', 'model_type': 'RSSRModel', 'is_train': False, 'num_gpu': 0, 'dist': False, 'rank': 0,
        'world_size': 1, 'scale': scale, 'datasets': datasets,
        'network_g': {'type': 'MSRResNet', 'num_in_ch': count, 'num_out_ch': count, 'num_feat': 4, 'num_block': 1,
                      'upscale': scale},
        'path': {'pretrain_network_g': None, 'visualization': str(tmp / 'visualization')},
        'val': {'metrics': metrics, 'save_img': True, 'suffix': None},
    }
