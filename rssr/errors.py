"""Turn mistakes a user can fix into one paragraph and a non-zero exit, never a bare traceback.

Every CLI (``rssr.train``, ``rssr.test``, ``rssr.infer``, the ``scripts/prepare_*.py`` recipes) runs
inside :func:`user_errors`. Three kinds of exception end in a message alone (``RSSR_DEBUG=1``
re-raises them with the traceback):

* rssr's own error types (:class:`UserError` and its subclasses, the option checker's
  ``OptionsError`` among them, and the NaN guard's :class:`NonFiniteLossError`), also when a DataLoader
  worker raised them (torch re-raises those with the worker's traceback as message: only the message is kept);
* out of memory (``torch.OutOfMemoryError`` or an allocator's RuntimeError), with the batch being
  processed and advice;
* a file that cannot be written (permission denied, read-only file system, disk full), naming it.

Anything else is a bug and keeps its traceback. BasicSR's own components are translated where they
fail (:mod:`rssr.basicsr.guards`); the run context they note (:func:`note_batch`) lets the messages
here name the files being processed.
"""
from __future__ import annotations

import errno
import os
import re
import sys
from contextlib import contextmanager
from typing import Any, Dict, Iterator, Optional, Sequence, Tuple

from rssr.utils import qualified_name

EXIT_BAD_OPTIONS = 2  # also bad data files and checkpoints: the input has to change
EXIT_NON_FINITE = 3
EXIT_OUT_OF_MEMORY = 4
EXIT_CANNOT_WRITE = 5

OOM_PATTERNS = ('out of memory', 'not enough memory', "can't allocate memory", 'failed to allocate')
CANNOT_WRITE_ERRNOS = {errno.EACCES: 'permission denied', errno.EPERM: 'operation not permitted',
                       errno.EROFS: 'read-only file system', errno.ENOSPC: 'no space left on the device',
                       errno.EDQUOT: 'disk quota exceeded'}
WORKER_RERAISED = re.compile(r'^Caught \w+ in DataLoader worker process \d+\.\nOriginal Traceback', re.MULTILINE)


class UserError(RuntimeError):
    """A mistake in the user's input (file, option, data); the message says what to do."""

    exit_code = EXIT_BAD_OPTIONS


class DataError(UserError, ValueError):
    """A data file does not fit the run (bands, sizes, contents); the message names the file."""


class DataNotFoundError(UserError, FileNotFoundError):
    """A data file or folder is missing or holds no images; the message names it."""


class InferenceError(UserError):
    """The scene, the model or the output path of ``rssr.infer`` do not fit together; the message says how."""


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN/Inf loss or gradient; continuing would only produce garbage weights."""


class CannotWriteError(UserError):
    """An output (checkpoint, result, folder) cannot be written; the message names it."""

    exit_code = EXIT_CANNOT_WRITE


_batch: Dict[str, Any] = {}


def note_batch(paths: Sequence[str], shape: Tuple[int, ...], network: str) -> None:
    """Remember the batch the model works on, for messages about failures while it runs (out of memory)."""
    _batch.clear()
    _batch.update(paths=list(paths), shape=tuple(shape), network=network)


def _known_type_exit_code(err: BaseException) -> Optional[int]:
    if isinstance(err, UserError):
        return err.exit_code
    if isinstance(err, NonFiniteLossError):
        return EXIT_NON_FINITE
    return None


def is_out_of_memory(err: BaseException) -> bool:
    """An allocation failure of torch (CPU or GPU) or NumPy."""
    import torch

    if isinstance(err, (torch.OutOfMemoryError, MemoryError)):
        return True
    return isinstance(err, RuntimeError) and any(p in str(err).lower() for p in OOM_PATTERNS)


def out_of_memory_message(tool: str) -> str:
    """Advice for an allocation failure, naming the batch being processed when one was noted."""
    if tool == 'rssr.infer':
        return ('out of memory while super-resolving a batch of tiles: lower --tile (e.g. 128) or --batch-size '
                '(e.g. 1), or use --amp bf16 on a GPU.')
    where = ''
    if _batch:
        shape = ' x '.join(str(s) for s in _batch['shape'])
        where = f' while network_g ({_batch["network"]}) ran on {", ".join(_batch["paths"])} (input {shape})'
    return (f'out of memory{where}. Validation and testing run each image whole: crop large validation/test '
            f'images into tiles (scripts/prepare_tiles.py) or super-resolve whole scenes with python -m rssr.infer, '
            f'which tiles them; in training lower datasets.train.batch_size_per_gpu or gt_size, or set '
            f'train.grad_accum_steps / train.amp: bf16 (model_type: RSSRModel).')


def cannot_write_message(err: OSError) -> Optional[str]:
    """A message for an OSError that means an output path cannot be written, else None."""
    reason = CANNOT_WRITE_ERRNOS.get(err.errno)
    if reason is None or not err.filename:
        return None
    return (f'cannot write {err.filename}: {reason}. Run from a folder you can write to (outputs go to '
            f'./experiments and ./results), choose another output path, or free disk space.')


def worker_message(err: BaseException) -> str:
    """The message of an error as raised: a DataLoader worker's error comes back with the worker's traceback
    as its message, whose last exception line holds the original message."""
    message = str(err)
    if not WORKER_RERAISED.search(message):
        return message
    marker = f'{qualified_name(type(err))}: '
    start = message.rfind(marker)
    return message[start + len(marker):].strip() if start >= 0 else message


def describe(err: BaseException, tool: str) -> Optional[Tuple[str, int]]:
    """``(one paragraph, exit code)`` for an error the user can act on, None for a bug."""
    code = _known_type_exit_code(err)
    if code is not None:
        return worker_message(err), code
    if is_out_of_memory(err):
        return out_of_memory_message(tool), EXIT_OUT_OF_MEMORY
    if isinstance(err, OSError):
        message = cannot_write_message(err)
        if message is not None:
            return message, EXIT_CANNOT_WRITE
    if _is_gdal_write_failure(err):
        return f'cannot write: {err}. Choose an output path in a folder you can write to.', EXIT_CANNOT_WRITE
    return None


def _is_gdal_write_failure(err: BaseException) -> bool:
    """GDAL (through rasterio) reports an output it cannot create as a RasterioError with the OS reason."""
    from rasterio.errors import RasterioError

    reasons = ('Permission denied', 'Operation not permitted', 'Read-only file system', 'No space left')
    return isinstance(err, RasterioError) and any(reason in str(err) for reason in reasons)


@contextmanager
def user_errors(tool: str) -> Iterator[None]:
    """Run a CLI body; user errors end in ``<tool>: <message>`` on stderr and their exit code."""
    try:
        yield
    except Exception as err:  # noqa: BLE001  (sorted into user errors and bugs by describe)
        described = describe(err, tool)
        if described is None or os.environ.get('RSSR_DEBUG') == '1':
            raise
        message, code = described
        message = re.sub(r'\n\s*\n', '\n', message.strip())  # one paragraph
        if not message.startswith('rssr'):
            message = f'{tool}: {message}'
        sys.stderr.write(f'{message}\n')
        raise SystemExit(code) from None
