"""Connect rssr to BasicSR when BasicSR is imported, whether before or after rssr, without importing it.

``import rssr`` imports plain torch modules only, so ``import rssr.archs`` works without BasicSR. The
bridge is activated by :func:`connect_to_basicsr` (called by ``rssr/__init__.py``): at once when
``basicsr`` is already imported, otherwise by :class:`BasicSRImportHook`, a ``sys.meta_path`` finder
that, when the top-level ``basicsr`` package is imported, installs the compatibility shims
(:mod:`rssr.basicsr.compat`) before BasicSR's ``__init__`` runs and activates the bridge right after it
finishes, then removes itself.

Activating the bridge imports rssr's BasicSR model classes (:mod:`rssr.basicsr.models`) and
:class:`~rssr.basicsr.combined_loss.CombinedLoss`, copies rssr's
five registries into BasicSR's (and, from then on, every later registration: a model module imported
late), and applies the ``IMPORT`` entries of the patch table (:mod:`rssr.basicsr.patches`). It runs once per
process.
"""
from __future__ import annotations

import importlib.abc
import sys
from importlib.machinery import ModuleSpec
from types import ModuleType
from typing import Any, Optional, Sequence

from rssr.basicsr import compat

_active = False


def activate_bridge() -> None:
    """Register rssr into BasicSR's registries (now and on every later registration); idempotent."""
    global _active
    if _active:
        return
    from rssr.basicsr import combined_loss, models, registration  # noqa: F401  (register CombinedLoss, models)
    from rssr.basicsr.patches import IMPORT, apply_patches

    apply_patches(IMPORT)
    registration.register_all()
    registration.mirror_later_registrations()
    _active = True


class _ShimmedLoader(importlib.abc.Loader):
    """BasicSR's own loader, with the shims installed before its ``__init__`` runs and the bridge activated
    after."""

    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: ModuleSpec) -> Optional[ModuleType]:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        compat.install()
        self.loader.exec_module(module)
        BasicSRImportHook.remove()
        activate_bridge()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.loader, name)


class BasicSRImportHook(importlib.abc.MetaPathFinder):
    """Finds the top-level ``basicsr`` package with the other finders and wraps its loader (see the module
    docstring); every other module is left to them."""

    def find_spec(self, fullname: str, path: Optional[Sequence[str]], target: Optional[ModuleType] = None
                  ) -> Optional[ModuleSpec]:
        if fullname != 'basicsr':
            return None
        for finder in sys.meta_path:
            find_spec = getattr(finder, 'find_spec', None)
            spec = None if finder is self or find_spec is None else find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _ShimmedLoader(spec.loader)
                return spec
        return None

    @staticmethod
    def remove() -> None:
        sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, BasicSRImportHook)]


def connect_to_basicsr() -> None:
    """Activate the bridge now if BasicSR is imported, else when it is (see the module docstring)."""
    if 'basicsr' in sys.modules:
        activate_bridge()
    elif not any(isinstance(finder, BasicSRImportHook) for finder in sys.meta_path):
        sys.meta_path.insert(0, BasicSRImportHook())
