"""The one band-name -> channel resolver, used by losses (``band_order``), metrics (``band_names``) and raster
reading (``bands``), so that every place accepts the same names.

A name matches a band's name exactly, else case-insensitively, else through the common names of the bands
rssr's users have: ``blue``/``B02``/``B2``, ``green``/``B03``/``B3``, ``red``/``B04``/``B4``, ``nir``/``B08``/
``B8``, ``swir1``/``B11``, ``swir2``/``B12`` (Sentinel-2 numbering; B2-B4 are also Landsat 8's blue, green,
red). Names that mean different bands on different sensors (Landsat's B5 is NIR, Sentinel-2's a red edge)
have no alias: give them as the file names them.
"""
from __future__ import annotations

from typing import Dict, Optional, Sequence

COMMON_NAMES: Dict[str, str] = {
    'blue': 'blue', 'b02': 'blue', 'b2': 'blue',
    'green': 'green', 'b03': 'green', 'b3': 'green',
    'red': 'red', 'b04': 'red', 'b4': 'red',
    'nir': 'nir', 'b08': 'nir', 'b8': 'nir',
    'swir1': 'swir1', 'b11': 'swir1',
    'swir2': 'swir2', 'b12': 'swir2',
}
"""Lower-case band name -> the common name it stands for."""


def band_position(band: str, names: Sequence[Optional[str]]) -> Optional[int]:
    """0-based position of ``band`` among ``names`` (None entries: unnamed bands): the exact name, else the one
    equal to it ignoring case, else the one band with the same common name; None when no band (or more than
    one) matches."""
    for match in (lambda name: name == band, lambda name: name.lower() == band.lower(),
                  lambda name: COMMON_NAMES.get(name.lower(), name.lower()) == COMMON_NAMES.get(band.lower(), '')):
        found = [i for i, name in enumerate(names) if name and match(name)]
        if len(found) == 1:
            return found[0]
        if found:
            return None
    return None
