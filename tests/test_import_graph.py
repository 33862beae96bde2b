"""Every rssr module imports, and the imports among rssr modules (module-level and inside functions) form no
cycle and run only downward through the layers of :data:`LAYERS`; only the BasicSR bridge (rssr/basicsr/), the
package face (``import rssr`` connects to BasicSR) and the CLI modules import basicsr or rssr.basicsr."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Dict, List, Set

from testkit import REPO

PACKAGE = REPO / 'rssr'
AUTOIMPORT_CALL = 'import_submodules'  # rssr._autoimport: a package __init__ that imports all its submodules

# The layers of rssr, bottom first: a top-level module or package (a "unit") imports only units of lower layers.
LAYERS = (
    ('foundations', {'rssr.utils', 'rssr.threads', 'rssr.cpu_memory', 'rssr.torchrun', 'rssr._autoimport',
                     'rssr.band_names', 'rssr.version'}),
    ('errors, registries, kernels', {'rssr.errors', 'rssr.registry', 'rssr.ops'}),
    ('building blocks, raster io', {'rssr.layers', 'rssr.io'}),
    ('components', {'rssr.band_normalization', 'rssr.losses', 'rssr.metrics', 'rssr.data'}),
    ('ONNX graphs of networks', {'rssr.onnx_export'}),
    ('checkpoints, scene inference, preparation', {'rssr.checkpoint', 'rssr.inference', 'rssr.preparation'}),
    ('model zoo', {'rssr.zoo'}),
    ('networks', {'rssr.archs', 'rssr.weights'}),
    ('BasicSR bridge', {'rssr.basicsr'}),
    ('package face', {'rssr'}),
    ('CLIs', {'rssr.train', 'rssr.test', 'rssr.infer', 'rssr.info'}),
    ('CLIs built on rssr.infer', {'rssr.export'}),
)
BRIDGE = 'rssr.basicsr'
MAY_IMPORT_BASICSR = {BRIDGE} | LAYERS[-3][1] | LAYERS[-2][1] | LAYERS[-1][1]


def module_files() -> Dict[str, Path]:
    """Dotted module name -> source file, for every module of the rssr package."""
    modules = {}
    for path in sorted(PACKAGE.rglob('*.py')):
        parts = list(path.relative_to(REPO).with_suffix('').parts)
        if parts[-1] == '__init__':
            parts.pop()
        modules['.'.join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: Dict[str, Path]) -> Set[str]:
    """The rssr modules that ``name`` imports anywhere in its source (a package's auto-imported submodules too)."""
    package = name if path.name == '__init__.py' else name.rpartition('.')[0]
    found: Set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name in modules)
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')[:len(package.split('.')) - node.level + 1] if node.level else []
            source = '.'.join(base + ([node.module] if node.module else []))
            for alias in node.names:
                submodule = f'{source}.{alias.name}'
                found.update([submodule] if submodule in modules else [source] if source in modules else [])
        elif isinstance(node, ast.Call) and getattr(node.func, 'id', None) == AUTOIMPORT_CALL:
            found.update(module for module in modules if module.rpartition('.')[0] == name
                         and not module.rpartition('.')[2].startswith('_'))
    return found - {name}


def unit(module: str) -> str:
    """The top-level module or package of rssr that ``module`` belongs to (its layer's member)."""
    return '.'.join(module.split('.')[:2])


def layer_of() -> Dict[str, int]:
    return {member: index for index, (_, members) in enumerate(LAYERS) for member in members}


def upward_edges(graph: Dict[str, Set[str]]) -> List[str]:
    """Imports between two units that do not run strictly down :data:`LAYERS`, as 'a -> b' lines."""
    layer = layer_of()
    return sorted(f'{module} -> {target} ({LAYERS[layer[unit(module)]][0]} -> {LAYERS[layer[unit(target)]][0]})'
                  for module, targets in graph.items() for target in targets
                  if unit(module) != unit(target) and layer[unit(target)] >= layer[unit(module)])


def basicsr_imports(path: Path) -> List[str]:
    """The imports of basicsr or rssr.basicsr anywhere in ``path`` (inside functions too), as 'line: module'."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        names = ([alias.name for alias in node.names] if isinstance(node, ast.Import) else
                 [node.module or ''] + [f'{node.module}.{alias.name}' for alias in node.names]
                 if isinstance(node, ast.ImportFrom) and not node.level else [])
        found += [f'{node.lineno}: {name}' for name in names
                  if name.split('.')[0] == 'basicsr' or name.startswith(BRIDGE + '.') or name == BRIDGE][:1]
    return found


def find_cycle(graph: Dict[str, Set[str]]) -> List[str]:
    """One import cycle of ``graph`` as a list of modules (first == last), or [] when there is none."""
    state: Dict[str, str] = {}
    stack: List[str] = []

    def visit(module: str) -> List[str]:
        state[module] = 'open'
        stack.append(module)
        for target in sorted(graph[module]):
            if state.get(target) == 'open':
                return stack[stack.index(target):] + [target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        state[module] = 'done'
        stack.pop()
        return []

    for module in sorted(graph):
        if module not in state:
            cycle = visit(module)
            if cycle:
                return cycle
    return []


def test_every_module_imports():
    import rssr  # noqa: F401  (first: installs BasicSR's shims before a bridge module imports basicsr)

    for name in module_files():
        importlib.import_module(name)


def test_imports_among_rssr_modules_have_no_cycle():
    modules = module_files()
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert graph['rssr'] >= {'rssr.archs', 'rssr.basicsr.import_hook'}  # the parser sees what it should
    assert 'rssr.archs.repmamba' in graph['rssr.archs']
    cycle = find_cycle(graph)
    assert not cycle, 'import cycle: ' + ' -> '.join(cycle)


def test_imports_run_down_the_layers():
    modules = module_files()
    assert {unit(name) for name in modules} == set(layer_of()), 'every top-level module has its place in LAYERS'
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    assert 'rssr.inference.self_ensemble' in graph['rssr.basicsr.models.sr_model']  # the parser sees what it should
    assert upward_edges(graph) == []


def test_upward_edges_are_found():
    graph = {'rssr.ops.hilbert': {'rssr.layers.mlp'}, 'rssr.layers.mlp': {'rssr.ops.hilbert', 'rssr.layers.init'}}
    assert upward_edges(graph) == [
        'rssr.ops.hilbert -> rssr.layers.mlp (errors, registries, kernels -> building blocks, raster io)']


def test_only_the_bridge_the_package_face_and_the_clis_import_basicsr():
    leaks = {f'{path.relative_to(REPO)}:{line}' for name, path in module_files().items()
             if unit(name) not in MAY_IMPORT_BASICSR for line in basicsr_imports(path)}
    assert leaks == set()
    assert basicsr_imports(PACKAGE / 'basicsr' / 'loading.py')  # the parser sees what it should


def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) == []
