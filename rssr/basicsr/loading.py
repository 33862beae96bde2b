"""Build a network for inference from an options file, an arch name and kwargs, or a zoo name.

Part of the BasicSR bridge: an arch name resolves as BasicSR's ``build_network`` resolves it (BasicSR's own
archs, rssr's, and those of ``--import`` packages), and its kwargs are checked as ``rssr.train`` checks
``network_g``."""
from __future__ import annotations

from typing import Any, Dict, Optional

import yaml
from torch import nn

from rssr.basicsr.options import signature_keys, unknown_arguments
from rssr.basicsr.registration import lookup
from rssr.checkpoint import load_normalized_weights, stored_bands
from rssr.errors import InferenceError
from rssr.inference.bands import BandContract, model_in_chans
from rssr.utils import as_sentence, did_you_mean, read_yaml_file, yaml_error_location, yaml_problem
from rssr.zoo import create_model, model_card


def _read_options(path: str) -> Dict[str, Any]:
    options = read_yaml_file(path, 'options file', InferenceError)
    return options if isinstance(options, dict) else {}


def _from_options(path: str) -> tuple[nn.Module, Optional[Dict[str, Any]]]:
    options = _read_options(path)
    network = dict(options.get('network_g') or {})
    if 'type' not in network:
        raise InferenceError(f'Options file {path} has no network_g.type to build the network from.')
    arch = network.pop('type')
    return _build_arch(arch, network, where=f'network_g in {path}'), options.get('band_normalization')


def weights_path(options: Optional[str] = None, zoo_name: Optional[str] = None,
                 weights: Optional[str] = None) -> Optional[str]:
    """The checkpoint :func:`load_model` loads: ``weights``, else the options' ``path.pretrain_network_g``,
    else the weights the zoo card ``zoo_name`` ships; None when there is none."""
    if weights is not None:
        return weights
    if options is not None:
        return (_read_options(options).get('path') or {}).get('pretrain_network_g')
    shipped = None if zoo_name is None else model_card(zoo_name).weights_path()
    return None if shipped is None else str(shipped)


def parse_arch_kwargs(text: str) -> Dict[str, Any]:
    """The ``--arch-kwargs`` YAML/JSON mapping; malformed text or a non-mapping names the flag."""
    try:
        kwargs = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise InferenceError(f'--arch-kwargs {text!r} is not valid YAML{yaml_error_location(err)}: {yaml_problem(err)}'
                             f"; give a mapping such as --arch-kwargs '{{in_chans: 4, upscale: 4}}'.") from None
    if kwargs is None:
        return {}
    if not isinstance(kwargs, dict):
        raise InferenceError(f"--arch-kwargs must be a mapping such as '{{in_chans: 4, upscale: 4}}', got {text!r}.")
    return kwargs


def _build_arch(arch: str, kwargs: Dict[str, Any], where: str = '--arch-kwargs') -> nn.Module:
    """Build ``arch`` as BasicSR's ``build_network`` resolves it (the name, else ``<name>_basicsr``, else
    an rssr alias). A key the arch's signature lacks is an error naming the closest valid key when the
    arch has no ``**kwargs`` to take it, or when it is a near miss of an argument not given (a typo
    ``**kwargs`` would swallow): the rule of ``rssr.train``'s option check of ``network_g``."""
    from basicsr.utils.registry import ARCH_REGISTRY

    target = lookup(ARCH_REGISTRY, arch)
    if target is None:
        known = sorted(ARCH_REGISTRY.keys())
        raise InferenceError(f'Unknown arch {arch!r}{did_you_mean(arch, known) or "."} Registered archs: '
                             f'{", ".join(known)} (add another package\'s archs with --import PKG).')
    refused = [unknown for unknown in unknown_arguments(target, kwargs) if unknown.refused]
    if refused:
        problems = ' '.join(as_sentence(f'{unknown.key!r} {unknown.sentence(arch)}') for unknown in refused)
        valid = sorted(signature_keys(target)[0])
        raise InferenceError(f'{where}: {problems} Its options are {", ".join(valid)}.')
    return target(**kwargs)


def load_model(options: Optional[str] = None, arch: Optional[str] = None, arch_kwargs: Optional[Dict[str, Any]] = None,
               zoo_name: Optional[str] = None, scale: int = 4, in_chans: Optional[int] = None,
               weights: Optional[str] = None) -> nn.Module:
    """Exactly one of ``options``, ``arch`` or ``zoo_name`` says what to build; ``weights`` (or the options'
    ``path.pretrain_network_g``, or the weights a zoo card ships) are loaded strictly. The network comes
    back inside the band normalisation stored with the weights (or given by the options'
    ``band_normalization``) as a :class:`~rssr.band_normalization.BandNormalizedSR`, bare without one."""
    if sum(x is not None for x in (options, arch, zoo_name)) != 1:
        raise InferenceError('Give exactly one of an options file (--opt), an arch name (--arch) or a zoo model '
                             '(--model).')
    normalization_options = None
    if options is not None:
        model, normalization_options = _from_options(options)
    elif arch is not None:
        model = _build_arch(arch, dict(arch_kwargs or {}))
    else:
        model = create_model(zoo_name, scale=scale, in_chans=in_chans)
    weights = weights_path(options, zoo_name, weights)
    if weights is None:
        raise InferenceError('No weights: pass --weights (or set path.pretrain_network_g in the options file); '
                             'an untrained network would produce noise.')
    return load_normalized_weights(model, weights, normalization_options, where=str(options))


def band_contract(model: nn.Module, options: Optional[str] = None, zoo_name: Optional[str] = None,
                  weights: Optional[str] = None) -> BandContract:
    """The bands ``model`` (loaded by :func:`load_model` with the same arguments) takes: the input channels
    of its first convolution, named by its checkpoint when that stores band names, else by the zoo card
    ``zoo_name`` when its shipped weights run and it names their bands."""
    path = weights_path(options, zoo_name, weights)
    names = stored_bands(path) if path is not None else ()
    owner = f'the checkpoint {path}'
    if not names and zoo_name is not None and weights is None:
        names, owner = model_card(zoo_name).weights_bands, f"{zoo_name}'s model card"
    return BandContract(count=model_in_chans(model), names=tuple(names), owner=owner if names else 'the model')
