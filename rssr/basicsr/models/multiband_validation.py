"""Validation for any band count: float metrics with nodata masks, SR saved as GeoTIFF (or PNG).

:class:`MultibandValidationMixin` replaces BasicSR ``SRModel.nondist_validation``, which sends every
output through ``tensor2img`` (uint8, at most 3 bands: a 4th band is dropped, 5+ crash). Compose it
in front of SRModel (it registers nothing itself)::

    @register_model()
    class RSSRModel(MultibandValidationMixin, SRModel): ...

It also checks, when the model is built, that every dataset yields as many bands as the network
takes (``network_g`` ``in_chans``/``num_in_ch``/..., else the first convolution), and keeps the
batch's nodata masks: ``self.gt_valid`` (N, 1, H, W) and :attr:`pixel_weight` for masked losses.

YAML (``val``): ``metrics`` as in BasicSR. rssr metrics get float tensors, the nodata mask, the SR
``scale`` (ERGAS) and band names (NDVI) automatically, and ``better: lower`` where lower is better;
BasicSR's own 8-bit metrics get ``tensor2img`` images (3 bands at most). ``save_format``: ``auto``
(default: PNG for 1/3-band 8-bit PNG/JPEG sources, else GeoTIFF), ``tif`` or ``png``. ``aggregate``:
``images`` (default: mean over images), ``class_folder`` or ``class_prefix`` (mean of per-class means,
the class being the GT's folder or its name up to the first '_'; Rep-Mamba reports AID this way).
"""
from __future__ import annotations

from copy import deepcopy
from dataclasses import replace
from os import path as osp
from typing import Any, Dict, Optional

import torch
import torch.nn.functional as F
from tqdm import tqdm

from rssr.basicsr.band_count import check_batch_band_count, network_in_chans
from rssr.basicsr.declarations import METRIC_KIND, METRIC_OPTIONS, declared
from rssr.errors import DataError

SAVE_FORMATS = ('auto', 'tif', 'png')
AGGREGATIONS = ('images', 'class_folder', 'class_prefix')


class MultibandValidationMixin:
    """Band-count checks, nodata masks and multiband validation for a BasicSR ``SRModel`` subclass."""

    val_option_keys = ('save_format', 'aggregate')  # beside BasicSR's val keys (rssr.basicsr.declarations)

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__(opt)
        self._check_dataset_bands()
        self._complete_metric_options()

    # ---- band counts ---------------------------------------------------------------------------
    def network_in_chans(self) -> Optional[int]:
        """Bands the network takes (:func:`rssr.basicsr.band_count.network_in_chans`)."""
        return network_in_chans(self)

    def _check_dataset_bands(self) -> None:
        from rssr.basicsr.datasets import dataset_band_count

        expected = self.network_in_chans()
        if expected is None:
            return
        for phase, dataset_opt in (self.opt.get('datasets') or {}).items():
            count = dataset_band_count(dataset_opt)
            if count is not None and count != expected:
                raise DataError(
                    f'Band count mismatch: dataset {phase} ({dataset_opt.get("name", dataset_opt["type"])}) yields '
                    f'{count} bands but network_g ({self.opt["network_g"]["type"]}) takes {expected} '
                    f'(set its in_chans / num_in_ch to {count}, or select bands with the dataset option `bands`).')

    def feed_data(self, data: Dict[str, Any]) -> None:
        check_batch_band_count(self, data)
        super().feed_data(data)
        self.gt_valid = data['gt_valid'].to(self.device) if 'gt_valid' in data else None
        self.lq_valid = data['lq_valid'].to(self.device) if 'lq_valid' in data else None

    @property
    def pixel_weight(self) -> Optional[torch.Tensor]:
        """(N, 1, H, W) loss weight that masks nodata: GT pixels that are nodata and the footprints of LQ
        pixels that are, or None when every pixel is valid. Pass it as ``weight=`` to BasicSR pixel
        losses (their mean then runs over valid pixels only)."""
        valid = self._sr_validity(self.gt.shape[-2:])
        if valid is None or bool(valid.all()):
            return None
        return valid.to(self.gt.dtype)

    # ---- metrics -------------------------------------------------------------------------------
    def _complete_metric_options(self) -> None:
        """Fill what the YAML may leave out of rssr metrics: ``better: lower`` where lower is better, and
        the SR ``scale`` (ERGAS), so that the options logged with each value are complete."""
        from rssr.metrics.image_quality import LOWER_IS_BETTER

        from basicsr.utils.registry import METRIC_REGISTRY

        for metric_opt in ((self.opt.get('val') or {}).get('metrics') or {}).values():
            metric = METRIC_REGISTRY.get(metric_opt['type'])
            if declared(metric, METRIC_KIND) in LOWER_IS_BETTER:
                metric_opt.setdefault('better', 'lower')
            if 'scale' in (declared(metric, METRIC_OPTIONS) or ()):
                metric_opt.setdefault('scale', self.opt['scale'])

    def _metric_value(self, name: str, metric_opt: Dict[str, Any], sr: torch.Tensor, gt: torch.Tensor,
                      valid: Optional[torch.Tensor], item: Dict[str, Any]) -> float:
        from basicsr.utils import tensor2img
        from basicsr.utils.registry import METRIC_REGISTRY

        opts = deepcopy(metric_opt)
        metric = METRIC_REGISTRY.get(opts.pop('type'))
        options = declared(metric, METRIC_OPTIONS)
        if options is not None:
            if 'band_names' in options and opts.get('band_names') is None:
                opts['band_names'] = self._band_names(item)
            return metric(img=sr, img2=gt, mask=valid, **opts)
        if sr.shape[1] > 3:
            raise ValueError(f'val.metrics.{name}: {metric_opt["type"]} is an 8-bit BasicSR metric and cannot take '
                             f'{sr.shape[1]} bands; use calculate_multiband_psnr / calculate_multiband_ssim.')
        return metric(img=tensor2img(sr), img2=tensor2img(gt), **opts)

    def nondist_validation(self, dataloader, current_iter: int, tb_logger, save_img: bool) -> None:
        dataset_name = dataloader.dataset.opt['name']
        metrics = self.opt['val'].get('metrics') or {}
        if metrics:
            self._initialize_best_metric_results(dataset_name)
        per_image: Dict[str, list] = {name: [] for name in metrics}
        image_classes = []
        pbar = tqdm(total=len(dataloader), unit='image') if self.opt['val'].get('pbar', False) else None
        for val_data in dataloader:
            self.feed_data(val_data)
            self.test()
            output = self.output.detach().cpu().float()
            gt = self.gt.detach().cpu().float() if hasattr(self, 'gt') else None
            valid = self._output_valid(output)
            if metrics and gt is None:
                raise ValueError(f'val.metrics are set but dataset {dataset_name} gives no GT to compare with; '
                                 f'remove the metrics to only save SR results.')
            for b in range(output.shape[0]):
                item = _batch_item(val_data, b)
                if metrics:
                    item_valid = None if valid is None else valid[b:b + 1]
                    for name, metric_opt in metrics.items():
                        per_image[name].append(self._metric_value(name, metric_opt, output[b:b + 1], gt[b:b + 1],
                                                                  item_valid, item))
                    image_classes.append(_image_class(item.get('gt_path', item['lq_path']), self._aggregation()))
                if save_img:
                    self._save_output(output[b], None if valid is None else valid[b, 0], item, dataset_name,
                                      current_iter)
            if hasattr(self, 'gt'):
                del self.gt
            del self.lq, self.output
            if pbar:
                pbar.update(1)
        if pbar:
            pbar.close()
        if metrics:
            self.metric_results = {name: _mean_of_class_means(values, image_classes)
                                   for name, values in per_image.items()}
            for name, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, name, value, current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)

    def _aggregation(self) -> str:
        aggregate = self.opt['val'].get('aggregate', 'images')
        if aggregate not in AGGREGATIONS:
            raise ValueError(f'val.aggregate must be one of {", ".join(AGGREGATIONS)}, not {aggregate!r}')
        return aggregate

    def _output_valid(self, output: torch.Tensor) -> Optional[torch.Tensor]:
        """(N, 1, H, W) bool validity of the SR output on the CPU (see :meth:`_sr_validity`)."""
        valid = self._sr_validity(output.shape[-2:])
        return None if valid is None else valid.detach().cpu()

    def _sr_validity(self, size: torch.Size) -> Optional[torch.Tensor]:
        """(N, 1, H, W) bool validity of SR pixels of ``size``: valid in the GT and in the LQ (upsampled
        nearest), None without masks."""
        masks = []
        if getattr(self, 'gt_valid', None) is not None and self.gt_valid.shape[-2:] == size:
            masks.append(self.gt_valid > 0.5)
        if getattr(self, 'lq_valid', None) is not None:
            masks.append(F.interpolate(self.lq_valid.float(), size=size, mode='nearest') > 0.5)
        if not masks:
            return None
        return masks[0] if len(masks) == 1 else masks[0] & masks[1]

    @staticmethod
    def _band_names(item: Dict[str, Any]):
        georef = item.get('georef')
        if georef is None:
            return None
        from rssr.io import read_raster_info
        descriptions = read_raster_info(georef['path']).descriptions
        return [descriptions[n - 1] for n in georef['bands']]

    def _log_validation_metric_values(self, current_iter: int, dataset_name: str, tb_logger) -> None:
        """BasicSR's log, with how each number was computed (protocol) written next to it."""
        from rssr.metrics.image_quality import describe_metric

        from basicsr.utils import get_root_logger

        lines = [f'Validation {dataset_name}' + ('' if self._aggregation() == 'images' else
                                                  f' (mean of per-class means, classes by {self._aggregation()})')]
        for name, value in self.metric_results.items():
            best = self.best_metric_results[dataset_name][name]
            lines.append(f'\t # {name}: {value:.4f}\tBest: {best["val"]:.4f} @ {best["iter"]} iter'
                         f'\t[{describe_metric(self.opt["val"]["metrics"][name])}]')
        get_root_logger().info('\n'.join(lines) + '\n')
        if tb_logger:
            for name, value in self.metric_results.items():
                tb_logger.add_scalar(f'metrics/{dataset_name}/{name}', value, current_iter)

    # ---- saving --------------------------------------------------------------------------------
    def _output_path(self, img_name: str, dataset_name: str, current_iter: int) -> str:
        visualization = self.opt['path']['visualization']
        if self.opt['is_train']:
            return osp.join(visualization, img_name, f'{img_name}_{current_iter}')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(visualization, dataset_name, f'{img_name}_{suffix}')

    def _save_output(self, sr: torch.Tensor, valid: Optional[torch.Tensor], item: Dict[str, Any],
                     dataset_name: str, current_iter: int) -> None:
        """Save one (C, H, W) SR result: georeferenced GeoTIFF, or PNG for 8-bit 1/3-band sources."""
        from affine import Affine

        from rssr.io import GeoReference, Radiometry, output_georeference, read_raster_info, write_raster

        from basicsr.utils import imwrite, tensor2img

        save_format = self.opt['val'].get('save_format', 'auto')
        if save_format not in SAVE_FORMATS:
            raise ValueError(f'val.save_format must be one of {", ".join(SAVE_FORMATS)}, not {save_format!r}')
        img_name = osp.splitext(osp.basename(item['lq_path']))[0]
        georef = item.get('georef')
        if georef is None:  # a BasicSR dataset: no raster metadata
            stem = self._output_path(img_name, dataset_name, current_iter)
            if sr.shape[0] <= 3 and save_format != 'tif':
                imwrite(tensor2img(sr[None]), stem + '.png')
                return
            plain = GeoReference(crs=None, transform=Affine.identity(), descriptions=(None,) * sr.shape[0],
                                 nodata=None, dtype='float32', source_driver='')
            write_raster(stem + '.tif', sr.numpy(), plain, Radiometry((1.0,) * sr.shape[0], (0.0,) * sr.shape[0]))
            return
        window = [int(v) for v in georef['window']]
        info = read_raster_info(georef['path'])
        if window != [0, 0, info.height, info.width]:
            img_name = f'{img_name}_r{window[0]}_c{window[1]}'
        target = output_georeference(georef['path'], window, float(georef['zoom']), [int(b) for b in georef['bands']])
        if 'nodata' in georef and not torch.isnan(georef['nodata']):
            target = replace(target, nodata=float(georef['nodata']))
        radiometry = Radiometry(tuple(float(v) for v in georef['dn_scale']),
                                tuple(float(v) for v in georef['dn_offset']))
        eight_bit_image = target.source_driver in ('PNG', 'JPEG') and sr.shape[0] in (1, 3) and target.dtype == 'uint8'
        as_png = save_format == 'png' or (save_format == 'auto' and eight_bit_image)
        stem = self._output_path(img_name, dataset_name, current_iter)
        write_raster(stem + ('.png' if as_png else '.tif'), sr.numpy(), target, radiometry,
                     None if valid is None else valid.numpy(), driver='PNG' if as_png else 'GTiff')


def _image_class(path: str, aggregate: str) -> str:
    """The group an image's score is averaged in: one group, its folder, or its name up to the first '_'."""
    if aggregate == 'class_folder':
        return osp.basename(osp.dirname(path))
    if aggregate == 'class_prefix':
        return osp.basename(path).split('_')[0]
    return ''


def _mean_of_class_means(values: list, classes: list) -> float:
    """Mean over classes of the per-class mean (the plain mean when all images share one class)."""
    groups: Dict[str, list] = {}
    for value, group in zip(values, classes):
        groups.setdefault(group, []).append(value)
    if not groups:
        return 0.0
    return sum(sum(v) / len(v) for v in groups.values()) / len(groups)


def _batch_item(batch: Dict[str, Any], index: int) -> Dict[str, Any]:
    """Item ``index`` of a collated batch: its paths and georef (tensors indexed, lists picked)."""
    def pick(value: Any) -> Any:
        if isinstance(value, dict):
            return {key: pick(v) for key, v in value.items()}
        if isinstance(value, (list, tuple)) or torch.is_tensor(value):
            return value[index]
        return value

    return {key: pick(batch[key]) for key in ('lq_path', 'gt_path', 'georef') if key in batch}
