"""Full-reference metrics on float images of any band count, registered for BasicSR's ``val.metrics``.

Each ``calculate_*`` takes ``img`` (SR) and ``img2`` (reference) as torch tensors ``(C, H, W)`` /
``(N, C, H, W)`` (RGB order) or as numpy arrays ``(H, W, C)`` (BasicSR's ``tensor2img`` output:
BGR order for 3 channels), and returns the mean over the batch as a float. Common options:

* ``crop_border``: pixels dropped on each side before computing;
* ``channels``: ``all`` (default), ``rgb`` (the bands ``rgb_bands``, 0-based, default [0, 1, 2])
  or ``y`` (ITU-R BT.601 luma of those bands, MATLAB ``rgb2ycbcr`` as in BasicSR);
* ``to_8bit``: ``round`` (BasicSR's ``tensor2img``: clamp [0, 1], x255, round), ``clip`` (clamp,
  x255) or none;
* ``mask``: validity ``(N, 1, H, W)`` / ``(H, W)``: nodata pixels (0/False) are left out;
* ``protocol``: a paper's settings (see :mod:`rssr.metrics.paper_protocols`); explicit keys override.

Conventions (and where they differ from torchmetrics, which the tests use as the oracle):

* PSNR, SSIM: ``data_range`` is required (1.0 for [0, 1] or reflectance, 255 for 8-bit).
  SSIM: Gaussian 11 x 11, sigma 1.5, K = (0.01, 0.03); ``padding: valid`` (default, MATLAB and
  BasicSR: only windows inside the image), ``zero`` (zero-padded 'same' convolution, Rep-Mamba) or
  ``reflect`` (torchmetrics' own: reflect-padded, every pixel averaged). All three are computed
  with torchmetrics' SSIM map.
* SAM: mean spectral angle in **degrees** (torchmetrics returns radians); pixels where either
  spectrum is all zero have no angle and are left out (torchmetrics gives NaN).
* ERGAS: ``100 / scale * sqrt(mean_k (RMSE_k / mean_k)^2)``, ``mean_k`` the reference band mean and
  ``scale`` the SR factor (Wald's h/l = 1/scale). This equals torchmetrics with ``ratio=scale``.
  Some papers multiply by the scale instead (100 * scale * ...): their values are scale^2 larger.
* SCC: per-band correlation of Laplacian-filtered images in 8 x 8 windows, as torchmetrics (which
  computes in float32 and cannot mask; rssr computes the same map in float64).
* UIQI (Q): torchmetrics' Gaussian-window UQI (11, 1.5), not Wang-Bovik's 8 x 8 box window.
* RMSE over all bands; NDVI error: mean |NDVI(SR) - NDVI(ref)|, NDVI = (NIR - red) / (NIR + red)
  on the values given (use reflectance: per-band offsets change NDVI).
Windowed metrics (SSIM, SCC, UIQI) with a mask average only windows that hold no nodata pixel.
"""
from __future__ import annotations

import inspect
import math
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np
import torch
import torch.nn.functional as F

from rssr.band_names import band_position
from rssr.metrics.paper_protocols import PAPERS, protocol_options
from rssr.registry import METRICS, register_metric

ArrayLike = Union[torch.Tensor, np.ndarray]
COMMON_OPTIONS = {'crop_border': 0, 'channels': 'all', 'rgb_bands': None, 'to_8bit': None, 'mask': None,
                  'input_order': 'HWC', 'channel_order': None}
IGNORED_OPTIONS = ('better',)
_REQUIRED = object()  # marks options without a default  # BasicSR's best-metric bookkeeping key, passed to every metric
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5
Y_WEIGHTS = (65.481, 128.553, 24.966)


# ---- input preparation -----------------------------------------------------------------------------
def _to_nchw(img: ArrayLike, input_order: str, channel_order: Optional[str]) -> torch.Tensor:
    if isinstance(img, np.ndarray):
        array = img[..., None] if img.ndim == 2 else img
        if input_order == 'HWC':
            array = array.transpose(2, 0, 1)
        tensor = torch.from_numpy(np.ascontiguousarray(array))[None]
        bgr = channel_order == 'bgr' or (channel_order is None and tensor.shape[1] == 3)
    elif torch.is_tensor(img):
        tensor = img.detach()
        tensor = tensor[None, None] if tensor.ndim == 2 else tensor[None] if tensor.ndim == 3 else tensor
        bgr = channel_order == 'bgr'
    else:
        raise TypeError(f'Metrics take torch tensors or numpy arrays, got {type(img).__name__}')
    if tensor.ndim != 4:
        raise ValueError(f'Expected an image of 2 to 4 dimensions, got shape {tuple(img.shape)}')
    return tensor.flip(1) if bgr else tensor


def _to_mask(mask: Optional[ArrayLike], shape: Tuple[int, ...]) -> Optional[torch.Tensor]:
    if mask is None:
        return None
    mask = torch.as_tensor(np.asarray(mask) if isinstance(mask, np.ndarray) else mask).detach().cpu().bool()
    mask = mask.reshape(-1, 1, *mask.shape[-2:]) if mask.ndim != 4 else mask
    if mask.shape[-2:] != shape[-2:]:
        raise ValueError(f'Mask of shape {tuple(mask.shape)} does not match images of shape {shape}.')
    return mask.expand(shape[0], 1, *shape[-2:])


def _luma(rgb: torch.Tensor, data_range: float) -> torch.Tensor:
    weights = torch.tensor(Y_WEIGHTS, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    return ((rgb / data_range * weights).sum(1, keepdim=True) + 16.0) / 255.0 * data_range


def _select_channels(img: torch.Tensor, options: Dict[str, Any]) -> torch.Tensor:
    channels = options['channels']
    if channels == 'all':
        return img
    if channels not in ('rgb', 'y'):
        raise ValueError(f"channels must be 'all', 'rgb' or 'y', got {channels!r}")
    rgb_bands = options['rgb_bands']
    if rgb_bands is None:
        if img.shape[1] != 3:
            raise ValueError(f'channels {channels!r} on a {img.shape[1]}-band image needs rgb_bands '
                             f'(0-based indices of red, green, blue), e.g. [2, 1, 0] for B02, B03, B04, B08.')
        rgb_bands = (0, 1, 2)
    if len(rgb_bands) != 3 or max(rgb_bands) >= img.shape[1] or min(rgb_bands) < 0:
        raise ValueError(f'rgb_bands {list(rgb_bands)} must be 3 indices in 0..{img.shape[1] - 1}.')
    rgb = img[:, list(rgb_bands)]
    if channels == 'rgb':
        return rgb
    if options.get('data_range') is None:
        raise ValueError("channels 'y' needs data_range (1.0 for [0, 1] images, 255 for 8-bit).")
    return _luma(rgb, float(options['data_range']))


def _to_8bit(img: torch.Tensor, mode: Optional[str]) -> torch.Tensor:
    """float64 image; float [0, 1] input mapped to 0..255 like ``tensor2img`` (in the input's own precision,
    so rounding ties fall as in BasicSR). Integer input is taken as already 8-bit."""
    if mode not in (None, 'round', 'clip'):
        raise ValueError(f"to_8bit must be 'round', 'clip' or null, got {mode!r}")
    if mode is None or not img.is_floating_point():
        return img.double()
    img = img.clamp(0, 1) * 255.0
    return (img.round() if mode == 'round' else img).double()


def _prepare(img: ArrayLike, img2: ArrayLike, options: Dict[str, Any]):
    sr, gt = (_to_8bit(_to_nchw(x, options['input_order'], options['channel_order']), options['to_8bit'])
              for x in (img, img2))
    if sr.shape != gt.shape:
        raise ValueError(f'Image shapes differ: SR {tuple(sr.shape)} vs reference {tuple(gt.shape)}.')
    gt = gt.to(sr.device)
    valid = _to_mask(options['mask'], tuple(sr.shape))
    sr, gt = _select_channels(sr, options), _select_channels(gt, options)
    border = int(options['crop_border'])
    if border:
        if 2 * border >= min(sr.shape[-2:]):
            raise ValueError(f'crop_border {border} leaves nothing of a {sr.shape[-2]} x {sr.shape[-1]} image.')
        sr, gt = sr[..., border:-border, border:-border], gt[..., border:-border, border:-border]
        valid = None if valid is None else valid[..., border:-border, border:-border]
    return sr, gt, (None if valid is None else valid.to(sr.device))


# ---- reductions --------------------------------------------------------------------------------------
def _masked_mean(values: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    """Mean of ``values`` (N, ...) over all but the batch dim, counting only valid positions."""
    if valid is None:
        return values.reshape(values.shape[0], -1).mean(1)
    weight = valid.to(values.dtype).expand_as(values).reshape(values.shape[0], -1)
    count = weight.sum(1)
    if (count == 0).any():
        raise ValueError('No valid (non-nodata) pixel is left to compute the metric on.')
    return (values.reshape(values.shape[0], -1) * weight).sum(1) / count


def _window_valid(valid: Optional[torch.Tensor], radius: int, crop: int = 0) -> Optional[torch.Tensor]:
    """Positions whose (2 radius + 1)^2 window holds no nodata pixel (outside the image counts as valid)."""
    if valid is None:
        return None
    invalid = F.pad((~valid).double(), (radius,) * 4, value=0.0)
    eroded = F.max_pool2d(invalid, 2 * radius + 1, stride=1) == 0
    return eroded[..., crop:eroded.shape[-2] - crop, crop:eroded.shape[-1] - crop]


# ---- metric cores: (sr, gt, valid, **options) -> per-image values (N,) -----------------------------
def _mse(sr: torch.Tensor, gt: torch.Tensor, valid: Optional[torch.Tensor]) -> torch.Tensor:
    return _masked_mean((sr - gt) ** 2, valid)


def _psnr(sr, gt, valid, data_range: float) -> torch.Tensor:
    mse = _mse(sr, gt, valid)
    return torch.where(mse == 0, torch.full_like(mse, math.inf), 10 * torch.log10(float(data_range) ** 2 / mse))


def _rmse(sr, gt, valid) -> torch.Tensor:
    return _mse(sr, gt, valid).sqrt()


def _ssim(sr, gt, valid, data_range: float, padding: str = 'valid') -> torch.Tensor:
    from torchmetrics.functional.image import structural_similarity_index_measure

    radius = SSIM_KERNEL // 2
    if padding not in ('valid', 'zero', 'reflect'):
        raise ValueError(f"SSIM padding must be 'valid', 'zero' or 'reflect', got {padding!r}")
    if padding == 'zero':
        sr, gt = F.pad(sr, (radius,) * 4), F.pad(gt, (radius,) * 4)
    _, ssim_map = structural_similarity_index_measure(
        sr, gt, data_range=float(data_range), kernel_size=SSIM_KERNEL, sigma=SSIM_SIGMA, reduction='none',
        return_full_image=True)
    crop = radius if padding in ('valid', 'zero') else 0
    ssim_map = ssim_map[..., crop:ssim_map.shape[-2] - crop, crop:ssim_map.shape[-1] - crop]
    return _masked_mean(ssim_map, _window_valid(valid, radius, radius if padding == 'valid' else 0))


def _sam(sr, gt, valid) -> torch.Tensor:
    from torchmetrics.functional.image import spectral_angle_mapper

    if sr.shape[1] < 2:
        raise ValueError(f'SAM needs at least 2 bands, got {sr.shape[1]}.')
    angles = spectral_angle_mapper(sr, gt, reduction='none').unsqueeze(1)
    defined = (sr.norm(dim=1, keepdim=True) > 0) & (gt.norm(dim=1, keepdim=True) > 0)
    valid = defined if valid is None else defined & valid
    return torch.rad2deg(_masked_mean(torch.nan_to_num(angles), valid))


def _ergas(sr, gt, valid, scale: float) -> torch.Tensor:
    per_band = [(_mse(sr[:, k:k + 1], gt[:, k:k + 1], valid).sqrt() / _masked_mean(gt[:, k:k + 1], valid)) ** 2
                for k in range(sr.shape[1])]
    return 100.0 / float(scale) * torch.stack(per_band, 1).mean(1).sqrt()


def _scc(sr, gt, valid, window_size: int = 8) -> torch.Tensor:
    laplacian = torch.tensor([[-1., -1., -1.], [-1., 8., -1.], [-1., -1., -1.]], dtype=sr.dtype, device=sr.device)
    channels = sr.shape[1]
    hp_kernel = laplacian.expand(channels, 1, 3, 3)
    window = torch.full((channels, 1, window_size, window_size), 1.0 / window_size ** 2, dtype=sr.dtype,
                        device=sr.device)
    before, after = math.ceil((window_size - 1) / 2), (window_size - 1) // 2

    def high_pass(x: torch.Tensor) -> torch.Tensor:  # symmetric padding of 1 pixel == replicate
        return 2.0 * F.conv2d(F.pad(x, (1, 1, 1, 1), mode='replicate'), hp_kernel, groups=channels)

    def local_mean(x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (before, after, before, after)), window, groups=channels)

    p, t = high_pass(sr), high_pass(gt)
    mean_p, mean_t = local_mean(p), local_mean(t)
    var_p = (local_mean(p * p) - mean_p ** 2).clamp(min=0)
    var_t = (local_mean(t * t) - mean_t ** 2).clamp(min=0)
    cov = local_mean(p * t) - mean_p * mean_t
    den = var_t.sqrt() * var_p.sqrt()
    scc_map = torch.where(den == 0, torch.zeros_like(cov), cov / torch.where(den == 0, torch.ones_like(den), den))
    return _masked_mean(scc_map, _window_valid(valid, before + 1))


def _uiqi(sr, gt, valid, kernel_size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    from torchmetrics.functional.image import universal_image_quality_index

    uqi_map = universal_image_quality_index(sr, gt, kernel_size=(kernel_size, kernel_size), sigma=(sigma, sigma),
                                            reduction='none')
    radius = kernel_size // 2
    return _masked_mean(uqi_map, _window_valid(valid, radius, radius))


def _band_index(band: Union[int, str], band_names: Optional[Sequence[str]], num_bands: int, role: str) -> int:
    if isinstance(band, str):
        position = band_position(band, band_names or ())
        if position is None:
            raise ValueError(f'NDVI {role} band {band!r} is not among the band names {list(band_names or [])}; '
                             f'give band_names or a 0-based band index.')
        return position
    if not 0 <= band < num_bands:
        raise ValueError(f'NDVI {role} band index {band} is out of range for {num_bands} bands (0-based).')
    return int(band)


def _ndvi_error(sr, gt, valid, red: Union[int, str] = 'B04', nir: Union[int, str] = 'B08',
                band_names: Optional[Sequence[str]] = None, eps: float = 1e-6) -> torch.Tensor:
    r, n = (_band_index(b, band_names, sr.shape[1], role) for b, role in ((red, 'red'), (nir, 'nir')))

    def ndvi(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        total = x[:, n:n + 1] + x[:, r:r + 1]
        defined = total.abs() > eps
        return (x[:, n:n + 1] - x[:, r:r + 1]) / torch.where(defined, total, torch.ones_like(total)), defined

    (ndvi_sr, ok_sr), (ndvi_gt, ok_gt) = ndvi(sr), ndvi(gt)
    defined = ok_sr & ok_gt
    return _masked_mean((ndvi_sr - ndvi_gt).abs(), defined if valid is None else defined & valid)


# ---- registration ------------------------------------------------------------------------------------
def _resolve_options(name: str, kind: str, opts: Dict[str, Any], specific: Dict[str, Any]) -> Dict[str, Any]:
    opts = {k: v for k, v in opts.items() if k not in IGNORED_OPTIONS}
    protocol = opts.pop('protocol', None)
    options = dict(COMMON_OPTIONS, **specific)
    if protocol is not None:
        options.update(protocol_options(protocol, kind))
    unknown = sorted(set(opts) - set(options))
    if unknown:
        raise TypeError(f'{name} got unknown option(s) {unknown}; it accepts {sorted(options)} and protocol.')
    options.update(opts)
    missing = [key for key, value in options.items() if value is _REQUIRED]
    if missing:
        raise TypeError(f'{name} needs {", ".join(missing)} (e.g. data_range 1.0 for [0, 1] or reflectance '
                        f'data, 255 for 8-bit; scale = the SR factor).')
    return options



def _metric(name: str, kind: str, core: Callable, **specific: Any) -> Callable:
    """Wrap ``core`` as a BasicSR metric function ``name(img, img2, **opts) -> float`` and register it."""

    def metric(img: ArrayLike, img2: ArrayLike, **opts: Any) -> float:
        options = _resolve_options(name, kind, opts, specific)
        sr, gt, valid = _prepare(img, img2, options)
        values = core(sr, gt, valid, **{key: options[key] for key in specific})
        return float(values.mean())

    metric.__name__ = metric.__qualname__ = name
    keyword = inspect.Parameter.KEYWORD_ONLY
    metric.__signature__ = inspect.Signature(  # what option checkers see (the wrapper takes **opts)
        [inspect.Parameter(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in ('img', 'img2')] +
        [inspect.Parameter(key, keyword, default=None if value is _REQUIRED else value)
         for key, value in {**COMMON_OPTIONS, **specific, 'protocol': None}.items()])
    metric.__doc__ = f'{kind.upper()} of ``img`` against ``img2`` (see :mod:`rssr.metrics.image_quality`).'
    metric.rssr_metric_kind = kind
    metric.rssr_options = tuple(specific)
    return register_metric(metric)


calculate_multiband_psnr = _metric('calculate_multiband_psnr', 'psnr', _psnr, data_range=_REQUIRED)
calculate_multiband_ssim = _metric('calculate_multiband_ssim', 'ssim', _ssim, data_range=_REQUIRED, padding='valid')
calculate_sam = _metric('calculate_sam', 'sam', _sam)
calculate_ergas = _metric('calculate_ergas', 'ergas', _ergas, scale=_REQUIRED)
calculate_scc = _metric('calculate_scc', 'scc', _scc, window_size=8)
calculate_uiqi = _metric('calculate_uiqi', 'uiqi', _uiqi, kernel_size=11, sigma=1.5)
calculate_rmse = _metric('calculate_rmse', 'rmse', _rmse)
calculate_ndvi_error = _metric('calculate_ndvi_error', 'ndvi_error', _ndvi_error, red='B04', nir='B08',
                               band_names=None, eps=1e-6)

LOWER_IS_BETTER = ('sam', 'ergas', 'rmse', 'ndvi_error')


def describe_metric(metric_opt: Dict[str, Any]) -> str:
    """One line saying how a ``val.metrics`` entry is computed, for logs next to its value."""
    opt = {k: v for k, v in metric_opt.items() if k not in IGNORED_OPTIONS + ('mask', 'band_names')}
    metric_type = opt.pop('type')
    kind = getattr(METRICS.get(metric_type), 'rssr_metric_kind', None) if metric_type in METRICS else None
    if kind is None:
        return f'{metric_type}: ' + ', '.join(f'{k}={v}' for k, v in opt.items())
    protocol = opt.pop('protocol', None)
    settings = dict(protocol_options(protocol, kind), **opt) if protocol else opt
    parts = [kind.upper() + (' (degrees)' if kind == 'sam' else '')]
    parts.append(settings.get('channels', 'all') + ' bands' if settings.get('channels', 'all') == 'all'
                 else settings['channels'].upper() if settings['channels'] == 'rgb' else 'Y (BT.601)')
    parts.append(f'crop {settings.get("crop_border", 0)}')
    if settings.get('to_8bit'):
        parts.append(f'8-bit ({settings["to_8bit"]})')
    for key in ('data_range', 'padding', 'scale', 'red', 'nir'):
        if key in settings:
            parts.append(f'{key} {settings[key]}')
    if protocol:
        parts.append(f'{PAPERS[protocol]} protocol')
    return ', '.join(parts)
