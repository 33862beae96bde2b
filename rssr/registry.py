"""rssr's own registries.

Every arch, loss, metric, dataset and model class in rssr is declared here with a decorator, in
the module that defines it. Arch modules therefore stay plain ``torch.nn.Module`` code with no
BasicSR import; :mod:`rssr.basicsr.registration` copies these registries into BasicSR's in one place.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Iterator, List, Tuple, TypeVar

from rssr.utils import did_you_mean, qualified_name

T = TypeVar('T')


class Registry:
    """A name -> object map for one kind of component (arch, loss, ...).

    Aliases (e.g. an official class name such as Rep-Mamba's ``SMSR``) resolve through :meth:`get`
    and ``in`` but are not iterated: :mod:`rssr.basicsr.registration` copies only the primary names into
    BasicSR's global registries, so an alias never takes a name another project may register.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._objects: Dict[str, Any] = {}
        self._aliases: Dict[str, Any] = {}
        self._listeners: List[Callable[[Registry], None]] = []

    def add_listener(self, listener: Callable[[Registry], None]) -> None:
        """Call ``listener(self)`` after every later registration (the BasicSR bridge mirrors them)."""
        self._listeners.append(listener)

    def register(self, obj: T = None, *, name: str | None = None, aliases: Tuple[str, ...] = ()) -> Any:
        """Register ``obj`` under its ``__name__`` (or ``name``) and each alias; usable as a decorator."""

        def add(target: T) -> T:
            primary = name or target.__name__
            for key, table in ((primary, self._objects), *((alias, self._aliases) for alias in aliases)):
                existing = self._objects.get(key, self._aliases.get(key))
                if existing is not None and existing is not target:
                    raise KeyError(f'rssr {self.kind} registry: {key!r} is already registered to '
                                   f'{qualified_name(existing)}; cannot register {qualified_name(target)} under the '
                                   f'same name.')
                table[key] = target
            for listener in self._listeners:
                listener(self)
            return target

        return add if obj is None else add(obj)

    def get(self, key: str) -> Any:
        """The object registered under ``key`` (a name or an alias); an unknown key names the closest ones."""
        if key in self:
            return self._objects.get(key, self._aliases.get(key))
        hint = did_you_mean(key, [*self._objects, *self._aliases])
        raise KeyError(f'No {self.kind} named {key!r} in rssr{hint or "."} Known: {", ".join(sorted(self._objects))}')

    def __contains__(self, key: str) -> bool:
        return key in self._objects or key in self._aliases

    def __iter__(self) -> Iterator[Tuple[str, Any]]:
        return iter(sorted(self._objects.items()))

    def names(self) -> list[str]:
        return sorted(self._objects)

    def aliases(self) -> Dict[str, Any]:
        """Alias name -> object (names rssr resolves without registering them in BasicSR)."""
        return dict(self._aliases)


ARCHS = Registry('arch')
LOSSES = Registry('loss')
METRICS = Registry('metric')
DATASETS = Registry('dataset')
MODELS = Registry('model')

register_arch: Callable = ARCHS.register
register_loss: Callable = LOSSES.register
register_metric: Callable = METRICS.register
register_dataset: Callable = DATASETS.register
register_model: Callable = MODELS.register
