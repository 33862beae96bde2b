"""``--import PKG``: bring another package's BasicSR components in before options are checked."""
from __future__ import annotations

import importlib
from typing import List, Sequence, Tuple

from rssr.errors import UserError


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


def import_plugins(packages: Sequence[str]) -> None:
    """Import each package (after rssr, so BasicSR is importable); a missing one is a user error."""
    import rssr  # noqa: F401  (BasicSR shims and registration first)

    for name in packages:
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as err:
            raise UserError(f'--import {name}: cannot import {err.name!r}; install it or put its folder on '
                            f'PYTHONPATH.') from None
