"""``rssr.infer --arch`` resolves names as BasicSR's ``build_network`` does, and ``--arch-kwargs``
mistakes (unknown keys, malformed YAML) end in a message naming the flag and the closest key."""
from __future__ import annotations

import pytest
import torch
import yaml

import rssr  # noqa: F401
from rssr.archs.convmambasr import ConvMambaSR
from rssr.archs.repmamba import RepMamba
from rssr.basicsr.loading import load_model, parse_arch_kwargs
from rssr.inference import InferenceError

from basicsr.archs.srvgg_arch import SRVGGNetCompact

SRVGG = {'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 4, 'num_conv': 1, 'upscale': 2}


def test_basicsr_suffixed_name_resolves_like_build_network(tmp_path):
    weights = tmp_path / 'srvgg.pth'
    torch.save({'params': SRVGGNetCompact(**SRVGG).state_dict()}, weights)
    model = load_model(arch='SRVGGNetCompact', arch_kwargs=SRVGG, weights=str(weights))  # registered with _basicsr
    assert isinstance(model, SRVGGNetCompact)


def test_rssr_alias_resolves_to_its_network(tmp_path):
    kwargs = {'upscale': 2, 'depths': [1]}
    weights = tmp_path / 'repmamba.pth'
    torch.save({'params': RepMamba(**kwargs).state_dict()}, weights)
    assert isinstance(load_model(arch='SMSR', arch_kwargs=kwargs, weights=str(weights)), RepMamba)


def test_unknown_arch_kwargs_key_names_the_closest_valid_key():
    with pytest.raises(InferenceError, match=r"^--arch-kwargs: 'num_feats' is not an option of SRVGGNetCompact; "
                                             r"did you mean 'num_feat'\? Its options are "):
        load_model(arch='SRVGGNetCompact', arch_kwargs={**SRVGG, 'num_feats': 4}, weights='unused.pth')


def test_unknown_arch_names_the_closest_registered_names():
    with pytest.raises(InferenceError, match=r"^Unknown arch 'ConvMambaSr'; did you mean 'ConvMambaSR'.*\? "
                                             r'Registered archs: '):
        load_model(arch='ConvMambaSr', weights='unused.pth')


@pytest.mark.parametrize('text', ['{num_feat: [4', 'num_feat: 4: 5'])
def test_malformed_arch_kwargs_names_the_flag(text):
    with pytest.raises(InferenceError, match=r'^--arch-kwargs .* is not valid YAML'):
        parse_arch_kwargs(text)


def test_arch_kwargs_must_be_a_mapping():
    assert parse_arch_kwargs('') == {} and parse_arch_kwargs('{upscale: 2}') == {'upscale': 2}
    with pytest.raises(InferenceError, match='--arch-kwargs must be a mapping'):
        parse_arch_kwargs('[1, 2]')


def test_options_file_mistakes_name_the_file(tmp_path):
    with pytest.raises(InferenceError, match=r'^options file \S+missing\.yml does not exist'):
        load_model(options=str(tmp_path / 'missing.yml'))
    (tmp_path / 'bad.yml').write_text('network_g:\n  type: EDSR\n   num_feat: 4\n', encoding='utf-8')
    with pytest.raises(InferenceError, match=r'^options file \S+bad\.yml is not valid YAML at line 3'):
        load_model(options=str(tmp_path / 'bad.yml'))
    (tmp_path / 'empty.yml').write_text('', encoding='utf-8')
    with pytest.raises(InferenceError, match=r'empty\.yml has no network_g\.type'):
        load_model(options=str(tmp_path / 'empty.yml'))


TINY_CONVMAMBASR = {'embed_dim': 8, 'depths': [1], 'RCG_num': 1, 'd_state': 4, 'upscale': 2}


def test_arch_kwargs_typo_swallowed_by_kwargs_names_it_and_the_argument():
    """ConvMambaSR takes **kwargs: d_statee would be ignored and d_state keep its default, so it is refused."""
    kwargs = {**{k: v for k, v in TINY_CONVMAMBASR.items() if k != 'd_state'}, 'd_statee': 4}
    with pytest.raises(InferenceError, match=r"^--arch-kwargs: 'd_statee' is not an option of ConvMambaSR; did you "
                                             r"mean 'd_state'\? Its \*\*kwargs would swallow 'd_statee' and leave "
                                             r"'d_state' at its default\. Its options are "):
        load_model(arch='ConvMambaSR', arch_kwargs=kwargs, weights='unused.pth')


def test_arch_kwargs_near_miss_of_a_given_argument_is_passed_on_with_the_arch_warning(tmp_path):
    weights = tmp_path / 'convmambasr.pth'
    torch.save({'params': ConvMambaSR(**TINY_CONVMAMBASR).state_dict()}, weights)
    with pytest.warns(UserWarning, match=r"ConvMambaSR: ignoring unknown keyword argument\(s\) 'd_states'"):
        model = load_model(arch='ConvMambaSR', arch_kwargs={**TINY_CONVMAMBASR, 'd_states': 8}, weights=str(weights))
    assert isinstance(model, ConvMambaSR)


def test_options_file_network_g_typo_names_the_file_and_both_keys(tmp_path):
    network = {'type': 'ConvMambaSR', **{k: v for k, v in TINY_CONVMAMBASR.items() if k != 'embed_dim'},
               'embed_dimm': 8}
    (tmp_path / 'opt.yml').write_text(yaml.safe_dump({'network_g': network}), encoding='utf-8')
    with pytest.raises(InferenceError, match=r"^network_g in \S+opt\.yml: 'embed_dimm' is not an option of "
                                             r"ConvMambaSR; did you mean 'embed_dim'\?"):
        load_model(options=str(tmp_path / 'opt.yml'))
