"""Check an option file before any work starts, so mistakes end in one readable paragraph.

BasicSR and the official archs silently swallow unknown keys, and a wrong ``type:`` or a missing
folder surfaces as a traceback from deep inside the pipeline. :func:`check_options` reads the YAML
and reports, all at once: a missing or malformed file, missing required keys, unknown ``type:``
names (with the registry and the closest names), misspelled keys in ``network_g`` (checked against
the arch constructor's signature), ``train`` (the model's options, losses, optimizer, scheduler),
``datasets``, ``val`` and ``logger`` (with the closest valid name), and missing dataset folders.
Unknown keys with no close valid name only warn: they may be meant for a custom component.
"""
from __future__ import annotations

import difflib
import inspect
import os
import warnings
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

import torch
import yaml

TOP_LEVEL_KEYS = {'name', 'model_type', 'scale', 'num_gpu', 'manual_seed', 'deterministic', 'datasets', 'network_g',
                  'network_d', 'path', 'train', 'val', 'logger', 'dist_params', 'find_unused_parameters'}
# SRModel's train keys; a model class may declare its own as ``train_option_keys`` (and
# ``optimizers_by_name``, ``val_option_keys``, ``top_level_option_keys``), a dataset class its
# extra keys as ``option_keys``.
TRAIN_KEYS = {'ema_decay', 'optim_g', 'scheduler', 'total_iter', 'warmup_iter', 'pixel_opt', 'perceptual_opt'}
DATASET_KEYS = {'name', 'type', 'phase', 'scale', 'dataroot_gt', 'dataroot_lq', 'meta_info_file', 'io_backend',
                'filename_tmpl', 'gt_size', 'use_hflip', 'use_rot', 'use_flip', 'color', 'mean', 'std',
                'num_worker_per_gpu', 'batch_size_per_gpu', 'dataset_enlarge_ratio', 'prefetch_mode', 'pin_memory',
                'persistent_workers', 'num_prefetch_queue'}
VAL_KEYS = {'val_freq', 'save_img', 'suffix', 'pbar', 'metrics'}
LOGGER_KEYS = {'print_freq', 'save_checkpoint_freq', 'use_tb_logger', 'wandb', 'checkpoint_format'}
SCHEDULERS = ('MultiStepLR', 'MultiStepRestartLR', 'CosineAnnealingRestartLR')
METRIC_KEYS = {'type', 'better'}


class OptionsError(ValueError):
    """The option file cannot drive a run; the message says what to change."""


def closest(name: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """The valid names closest to ``name`` (case-insensitive), best first."""
    candidates = sorted(set(candidates))
    lowered = {c.lower(): c for c in candidates}
    matches = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[m] for m in matches]


def _did_you_mean(name: str, candidates: Iterable[str]) -> str:
    close = closest(name, candidates)
    return f'; did you mean {" or ".join(repr(c) for c in close)}?' if close else ''


def signature_keys(target: Callable, skip: Tuple[str, ...] = ()) -> Tuple[Set[str], bool]:
    """Keyword names ``target`` accepts (without ``skip``), and whether it also takes ``**kwargs``."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}
    return names - {'self'}, any(p.kind == p.VAR_KEYWORD for p in params)


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: List[str] = []
        self.notes: List[str] = []

    def keys(self, where: str, given: Mapping[str, Any], valid: Set[str], owner: str, open_ended: bool = True,
             ignore: Iterable[str] = ('type',)) -> None:
        """Unknown keys: an error when a valid key is close (a typo) or nothing else may read them."""
        for key in given:
            if key in valid or key in ignore:
                continue
            hint = _did_you_mean(str(key), valid)
            message = f'{where}.{key} is not an option of {owner}{hint}'
            if hint or not open_ended:
                self.problems.append(message if hint else f'{message}; valid: {", ".join(sorted(valid))}')
            else:
                self.notes.append(f'{message}; it is passed on but may be ignored')

    def registered(self, where: str, spec: Any, registry: Any, kind: str) -> Optional[Any]:
        """Look up ``spec['type']`` in a BasicSR registry; report unknown names with the closest ones."""
        if not isinstance(spec, Mapping) or 'type' not in spec:
            self.problems.append(f'{where} needs a `type:` naming a registered {kind}')
            return None
        return self.lookup(f'{where}.type', spec['type'], registry)

    def lookup(self, key: str, name: Any, registry: Any) -> Optional[Any]:
        """The object registered as ``name``, or None with a problem naming the registry and close names."""
        if name in registry._obj_map:
            return registry._obj_map[name]
        close = closest(str(name), registry._obj_map)
        listing = f'closest: {", ".join(close)}' if close else f'registered: {", ".join(sorted(registry._obj_map))}'
        self.problems.append(f'{key} {name!r} is not in BasicSR\'s {registry._name} registry ({listing})')
        return None

    def constructor_kwargs(self, where: str, spec: Mapping[str, Any], target: Callable, owner: str,
                           skip: Tuple[str, ...] = (), extra: Iterable[str] = ()) -> None:
        names, open_ended = signature_keys(target, skip)
        self.keys(where, spec, names | set(extra), owner, open_ended=open_ended)

    def error(self) -> Optional[OptionsError]:
        if not self.problems:
            return None
        listed = ' '.join(f'({i}) {p}.' for i, p in enumerate(self.problems, 1))
        return OptionsError(f'rssr: cannot start from option file {self.path}: {listed} Nothing was run; fix '
                            f'the file and run the same command again.')


def load_yaml(path: str) -> Dict[str, Any]:
    """Read an option file; a missing, unreadable or malformed file raises :class:`OptionsError`."""
    if not os.path.isfile(path):
        raise OptionsError(f'rssr: option file {path} does not exist (looked in {os.getcwd()}). Pass the path of '
                           f'a YAML file with -opt, e.g. -opt options/demo/sentinel2_x4_demo.yml.')
    try:
        with open(path, encoding='utf-8') as handle:
            opt = yaml.safe_load(handle)
    except yaml.YAMLError as err:
        mark = getattr(err, 'problem_mark', None)
        where = f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''
        problem = getattr(err, 'problem', None) or str(err).splitlines()[0]
        raise OptionsError(f'rssr: option file {path} is not valid YAML{where}: {problem}. Check the indentation '
                           f'(spaces only) and the `key: value` syntax there.') from None
    except (OSError, UnicodeDecodeError) as err:
        raise OptionsError(f'rssr: cannot read option file {path}: {err}.') from None
    if not isinstance(opt, dict):
        raise OptionsError(f'rssr: option file {path} must hold a mapping of options (name:, model_type:, '
                           f'network_g:, datasets:, ...), not {type(opt).__name__}.')
    return opt


def check_options(path: str, is_train: bool = True) -> Dict[str, Any]:
    """Validate the option file at ``path`` for training or testing; return the parsed options.

    Raises:
        OptionsError: one paragraph listing every problem found. Keys that are merely unknown are
        reported with :func:`warnings.warn`.
    """
    import rssr  # noqa: F401  (registries filled)
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    opt = load_yaml(path)
    check = _Checker(path)
    required = ['name', 'model_type', 'num_gpu', 'network_g', 'datasets', 'path'] + (['train', 'logger'] if is_train else ['val'])
    for key in required:
        if key not in opt:
            check.problems.append(f'the top-level key `{key}:` is missing')
    model_class = None
    if 'model_type' in opt:
        model_class = check.lookup('model_type', opt['model_type'], MODEL_REGISTRY)
    check.keys('<top level>', opt, TOP_LEVEL_KEYS | set(getattr(model_class, 'top_level_option_keys', ())),
               'the option file')
    if 'network_g' in opt:
        arch = check.registered('network_g', opt['network_g'], ARCH_REGISTRY, 'arch')
        if arch is not None:
            check.constructor_kwargs('network_g', opt['network_g'], arch, f'arch {arch.__name__}')
    _check_datasets(check, opt.get('datasets'), is_train, DATASET_REGISTRY)
    if is_train and isinstance(opt.get('train'), Mapping):
        _check_train(check, opt['train'], model_class, LOSS_REGISTRY)
    if isinstance(opt.get('val'), Mapping):
        _check_val(check, opt['val'], model_class, METRIC_REGISTRY)
    if isinstance(opt.get('logger'), Mapping):
        check.keys('logger', opt['logger'], LOGGER_KEYS, 'logger')
        fmt = opt['logger'].get('checkpoint_format', 'pth')
        if fmt not in ('pth', 'safetensors'):
            check.problems.append(f'logger.checkpoint_format must be pth or safetensors, not {fmt!r}')
    if isinstance(opt.get('path'), Mapping):
        for key, value in opt['path'].items():
            if (key.startswith('pretrain_network') or key == 'resume_state') and value and not os.path.isfile(
                    os.path.expanduser(str(value))):
                check.problems.append(f'path.{key} {value} does not exist')
    for note in check.notes:
        warnings.warn(f'rssr: {path}: {note}')
    error = check.error()
    if error is not None:
        raise error
    return opt


def _check_datasets(check: _Checker, datasets: Any, is_train: bool, registry: Any) -> None:
    if datasets is None:
        return
    if not isinstance(datasets, Mapping) or not datasets:
        check.problems.append('`datasets:` must map phases (train, val, test_1, ...) to dataset options')
        return
    if is_train and 'train' not in datasets:
        check.problems.append('datasets.train is missing: training needs a train dataset')
    for phase, spec in datasets.items():
        where = f'datasets.{phase}'
        kind = str(phase).split('_')[0]
        if kind not in ('train', 'val', 'test'):
            check.problems.append(f'{where}: the phase name must be train, val, val_<n>, test or test_<n>'
                                  f'{_did_you_mean(kind, ("train", "val", "test"))}')
        dataset_class = check.registered(where, spec, registry, 'dataset')
        if dataset_class is None:
            continue
        valid = DATASET_KEYS | set(getattr(dataset_class, 'option_keys', ()))
        check.keys(where, spec, valid, f'dataset type {spec["type"]}')
        if kind == 'train':
            for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
                if key not in spec:
                    check.problems.append(f'{where}.{key} is missing')
        for key, value in spec.items():
            if (str(key).startswith('dataroot') or key == 'meta_info_file') and value is not None:
                if not os.path.exists(os.path.expanduser(str(value))):
                    check.problems.append(f'{where}.{key}: {value} does not exist (relative paths are read from '
                                          f'{os.getcwd()})')


def _check_train(check: _Checker, train: Mapping[str, Any], model_class: Any, losses: Any) -> None:
    valid = set(getattr(model_class, 'train_option_keys', TRAIN_KEYS))
    check.keys('train', train, valid, f'model {getattr(model_class, "__name__", "?")} training')
    for key, spec in train.items():
        if str(key).endswith('_opt') and spec is not None:
            loss = check.registered(f'train.{key}', spec, losses, 'loss')
            if loss is not None:
                check.constructor_kwargs(f'train.{key}', spec, loss, f'loss {spec["type"]}')
    if 'total_iter' not in train:
        check.problems.append('train.total_iter is missing')
    optimizers = getattr(model_class, 'optimizers_by_name', {'Adam': torch.optim.Adam})  # SRModel: Adam only
    optim = train.get('optim_g')
    if not isinstance(optim, Mapping) or 'type' not in optim:
        check.problems.append('train.optim_g needs a `type:` and `lr:`')
    elif optim['type'] not in optimizers:
        check.problems.append(f'train.optim_g.type {optim["type"]!r} is not offered by '
                              f'{getattr(model_class, "__name__", "this model")} (choose from {", ".join(optimizers)})'
                              f'{_did_you_mean(str(optim["type"]), optimizers)}')
    else:
        check.constructor_kwargs('train.optim_g', optim, optimizers[optim['type']], f'optimizer {optim["type"]}',
                                 skip=('params',))
    scheduler = train.get('scheduler')
    if not isinstance(scheduler, Mapping) or 'type' not in scheduler:
        check.problems.append(f'train.scheduler needs a `type:` ({", ".join(SCHEDULERS)})')
    elif scheduler['type'] not in SCHEDULERS:
        check.problems.append(f'train.scheduler.type {scheduler["type"]!r} is not one of {", ".join(SCHEDULERS)}'
                              f'{_did_you_mean(str(scheduler["type"]), SCHEDULERS)}')
    else:
        from basicsr.models import lr_scheduler
        target = getattr(lr_scheduler, 'MultiStepRestartLR' if scheduler['type'] == 'MultiStepLR' else scheduler['type'])
        check.constructor_kwargs('train.scheduler', scheduler, target, f'scheduler {scheduler["type"]}',
                                 skip=('optimizer',))


def _check_val(check: _Checker, val: Mapping[str, Any], model_class: Any, metrics: Any) -> None:
    valid = VAL_KEYS | set(getattr(model_class, 'val_option_keys', ()))
    check.keys('val', val, valid, 'validation')
    for name, spec in (val.get('metrics') or {}).items():
        metric = check.registered(f'val.metrics.{name}', spec, metrics, 'metric')
        if metric is not None:
            check.constructor_kwargs(f'val.metrics.{name}', spec, metric, f'metric {spec["type"]}',
                                     skip=('img', 'img2'), extra=METRIC_KEYS)
