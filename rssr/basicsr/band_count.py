"""The one check that a batch has as many bands as ``network_g`` takes, for every BasicSR model.

rssr's models call it from :meth:`MultibandValidationMixin.feed_data`; inside rssr's CLIs the patch table
(:mod:`rssr.basicsr.patches`) puts it in front of BasicSR's ``SRModel.feed_data``, so SRModel, SRGANModel,
HATModel, ... refuse a wrong band count with the same message. No basicsr import: the patch table imports
this module before BasicSR is set up.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

from rssr.errors import DataError
from rssr.inference.bands import model_in_chans

NETWORK_IN_CHANNEL_KEYS = ('in_chans', 'num_in_ch', 'in_nc', 'in_channels', 'n_colors')


def network_in_chans(model: Any) -> Optional[int]:
    """Bands ``model``'s network takes: from its ``network_g`` options, else its first convolution."""
    net_opt = model.opt.get('network_g') or {}
    for key in NETWORK_IN_CHANNEL_KEYS:
        if key in net_opt:
            return int(net_opt[key])
    return model_in_chans(model.get_bare_model(model.net_g))


def network_type(model: Any) -> str:
    """``network_g.type``, else the class name of the network."""
    return (model.opt.get('network_g') or {}).get('type', type(model.get_bare_model(model.net_g)).__name__)


def check_batch_band_count(model: Any, data: Dict[str, Any]) -> None:
    """Refuse a batch whose ``lq`` has another band count than ``model``'s network takes, naming its files,
    the network and the option to change."""
    lq, paths = data['lq'], list(data.get('lq_path') or [])
    expected = network_in_chans(model)
    if expected is None or lq.shape[1] == expected:
        return
    net_opt = model.opt.get('network_g') or {}
    key = next((k for k in NETWORK_IN_CHANNEL_KEYS if k in net_opt), 'in_chans')
    raise DataError(
        f'Band count mismatch: {", ".join(paths[:2]) or "the batch"} has {lq.shape[1]} bands but network_g '
        f'({network_type(model)}) takes {expected} ({key}: {expected}). Set network_g.{key} (and the '
        f'output band count) to {lq.shape[1]}, or select {expected} bands of the data; BasicSR\'s image '
        f'datasets read 3-band (or color: y 1-band) images, MultibandPairedDataset reads any band count.')
