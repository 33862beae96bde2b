"""Shared start-up of ``python -m rssr.train`` / ``python -m rssr.test``.

Checks the option file before any work starts, accepts both ``--local_rank`` and ``--local-rank``
(torch.distributed.launch spells it either way; torchrun passes LOCAL_RANK in the environment),
makes BasicSR's pipeline device-agnostic (:mod:`rssr.distributed`), runs it with the current
directory as root (``experiments/``, ``results/``, ``tb_logger/`` land there, and ``--auto_resume``
finds them there), and turns rssr's own stop conditions into a message and a non-zero exit.
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, List, Optional

EXIT_BAD_OPTIONS = 2
EXIT_NON_FINITE = 3


def normalize_argv(argv: List[str]) -> List[str]:
    """Rewrite ``--local-rank`` (either form) to BasicSR's ``--local_rank``."""
    return [('--local_rank' + arg[len('--local-rank'):]) if arg.startswith('--local-rank') else arg for arg in argv]


def run(pipeline: Callable[[str], None], is_train: bool, argv: Optional[List[str]] = None) -> None:
    """Validate the options named by ``-opt``, then run ``pipeline(os.getcwd())`` with BasicSR's argv."""
    import rssr  # noqa: F401  (registers rssr into BasicSR)
    from rssr.distributed import patch_basicsr
    from rssr.models.sr_model import NonFiniteLossError
    from rssr.options import OptionsError, check_options

    args = normalize_argv(sys.argv[1:] if argv is None else argv)
    sys.argv = [sys.argv[0]] + args
    known, _ = _opt_parser().parse_known_args(args)
    if known.opt is not None:
        try:
            check_options(known.opt, is_train=is_train)
        except OptionsError as err:
            sys.stderr.write(f'{err}\n')
            raise SystemExit(EXIT_BAD_OPTIONS) from None
    patch_basicsr()
    try:
        pipeline(os.getcwd())
    except NonFiniteLossError as err:
        sys.stderr.write(f'{err}\n')
        raise SystemExit(EXIT_NON_FINITE) from None


def _opt_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt')
    return parser
