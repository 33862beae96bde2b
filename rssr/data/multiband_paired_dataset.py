"""Paired LQ/GT dataset for multiband rasters (GeoTIFF, PNG, JPEG) of any band count."""
from __future__ import annotations

import random
from typing import Any, Dict

import numpy as np
from torch.utils import data

from rssr.data.raster_source import (
    RASTER_OPTION_KEYS,
    RasterReader,
    check_band_counts,
    list_rasters,
    pair_paths,
    read_headers,
)
from rssr.data.transforms import (
    augment,
    check_pair_sizes,
    check_patch_fits,
    mod_crop_size,
    paired_random_windows,
    to_tensor,
)
from rssr.errors import DataError
from rssr.registry import register_dataset


@register_dataset()
class MultibandPairedDataset(data.Dataset):
    """LQ/GT pairs from two folders (or a meta-info file), read as float32 physical values.

    Options: ``dataroot_gt``, ``dataroot_lq``, ``meta_info_file``, ``filename_tmpl`` (as
    PairedImageDataset), the raster options of :mod:`rssr.data.raster_source` (``bands``,
    ``radiometry`` / ``dn_scale`` / ``dn_offset``, ``nodata``), and for training ``gt_size``,
    ``use_hflip``, ``use_rot``. Every header is checked when the dataset is built (band counts,
    band selection, LQ/GT sizes vs ``scale``), so bad files stop the run before training.

    Items: ``lq`` (C, h, w), ``gt`` (C, H, W) float32 tensors (no clipping), ``lq_valid`` /
    ``gt_valid`` (1, h, w) / (1, H, W) masks (0 = nodata: the nodata value in any band, or NaN/inf),
    ``lq_path``, ``gt_path``, and ``georef`` (where the SR output lies: the LQ file at zoom ``scale``).
    Nodata pixels of ``lq`` and ``gt`` are filled in from the valid pixels around them
    (:func:`rssr.io.fill_nodata`): no NaN reaches the network, and it sees no false edge; losses and
    metrics leave them out through the masks.
    GT is mod-cropped to a multiple of ``scale``.
    """

    option_keys = RASTER_OPTION_KEYS + ('check_files',)

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.reader = RasterReader.from_options(opt)
        self.paths = pair_paths(opt['dataroot_gt'], opt['dataroot_lq'], opt.get('filename_tmpl', '{}'),
                                opt.get('meta_info_file'))
        if opt.get('check_files', True):
            self._check_files()

    @classmethod
    def first_raster(cls, opt: Dict[str, Any]) -> str:
        """The first GT file, whose header stands for every file's bands."""
        if opt.get('meta_info_file'):
            return pair_paths(opt['dataroot_gt'], opt['dataroot_lq'], opt.get('filename_tmpl', '{}'),
                              opt['meta_info_file'])[0]['gt_path']
        return list_rasters(opt['dataroot_gt'])[0]

    @classmethod
    def band_count(cls, opt: Dict[str, Any]) -> int:
        """Bands per item, from the options and the first GT file's header."""
        return len(RasterReader.from_options(opt).band_numbers(cls.first_raster(opt)))

    def _check_files(self) -> None:
        every = [p for pair in self.paths for p in (pair['gt_path'], pair['lq_path'])]
        read_headers(self.reader, every, f'Checking {self.opt.get("name", "dataset")}')
        for pair in self.paths:
            check_band_counts(self.reader, [('GT', pair['gt_path']), ('LQ', pair['lq_path'])])
        check_band_counts(self.reader, [('GT', pair['gt_path']) for pair in self.paths])
        gt_patch = self.opt.get('gt_size') if self.opt['phase'] == 'train' else None
        for pair in self.paths:
            gt, lq = self.reader.info(pair['gt_path']), self.reader.info(pair['lq_path'])
            check_pair_sizes((gt.height, gt.width), (lq.height, lq.width), self.scale, gt.path, lq.path)
            check_patch_fits((lq.height, lq.width), gt_patch, self.scale, lq.path)

    def __getitem__(self, index: int) -> Dict[str, Any]:
        gt_path, lq_path = self.paths[index]['gt_path'], self.paths[index]['lq_path']
        lq_info, gt_info = self.reader.info(lq_path), self.reader.info(gt_path)
        if not self.opt.get('check_files', True):
            check_pair_sizes((gt_info.height, gt_info.width), (lq_info.height, lq_info.width), self.scale,
                             gt_path, lq_path)
        if self.opt['phase'] == 'train':
            lq_window, gt_window = paired_random_windows((lq_info.height, lq_info.width), self.opt['gt_size'],
                                                         self.scale, random, lq_path)
        else:
            lq_window = (0, 0, lq_info.height, lq_info.width)
            gt_window = (0, 0, *mod_crop_size(gt_info.height, gt_info.width, self.scale))
        lq, gt = self.reader.read(lq_path, lq_window), self.reader.read(gt_path, gt_window)
        if lq.values.shape[0] != gt.values.shape[0]:
            raise DataError(f'Band count mismatch: LQ {lq_path} gives {lq.values.shape[0]} bands, '
                            f'GT {gt_path} gives {gt.values.shape[0]}.')
        arrays = [lq.filled(), gt.filled(), lq.valid[None], gt.valid[None]]
        if self.opt['phase'] == 'train':
            arrays = augment(arrays, self.opt.get('use_hflip', False), self.opt.get('use_rot', False), random)
        img_lq, img_gt, lq_valid, gt_valid = (to_tensor(np.asarray(a)) for a in arrays)
        return {'lq': img_lq, 'gt': img_gt, 'lq_valid': lq_valid, 'gt_valid': gt_valid,
                'lq_path': lq_path, 'gt_path': gt_path,
                'georef': self.reader.georef(lq_path, lq_window, self.scale)}

    def __len__(self) -> int:
        return len(self.paths)
