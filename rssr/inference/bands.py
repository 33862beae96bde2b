"""The band contract of a model: which bands of a raster it is fed, in which order, checked before any work.

A model whose card (or checkpoint) names its bands, e.g. ``B02 B03 B04 B08``, is fed exactly those:

* without ``--bands``, a file whose band descriptions name them (in any order, among other bands or
  not) is read in the model's order, and the log says so when that is not simply every band in file
  order; the output's bands come in the model's order with their descriptions;
* a file whose descriptions name other bands, or none, is read as it is (or as ``--bands`` selects),
  with one warning per run and kind of file saying which bands are assumed to be which;
* ``--bands`` naming the model's bands in another order is refused (the network would be fed them
  in the wrong order), as is a band count the model does not take, with the bands it expects.

A model that names no bands only has a band count (its first convolution's input channels).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Set, Tuple

from torch import nn

from rssr.errors import InferenceError
from rssr.io import RasterInfo, resolve_bands

logger = logging.getLogger('rssr')


@dataclass
class BandContract:
    """The bands a model takes: their ``count`` (None: unknown) and, when its card or checkpoint gives
    them, their ``names`` in order; ``owner`` says whose contract it is in messages."""

    count: Optional[int] = None
    names: Tuple[str, ...] = ()
    owner: str = 'the model'
    _warned: Set[Tuple[Optional[str], ...]] = field(default_factory=set, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.names and self.count is not None and len(self.names) != self.count:
            raise InferenceError(f'{self.owner} names {len(self.names)} bands ({", ".join(self.names)}) but its '
                                 f'network takes {self.count}.')

    @property
    def expected(self) -> str:
        """The bands the model takes, for messages: their names when known, else their count."""
        if self.names:
            return f'{len(self.names)} bands ({", ".join(self.names)}, as {self.owner} names them)'
        return f'{self.count} bands'

    def select(self, info: RasterInfo, bands: Optional[Sequence[int | str]] = None,
               flag: str = '--bands') -> List[int]:
        """1-based band numbers of ``info``'s raster to feed the model, given the user's selection
        ``bands`` (None: let the descriptions and the contract decide)."""
        if bands is None and self.names and _names_all(info.descriptions, self.names):
            numbers = [info.descriptions.index(name) + 1 for name in self.names]
            if numbers != list(range(1, info.count + 1)):
                logger.info('%s: its band descriptions name the bands %s takes (%s): reading bands %s in that '
                            'order (the output has the bands in that order, with their descriptions).', info.path,
                            self.owner, ', '.join(self.names), ', '.join(map(str, numbers)))
            return numbers
        numbers = resolve_bands(info, bands)
        selected = tuple(info.descriptions[n - 1] for n in numbers)
        if self.names and bands is not None and sorted(map(str, selected)) == sorted(self.names) \
                and selected != self.names:
            raise InferenceError(f'{flag} {",".join(map(str, bands))} selects the bands {", ".join(selected)} of '
                                 f'{info.path}, but {self.owner} takes them in the order {", ".join(self.names)}: '
                                 f'use {flag} {",".join(self.names)}, or leave {flag} out (bands are then found by '
                                 f'their descriptions).')
        if self.count is not None and len(numbers) != self.count:
            described = ', '.join(f'{n} ({d})' if d else str(n) for n, d in zip(numbers, selected))
            raise InferenceError(f'The model takes {self.expected} but {len(numbers)} bands are selected from '
                                 f'{info.path} (bands {described}); choose bands to match the model ({flag}).')
        if self.names and selected != self.names:
            self._warn_assumed(info, numbers, selected)
        return numbers

    def _warn_assumed(self, info: RasterInfo, numbers: List[int], selected: Tuple[Optional[str], ...]) -> None:
        if selected in self._warned:
            return
        self._warned.add(selected)
        described = ', '.join(str(d) for d in selected) if any(selected) else 'none'
        pairs = ', '.join(f'band {n} as {name}' for n, name in zip(numbers, self.names))
        logger.warning('%s: its band descriptions (%s) do not name the bands %s takes (%s); assuming %s. If that is '
                       'wrong, select the bands in this order with --bands. (Said once for files described alike.)',
                       info.path, described, self.owner, ', '.join(self.names), pairs)


def model_in_chans(model: nn.Module) -> Optional[int]:
    """The band count ``model`` takes: its first convolution's input channels (None without one)."""
    first_conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    return None if first_conv is None else first_conv.in_channels


def _names_all(descriptions: Sequence[Optional[str]], names: Sequence[str]) -> bool:
    """Every name is the description of exactly one band."""
    return all(list(descriptions).count(name) == 1 for name in names)


__all__ = ['BandContract', 'model_in_chans']
