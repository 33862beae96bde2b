"""Every script imports rssr before basicsr: ``import rssr`` installs the shims basicsr 1.4.2 needs on current
torchvision (a script that imports basicsr first dies with "No module named
'torchvision.transforms.functional_tensor'", as the README demo's evaluation once did)."""
import ast
from pathlib import Path

import pytest

from testkit import REPO

SCRIPTS = sorted((REPO / 'scripts').glob('*.py'))


def imported_modules(node: ast.AST) -> list:
    """(line, top-level package) of the imports directly in ``node``'s body, nested blocks included, not in
    nested functions or classes."""
    found, stack = [], list(ast.iter_child_nodes(node))
    while stack:
        child = stack.pop()
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(child, ast.Import):
            found += [(child.lineno, alias.name.split('.')[0]) for alias in child.names]
        elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
            found.append((child.lineno, child.module.split('.')[0]))
        stack.extend(ast.iter_child_nodes(child))
    return sorted(found)


def first_line(imports: list, package: str) -> float:
    return min((line for line, name in imports if name == package), default=float('inf'))


@pytest.mark.parametrize('script', SCRIPTS, ids=lambda path: path.name)
def test_rssr_is_imported_before_basicsr(script: Path):
    tree = ast.parse(script.read_text())
    module_imports = imported_modules(tree)
    scopes = [tree] + [node for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))]
    for scope in scopes:
        imports = imported_modules(scope)
        basicsr_line = first_line(imports, 'basicsr')
        if basicsr_line == float('inf'):
            continue
        rssr_line = min(first_line(imports, 'rssr'), first_line(module_imports, 'rssr'))
        assert rssr_line < basicsr_line, f'{script.name}:{basicsr_line} imports basicsr before any rssr import'
