"""Check an option file before any work starts, so mistakes end in one readable paragraph.

BasicSR and the official archs silently swallow unknown keys, and a wrong ``type:`` or a missing
folder surfaces as a traceback from deep inside the pipeline. :func:`check_options` reads the YAML
and reports, all at once: a missing or malformed file, missing required keys, unknown ``type:``
names (with the registry and the closest names), unknown keys (with the closest valid name) and
missing dataset folders and checkpoints.

Which keys are valid is not a fixed list: it is what the code that will run reads. rssr derives it
(:mod:`rssr.basicsr.option_reads`) from the source of BasicSR's train/test pipelines, of the model class
(``model_type``, with its base classes and the helpers it hands options to), of each dataset
class, and takes the keyword arguments of archs, losses, metrics, optimizers and schedulers from
their signatures. An unknown key is an **error** only where every key the component reads is known:
the derivation found no computed key and no hand-over to code it cannot follow, or the signature
has no ``**kwargs``; and, for a signature with ``**kwargs``, when it is a near miss of a named argument
the file does not give (:func:`unknown_arguments`: ``embed_dimm`` would be swallowed and ``embed_dim``
keep its default). Elsewhere it is a **warning** (naming the closest valid key), so a valid file of
another BasicSR project is never refused. Top-level keys are open (other projects' pipelines may
read their own): an unknown one is an error only when it is a near-miss of a known key. The raised
:class:`OptionsError` lists each problem as an :class:`OptionProblem` (dotted key, kind, sentence).

Components declare keys their source does not show (read through a helper the derivation cannot
follow, or reserved for later) through the protocol of :mod:`rssr.basicsr.declarations`, and code that
is no component (e.g. a start-up hook reading a top-level key) calls :func:`declare_option_keys`.
Keys that BasicSR's own option files carry but BasicSR 1.4.2 no longer reads
(:data:`IGNORED_LEGACY_KEYS`) warn that they have no effect.
"""
from __future__ import annotations

import functools
import inspect
import os
import warnings
from dataclasses import dataclass
from enum import Enum
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Set, Tuple

from rssr.band_normalization import BandNormalization, BandNormalizationError, unknown_option_keys
from rssr.basicsr.declarations import (
    DATASET_OPTION_KEYS,
    OPTIMIZERS_BY_NAME,
    TOP_LEVEL_OPTION_KEYS,
    TRAIN_OPTION_KEYS,
    VAL_OPTION_KEYS,
    declared,
)
from rssr.basicsr.option_reads import OptionPath, OptionReads, class_reads, compared_names, function_reads
from rssr.basicsr.registration import lookup
from rssr.checkpoint import CHECKPOINT_FORMATS, checkpoint_format
from rssr.errors import UserError
from rssr.threads import OPTION_KEY as THREADS_OPTION_KEY
from rssr.threads import configure_threads
from rssr.utils import as_sentence, closest_names, did_you_mean, read_yaml_file

# Keys in BasicSR's and its derived projects' option files that BasicSR 1.4.2 reads nowhere.
IGNORED_LEGACY_KEYS: Dict[OptionPath, Set[str]] = {('datasets', '*'): {'use_shuffle'}}
_DECLARED = OptionReads()


def declare_option_keys(section: str, keys: Iterable[str]) -> None:
    """Declare option keys read by code that is neither a model nor a dataset class.

    ``section`` is a dotted option path: ``''`` for the top level, ``'train'``, ``'logger'``,
    ``'datasets.*'`` (every dataset phase), ...
    """
    path = tuple(part for part in section.split('.') if part)
    for key in keys:
        _DECLARED.read(path, key)


class ProblemKind(Enum):
    """What is wrong with an option key."""

    UNKNOWN_KEY = 'unknown key'  # read by no code that runs, or not an argument of the constructor it goes to
    MISSING_KEY = 'missing key'
    UNKNOWN_TYPE = 'unknown type'  # a `type:` (or optimizer, scheduler, backend name) that nothing builds
    MISSING_PATH = 'missing path'  # a data folder, meta-info file or checkpoint that does not exist
    BAD_VALUE = 'bad value'


@dataclass(frozen=True)
class OptionProblem:
    """One reason an option file cannot drive a run: the dotted option key, what is wrong, the sentence."""

    key: str
    kind: ProblemKind
    message: str


class OptionsError(UserError, ValueError):
    """The option file cannot drive a run; the message says what to change, ``problems`` lists each reason."""

    def __init__(self, message: str, problems: Sequence[OptionProblem] = ()) -> None:
        super().__init__(message)
        self.problems: Tuple[OptionProblem, ...] = tuple(problems)


@dataclass(frozen=True)
class UnknownArgument:
    """A keyword that a constructor's signature does not name.

    It is *refused* when the constructor has no ``**kwargs`` (the call would end in a TypeError) or when
    it is a typo: a near miss of a named argument that is not given, which ``**kwargs`` would swallow
    while the argument meant keeps its default.
    """

    key: str
    closest: Tuple[str, ...]  # the nearest argument names: of those not given for a typo, else of all
    is_typo: bool
    swallowed: bool  # the constructor takes **kwargs

    @property
    def refused(self) -> bool:
        return self.is_typo or not self.swallowed

    def sentence(self, owner: str) -> str:
        """``is not an option of <owner>; did you mean 'x'?`` and, for a swallowed typo, why that matters."""
        hint = did_you_mean(self.key, self.closest)
        if self.is_typo and self.swallowed:
            return (f'is not an option of {owner}{hint} Its **kwargs would swallow {self.key!r} and leave '
                    f'{self.closest[0]!r} at its default.')
        return f'is not an option of {owner}{hint}'


def unknown_arguments(target: Callable, given: Iterable[str], skip: Tuple[str, ...] = (),
                      extra: Iterable[str] = ()) -> List[UnknownArgument]:
    """The keys of ``given`` that ``target``'s signature (less ``skip``, plus ``extra``) does not name.

    The one rule for constructor keywords, shared by the option checker (``network_g``, losses,
    metrics, optimizers, schedulers) and ``rssr.infer --arch-kwargs``. A near miss of an argument
    that ``given`` also holds is no typo: official option files carry such extra keys for archs
    with ``**kwargs`` (MambaIR's ``window_size`` beside ``img_size``).
    """
    names, swallowed = signature_keys(target, skip)
    valid = names | set(extra)
    given = [str(key) for key in given]
    not_given = valid - set(given)
    found = []
    for key in given:
        if key in valid:
            continue
        meant = closest_names(key, not_given)
        found.append(UnknownArgument(key, tuple(meant or closest_names(key, valid)), bool(meant), swallowed))
    return found


def signature_keys(target: Callable, skip: Tuple[str, ...] = ()) -> Tuple[Set[str], bool]:
    """Keyword names ``target`` accepts (without ``skip``), and whether it also takes ``**kwargs``."""
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return set(), True
    names = {p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in skip}
    return names - {'self'}, any(p.kind == p.VAR_KEYWORD for p in params)


class _Checker:
    """Collects the problems (errors) and notes (warnings) found in one option file."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: List[OptionProblem] = []
        self.notes: List[str] = []

    def problem(self, key: str, kind: ProblemKind, message: str) -> None:
        """Record that option ``key`` (dotted) stops the run; ``message`` is the sentence the user reads.
        A key is reported once per kind (a typo of a required key is both unknown and the missing one's)."""
        if not any(p.key == key and p.kind == kind for p in self.problems):
            self.problems.append(OptionProblem(key, kind, message))

    def unknown_keys(self, where: str, given: Mapping[str, Any], accepts: Callable[[str], bool], known: Set[str],
                     owner: str, why_open: Optional[str], read_elsewhere: Callable[[str], Optional[str]],
                     legacy: Iterable[str] = ()) -> None:
        """Report the keys of ``given`` that ``accepts`` rejects.

        A key is an error only when it is a near-miss of a key ``owner`` reads, every key ``owner``
        reads is known (``why_open`` is None) and no other registered component reads it
        (``read_elsewhere`` names one that does): a typo. Any other unknown key is a warning, since
        code rssr cannot see (another project's copy of a class, a newer BasicSR) may read it. A key
        matching only a computed name (``pretrain_<network>``) is still a typo when it is a near miss of a
        read name that ``given`` lacks (``pretrain_network_gg`` for ``pretrain_network_g``).
        """
        for key in given:
            if str(key) in known:
                continue
            if accepts(str(key)):
                meant = did_you_mean(str(key), known - set(map(str, given)))
                if why_open is None and meant and read_elsewhere(str(key)) is None:
                    self.problem(_dotted(where, key), ProblemKind.UNKNOWN_KEY,
                                 f'{where}.{key} is not an option of {owner}{meant}')
                continue
            if key in legacy:
                self.notes.append(f'{where}.{key} is read by no code of BasicSR {_basicsr_version()} (a key of '
                                  f'older versions): it has no effect')
                continue
            hint = did_you_mean(str(key), known)
            reader = read_elsewhere(str(key))
            if why_open is None and hint and reader is None:
                self.problem(_dotted(where, key), ProblemKind.UNKNOWN_KEY,
                             f'{where}.{key} is not an option of {owner}{hint}')
            elif reader is not None:
                self.notes.append(f'{where}.{key} is read by {reader}, not by {owner}: it has no effect here')
            else:
                reason = f' ({why_open})' if why_open else ''
                self.notes.append(f'{where}.{key} is not read by {owner} as far as rssr can tell{reason}; '
                                  f'it is passed on but may be ignored{hint}')

    def section(self, where: str, given: Any, path: OptionPath, reads: OptionReads, owner: str,
                registry: Any) -> None:
        """Check the keys of the mapping at option ``path`` against what the code that runs reads;
        ``registry`` holds the other components whose reads excuse an unknown key."""
        if not isinstance(given, Mapping):
            return
        why_open = None if reads.confident(path) else _why_open(reads, path)
        self.unknown_keys(where, given, functools.partial(reads.accepts, path), reads.known(path), owner, why_open,
                          functools.partial(_reader_elsewhere, registry, path), IGNORED_LEGACY_KEYS.get(path, ()))

    def constructor_kwargs(self, where: str, spec: Mapping[str, Any], target: Callable, owner: str,
                           skip: Tuple[str, ...] = (), extra: Iterable[str] = (), typed: bool = True) -> None:
        """Check ``spec``'s keys (less ``type`` when ``typed``: the registry takes it) against ``target``'s
        signature plus ``extra`` (:func:`unknown_arguments`): without ``**kwargs`` any other key would end
        the run with a TypeError, and a typo of an argument not given would be swallowed, so both are errors;
        other keys ``**kwargs`` takes are warnings."""
        given = [key for key in spec if not (typed and key == 'type')]
        for unknown in unknown_arguments(target, given, skip, extra):
            key = _dotted(where, unknown.key)
            if unknown.refused:
                listing = '' if unknown.closest else f'; valid: {", ".join(sorted(signature_keys(target, skip)[0]))}'
                self.problem(key, ProblemKind.UNKNOWN_KEY, f'{key} {unknown.sentence(owner)}{listing}')
            else:
                self.notes.append(f'{key} is not a named argument of {owner} (which takes **kwargs); it is passed '
                                  f'on but may be ignored{did_you_mean(unknown.key, unknown.closest)}')

    def registered(self, where: str, spec: Any, registry: Any, kind: str) -> Optional[Any]:
        """Look up ``spec['type']`` in a BasicSR registry; report unknown names with the closest ones."""
        if not isinstance(spec, Mapping) or 'type' not in spec:
            self.missing_key(where, spec, 'type', f'{where} needs a `type:` naming a registered {kind}')
            return None
        return self.lookup(f'{where}.type', spec['type'], registry)

    def missing_key(self, where: str, spec: Any, key: str, needs: str) -> None:
        """The mapping ``spec`` at ``where`` lacks ``key`` (``needs`` says so); a near miss of it in ``spec``
        (``typ:``, ``total_iterr:``) is named as the typo."""
        misspelt = [k for k in spec if k != key and closest_names(str(k), [key])] if isinstance(spec, Mapping) else []
        if misspelt:
            typo = _dotted(where, misspelt[0])
            self.problem(typo, ProblemKind.UNKNOWN_KEY, f'{typo} is not an option; did you mean {key!r}? ({needs})')
        else:
            self.problem(_dotted(where, key), ProblemKind.MISSING_KEY, needs)

    def lookup(self, key: str, name: Any, registry: Any) -> Optional[Any]:
        """The object BasicSR's ``Registry.get`` returns for ``name`` (``<name>_basicsr`` and rssr's
        aliases such as ``SMSR`` included), or None with a problem naming the registry and the closest names."""
        found = lookup(registry, str(name))
        if found is not None:
            return found
        close = closest_names(str(name), registry._obj_map)
        listing = f'closest: {", ".join(close)}' if close else f'registered: {", ".join(sorted(registry._obj_map))}'
        self.problem(key, ProblemKind.UNKNOWN_TYPE,
                     f'{key} {name!r} is not in BasicSR\'s {registry._name} registry ({listing})')
        return None

    def error(self) -> Optional[OptionsError]:
        """One paragraph listing every problem, each a sentence ending in '.' or '?', or None."""
        if not self.problems:
            return None
        listed = ' '.join(f'({i}) {as_sentence(p.message)}' for i, p in enumerate(self.problems, 1))
        return OptionsError(f'rssr: cannot start from option file {self.path}: {listed} Nothing was run; fix '
                            f'the file and run the same command again.', self.problems)


def _dotted(where: str, key: Any) -> str:
    """The dotted option key of ``key`` in the section ``where`` (``<top level>`` for the file itself)."""
    return str(key) if where == '<top level>' else f'{where}.{key}'


def _reader_elsewhere(registry: Any, path: OptionPath, key: str) -> Optional[str]:
    """The name of a registered component (of ``registry``: models for most sections, datasets for
    ``datasets.*``) whose source reads ``key`` under ``path``, or None."""
    readers = _readers_by_key(registry, path)
    return readers.get(key)


@functools.lru_cache(maxsize=None)
def _readers_by_key(registry: Any, path: OptionPath) -> Dict[str, str]:
    """For each key read under ``path``, the registered components that read it, subclasses of another
    reader left out (``spectral_opt`` is read by RSSRModel, not by each of its subclasses)."""
    own_section = ('datasets', '*') if path[:1] == ('datasets',) else ()
    components: Dict[str, List[Tuple[str, Any]]] = {}
    for name, component in sorted(registry._obj_map.items()):
        reads = class_reads(component, own_section).update(declared_reads(component, own_section))
        for key in reads.known(path):
            components.setdefault(key, []).append((name, component))

    def is_root(component: Any, others: List[Tuple[str, Any]]) -> bool:
        return not any(other is not component and isinstance(component, type) and isinstance(other, type)
                       and issubclass(component, other) for _, other in others)

    return {key: ', '.join(name for name, component in found if is_root(component, found))
            for key, found in components.items()}


def _why_open(reads: OptionReads, path: OptionPath) -> str:
    if not reads.complete:
        return 'some of its source could not be read'
    where = reads.open_paths.get(path, '?')
    return f'it hands these options on at {where}'


@functools.lru_cache(maxsize=None)
def _basicsr_version() -> str:
    try:
        from basicsr.version import __version__
        return __version__
    except ImportError:
        return 'installed'


@functools.lru_cache(maxsize=None)
def pipeline_reads() -> OptionReads:
    """Keys read by BasicSR's train and test pipelines (options parsing, data loaders, loggers)
    and by rssr's start-up (thread settings; their top-level key is read through a constant)."""
    import basicsr.test
    import basicsr.train
    from basicsr.utils.options import parse_options

    reads = OptionReads()
    for function in (basicsr.train.train_pipeline, basicsr.test.test_pipeline, parse_options, configure_threads):
        reads.update(function_reads(function))
    reads.read((), THREADS_OPTION_KEY)
    return reads


def declared_reads(component: Any, own_section: OptionPath) -> OptionReads:
    """The keys a model or dataset class declares (:mod:`rssr.basicsr.declarations`)."""
    reads = OptionReads()
    sections = {TOP_LEVEL_OPTION_KEYS: (), TRAIN_OPTION_KEYS: ('train',), VAL_OPTION_KEYS: ('val',),
                DATASET_OPTION_KEYS: own_section}
    for declaration, path in sections.items():
        for key in declared(component, declaration):
            reads.read(path, key)
    return reads


def model_reads(model_class: Optional[type]) -> OptionReads:
    """Everything that reads options when ``model_class`` runs: pipelines, the model, declarations."""
    reads = OptionReads().update(pipeline_reads()).update(_DECLARED)
    if model_class is None:
        reads.complete = False
        return reads
    return reads.update(class_reads(model_class)).update(declared_reads(model_class, ()))


def dataset_reads(dataset_class: type, model: OptionReads) -> OptionReads:
    """What reads a dataset's options: the model-level readers plus the dataset class and its declarations."""
    section = ('datasets', '*')
    reads = OptionReads().update(model).update(class_reads(dataset_class, section))
    return reads.update(declared_reads(dataset_class, section))


def load_yaml(path: str) -> Dict[str, Any]:
    """Read an option file; a missing, unreadable or malformed file raises :class:`OptionsError`."""
    if not os.path.isfile(path):
        raise OptionsError(f'rssr: option file {path} does not exist (looked in {os.getcwd()}). Pass the path of '
                           f'a YAML file with -opt, e.g. -opt options/demo/sentinel2_x4_demo.yml.')
    opt = read_yaml_file(path, 'option file', lambda message: OptionsError(f'rssr: {message}.'))
    if not isinstance(opt, dict):
        raise OptionsError(f'rssr: option file {path} must hold a mapping of options (name:, model_type:, '
                           f'network_g:, datasets:, ...), not {type(opt).__name__}.')
    return opt




def check_options(path: str, is_train: bool = True) -> Dict[str, Any]:
    """Validate the option file at ``path`` for training or testing; return the parsed options.

    Raises:
        OptionsError: one paragraph listing every problem found. Keys that may be valid for code
        rssr cannot follow are reported with :func:`warnings.warn`.
    """
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY

    opt = load_yaml(path)
    check = _Checker(path)
    required = ['name', 'model_type', 'num_gpu', 'network_g', 'datasets', 'path']
    required += ['train', 'logger'] if is_train else ['val']
    for key in required:
        if key not in opt:
            check.missing_key('<top level>', opt, key, f'the top-level key `{key}:` is missing')
    model_class = check.lookup('model_type', opt['model_type'], MODEL_REGISTRY) if 'model_type' in opt else None
    model_name = f'model {getattr(model_class, "__name__", opt.get("model_type"))}'
    reads = model_reads(model_class)
    for key in _dataset_top_level_keys(opt.get('datasets'), DATASET_REGISTRY):
        reads.read((), key)
    check.section('<top level>', opt, (), reads, f'{model_name} or BasicSR\'s pipeline', MODEL_REGISTRY)
    for network in ('network_g', 'network_d'):
        if network in opt:
            arch = check.registered(network, opt[network], ARCH_REGISTRY, 'arch')
            if arch is not None:
                check.constructor_kwargs(network, opt[network], arch, f'arch {arch.__name__}',
                                         extra=reads.known((network,)))
    _check_datasets(check, opt.get('datasets'), is_train, DATASET_REGISTRY, reads)
    if is_train and isinstance(opt.get('train'), Mapping):
        _check_train(check, opt['train'], model_class, model_name, reads, LOSS_REGISTRY, MODEL_REGISTRY)
    if isinstance(opt.get('val'), Mapping):
        check.section('val', opt['val'], ('val',), reads, f'{model_name} validation', MODEL_REGISTRY)
        _check_metrics(check, opt['val'].get('metrics'), reads, METRIC_REGISTRY)
    if is_train and isinstance(opt.get('logger'), Mapping):
        check.section('logger', opt['logger'], ('logger',), reads, 'BasicSR\'s training logger', MODEL_REGISTRY)
        check.section('logger.wandb', opt['logger'].get('wandb'), ('logger', 'wandb'), reads,
                      'BasicSR\'s wandb logger', MODEL_REGISTRY)
        fmt = checkpoint_format(opt)
        if fmt not in CHECKPOINT_FORMATS:
            check.problem('logger.checkpoint_format', ProblemKind.BAD_VALUE,
                          f'logger.checkpoint_format must be {" or ".join(CHECKPOINT_FORMATS)}, not {fmt!r}')
    if isinstance(opt.get('path'), Mapping):
        check.section('path', opt['path'], ('path',), reads, f'{model_name} or BasicSR\'s pipeline', MODEL_REGISTRY)
        for key, value in opt['path'].items():
            if (key.startswith('pretrain_network') or key == 'resume_state') and value and not os.path.isfile(
                    os.path.expanduser(str(value))):
                check.problem(f'path.{key}', ProblemKind.MISSING_PATH, f'path.{key} {value} does not exist')
    if 'band_normalization' in opt:
        _check_band_normalization(check, opt['band_normalization'])
    if isinstance(opt.get('dist_params'), Mapping):
        _check_dist_params(check, opt['dist_params'])
    for note in check.notes:
        warnings.warn(f'rssr: {path}: {note}')
    error = check.error()
    if error is not None:
        raise error
    return opt


def _check_band_normalization(check: _Checker, spec: Any) -> None:
    """``band_normalization`` mistakes (each misspelled key, a bad mode) found before any data is read."""
    if isinstance(spec, Mapping):
        unknown = unknown_option_keys(spec)
        for key, message in unknown.items():
            check.problem(f'band_normalization.{key}', ProblemKind.UNKNOWN_KEY, message)
        spec = {key: value for key, value in spec.items() if str(key) not in unknown}
    try:
        BandNormalization.from_options(spec)
    except BandNormalizationError as err:
        check.problem('band_normalization', ProblemKind.BAD_VALUE, str(err))


def _check_dist_params(check: _Checker, params: Mapping[str, Any]) -> None:
    """BasicSR hands ``dist_params`` to ``init_dist`` only under ``--launcher slurm``, which passes them on to
    ``_init_dist_slurm(backend, port)``: any other key would end such a run with a TypeError."""
    from basicsr.utils.dist_util import _init_dist_slurm

    check.constructor_kwargs('dist_params', params, _init_dist_slurm, "BasicSR's init_dist (--launcher slurm)",
                             typed=False)


def _check_io_backend(check: _Checker, where: str, spec: Any) -> None:
    """A dataset's ``io_backend`` goes to BasicSR's ``FileClient(type, **rest)``, which builds the backend
    class ``type`` names with the rest as keyword arguments."""
    from basicsr.utils.file_client import FileClient

    backends = FileClient._backends
    if not isinstance(spec, Mapping) or 'type' not in spec:
        check.missing_key(where, spec, 'type', f'{where} needs a `type:` ({", ".join(backends)})')
    elif spec['type'] not in backends:
        check.problem(f'{where}.type', ProblemKind.UNKNOWN_TYPE, f'{where}.type {spec["type"]!r} is not one of '
                      f'{", ".join(backends)}{did_you_mean(str(spec["type"]), backends)}')
    else:
        check.constructor_kwargs(where, spec, backends[spec['type']], f'BasicSR\'s {spec["type"]} backend')


def _dataset_top_level_keys(datasets: Any, registry: Any) -> Set[str]:
    """Top-level keys the file's dataset classes declare (:data:`~rssr.basicsr.declarations.TOP_LEVEL_OPTION_KEYS`)."""
    specs = datasets.values() if isinstance(datasets, Mapping) else ()
    classes = [lookup(registry, str(spec.get('type'))) for spec in specs if isinstance(spec, Mapping)]
    return {key for cls in classes for key in declared(cls, TOP_LEVEL_OPTION_KEYS)}


def _check_datasets(check: _Checker, datasets: Any, is_train: bool, registry: Any, model: OptionReads) -> None:
    if datasets is None:
        return
    if not isinstance(datasets, Mapping) or not datasets:
        check.problem('datasets', ProblemKind.BAD_VALUE,
                      '`datasets:` must map phases (train, val, test_1, ...) to dataset options')
        return
    if is_train and 'train' not in datasets:
        check.missing_key('datasets', datasets, 'train', 'datasets.train is missing: training needs a train dataset')
    for phase, spec in datasets.items():
        where = f'datasets.{phase}'
        kind = str(phase).split('_')[0]
        if kind not in ('train', 'val', 'test'):
            check.problem(where, ProblemKind.UNKNOWN_KEY, f'{where}: the phase name must be train, val, val_<n>, '
                          f'test or test_<n>{did_you_mean(kind, ("train", "val", "test"))}')
        dataset_class = check.registered(where, spec, registry, 'dataset')
        if dataset_class is None:
            continue
        reads = dataset_reads(dataset_class, model)
        check.section(where, spec, ('datasets', '*'), reads, f'dataset type {spec["type"]}', registry)
        if 'io_backend' in spec and reads.accepts(('datasets', '*'), 'io_backend'):
            _check_io_backend(check, f'{where}.io_backend', spec['io_backend'])
        if kind == 'train' and is_train:
            for key in ('batch_size_per_gpu', 'num_worker_per_gpu'):
                if key not in spec:
                    check.missing_key(where, spec, key, f'{where}.{key} is missing')
        for key, value in spec.items():
            if (str(key).startswith('dataroot') or key == 'meta_info_file') and value is not None:
                for item in value if isinstance(value, list) else [value]:
                    if not os.path.exists(os.path.expanduser(str(item))):
                        check.problem(f'{where}.{key}', ProblemKind.MISSING_PATH,
                                      f'{where}.{key}: {item} does not exist (relative paths are read from '
                                      f'{os.getcwd()})')


def _check_train(check: _Checker, train: Mapping[str, Any], model_class: Optional[type], model_name: str,
                 reads: OptionReads, losses: Any, models: Any) -> None:
    check.section('train', train, ('train',), reads, f'{model_name} training', models)
    known = reads.known(('train',))
    for key, spec in train.items():
        if str(key).endswith('_opt') and isinstance(spec, Mapping):
            loss = check.registered(f'train.{key}', spec, losses, 'loss')
            if loss is not None:
                check.constructor_kwargs(f'train.{key}', spec, loss, f'loss {spec["type"]}')
    if 'total_iter' not in train:
        check.missing_key('train', train, 'total_iter', 'train.total_iter is missing')
    optimizers = optimizers_offered(model_class)
    for key in sorted(k for k in known | set(train) if str(k).startswith('optim_')):
        optim = train.get(key)
        if optim is None and key == 'optim_g' and key in known:
            check.missing_key('train', train, 'optim_g', 'train.optim_g needs a `type:` and `lr:`')
        elif isinstance(optim, Mapping) and 'type' not in optim:
            offered = f'({", ".join(optimizers)}) ' if optimizers else ''
            check.missing_key(f'train.{key}', optim, 'type', f'train.{key} needs a `type:` {offered}and `lr:`')
        elif isinstance(optim, Mapping) and optimizers:
            if optim['type'] not in optimizers:
                hint = did_you_mean(str(optim['type']), optimizers)
                check.problem(f'train.{key}.type', ProblemKind.UNKNOWN_TYPE,
                              f'train.{key}.type {optim["type"]!r} is not offered by {model_name} '
                              f'(choose from {", ".join(optimizers)}){hint}')
            else:
                check.constructor_kwargs(f'train.{key}', optim, optimizers[optim['type']],
                                         f'optimizer {optim["type"]}', skip=('params',))
    _check_scheduler(check, train.get('scheduler'), model_class, 'scheduler' in known)


def optimizers_offered(model_class: Optional[type]) -> Dict[str, Any]:
    """``optim_*.type`` names the model's ``get_optimizer`` accepts, each with its optimizer class:
    declared as :data:`~rssr.basicsr.declarations.OPTIMIZERS_BY_NAME`, else derived from the
    ``optim_type == 'Adam'`` branches."""
    offered = declared(model_class, OPTIMIZERS_BY_NAME)
    if offered:
        return dict(offered)
    found = compared_names(getattr(model_class, 'get_optimizer', None), 'optim_type')
    return {name: target for name, target in found.items() if target is not None}


def _check_scheduler(check: _Checker, scheduler: Any, model_class: Optional[type], read: bool) -> None:
    schedulers = {name: target for name, target in compared_names(
        getattr(model_class, 'setup_schedulers', None), 'scheduler_type').items() if target is not None}
    if not read or not schedulers:
        return
    if not isinstance(scheduler, Mapping) or 'type' not in scheduler:
        check.missing_key('train.scheduler', scheduler, 'type',
                          f'train.scheduler needs a `type:` ({", ".join(schedulers)})')
    elif scheduler['type'] not in schedulers:
        check.problem('train.scheduler.type', ProblemKind.UNKNOWN_TYPE,
                      f'train.scheduler.type {scheduler["type"]!r} is not one of {", ".join(schedulers)}'
                      f'{did_you_mean(str(scheduler["type"]), schedulers)}')
    else:
        check.constructor_kwargs('train.scheduler', scheduler, schedulers[scheduler['type']],
                                 f'scheduler {scheduler["type"]}', skip=('optimizer',))


def _check_metrics(check: _Checker, metrics: Any, reads: OptionReads, registry: Any) -> None:
    for name, spec in (metrics or {}).items():
        metric = check.registered(f'val.metrics.{name}', spec, registry, 'metric')
        if metric is not None:
            check.constructor_kwargs(f'val.metrics.{name}', spec, metric, f'metric {spec["type"]}',
                                     skip=('img', 'img2'), extra=reads.known(('val', 'metrics', '*')))
