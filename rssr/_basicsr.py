"""The one place where rssr's components enter BasicSR's five registries.

Registration is idempotent (importing rssr twice is harmless). A name that BasicSR or another
package already holds with a different object raises :class:`RegistryConflictError` naming both
objects, instead of BasicSR's bare ``AssertionError``.
"""
from __future__ import annotations

from typing import Any

from rssr import registry


class RegistryConflictError(RuntimeError):
    """An rssr name is already taken in a BasicSR registry by a different object."""


def _basicsr_registries() -> dict:
    from basicsr.utils.registry import (ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY,
                                        MODEL_REGISTRY)
    return {
        registry.ARCHS: ARCH_REGISTRY,
        registry.LOSSES: LOSS_REGISTRY,
        registry.METRICS: METRIC_REGISTRY,
        registry.DATASETS: DATASET_REGISTRY,
        registry.MODELS: MODEL_REGISTRY,
    }


def _describe(obj: Any) -> str:
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def register_all() -> None:
    """Copy every rssr registry entry into the matching BasicSR registry."""
    for ours, theirs in _basicsr_registries().items():
        for name, obj in ours:
            existing = theirs._obj_map.get(name)
            if existing is obj:
                continue
            if existing is not None:
                raise RegistryConflictError(
                    f"BasicSR's {theirs._name} registry already holds {name!r} as {_describe(existing)}; "
                    f'rssr wants to register {_describe(obj)} under that name. Rename one of them, or '
                    f'import only one package that defines {name!r}.')
            theirs._obj_map[name] = obj
