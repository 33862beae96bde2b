"""Import every module of a package so that their registration decorators run."""
from __future__ import annotations

import importlib
import pkgutil


def import_submodules(package_name: str, package_path: list) -> None:
    """Import each public submodule of the package (in name order), so that its registrations run."""
    for info in sorted(pkgutil.iter_modules(package_path), key=lambda m: m.name):
        if not info.name.startswith('_'):
            importlib.import_module(f'{package_name}.{info.name}')
