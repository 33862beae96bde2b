"""Degradations that make LR images from HR ones, for any band count.

Every function takes a float ``(C, H, W)`` tensor of physical values and returns one. The
:class:`DegradationPipeline` chains them from YAML (see ``docs/datasets.md``)::

    degradations:
      - {type: blur, kind: sensor, mtf: 0.3}   # or kind: gaussian, sigma: 1.2 (or sigma: [0.5, 1.5])
      - {type: bicubic}                         # MATLAB-exact bicubic ×1/scale (antialiased)
      - {type: noise, sigma: 0.005}             # additive Gaussian, in data units
      - {type: jpeg, quality: 75}               # 8-bit JPEG; data_range maps values to 0..255

Random parameters (a ``[low, high]`` list) are drawn from the ``numpy.random.Generator`` passed in,
so a seeded generator gives a reproducible LR.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F

from rssr.errors import DataError

Param = Union[float, Sequence[float]]


def _cubic(x: torch.Tensor) -> torch.Tensor:
    """Keys' cubic convolution kernel with a = -0.5, MATLAB's ``bicubic``."""
    ax = x.abs()
    near = (1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1)
    far = (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return near + far


def matlab_bicubic_matrix(in_length: int, factor: float) -> torch.Tensor:
    """The ``(ceil(in_length * factor), in_length)`` float64 matrix of MATLAB's antialiased bicubic
    ``imresize`` along one axis: output pixel i is centred on input coordinate (i + 0.5) / factor - 0.5,
    the kernel is stretched by 1 / factor when shrinking, each row sums to 1, and taps beyond the edges
    fold back symmetrically (edge pixel repeated)."""
    out_length = math.ceil(in_length * factor)
    stretch = min(factor, 1.0)
    width = 4.0 / stretch
    centre = torch.arange(1, out_length + 1, dtype=torch.float64) / factor + 0.5 * (1 - 1 / factor)  # 1-based
    taps = torch.floor(centre - width / 2)[:, None] + torch.arange(math.ceil(width) + 2, dtype=torch.float64)
    weights = stretch * _cubic(stretch * (centre[:, None] - taps))
    weights = weights / weights.sum(dim=1, keepdim=True)
    index = (taps.long() - 1) % (2 * in_length)
    index = torch.where(index >= in_length, 2 * in_length - 1 - index, index)
    return torch.zeros(out_length, in_length, dtype=torch.float64).scatter_add_(1, index, weights)


def bicubic_downsample(img: torch.Tensor, scale: int) -> torch.Tensor:
    """MATLAB ``imresize(img, 1/scale, 'bicubic')`` (antialiased) on every band of a ``(C, H, W)`` tensor,
    as float32 (computed in float64; equal to BasicSR's ``imresize`` to float32 precision)."""
    rows = matlab_bicubic_matrix(img.shape[-2], 1.0 / scale)
    cols = matlab_bicubic_matrix(img.shape[-1], 1.0 / scale)
    return torch.einsum('oh,chw,pw->cop', rows, img.double(), cols).float()


def gaussian_kernel(sigma: float, kernel_size: int = 0) -> torch.Tensor:
    """Normalised 1-D Gaussian; the default size covers ±3 sigma (odd)."""
    if kernel_size <= 0:
        kernel_size = 2 * math.ceil(3 * sigma) + 1
    coords = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    kernel = torch.exp(-coords ** 2 / (2 * sigma ** 2))
    return kernel / kernel.sum()


def gaussian_blur(img: torch.Tensor, sigma: float, kernel_size: int = 0) -> torch.Tensor:
    """Separable Gaussian blur of every band, reflect-padded (image size kept)."""
    if sigma <= 0:
        return img
    kernel = gaussian_kernel(sigma, kernel_size).to(img)
    radius = kernel.numel() // 2
    x = img.unsqueeze(1)  # bands as batch: one kernel for all
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode='reflect'), kernel.view(1, 1, 1, -1))
    x = F.conv2d(F.pad(x, (0, 0, radius, radius), mode='reflect'), kernel.view(1, 1, -1, 1))
    return x.squeeze(1)


def sensor_sigma(mtf_at_nyquist: float, scale: int) -> float:
    """Std (HR pixels) of the Gaussian whose response at the LR Nyquist frequency is ``mtf_at_nyquist``.

    Wald's protocol as used in pansharpening: H(f) = exp(-2 pi^2 sigma^2 f^2) at f = 1/(2 scale)
    cycles per HR pixel gives sigma = scale * sqrt(-2 ln mtf) / pi.
    """
    if not 0 < mtf_at_nyquist < 1:
        raise DataError(f'mtf must be in (0, 1), got {mtf_at_nyquist}')
    return scale * math.sqrt(-2 * math.log(mtf_at_nyquist)) / math.pi


def add_gaussian_noise(img: torch.Tensor, sigma: float, rng: np.random.Generator) -> torch.Tensor:
    """Additive white Gaussian noise of std ``sigma`` (data units), drawn from ``rng``."""
    noise = rng.standard_normal(size=tuple(img.shape)).astype(np.float32)
    return img + sigma * torch.from_numpy(noise).to(img)


def jpeg_compress(img: torch.Tensor, quality: int, data_range: float = 1.0) -> torch.Tensor:
    """Encode and decode as 8-bit JPEG with OpenCV at ``quality`` (1..100).

    ``img`` is ``(C, H, W)`` with values in ``[0, data_range]`` (clipped, rounded to 8 bits). Three
    bands are taken as RGB and compressed as one colour JPEG (OpenCV's YCbCr 4:2:0, as MambaCSR's
    data were made); any other band count is compressed band by band as greyscale JPEGs.
    """
    import cv2

    if not 1 <= int(quality) <= 100:
        raise DataError(f'JPEG quality must be in 1..100, got {quality}')
    params = [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)]
    arr = img.detach().cpu().double().numpy() / data_range
    arr = np.clip(np.rint(arr * 255.0), 0, 255).astype(np.uint8)

    def roundtrip(image: np.ndarray, flag: int) -> np.ndarray:
        ok, encoded = cv2.imencode('.jpg', image, params)
        if not ok:
            raise RuntimeError('OpenCV failed to encode a JPEG')
        return cv2.imdecode(encoded, flag)

    if arr.shape[0] == 3:
        bgr = roundtrip(np.ascontiguousarray(arr[::-1].transpose(1, 2, 0)), cv2.IMREAD_COLOR)
        out = bgr.transpose(2, 0, 1)[::-1]
    else:
        out = np.stack([roundtrip(band, cv2.IMREAD_GRAYSCALE) for band in arr])
    return torch.from_numpy(out.astype(np.float32) / 255.0 * data_range).to(img)


def _draw(value: Param, rng: np.random.Generator, name: str) -> float:
    """A fixed value, or uniform in [low, high] when given a 2-element list."""
    if np.ndim(value) == 0:
        return float(value)
    if len(value) != 2 or value[0] > value[1]:
        raise DataError(f'degradation parameter {name} must be a number or [low, high], got {value!r}')
    return float(rng.uniform(value[0], value[1]))


class DegradationPipeline:
    """An ordered list of degradation steps from YAML; exactly one ``bicubic`` step changes the scale."""

    STEPS = ('blur', 'bicubic', 'noise', 'jpeg')

    def __init__(self, steps: Union[None, List[Dict[str, Any]]], scale: int) -> None:
        self.scale = int(scale)
        self.steps = [dict(step) for step in (steps or [{'type': 'bicubic'}])]
        for step in self.steps:
            if step.get('type') not in self.STEPS:
                raise DataError(f'Unknown degradation step {step!r}; each needs type one of {", ".join(self.STEPS)}.')
            if step['type'] == 'blur' and step.get('kind', 'gaussian') not in ('gaussian', 'sensor'):
                raise DataError(f'blur kind must be gaussian or sensor, got {step.get("kind")!r}')
        if sum(step['type'] == 'bicubic' for step in self.steps) != 1:
            raise DataError(f'The degradation pipeline needs exactly one bicubic (downsampling) step: {self.steps}')

    def blur_radius(self) -> int:
        """Widest HR-pixel reach of the blur steps (for nodata mask propagation)."""
        radius = 0
        for step in self.steps:
            if step['type'] == 'blur':
                sigma = (sensor_sigma(float(np.min(step['mtf'])), self.scale) if step.get('kind') == 'sensor'
                         else float(np.max(step.get('sigma', 1.0))))  # the widest blur a range can draw
                radius += step.get('kernel_size', 2 * math.ceil(3 * sigma) + 1) // 2
        return radius

    def __call__(self, hr: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        img = hr
        for step in self.steps:
            kind = step['type']
            if kind == 'blur':
                if step.get('kind', 'gaussian') == 'sensor':
                    sigma = sensor_sigma(_draw(step['mtf'], rng, 'mtf'), self.scale)
                else:
                    sigma = _draw(step.get('sigma', 1.0), rng, 'sigma')
                img = gaussian_blur(img, sigma, step.get('kernel_size', 0))
            elif kind == 'bicubic':
                img = bicubic_downsample(img, self.scale)
            elif kind == 'noise':
                img = add_gaussian_noise(img, _draw(step['sigma'], rng, 'sigma'), rng)
            else:
                quality = int(round(_draw(step['quality'], rng, 'quality')))
                img = jpeg_compress(img, quality, step.get('data_range', 1.0))
        return img

    def lq_valid(self, hr_valid: torch.Tensor) -> torch.Tensor:
        """LR validity ``(1, h, w)`` from HR validity ``(1, H, W)``: an LR pixel is valid only when no
        nodata HR pixel lies within reach of its blur + bicubic footprint (never interpolated in)."""
        invalid = 1.0 - hr_valid.float().unsqueeze(0)
        reach = 2 * self.scale + self.blur_radius()  # antialiased bicubic support: ±2 LR pixels
        grown = F.max_pool2d(F.pad(invalid, (reach,) * 4, value=0.0), 2 * reach + 1, stride=1)
        lr = F.max_pool2d(grown, self.scale, stride=self.scale, ceil_mode=True)  # LR pixel i covers HR block i
        return (lr[0] == 0).float()
