"""``--import PKG``: bring another package's BasicSR components in before options are checked.

``python -m rssr.train/test/infer --import PKG`` (repeatable) imports rssr first (its import hook
installs BasicSR's shims and rssr's registrations when basicsr is imported, see
:mod:`rssr.basicsr.import_hook`), then each package in the order given, so a package that imports
basicsr at its top level works whatever it imports first. Its archs, models,
losses, datasets and metrics are then in BasicSR's registries when the option file is checked.
"""
from __future__ import annotations

import importlib
import os
import sys
from typing import List, Sequence, Tuple

from rssr.errors import EXIT_BAD_OPTIONS, UserError


def pop_import_args(argv: Sequence[str]) -> Tuple[List[str], List[str]]:
    """Split ``--import PKG`` / ``--import=PKG`` (repeatable) out of ``argv``: (rest, packages)."""
    rest: List[str] = []
    packages: List[str] = []
    args = iter(argv)
    for arg in args:
        if arg == '--import':
            value = next(args, None)
            if value is None:
                raise UserError('--import needs a package name, e.g. --import hat')
            packages.append(value)
        elif arg.startswith('--import='):
            packages.append(arg[len('--import='):])
        else:
            rest.append(arg)
    return rest, packages


def exit_if_rssr_shadowed() -> None:
    """Stop with an explanation when ``rssr`` was imported from a folder without ``__init__.py``.

    Under ``python -m``, the current directory comes first on ``sys.path``; a folder named ``rssr``
    there (e.g. a clone called ``rssr``, run from its parent directory) becomes an empty namespace
    package that hides the installed rssr, while ``rssr.train`` itself still loads from the
    installation. Nothing else of rssr or BasicSR can be set up then, so this prints the paragraph
    and exits itself, before :func:`rssr.errors.user_errors` would need them.
    """
    package = sys.modules.get('rssr')
    if package is None or getattr(package, '__file__', None) is not None:
        return
    folders = ', '.join(os.path.abspath(path) for path in getattr(package, '__path__', []))
    sys.stderr.write(
        f'rssr: the folder {folders} hides the installed rssr package: Python imported it as "rssr" because the '
        f'current directory ({os.getcwd()}) comes first on the module path and that folder has no __init__.py, so '
        f'BasicSR and rssr were never set up. Run the command from another directory (e.g. cd into the clone, and '
        f'give -opt as a path from there), or rename that folder.\n')
    raise SystemExit(EXIT_BAD_OPTIONS)


def import_plugins(packages: Sequence[str]) -> None:
    """Import each package (rssr itself is imported already: this module is part of it, and its import hook
    sets BasicSR up, see :mod:`rssr.basicsr.import_hook`); a missing one is a user error naming it."""
    exit_if_rssr_shadowed()
    for name in packages:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name is not None and (name == err.name or name.startswith(err.name + '.')):
                raise UserError(f'--import {name}: no module named {err.name!r} (looked in the current directory '
                                f'and on sys.path); install it, or put the folder that contains it on '
                                f'PYTHONPATH.') from None
            raise UserError(f'--import {name}: {name} was found but needs the module {err.name!r}, which is not '
                            f'installed; install it (e.g. pip install {err.name}) and run again.') from None
