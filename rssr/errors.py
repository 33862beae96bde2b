"""Turn mistakes a user can fix into one paragraph and a non-zero exit, never a bare traceback.

Every CLI (``rssr.train``, ``rssr.test``, ``rssr.infer``) runs inside :func:`user_errors`. An
exception that is a :class:`UserError` (or one of the known error types listed in
``_EXIT_CODES``) is printed as its message alone; ``RSSR_DEBUG=1`` re-raises it with the traceback.
"""
from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator

EXIT_BAD_OPTIONS = 2
EXIT_NON_FINITE = 3


class UserError(RuntimeError):
    """A mistake in the user's input (file, option, data); the message says what to do."""

    exit_code = EXIT_BAD_OPTIONS


def _exit_code(err: BaseException) -> int | None:
    """The exit code for an error a user can act on, None for a bug (shown with its traceback)."""
    from rssr.models.sr_model import NonFiniteLossError
    from rssr.options import OptionsError

    if isinstance(err, UserError):
        return err.exit_code
    if isinstance(err, OptionsError):
        return EXIT_BAD_OPTIONS
    if isinstance(err, NonFiniteLossError):
        return EXIT_NON_FINITE
    return None


@contextmanager
def user_errors(tool: str) -> Iterator[None]:
    """Run a CLI body; known user errors end in ``<message>`` on stderr and their exit code."""
    try:
        yield
    except Exception as err:  # noqa: BLE001  (sorted into user errors and bugs below)
        code = _exit_code(err)
        if code is None or os.environ.get('RSSR_DEBUG') == '1':
            raise
        message = str(err)
        if not message.startswith('rssr'):
            message = f'{tool}: {message}'
        sys.stderr.write(f'{message}\n')
        raise SystemExit(code) from None
