"""Shared start-up of ``python -m rssr.train`` / ``python -m rssr.test``.

Checks the option file before any work starts, accepts both ``--local_rank`` and ``--local-rank``
(torch.distributed.launch spells it either way; torchrun passes LOCAL_RANK in the environment),
applies the ``CLI`` entries of the patch table (:mod:`rssr.basicsr.patches`: device-agnostic
distribution, errors that name the culprit, atomic checkpoints), runs it with the current
directory as root (``experiments/``, ``results/``, ``tb_logger/`` land there, and ``--auto_resume``
finds them there), and turns rssr's own stop conditions into a message and a non-zero exit.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import List, Optional

from rssr.errors import EXIT_BAD_OPTIONS, EXIT_NON_FINITE, user_errors  # noqa: F401  (re-exported)


def normalize_argv(argv: List[str]) -> List[str]:
    """Rewrite ``--local-rank`` (either form) to BasicSR's ``--local_rank``."""
    return [('--local_rank' + arg[len('--local-rank'):]) if arg.startswith('--local-rank') else arg for arg in argv]


def run(pipeline: str, is_train: bool, argv: Optional[List[str]] = None) -> None:
    """Import ``--import`` packages, validate the options named by ``-opt``, set threads, then run
    BasicSR's ``pipeline`` (``'module:function'``, imported only then) as ``function(os.getcwd())``
    with BasicSR's argv; user errors end in one paragraph."""
    from rssr.basicsr.plugins import exit_if_rssr_shadowed, import_plugins, pop_import_args

    exit_if_rssr_shadowed()
    with user_errors('rssr.train' if is_train else 'rssr.test'):
        args, packages = pop_import_args(normalize_argv(sys.argv[1:] if argv is None else argv))
        import_plugins(packages)
        from rssr.basicsr.options import check_options
        from rssr.basicsr.patches import CLI, apply_patches
        from rssr.cpu_memory import retain_freed_memory
        from rssr.threads import configure_threads

        sys.argv = [sys.argv[0]] + args
        known, _ = _opt_parser().parse_known_args(args)
        opt = check_options(known.opt, is_train=is_train) if known.opt is not None else None
        configure_threads(opt)
        retain_freed_memory()
        apply_patches(CLI)
        module, function = pipeline.split(':')
        getattr(importlib.import_module(module), function)(os.getcwd())


def _opt_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    return parser
