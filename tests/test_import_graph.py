"""Every rssr module imports, and the imports among rssr modules (module-level and inside functions) form no
cycle: the layers (ops <- layers <- archs <- losses/metrics/data <- BasicSR bridge <- CLIs) stay layers."""
from __future__ import annotations

import ast
import importlib
from pathlib import Path
from typing import Dict, List, Set

from testkit import REPO

PACKAGE = REPO / 'rssr'
AUTOIMPORT_CALL = 'import_submodules'  # rssr._autoimport: a package __init__ that imports all its submodules


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
    assert graph['rssr'] >= {'rssr.archs', 'rssr.basicsr.activation'}  # the parser sees what it should
    assert 'rssr.archs.repmamba' in graph['rssr.archs']
    cycle = find_cycle(graph)
    assert not cycle, 'import cycle: ' + ' -> '.join(cycle)


def test_find_cycle_finds_one():
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) == []
