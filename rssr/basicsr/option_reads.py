"""Which option keys a component reads, derived from its source code.

BasicSR's models, datasets and pipeline functions, and those of projects built on BasicSR, read
their options as ``opt['key']``, ``opt.get('key')``, ``'key' in opt``, ``opt.pop('key')`` on
``opt``, ``self.opt``, ``self.opt['train']``, ``train_opt = self.opt['train']``,
``for phase, dataset_opt in opt['datasets'].items()`` and so on. :func:`class_reads` and
:func:`function_reads` parse the source of a class (with every base class that is not Python's or
torch's) or a function with :mod:`ast`, follow names bound to option mappings through
assignments, loops, ``deepcopy``, attributes of ``self`` and the calls they are passed to (functions
and methods of the same packages and of BasicSR and rssr; their source is read the same way), and
record every key read under each option path, e.g. ``('train',) -> {'ema_decay', 'optim_g', ...}``.

An option path is *open* when the code reads it with a computed key or hands the whole mapping to
code it cannot follow (``**opt``, a registry lookup): then its keys cannot all be known.
:attr:`OptionReads.complete` is False when some source could not be read. The option checker
(:mod:`rssr.basicsr.options`) refuses unknown keys only under paths that are neither.
"""
from __future__ import annotations

import ast
import builtins
import copy
import functools
import importlib
import importlib.util
import inspect
import re
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Set, Tuple

OptionPath = Tuple[str, ...]
ANY_KEY = '*'
SELF = object()  # the instance whose ``self.opt`` is being read
NOT_ANALYSED_ROOTS = {'builtins', 'torch', 'typing', 'abc', 'collections', 'numpy', 'functools'}
ALWAYS_FOLLOWED_ROOTS = {'basicsr', 'rssr'}
COPIES = (copy.deepcopy, copy.copy, dict)
KEY_READING_METHODS = ('get', 'pop', 'setdefault')
MAX_PATH_DEPTH = 6


def normalise(path: OptionPath) -> OptionPath:
    """Dataset phases and metric names are the user's: ``datasets.train`` and ``datasets.val_2``
    are both ``datasets.*``; ``val.metrics.psnr`` is ``val.metrics.*``."""
    if path[:1] == ('datasets',) and len(path) > 1:
        return ('datasets', ANY_KEY) + path[2:]
    if path[:2] == ('val', 'metrics') and len(path) > 2:
        return ('val', 'metrics', ANY_KEY) + path[3:]
    return path


@dataclass
class OptionReads:
    """Keys read under each option path, computed keys as patterns, and the paths whose keys are open."""

    keys: Dict[OptionPath, Set[str]] = field(default_factory=dict)
    patterns: Dict[OptionPath, Set[str]] = field(default_factory=dict)
    open_paths: Dict[OptionPath, str] = field(default_factory=dict)
    complete: bool = True

    def read(self, path: OptionPath, key: str) -> None:
        self.keys.setdefault(normalise(path), set()).add(key)

    def read_pattern(self, path: OptionPath, pattern: str) -> None:
        self.patterns.setdefault(normalise(path), set()).add(pattern)

    def open(self, path: OptionPath, where: str) -> None:
        """Mark ``path`` open, noting the code (``file:line``) that makes it so."""
        self.open_paths.setdefault(normalise(path), where)

    def update(self, other: 'OptionReads') -> 'OptionReads':
        for path, keys in other.keys.items():
            self.keys.setdefault(path, set()).update(keys)
        for path, patterns in other.patterns.items():
            self.patterns.setdefault(path, set()).update(patterns)
        for path, where in other.open_paths.items():
            self.open_paths.setdefault(path, where)
        self.complete = self.complete and other.complete
        return self

    def known(self, path: OptionPath) -> Set[str]:
        """The constant keys read under ``path``."""
        return set(self.keys.get(normalise(path), ()))

    def accepts(self, path: OptionPath, key: str) -> bool:
        """Whether some code reads ``key`` under ``path`` (by name or by a computed name)."""
        path = normalise(path)
        return key in self.keys.get(path, ()) or any(
            re.fullmatch(pattern, key) for pattern in self.patterns.get(path, ()))

    def confident(self, path: OptionPath) -> bool:
        """Whether every key read under ``path`` is known."""
        return self.complete and normalise(path) not in self.open_paths


@dataclass(frozen=True)
class _KeyOf:
    """A key taken from the mapping at ``path`` itself (``for key in opt['path']``)."""

    path: OptionPath


class _Outside:
    """Stands for an object of a package that could not be imported: calls to it are not followed."""

    __module__ = 'builtins'

    def __getattr__(self, name: str) -> '_Outside':
        return self


OUTSIDE = _Outside()
REGISTERED = object()  # a class looked up in a BasicSR registry: it is checked on its own


def _root(obj: Any) -> str:
    return (getattr(obj, '__module__', None) or '').split('.')[0]


@functools.lru_cache(maxsize=None)
def _parsed_function(code: Any) -> Optional[ast.AST]:
    """The ``def`` node of the function with this code object (None: no source)."""
    try:
        source = textwrap.dedent(inspect.getsource(code))
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError, IndentationError):
        return None
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            return node
    return None


def _unwrap(member: Any) -> Optional[Callable]:
    if isinstance(member, (staticmethod, classmethod)):
        member = member.__func__
    if isinstance(member, property):
        member = member.fget
    member = inspect.unwrap(member) if callable(member) else member
    return member if inspect.isfunction(member) else None


class _Reader:
    """Walks functions, binding local names and ``self`` attributes to option paths."""

    def __init__(self, reads: OptionReads, roots: Set[str]) -> None:
        self.reads = reads
        self.roots = roots | ALWAYS_FOLLOWED_ROOTS
        self.seen: Set[Any] = set()

    # ---- entry points ---------------------------------------------------------------------------
    def klass(self, cls: type, init_bindings: Dict[str, OptionPath]) -> None:
        """Every method of ``cls`` and its analysed bases; ``__init__``'s parameters bound as given."""
        attrs: Dict[str, OptionPath] = {'opt': init_bindings['opt']} if 'opt' in init_bindings else {}
        analysed = [base for base in cls.__mro__ if _root(base) not in NOT_ANALYSED_ROOTS]
        self.roots |= {_root(base) for base in analysed}
        for _ in range(2):  # attributes set in one method are read in others
            for base in analysed:
                for name, member in vars(base).items():
                    function = _unwrap(member)
                    if function is None:
                        continue
                    bindings = dict(init_bindings) if name == '__init__' else {}
                    self.function(function, bindings, owner=cls, definer=base, attrs=attrs, bound=True)

    def function(self, function: Callable, bindings: Dict[str, OptionPath], owner: Optional[type] = None,
                 definer: Optional[type] = None, attrs: Optional[Dict[str, OptionPath]] = None,
                 bound: bool = False) -> None:
        node = _parsed_function(function.__code__)
        if node is None:
            self.reads.complete = False
            return
        if bound and node.args.args:
            bindings = {**bindings, node.args.args[0].arg: SELF}
        if any(isinstance(p, tuple) and len(p) > MAX_PATH_DEPTH for p in bindings.values()):
            return  # a function that recurses into nested options, e.g. to print them
        attrs = {} if attrs is None else attrs
        key = (function.__code__, tuple(sorted((k, repr(v)) for k, v in bindings.items())), owner,
               tuple(sorted(attrs.items())))
        if key in self.seen:
            return
        self.seen.add(key)
        where = (function.__code__.co_filename, function.__code__.co_firstlineno - 1)
        _Scope(self, function.__globals__, dict(bindings), owner, definer, attrs, where).body(node.body)

    def call(self, target: Any, args: List[Optional[OptionPath]], kwargs: Dict[str, OptionPath],
             self_call: Optional[Tuple[type, type]], attrs: Optional[Dict[str, OptionPath]] = None) -> None:
        """Follow a call that receives option mappings into code of the followed packages."""
        if isinstance(target, type):
            if _root(target) not in self.roots:
                return
            init = _unwrap(target.__dict__.get('__init__')) or _unwrap(getattr(target, '__init__', None))
            if init is None:
                return
            self.klass(target, self._bind(init, [None] + args, kwargs))
            return
        function = _unwrap(target) if not inspect.ismethod(target) else _unwrap(target.__func__)
        if function is None or _root(function) not in self.roots:
            return
        bindings = self._bind(function, ([None] if self_call else []) + args, kwargs)
        owner, definer = self_call if self_call else (None, None)
        self.function(function, bindings, owner=owner, definer=definer, attrs=attrs, bound=bool(self_call))

    @staticmethod
    def _bind(function: Callable, args: List[Optional[OptionPath]], kwargs: Dict[str, OptionPath]
              ) -> Dict[str, OptionPath]:
        node = _parsed_function(function.__code__)
        if node is None:
            return {}
        names = [a.arg for a in node.args.posonlyargs + node.args.args]
        bindings = {names[i]: path for i, path in enumerate(args) if path is not None and i < len(names)}
        bindings.update({k: v for k, v in kwargs.items() if k in names + [a.arg for a in node.args.kwonlyargs]})
        return {k: v for k, v in bindings.items() if v is not SELF}


class _Scope:
    """One function body: statements in order, expressions evaluated to the option path they denote."""

    def __init__(self, reader: _Reader, globals_: Dict[str, Any], bindings: Dict[str, Any], owner: Optional[type],
                 definer: Optional[type], attrs: Dict[str, OptionPath], where: Tuple[str, int]) -> None:
        self.reader, self.reads = reader, reader.reads
        self.filename, self.line_offset = where
        self.imported: Dict[str, Any] = {}  # names imported inside the function
        self.strings: Dict[str, str] = {}  # local names holding a (formatted) string: their pattern
        self.globals, self.bindings, self.owner, self.definer, self.attrs = globals_, bindings, owner, definer, attrs

    # ---- statements -------------------------------------------------------------------------------
    def body(self, statements: Iterable[ast.AST]) -> None:
        for statement in statements:
            self.visit(statement)

    def visit(self, node: ast.AST) -> None:
        if isinstance(node, ast.Assign):
            path = self.expr(node.value)
            for target in node.targets:
                self.bind(target, path, node.value)
        elif isinstance(node, (ast.AnnAssign, ast.AugAssign)):
            path = self.expr(node.value) if node.value is not None else None
            self.bind(node.target, path, node.value)
        elif isinstance(node, (ast.For, ast.AsyncFor)):
            self.bind(node.target, *self.element(node.iter))
            self.body(node.body)
            self.body(node.orelse)
        elif isinstance(node, ast.expr):
            self.expr(node)
        elif isinstance(node, ast.ClassDef):
            return
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            self.local_import(node)
        else:
            for child in ast.iter_child_nodes(node):
                self.visit(child)

    def bind(self, target: ast.AST, path: Any, value: Optional[ast.AST] = None) -> None:
        """Bind a name or ``self.<attr>`` to ``path``; a subscript target counts as a key written."""
        if isinstance(target, ast.Name):
            pattern = _string_pattern(value, self.strings)
            if pattern is not None:
                self.strings[target.id] = pattern
            if path is not None:
                self.bindings[target.id] = path
        elif isinstance(target, ast.Attribute) and self._is_self(target.value):
            if path is not None and path is not SELF:
                self.attrs[target.attr] = path
        elif isinstance(target, (ast.Tuple, ast.List)):
            if isinstance(path, tuple) and path and isinstance(path[0], _KeyOf):  # (key, value path)
                for element, element_path in zip(target.elts, path):
                    self.bind(element, element_path)
            elif isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts):
                for element, element_value in zip(target.elts, value.elts):
                    self.bind(element, self.expr(element_value))
        elif isinstance(target, ast.Subscript):  # a key written; a computed one says nothing about reads
            base = self.expr(target.value)
            if _is_path(base) and isinstance(target.slice, ast.Constant) and isinstance(target.slice.value, str):
                self.reads.read(base, target.slice.value)
        elif isinstance(target, ast.Starred):
            self.bind(target.value, None)

    def element(self, iterable: ast.AST) -> Tuple[Any, None]:
        """What a loop over ``iterable`` binds: ``P.items()`` gives (key, P.*), ``P.values()`` P.*."""
        if isinstance(iterable, ast.Call) and isinstance(iterable.func, ast.Attribute) and not iterable.args:
            base = self.expr(iterable.func.value)
            if isinstance(base, tuple) and not (base and isinstance(base[0], tuple)):
                if iterable.func.attr == 'items':
                    return (_KeyOf(normalise(base)), base + (ANY_KEY,)), None
                if iterable.func.attr == 'values':
                    return base + (ANY_KEY,), None
                if iterable.func.attr == 'keys':
                    return _KeyOf(normalise(base)), None
            return None, None
        base = self.expr(iterable)
        if isinstance(base, list) and base:  # a list of keys of one mapping
            return base[0], None
        return (_KeyOf(normalise(base)) if _is_path(base) else None), None

    # ---- expressions ------------------------------------------------------------------------------
    def constant_string(self, node: ast.AST) -> Optional[str]:
        """The string ``node`` is: a literal, or a module constant such as ``OPTION_KEY = 'num_threads'``."""
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return node.value
        if isinstance(node, ast.Name) and node.id.isupper() and node.id not in self.bindings:
            value = self.globals.get(node.id)
            return value if isinstance(value, str) else None
        return None

    def at(self, node: ast.AST) -> str:
        """``file:line`` of ``node``, to say where a path was opened."""
        return f'{self.filename}:{node.lineno + self.line_offset}'

    def _is_self(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and self.bindings.get(node.id) is SELF

    def expr(self, node: Optional[ast.AST]) -> Any:
        """Record the keys read in ``node``; return the option path it evaluates to (or SELF, or None)."""
        if node is None:
            return None
        if isinstance(node, ast.Name):
            return self.bindings.get(node.id)
        if isinstance(node, ast.Attribute):
            if self._is_self(node.value):
                return self.attrs.get(node.attr)
            return REGISTERED if self.expr(node.value) is REGISTERED else None
        if isinstance(node, ast.Subscript):
            base = self.expr(node.value)
            return self.key(base, node.slice)
        if isinstance(node, ast.Call):
            if self._is_registry_lookup(node):
                self.expr(node.args[0] if node.args else None)
                return REGISTERED
            return self.call(node)
        if isinstance(node, ast.Compare):
            self.expr(node.left)
            for op, comparator in zip(node.ops, node.comparators):
                container = self.expr(comparator)
                if isinstance(op, (ast.In, ast.NotIn)) and _is_path(container):
                    self.key(container, node.left)
            return None
        if isinstance(node, ast.BoolOp):
            paths = [self.expr(value) for value in node.values]
            return next((p for p in paths if _is_path(p)), None)
        if isinstance(node, ast.IfExp):
            self.expr(node.test)
            body, orelse = self.expr(node.body), self.expr(node.orelse)
            return body if _is_path(body) else orelse if _is_path(orelse) else None
        if isinstance(node, ast.NamedExpr):
            path = self.expr(node.value)
            self.bind(node.target, path)
            return path
        if isinstance(node, (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)):
            for generator in node.generators:
                self.bind(generator.target, *self.element(generator.iter))
                for condition in generator.ifs:
                    self.expr(condition)
            values = [self.expr(getattr(node, part, None)) for part in ('elt', 'key', 'value')]
            return [values[0]] if isinstance(values[0], _KeyOf) else None
        if isinstance(node, ast.Lambda):
            self.expr(node.body)
            return None
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.expr):
                self.expr(child)
            else:
                self.visit(child)
        return None

    def key(self, base: Any, key_node: ast.AST) -> Optional[OptionPath]:
        """Record the key ``key_node`` read from the mapping at ``base``; return the value's path."""
        self.expr(key_node)
        if not _is_path(base):
            return None
        constant = self.constant_string(key_node)
        if constant is not None:
            self.reads.read(base, constant)
            return base + (constant,)
        pattern = _string_pattern(key_node, self.strings)
        if pattern is not None:
            self.reads.read_pattern(base, pattern)
        elif not (isinstance(key_node, ast.Name) and self.bindings.get(key_node.id) == _KeyOf(normalise(base))):
            self.reads.open(base, self.at(key_node))
        return base + (ANY_KEY,)

    def call(self, node: ast.Call) -> Any:
        func = node.func
        receiver = self.expr(func.value) if isinstance(func, ast.Attribute) else None
        if _is_path(receiver):
            if func.attr in KEY_READING_METHODS and node.args:
                for extra in node.args[1:]:
                    self.expr(extra)
                return self.key(receiver, node.args[0])
            if func.attr == 'copy':
                return receiver
            if func.attr == 'update':
                self.reads.open(receiver, self.at(node))
        args = [self.expr(arg.value if isinstance(arg, ast.Starred) else arg) for arg in node.args]
        kwargs: Dict[str, OptionPath] = {}
        for keyword in node.keywords:
            path = self.expr(keyword.value)
            if keyword.arg is None and _is_path(path):
                self.reads.open(path, self.at(node))  # **opt: every key handed on
            elif keyword.arg is not None and _is_path(path):
                kwargs[keyword.arg] = path
        callee = receiver if isinstance(func, ast.Attribute) else self.expr(func)
        if isinstance(func, ast.Name) and func.id == 'getattr' and args and args[0] is REGISTERED:
            return REGISTERED
        passed = [p for p in args if _is_path(p)] + list(kwargs.values())
        if not passed or callee is REGISTERED:
            return None  # nothing handed on, or handed to a registered component (checked on its own)
        target, self_call = self.resolve(func)
        if target is None:
            for path in passed:
                self.reads.open(path, self.at(node))
            return None
        if any(target is copier for copier in COPIES) and args and _is_path(args[0]):
            return args[0]
        self.reader.call(target, [p if _is_path(p) else None for p in args], kwargs, self_call,
                         self.attrs if self_call else None)
        return None

    def _is_registry_lookup(self, func: ast.AST) -> bool:
        """``SOME_REGISTRY.get(name)``: a registered class, built from options it is handed."""
        if not (isinstance(func, ast.Call) and isinstance(func.func, ast.Attribute) and func.func.attr == 'get'):
            return False
        from basicsr.utils.registry import Registry
        registry, _ = self.resolve(func.func.value)
        return isinstance(registry, Registry)

    def resolve(self, func: ast.AST) -> Tuple[Any, Optional[Tuple[type, type]]]:
        """The object a call target names: a global, a dotted global, ``self.method``, ``super().method``."""
        if isinstance(func, ast.Name):
            if func.id in self.imported:
                return self.imported[func.id], None
            if func.id in self.bindings:
                return None, None
            if func.id in self.globals:
                return self.globals[func.id], None
            return getattr(builtins, func.id, None), None
        if not isinstance(func, ast.Attribute):
            return None, None
        if self._is_self(func.value) and self.owner is not None:
            return self._method(self.owner.__mro__, func.attr)
        if isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Name) \
                and func.value.func.id == 'super' and self.owner is not None and self.definer is not None:
            mro = self.owner.__mro__
            return self._method(mro[mro.index(self.definer) + 1:], func.attr)
        base, _ = self.resolve(func.value)
        return (getattr(base, func.attr, None), None) if base is not None else (None, None)

    def local_import(self, node: ast.AST) -> None:
        """Bind the names an ``import`` inside the function brings in. Modules outside the followed
        packages are not imported (nothing there is followed); one of them that cannot be imported
        leaves its names unresolvable."""
        for alias in node.names:
            name = alias.asname or alias.name.split('.')[0]
            module_name = node.module if isinstance(node, ast.ImportFrom) else alias.name
            if isinstance(node, ast.ImportFrom) and node.level:
                package = self.globals.get('__package__') or ''
                module_name = importlib.util.resolve_name('.' * node.level + (node.module or ''), package)
            if module_name.split('.')[0] not in self.reader.roots:
                self.imported[name] = OUTSIDE
                continue
            try:
                module = importlib.import_module(module_name)
                value = getattr(module, alias.name) if isinstance(node, ast.ImportFrom) else \
                    (module if alias.asname else importlib.import_module(name))
            except Exception:  # noqa: BLE001  (any import failure: the name stays unresolvable)
                continue
            self.imported[name] = value

    def _method(self, classes: Iterable[type], name: str) -> Tuple[Any, Optional[Tuple[type, type]]]:
        for cls in classes:
            if name in vars(cls):
                member = vars(cls)[name]
                is_static = isinstance(member, staticmethod)
                return _unwrap(member), (None if is_static else (self.owner, cls))
        return None, None


def _is_path(value: Any) -> bool:
    return isinstance(value, tuple) and not (value and isinstance(value[0], _KeyOf))


def _string_pattern(node: Optional[ast.AST], strings: Mapping[str, str]) -> Optional[str]:
    """A regular expression for the strings ``node`` may evaluate to (a constant, an f-string, a local
    name assigned one of those), or None."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return re.escape(node.value)
    if isinstance(node, ast.JoinedStr):
        return ''.join(re.escape(part.value) if isinstance(part, ast.Constant) else '.*' for part in node.values)
    if isinstance(node, ast.Name):
        return strings.get(node.id)
    return None


@functools.lru_cache(maxsize=None)
def class_reads(cls: type, option_path: OptionPath = ()) -> OptionReads:
    """Option keys read by ``cls`` (a model, dataset, ...) whose ``__init__(self, opt)`` gets the
    options at ``option_path``: ``()`` for a model, ``('datasets', '*')`` for a dataset."""
    reads = OptionReads()
    reader = _Reader(reads, {_root(cls)})
    init = _unwrap(getattr(cls, '__init__', None))
    node = _parsed_function(init.__code__) if init is not None else None
    params = [a.arg for a in node.args.args[1:]] if node is not None else []
    try:
        reader.klass(cls, {params[0]: option_path} if params else {})
    except RecursionError:
        reads.complete = False
    return reads


@functools.lru_cache(maxsize=None)
def function_reads(function: Callable, parameter: str = 'opt') -> OptionReads:
    """Option keys read by ``function`` whose ``parameter`` (or local of that name) holds all options."""
    reads = OptionReads()
    try:
        _Reader(reads, {_root(function)}).function(function, {parameter: ()})
    except RecursionError:
        reads.complete = False
    return reads


def compared_names(function: Optional[Callable], subject: str) -> Dict[str, Optional[Any]]:
    """Names ``subject`` is compared with in ``function`` (``x == 'Adam'``, ``x in ['A', 'B']``),
    each with the object the branch calls first (resolved in the function's module), or None.

    Derives the optimizers a model's ``get_optimizer`` offers and the schedulers its
    ``setup_schedulers`` builds."""
    node = _parsed_function(function.__code__) if function is not None and hasattr(function, '__code__') else None
    if node is None:
        return {}
    found: Dict[str, Optional[Any]] = {}
    for branch in ast.walk(node):
        if not isinstance(branch, ast.If) or not isinstance(branch.test, ast.Compare):
            continue
        test = branch.test
        if not (isinstance(test.left, ast.Name) and test.left.id == subject and len(test.ops) == 1):
            continue
        comparator = test.comparators[0]
        if isinstance(test.ops[0], ast.Eq) and isinstance(comparator, ast.Constant):
            names = [comparator.value]
        elif isinstance(test.ops[0], ast.In) and isinstance(comparator, (ast.List, ast.Tuple, ast.Set)):
            names = [e.value for e in comparator.elts if isinstance(e, ast.Constant)]
        else:
            continue
        target = _first_called(branch.body, function.__globals__)
        found.update({str(name): target for name in names})
    return found


def _first_called(statements: List[ast.stmt], globals_: Dict[str, Any]) -> Optional[Any]:
    for statement in statements:
        for node in ast.walk(statement):
            if isinstance(node, ast.Call):
                target = _dotted(node.func, globals_)
                if callable(target):
                    return target
    return None


def _dotted(node: ast.AST, globals_: Dict[str, Any]) -> Optional[Any]:
    if isinstance(node, ast.Name):
        return globals_.get(node.id, sys.modules.get(node.id))
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value, globals_)
        return getattr(base, node.attr, None) if base is not None else None
    return None
