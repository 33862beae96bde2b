"""HR patches sampled from a few large rasters, with LR made on the fly by a degradation pipeline."""
from __future__ import annotations

import random
from typing import Any, Dict, List

import numpy as np
from torch.utils import data

from rssr.data.degradations import DegradationPipeline
from rssr.data.raster_source import RASTER_OPTION_KEYS, RasterReader, check_band_counts, list_rasters, read_headers
from rssr.data.transforms import augment, mod_crop_size, random_window, to_tensor
from rssr.errors import DataError, DataNotFoundError
from rssr.registry import register_dataset


@register_dataset()
class SceneDegradationDataset(data.Dataset):
    """Random HR windows of whole scenes; LR = ``degradations`` applied to the HR window.

    Options: ``dataroot_gt`` (a folder, a raster file or a list of raster files), the raster options of
    :mod:`rssr.data.raster_source`, ``degradations`` (see :mod:`rssr.data.degradations`; default
    bicubic only), ``gt_size`` (HR patch side; ``null`` = each whole scene, mod-cropped, one item per
    scene), ``num_patches`` (items per epoch, default 1000), ``min_valid_fraction`` (resample
    windows with more nodata, default 0.5), ``use_hflip``, ``use_rot``, ``seed``.

    Reproducibility: outside ``phase: train`` (or with ``deterministic: true``) item ``i`` always
    uses the generator ``numpy.random.default_rng([seed, i])`` for its window and degradation, so a
    validation set is the same on every run and every worker. Training draws from Python's
    ``random`` (seeded per worker by BasicSR).

    Items are those of :class:`MultibandPairedDataset`; ``lq_path`` and ``gt_path`` are the scene,
    ``georef`` is the HR window at zoom 1, and ``lq_valid`` marks LR pixels whose footprint holds no
    nodata pixel. The HR window's nodata (the nodata value, or NaN/inf) is filled in
    (:func:`rssr.io.fill_nodata`) before the degradation, so the LR holds no NaN and no false edge.
    """

    option_keys = RASTER_OPTION_KEYS + ('degradations', 'num_patches', 'min_valid_fraction', 'seed', 'deterministic')

    def __init__(self, opt: Dict[str, Any]) -> None:
        super().__init__()
        self.opt = opt
        self.scale = int(opt['scale'])
        self.reader = RasterReader.from_options(opt)
        self.scenes = self._scene_paths(opt)
        self.degrade = DegradationPipeline(opt.get('degradations'), self.scale)
        self.gt_size = opt.get('gt_size')
        self.deterministic = opt['phase'] != 'train' or opt.get('deterministic', False)
        self.seed = int(opt.get('seed', 0))
        read_headers(self.reader, self.scenes, f'Checking {opt.get("name", "scenes")}')
        check_band_counts(self.reader, [('scene', path) for path in self.scenes])
        self._check_sizes()
        infos = [self.reader.info(path) for path in self.scenes]
        areas = np.array([info.height * info.width for info in infos], dtype=np.float64)
        self.scene_weights = areas / areas.sum()

    @staticmethod
    def _scene_paths(opt: Dict[str, Any]) -> List[str]:
        root = opt['dataroot_gt']
        if isinstance(root, (list, tuple)):
            if not root:
                raise DataNotFoundError('dataroot_gt is an empty list of scenes.')
            return [str(p) for p in root]
        return list_rasters(root)

    @classmethod
    def first_raster(cls, opt: Dict[str, Any]) -> str:
        """The first scene, whose header stands for every scene's bands."""
        return cls._scene_paths(opt)[0]

    @classmethod
    def band_count(cls, opt: Dict[str, Any]) -> int:
        return len(RasterReader.from_options(opt).band_numbers(cls.first_raster(opt)))

    def _check_sizes(self) -> None:
        minimum = self.gt_size or self.scale
        if self.gt_size is not None and self.gt_size % self.scale:
            raise DataError(f'gt_size {self.gt_size} is not a multiple of scale {self.scale}.')
        for path in self.scenes:
            info = self.reader.info(path)
            if min(info.height, info.width) < minimum:
                raise DataError(f'Scene {path} is {info.height} x {info.width}, smaller than the HR patch '
                                f'{minimum} x {minimum}.')

    def __len__(self) -> int:
        if self.gt_size is None:
            return len(self.scenes)
        return int(self.opt.get('num_patches', 1000))

    def _generator(self, index: int) -> np.random.Generator:
        if self.deterministic:
            return np.random.default_rng([self.seed, index])
        return np.random.default_rng(random.getrandbits(63))

    def _choose_window(self, index: int, rng: np.random.Generator):
        if self.gt_size is None:
            path = self.scenes[index]
            info = self.reader.info(path)
            window = (0, 0, *mod_crop_size(info.height, info.width, self.scale))
            return path, window, self.reader.read(path, window)
        min_valid = float(self.opt.get('min_valid_fraction', 0.5))
        for _ in range(20):
            path = self.scenes[rng.choice(len(self.scenes), p=self.scene_weights)]
            info = self.reader.info(path)
            window = random_window(info.height, info.width, self.gt_size, random.Random(int(rng.integers(2**62))),
                                   path)
            hr = self.reader.read(path, window)
            if hr.valid.mean() >= min_valid:
                return path, window, hr
        raise DataError(f'No {self.gt_size} x {self.gt_size} window with at least {min_valid:.0%} valid pixels '
                        f'found in 20 tries in {", ".join(self.scenes)}; lower min_valid_fraction.')

    def __getitem__(self, index: int) -> Dict[str, Any]:
        rng = self._generator(index)
        path, window, hr = self._choose_window(index, rng)
        values, valid = hr.filled(), hr.valid[None].astype(np.float32)
        if self.opt['phase'] == 'train':
            values, valid = augment([values, valid], self.opt.get('use_hflip', False), self.opt.get('use_rot', False),
                                    random.Random(int(rng.integers(2**62))))
        img_gt, gt_valid = to_tensor(values), to_tensor(valid)
        img_lq = self.degrade(img_gt, rng)
        return {'lq': img_lq, 'gt': img_gt, 'lq_valid': self.degrade.lq_valid(gt_valid[0:1]), 'gt_valid': gt_valid,
                'lq_path': path, 'gt_path': path, 'georef': self.reader.georef(path, window, 1.0)}
