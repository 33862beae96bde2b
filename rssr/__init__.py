"""rssr: remote-sensing image super-resolution, a BasicSR plugin model zoo.

``import rssr`` registers every rssr arch, loss, metric, dataset and model in rssr's registries
(:mod:`rssr.registry`) without importing BasicSR: ``rssr.archs``, ``rssr.layers`` and ``rssr.ops`` are
plain torch. rssr enters BasicSR's registries when BasicSR is imported, before or after rssr; BasicSR
1.4.2 is then made importable on current torch/torchvision first (see :mod:`rssr.basicsr.import_hook`).
"""
from rssr import archs, data, losses, metrics, weights  # noqa: F401  (registration side effects)
from rssr.basicsr.import_hook import connect_to_basicsr
from rssr.version import __version__
from rssr.zoo import create_model, list_models, model_card

connect_to_basicsr()

__all__ = ['create_model', 'list_models', 'model_card', '__version__']
