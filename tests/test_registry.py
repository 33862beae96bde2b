"""rssr's registries: an unknown name suggests the closest registered ones (aliases included), and a
name taken by another object names both objects."""
from __future__ import annotations

import pytest

from rssr.registry import Registry


def make_registry() -> Registry:
    registry = Registry('arch')

    @registry.register(aliases=('SMSR',))
    class RepMamba:
        pass

    @registry.register
    class ConvMambaSR:
        pass

    return registry


def test_unknown_name_suggests_the_closest_names_and_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"No arch named 'ConvMambaSr' in rssr; did you mean 'ConvMambaSR'\? "
                                       r'Known: ConvMambaSR, RepMamba'):
        make_registry().get('ConvMambaSr')
    with pytest.raises(KeyError, match=r"did you mean 'SMSR'\?"):
        make_registry().get('SMRS')


def test_unknown_name_without_a_close_one_lists_the_known_ones():
    with pytest.raises(KeyError, match=r"No arch named 'EDSR' in rssr\. Known: ConvMambaSR, RepMamba"):
        make_registry().get('EDSR')


def test_a_taken_name_names_both_objects():
    registry = make_registry()

    class RepMamba:
        pass

    with pytest.raises(KeyError, match=r"'RepMamba' is already registered to \S+make_registry\.<locals>\.RepMamba; "
                                       r'cannot register \S+test_a_taken_name_names_both_objects\.<locals>\.RepMamba'):
        registry.register(RepMamba)
