"""setup.py's console scripts: each target imports and is callable, and every ``python -m rssr.<cli>`` the
README shows has one (``rssr-<cli>``), so installed users get the same commands without ``python -m``."""
from __future__ import annotations

import ast
import importlib
import re
from typing import Dict

import pytest

from testkit import REPO


def console_scripts() -> Dict[str, str]:
    """``{script name: 'module:function'}`` as setup.py declares them (read, not run)."""
    tree = ast.parse((REPO / 'setup.py').read_text(encoding='utf-8'))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and getattr(node.func, 'id', '') == 'setup']
    entry_points = next(ast.literal_eval(keyword.value) for keyword in calls[0].keywords
                        if keyword.arg == 'entry_points')
    pairs = (line.split('=') for line in entry_points['console_scripts'])
    return {name.strip(): target.strip() for name, target in pairs}


def readme_cli_modules() -> set:
    """The ``rssr.<cli>`` modules the README runs with ``-m`` (``python -m`` and ``torchrun ... -m``)."""
    return set(re.findall(r'-m (rssr\.\w+)', (REPO / 'README.md').read_text(encoding='utf-8')))


@pytest.mark.parametrize('name, target', sorted(console_scripts().items()))
def test_console_script_target_is_importable_and_callable(name, target):
    module_name, function_name = target.split(':')
    assert name == 'rssr-' + module_name.rsplit('.', 1)[-1]
    assert callable(getattr(importlib.import_module(module_name), function_name))


def test_every_cli_in_the_readme_has_a_console_script():
    modules = readme_cli_modules()
    assert {'rssr.train', 'rssr.test', 'rssr.infer', 'rssr.info'} <= modules
    targets = {target.split(':')[0] for target in console_scripts().values()}
    assert modules <= targets, f'no console script for {sorted(modules - targets)} (add it to setup.py)'


def test_ci_runs_the_readme_test_command():
    """``.ci/run`` and the README run the same lint and test command (the durations table included)."""
    command = re.compile(r'pip install -e "\.\[test,onnx\]" && ruff check \. && python -m pytest [^\n`]*')
    readme = command.findall((REPO / 'README.md').read_text(encoding='utf-8'))
    assert readme and set(readme) == set(command.findall((REPO / '.ci' / 'run').read_text(encoding='utf-8')))
    assert '--durations=30' in readme[0]
