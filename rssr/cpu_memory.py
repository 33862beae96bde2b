"""Keep freed CPU memory in the process, so that each forward does not page-fault its tensors in again.

glibc's malloc hands a large tensor (above a threshold that grows to at most 32 MiB) its own fresh
pages from the OS and returns them when the tensor is freed; the next forward's tensors of the same
size fault those pages in again, one 4 KiB page at a time (about 2 us each on a typical VM). A compact
network's 128 x 128 forward faults 10-50 thousand pages, a 512 x 512 scene tile millions, which can be a
quarter of the run time on a CPU. :func:`retain_freed_memory` makes malloc serve every allocation from
its heap and keep up to :data:`RETAINED_BYTES` of freed memory there for reuse: peak memory is about the
same, and memory freed after the peak stays with the process until it exits.

It changes process-wide malloc settings, so rssr never calls it on import: its command-line tools
(``rssr.infer``, ``rssr.train``, ``rssr.test``) call it at start-up, and a program that runs many forwards
may call it itself. Set ``RSSR_KEEP_FREED_MEMORY=0`` to leave malloc as it is. Elsewhere than Linux
with glibc it does nothing.
"""
from __future__ import annotations

import ctypes
import os
import sys

ENV_VARIABLE = 'RSSR_KEEP_FREED_MEMORY'
RETAINED_BYTES = 1 << 30
_M_TRIM_THRESHOLD = -1  # mallopt parameters, from glibc's malloc.h
_M_MMAP_MAX = -4


def retain_freed_memory() -> bool:
    """Serve every allocation from malloc's heap and keep up to ``RETAINED_BYTES`` freed there; returns whether
    the settings were applied (False off Linux/glibc, or with ``RSSR_KEEP_FREED_MEMORY=0``)."""
    if os.environ.get(ENV_VARIABLE, '1').strip() == '0' or not sys.platform.startswith('linux'):
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # glibc only: other C libraries' mallopt parameters differ
    except (OSError, AttributeError):
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, RETAINED_BYTES))
