"""The one place where rssr's components enter BasicSR's five registries.

Registration is idempotent (importing rssr twice is harmless). A name that BasicSR or another
package already holds with a different object raises :class:`RegistryConflictError` naming both
objects, instead of BasicSR's bare ``AssertionError``.

rssr's aliases (official class names such as Rep-Mamba's ``SMSR``, which another published network
also uses) are not registered: each BasicSR registry's ``get`` falls back to them only when no
package registered the name, so ``type: SMSR`` builds Rep-Mamba while a project remains free to
register its own ``SMSR`` (which then wins).
"""
from __future__ import annotations

import functools
from typing import Any, Dict, Optional

from rssr import registry
from rssr.utils import qualified_name


class RegistryConflictError(RuntimeError):
    """An rssr name is already taken in a BasicSR registry by a different object."""


_OURS_BY_KIND = {ours.kind: ours for ours in (registry.ARCHS, registry.LOSSES, registry.METRICS, registry.DATASETS,
                                              registry.MODELS)}


def _basicsr_registries() -> Dict[registry.Registry, Any]:
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    return {
        registry.ARCHS: ARCH_REGISTRY,
        registry.LOSSES: LOSS_REGISTRY,
        registry.METRICS: METRIC_REGISTRY,
        registry.DATASETS: DATASET_REGISTRY,
        registry.MODELS: MODEL_REGISTRY,
    }


def lookup(theirs: Any, name: str, suffix: str = 'basicsr') -> Optional[Any]:
    """What BasicSR's ``Registry.get(name)`` returns (the name, else ``name_basicsr``: BasicSR
    registers some archs with that suffix), else the alias ``name`` of rssr's registry of the same kind
    (BasicSR names its registries 'arch', 'loss', ... as rssr does); None if none exists."""
    found = theirs._obj_map.get(name)
    if found is None:
        found = theirs._obj_map.get(f'{name}_{suffix}')
    ours = _OURS_BY_KIND.get(getattr(theirs, '_name', None))
    if found is None and ours is not None:
        found = ours.aliases().get(name)
    return found


class GetWithAliases:
    """Replacement ``get`` of one BasicSR registry: :func:`lookup`, with BasicSR's KeyError."""

    def __init__(self, theirs: Any) -> None:
        self.registry = theirs

    def __call__(self, name: str, suffix: str = 'basicsr') -> Any:
        found = lookup(self.registry, name, suffix)
        if found is None:
            raise KeyError(f"No object named '{name}' found in '{self.registry._name}' registry!")
        return found


def copy_registry(theirs: Any, ours: registry.Registry) -> None:
    """Copy every entry of ``ours`` into the BasicSR registry ``theirs``; rssr's aliases resolve through
    its ``get`` (:class:`GetWithAliases`) without being registered."""
    for name, obj in ours:
        existing = theirs._obj_map.get(name)
        if existing is obj:
            continue
        if existing is not None:
            raise RegistryConflictError(
                f"BasicSR's {theirs._name} registry already holds {name!r} as {qualified_name(existing)}; "
                f'rssr wants to register {qualified_name(obj)} under that name. Rename one of them, or '
                f'import only one package that defines {name!r}.')
        theirs._obj_map[name] = obj


def register_all() -> None:
    """Copy every rssr registry into the matching BasicSR registry (idempotent)."""
    for ours, theirs in _basicsr_registries().items():
        copy_registry(theirs, ours)


def mirror_later_registrations() -> None:
    """Copy each rssr registry into BasicSR's again whenever something registers into it later."""
    for ours, theirs in _basicsr_registries().items():
        ours.add_listener(functools.partial(copy_registry, theirs))
