"""What a component declares to rssr's BasicSR bridge: one protocol, one accessor.

The option checker (:mod:`rssr.basicsr.options`) derives most valid keys from the source of the code
that will run (:mod:`rssr.basicsr.option_reads`). A component declares what its source does not show
(keys read through a helper the derivation cannot follow, or reserved for later) with the attributes
below, set on the class (models, datasets) or on the function (metrics). Each :class:`Declaration` says
who sets it, what it means, and the value assumed when it is not set; :func:`declared` reads one, and
every reader in rssr uses it. Code that is no component (a start-up hook reading a top-level key)
calls :func:`rssr.basicsr.options.declare_option_keys` instead.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Tuple


@dataclass(frozen=True)
class Declaration:
    """One attribute of the protocol: its name, who sets it, what it means and its default."""

    attribute: str
    set_by: str
    meaning: str
    default: Any


# who sets them, where several declarations share it
_MODEL_CLASS = 'a model class (model_type)'
_METRIC_FUNCTION = 'an rssr metric function (rssr.metrics.image_quality)'

TRAIN_OPTION_KEYS = Declaration(
    'train_option_keys', _MODEL_CLASS,
    'keys of the `train:` section the model reads, beside those its source shows', ())
VAL_OPTION_KEYS = Declaration(
    'val_option_keys', _MODEL_CLASS,
    'keys of the `val:` section the model reads, beside those its source shows', ())
TOP_LEVEL_OPTION_KEYS = Declaration(
    'top_level_option_keys', 'a model class or a dataset class',
    'top-level keys the component reads (e.g. band_normalization, padding_size)', ())
DATASET_OPTION_KEYS = Declaration(
    'option_keys', 'a dataset class',
    'keys of its own `datasets.<phase>:` section, beside those its source shows', ())
OPTIMIZERS_BY_NAME = Declaration(
    'optimizers_by_name', _MODEL_CLASS,
    'mapping `train.optim_*.type` name -> optimizer class, when its get_optimizer is not BasicSR\'s '
    '`if optim_type == \'Adam\'` chain (empty: derived from that chain)', {})
METRIC_KIND = Declaration(
    'rssr_metric_kind', _METRIC_FUNCTION,
    'what the metric measures (psnr, sam, ergas, ...); validation marks the lower-is-better kinds', None)
METRIC_OPTIONS = Declaration(
    'rssr_options', _METRIC_FUNCTION,
    'names of its own options (e.g. scale, band_names), which validation fills in; None marks a BasicSR '
    '8-bit metric', None)

DECLARATIONS: Tuple[Declaration, ...] = (TRAIN_OPTION_KEYS, VAL_OPTION_KEYS, TOP_LEVEL_OPTION_KEYS, DATASET_OPTION_KEYS,
                                         OPTIMIZERS_BY_NAME, METRIC_KIND, METRIC_OPTIONS)


def declared(component: Any, declaration: Declaration) -> Any:
    """What ``component`` (a class, a function, or None) declares for ``declaration``, else its default."""
    value = getattr(component, declaration.attribute, None)
    return declaration.default if value is None else value
