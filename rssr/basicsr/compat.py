"""Make the PyPI basicsr 1.4.2 importable on current torchvision and Python, and let code written
for BasicSR 1.3 import what moved.

basicsr 1.4.2 imports ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17)
and ``distutils`` (removed in Python 3.12). Both shims are installed only when the real module is
missing, and must run before basicsr is first imported: after ``import rssr``, rssr's import hook
(:mod:`rssr.basicsr.import_hook`) installs them when basicsr is imported, so library code must
``import rssr`` before anything imports basicsr (``python -m rssr.train/test/infer`` do, before any
``--import`` package).

BasicSR 1.4 moved the colour conversions from ``basicsr.utils.matlab_functions`` to
``basicsr.utils.color_util``; projects written for 1.3 (HAT, for one) still import
``from basicsr.utils.matlab_functions import rgb2ycbcr``: :func:`color_function_of_1_3` gives each
name back there.

BasicSR's option parser expands ``~`` in ``dataroot_gt`` with ``os.path.expanduser``, which fails on a
list of scenes; :class:`ListAwarePath` expands each path of a list. Both are installed by the patch table
(:mod:`rssr.basicsr.patches`).
"""
from __future__ import annotations

import importlib.util
import os
import sys
import types

_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'


def _module_missing(name: str) -> bool:
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except ModuleNotFoundError:
        return True


def install_torchvision_shim() -> None:
    """Alias the removed ``functional_tensor`` module to ``torchvision.transforms.functional``."""
    if not _module_missing(_FUNCTIONAL_TENSOR):
        return
    import torchvision.transforms.functional as functional

    shim = types.ModuleType(_FUNCTIONAL_TENSOR)
    shim.__dict__.update({k: v for k, v in vars(functional).items() if not k.startswith('__')})
    shim.__doc__ = 'rssr shim: torchvision.transforms.functional_tensor was removed; aliases functional.'
    sys.modules[_FUNCTIONAL_TENSOR] = shim


def install_distutils_shim() -> None:
    """On Python >= 3.12, let setuptools provide ``distutils`` (basicsr uses its LooseVersion)."""
    if not _module_missing('distutils'):
        return
    try:
        import setuptools  # noqa: F401  setuptools' import hook makes ``distutils`` importable
    except ImportError as err:
        raise ImportError('basicsr needs `distutils`, removed in Python 3.12: pip install setuptools') from err


COLOR_FUNCTIONS_MOVED_IN_1_4 = ('rgb2ycbcr', 'bgr2ycbcr', 'ycbcr2rgb', 'ycbcr2bgr')


def color_function_of_1_3(name: str, owner: object, original: object) -> object:
    """``basicsr.utils.matlab_functions.<name>`` as BasicSR 1.3 had it: the one there, else color_util's."""
    from basicsr.utils import color_util

    return original if original is not None else getattr(color_util, name)


class ListAwarePath:
    """``os.path`` whose ``expanduser`` also takes a list of paths (expanding each)."""

    def __getattr__(self, name: str) -> object:
        return getattr(os.path, name)

    @staticmethod
    def expanduser(path: object) -> object:
        if isinstance(path, (list, tuple)):
            return [os.path.expanduser(p) for p in path]
        return os.path.expanduser(path)


def install() -> None:
    install_torchvision_shim()
    install_distutils_shim()
