"""rssr models; every module here registers itself (see :mod:`rssr.registry`)."""
from rssr._autoimport import import_submodules

import_submodules(__name__, __path__)
