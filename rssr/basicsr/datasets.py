"""What the bridge asks of a dataset named in the options: its bands, its band count, the dataset itself.

The dataset class is looked up in BasicSR's registry (rssr's, BasicSR's or a plugin's dataset), written as
``DATASET_REGISTRY.get(...)`` so that the option checker (:mod:`rssr.basicsr.option_reads`) knows the options
are handed to a registered class, which it checks on its own.
"""
from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from rssr.data.raster_source import RasterReader, raster_band_names


def dataset_band_names(dataset_opt: Dict[str, Any]) -> Tuple[str, ...]:
    """Descriptions of the bands an rssr raster dataset built from ``dataset_opt`` yields, in order, read
    from its first raster's header; () when a band is undescribed or the dataset is not an rssr one."""
    from basicsr.utils.registry import DATASET_REGISTRY

    try:
        dataset_class = DATASET_REGISTRY.get(dataset_opt['type'])
    except KeyError:
        return ()
    if not hasattr(dataset_class, 'first_raster'):
        return ()
    return raster_band_names(RasterReader.from_options(dataset_opt), dataset_class.first_raster(dataset_opt))


def dataset_band_count(dataset_opt: Dict[str, Any]) -> Optional[int]:
    """Bands a dataset built from ``dataset_opt`` yields, when its class can tell (else None): an rssr raster
    dataset reads its first header, BasicSR's image datasets give 1 (``color: y``) or 3."""
    from basicsr.utils.registry import DATASET_REGISTRY

    try:
        dataset_class = DATASET_REGISTRY.get(dataset_opt['type'])
    except KeyError:
        return None
    count = getattr(dataset_class, 'band_count', None)
    if count is not None:
        return count(dataset_opt)
    if dataset_class.__module__.startswith('basicsr.'):
        return 1 if dataset_opt.get('color') == 'y' else 3
    return None


def build_dataset_from_options(dataset_opt: Dict[str, Any]) -> Any:
    """The dataset ``dataset_opt`` describes, in ``phase: val`` form (whole images, no augmentation), as
    read for statistics."""
    from basicsr.utils.registry import DATASET_REGISTRY

    return DATASET_REGISTRY.get(dataset_opt['type'])(dict(dataset_opt, phase='val'))
