"""rssr: remote-sensing image super-resolution, a BasicSR plugin model zoo.

``import rssr`` makes BasicSR 1.4.2 importable on current torch/torchvision, then registers every
rssr arch, loss, metric, dataset and model into BasicSR's registries. Import it before anything
imports basicsr (see :mod:`rssr.basicsr.compat`).
"""
from rssr.basicsr import compat

compat.install()

from rssr import archs, data, losses, metrics, weights  # noqa: E402  (registration side effects)
from rssr.basicsr import models, registration  # noqa: E402
from rssr.zoo import create_model, list_models, model_card  # noqa: E402

registration.register_all()
compat.install_basicsr_aliases()

__version__ = '0.1.0'
__all__ = ['create_model', 'list_models', 'model_card', '__version__']
