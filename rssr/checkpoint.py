"""Load the weights users actually have, safely and with readable errors.

Accepted: raw state_dicts; BasicSR checkpoints (``params_ema`` preferred over ``params``);
``state_dict`` / ``model`` / ``net`` wrappers; keys prefixed by ``module.`` (DDP) or ``_orig_mod.``
(torch.compile); ``.pth``/``.pt``/``.ckpt`` files via ``torch.load(weights_only=True)``, which refuses
pickles that would run code, and ``.safetensors`` files.

Checkpoints saved by ``RSSRModel`` also carry the band normalisation the network was trained with
(:mod:`rssr.band_normalization`): a ``band_normalization`` entry next to ``params`` in .pth
files, a JSON ``band_normalization`` metadata field in .safetensors files. :func:`read_checkpoint`
returns it as a ``band_normalization`` entry either way; :func:`stored_band_normalization` reads it.
Likewise the names of the bands it was trained on, in order (``bands``, when the training rasters
describe them): :func:`stored_bands` reads them, and ``rssr.infer`` holds files to them
(:mod:`rssr.inference.bands`).

Every checkpoint rssr writes goes through :func:`save_atomically` (any object, torch.save) or
:func:`save_networks` (network weights as .pth or .safetensors, with those entries): a temporary file
renamed into place, so a run killed while saving never leaves a truncated file.
"""
from __future__ import annotations

import json
import os
import re
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple

import torch
from torch import Tensor, nn

from rssr.band_normalization import BandNormalization, resolve_band_normalization, with_normalization
from rssr.errors import CannotWriteError, UserError

WRAPPER_KEYS = ('params_ema', 'params', 'state_dict', 'model', 'net')
NORMALIZATION_KEY = 'band_normalization'
BANDS_KEY = 'bands'
STRIPPED_PREFIXES = ('module.', '_orig_mod.')
CHECKPOINT_FORMATS = {'pth': '.pth', 'safetensors': '.safetensors'}
"""``logger.checkpoint_format`` value -> file suffix of the saved networks."""
DEFAULT_CHECKPOINT_FORMAT = 'pth'


def checkpoint_format(opt: Dict[str, Any]) -> Any:
    """The ``logger.checkpoint_format`` of the options (``pth`` when not set), as written."""
    return (opt.get('logger') or {}).get('checkpoint_format', DEFAULT_CHECKPOINT_FORMAT)


def checkpoint_suffix(opt: Dict[str, Any]) -> str:
    """File suffix of the network checkpoints a run saves."""
    return CHECKPOINT_FORMATS[checkpoint_format(opt)]


class CheckpointError(UserError):
    """A checkpoint cannot be read or does not fit the model."""


def read_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
    """Read a checkpoint file without executing pickled code."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise CheckpointError(f'Checkpoint file not found: {path}')
    if path.endswith('.safetensors'):
        return _read_safetensors(path)
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # torch raises UnpicklingError, RuntimeError, EOFError, ... depending on the damage
        reason = f'{type(err).__name__}: {(str(err).splitlines() or ["empty file"])[0]}'
        if 'Weights only load failed' in str(err):
            raise CheckpointError(
                f'Cannot read checkpoint {path}: {reason}. rssr loads weights with torch.load(weights_only=True), '
                f'which refuses files that would execute arbitrary code; re-save trusted weights as a plain '
                f'state_dict or as .safetensors.') from None
        raise CheckpointError(f'Cannot read checkpoint {path}: the file is damaged or truncated ({reason}); use an '
                              f'intact copy or an earlier checkpoint.') from None


def _write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """``write(temporary_path)``, then rename into ``path``: a run killed or failing while saving leaves the
    previous file (or none), never a truncated one; a failed write names the file."""
    path = os.fspath(path)
    partial = f'{path}.partial-{os.getpid()}'
    try:
        write(partial)
        os.replace(partial, path)
    except OSError as err:
        raise CannotWriteError(f'Cannot write checkpoint {path}: {err.strerror or err}. Free disk space or make '
                               f'the experiments folder writable.') from err
    except RuntimeError as err:  # torch's zip writer reports a failed write (e.g. disk full) as a RuntimeError
        if 'PytorchStreamWriter' not in str(err):
            raise
        raise CannotWriteError(f'Cannot write checkpoint {path}: {str(err).splitlines()[0]}. Free disk space or '
                               f'make the experiments folder writable.') from err
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def save_atomically(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save(obj, path)``, atomically (training states, .pth checkpoints)."""
    _write_atomically(path, lambda partial: torch.save(obj, partial))


def save_networks(groups: Mapping[str, Mapping[str, Tensor]], path: str | os.PathLike,
                  entries: Optional[Mapping[str, Any]] = None) -> None:
    """Save network weights ``{param_key: state_dict}`` (``params``, ``params_ema``, ...) atomically, in the
    format of ``path``'s suffix: a .pth holds ``{**groups, **entries}`` (BasicSR's layout); a .safetensors
    holds every group's tensors as ``<param_key>.<name>`` with the keys listed in its metadata, and each of
    ``entries`` (``band_normalization``, ``bands``) as JSON metadata. :func:`read_checkpoint` reads both back
    to the same dict."""
    entries = dict(entries or {})
    if not os.fspath(path).endswith('.safetensors'):
        save_atomically({**groups, **entries}, path)
        return
    from safetensors.torch import save_file

    flat = {f'{group}.{name}': tensor.contiguous() for group, state in groups.items() for name, tensor in state.items()}
    metadata = {'param_keys': ','.join(groups), **{key: metadata_text(entry) for key, entry in entries.items()}}
    _write_atomically(path, lambda partial: save_file(flat, partial, metadata=metadata))


def _read_safetensors(path: str) -> Dict[str, Any]:
    """A .safetensors file as a flat state_dict, or as ``{param_key: state_dict}`` when its metadata
    lists ``param_keys`` (how RSSRModel saves ``params`` and ``params_ema`` in one file), plus the
    ``band_normalization`` and ``bands`` entries when its metadata has them (the tensors then under
    ``params``)."""
    from safetensors.torch import load_file
    metadata = _safetensors_metadata(path)
    groups = metadata.get('param_keys')
    flat = load_file(path, device='cpu')
    checkpoint: Dict[str, Any]
    if groups:
        checkpoint = {group: OrderedDict((name[len(group) + 1:], tensor) for name, tensor in flat.items()
                                         if name.startswith(f'{group}.')) for group in groups.split(',')}
    else:
        checkpoint = flat
    extras = {key: _parse_metadata(metadata[key], key, path) for key in (NORMALIZATION_KEY, BANDS_KEY)
              if key in metadata}
    if extras and not groups:
        checkpoint = {'params': flat}
    checkpoint.update(extras)
    return checkpoint


def _safetensors_metadata(path: str) -> Dict[str, str]:
    from safetensors import safe_open
    with safe_open(path, framework='pt') as handle:
        return dict(handle.metadata() or {})


def _parse_metadata(text: str, key: str, path: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise CheckpointError(f'Checkpoint {path}: its {key} metadata is not valid JSON ({err})') from None


def metadata_text(entry: Any) -> str:
    """The .safetensors metadata text of a ``band_normalization`` or ``bands`` entry."""
    return json.dumps(dict(entry) if isinstance(entry, Mapping) else list(entry), sort_keys=True)


def _stored_entry(path_or_checkpoint: str | os.PathLike | Mapping[str, Any], key: str) -> Any:
    """The ``key`` entry stored with a checkpoint (a path or a read checkpoint), or None; for a
    .safetensors path only its header is read."""
    if not isinstance(path_or_checkpoint, Mapping):
        path = os.fspath(path_or_checkpoint)
        if path.endswith('.safetensors') and os.path.isfile(path):
            text = _safetensors_metadata(path).get(key)
            return None if text is None else _parse_metadata(text, key, path)
        path_or_checkpoint = read_checkpoint(path)
    return path_or_checkpoint.get(key)


def stored_band_normalization(path_or_checkpoint: str | os.PathLike | Mapping[str, Any]) -> Optional[Dict[str, Any]]:
    """The ``band_normalization`` entry stored with a checkpoint, or None (trained without one)."""
    entry = _stored_entry(path_or_checkpoint, NORMALIZATION_KEY)
    return dict(entry) if isinstance(entry, Mapping) else None


def stored_bands(path_or_checkpoint: str | os.PathLike | Mapping[str, Any]) -> Tuple[str, ...]:
    """The band names stored with a checkpoint, in the order the network takes them; () when it stores none."""
    entry = _stored_entry(path_or_checkpoint, BANDS_KEY)
    return tuple(str(name) for name in entry) if isinstance(entry, (list, tuple)) else ()


def stored_normalization(path_or_checkpoint: str | os.PathLike | Mapping[str, Any]) -> BandNormalization:
    """The band normalisation stored with a checkpoint (the identity when it stores none)."""
    return BandNormalization.from_metadata(stored_band_normalization(path_or_checkpoint))


def load_normalized_weights(model: nn.Module, path: str | os.PathLike,
                            options_normalization: Optional[Mapping[str, Any]] = None, where: str = 'the options'
                            ) -> nn.Module:
    """Load ``path``'s weights into ``model`` strictly; return it inside the band normalisation stored with them,
    or the options' ``band_normalization`` (``options_normalization``, read from ``where``), which wins
    (:func:`~rssr.band_normalization.resolve_band_normalization`); bare when that is the identity."""
    load_weights(model, path)
    normalization = resolve_band_normalization(options_normalization, stored_band_normalization(path))
    if normalization.needs_statistics:
        raise CheckpointError(f'band_normalization mode dataset in {where} has no mean/std and {os.fspath(path)} '
                              f'stores none: add them to the options (scripts/compute_band_stats.py computes them).')
    return with_normalization(model, normalization)


def describe_checkpoint(path: str | os.PathLike) -> str:
    """Lines describing a checkpoint: format, parameter groups and counts, band normalisation."""
    checkpoint = read_checkpoint(path)
    lines = [f'checkpoint: {os.fspath(path)}']
    groups = {key: value for key, value in checkpoint.items() if isinstance(value, Mapping) and _is_state_dict(value)}
    if not groups and _is_state_dict(checkpoint):
        groups = {'(state_dict)': checkpoint}
    for name, state in groups.items():
        count = sum(t.numel() for t in state.values() if t.is_floating_point())
        lines.append(f'  {name}: {len(state)} tensors, {count:,} values')
    lines.append(f'  band normalisation: {stored_normalization(checkpoint).describe()}')
    bands = stored_bands(checkpoint)
    lines.append(f'  bands: {" ".join(bands) if bands else "not stored"}')
    return '\n'.join(lines)


def extract_state_dict(checkpoint: Mapping[str, Any], key: Optional[str] = None) -> Dict[str, Tensor]:
    """Unwrap a checkpoint into a flat state_dict with DDP / compile prefixes removed."""
    state: Any = checkpoint
    if key is not None:
        if key not in checkpoint:
            raise CheckpointError(f'Checkpoint has no entry {key!r}; it has: {", ".join(map(str, checkpoint))}')
        state = checkpoint[key]
    else:
        while isinstance(state, Mapping) and not _is_state_dict(state):
            wrapper = next((k for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
            if wrapper is None:
                raise CheckpointError('Checkpoint holds no state_dict: expected tensors or one of the entries '
                                      f'{", ".join(WRAPPER_KEYS)}; found {", ".join(map(str, state))}')
            state = state[wrapper]
    return OrderedDict((_strip_prefixes(name), value) for name, value in state.items())


def load_weights(model: nn.Module, path_or_state: str | os.PathLike | Mapping[str, Any], strict: bool = True,
                 key: Optional[str] = None) -> nn.Module:
    """Load weights into ``model``; on mismatch, raise an error listing missing/unexpected/mis-shaped keys."""
    checkpoint = path_or_state if isinstance(path_or_state, Mapping) else read_checkpoint(path_or_state)
    state = extract_state_dict(checkpoint, key)
    try:
        model.load_state_dict(state, strict=strict)
    except RuntimeError:
        source = path_or_state if not isinstance(path_or_state, Mapping) else 'the given state_dict'
        raise CheckpointError(describe_mismatch(model, state, f'{type(model).__name__} <- {source}')) from None
    return model


def describe_mismatch(model: nn.Module, state: Mapping[str, Tensor], title: str, limit: int = 12) -> str:
    """Readable report of how a state_dict differs from a model's."""
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mis_shaped = [f'{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(expected[k].shape)}'
                  for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    lines = [f'Checkpoint does not fit the model ({title}):']
    for label, keys in (('missing from checkpoint', missing), ('unexpected in checkpoint', unexpected),
                        ('shape mismatch', mis_shaped)):
        if keys:
            lines.append(f'  {label} ({len(keys)}):')
            lines.extend(f'    {k}' for k in _collapse(keys)[:limit])
            if len(_collapse(keys)) > limit:
                lines.append(f'    ... and {len(_collapse(keys)) - limit} more')
    lines.append('Check the arch kwargs (scale, in_chans, embed_dim, depths, upsampler) against the ones the '
                 'checkpoint was trained with.')
    return '\n'.join(lines)


def _is_state_dict(mapping: Mapping[str, Any]) -> bool:
    return len(mapping) > 0 and all(isinstance(v, Tensor) for v in mapping.values())


def _strip_prefixes(name: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in STRIPPED_PREFIXES:
            if name.startswith(prefix):
                name, changed = name[len(prefix):], True
    return name


def _collapse(keys: Iterable[str]) -> list[str]:
    """Group keys that differ only in layer indices: 'layers.0.w', 'layers.1.w' -> 'layers.{0,1}.w'."""
    groups: Dict[str, list] = OrderedDict()
    for key in keys:
        pattern = re.sub(r'\.(\d+)(?=\.|$)', '.#', key)
        groups.setdefault(pattern, []).append(key)
    collapsed = []
    for pattern, members in groups.items():
        if len(members) == 1:
            collapsed.append(members[0])
        else:
            collapsed.append(f'{pattern}  ({len(members)} keys, # = layer index)')
    return collapsed
