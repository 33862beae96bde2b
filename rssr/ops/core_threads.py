"""Run independent parts of one CPU op on all its cores, from Python threads that use one torch thread each.

torch spreads an elementwise op over its intra-op threads only when the op has at least 32,768
elements (its grain size). The selective scan's steps are smaller than that on SR shapes (b=1,
d=768, n=16: 12,288 state elements), so its thousands of step ops would leave every core but one
idle. Its channels are independent, though: :func:`map_on_cores` scans parts of them at once on a
small pool of threads (torch ops release the GIL while they compute), each thread limited to one
intra-op thread so that the parts never oversubscribe the cores.

torch keeps a process-wide thread count, from which each OS thread sets its own OpenMP count the
first time it runs an op; the pool's threads fix theirs at 1 when they start, and the caller's
process-wide setting is restored right after, so nothing outside the pool sees a change.
"""
from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, List, Optional, Sequence, TypeVar

import torch

Part = TypeVar('Part')
Result = TypeVar('Result')

_pool: Optional[ThreadPoolExecutor] = None
_pool_size = 0
_lock = threading.Lock()
_local = threading.local()  # .in_pool: this thread is one of the pool's


def _start_pool_thread() -> None:
    _local.in_pool = True
    torch.set_num_threads(1)
    torch.get_num_threads()  # makes this thread take its OpenMP count (1) now, not at its first op


def _pool_of(size: int) -> ThreadPoolExecutor:
    """The shared pool, with at least ``size`` threads, every one started and limited to one torch thread."""
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size < size:
            if _pool is not None:
                _pool.shutdown(wait=True)
            threads = torch.get_num_threads()
            _pool = ThreadPoolExecutor(size, thread_name_prefix='rssr-core', initializer=_start_pool_thread)
            started = threading.Barrier(size)
            list(_pool.map(lambda _: started.wait(), range(size)))  # every thread runs its initializer now
            torch.set_num_threads(threads)  # the initializers set the process-wide count; give it back
            _pool_size = size
        return _pool


def _forget_pool_after_fork() -> None:
    """A forked child has none of the parent's threads: it makes its own pool when it needs one."""
    global _pool, _pool_size
    _pool, _pool_size = None, 0


if hasattr(os, 'register_at_fork'):
    os.register_at_fork(after_in_child=_forget_pool_after_fork)


def cores_for_parts() -> int:
    """How many parts :func:`map_on_cores` runs at once from this thread: torch's intra-op thread count,
    1 inside the pool (a part never splits again)."""
    return 1 if getattr(_local, 'in_pool', False) else torch.get_num_threads()


def map_on_cores(function: Callable[[Part], Result], parts: Sequence[Part]) -> List[Result]:
    """``[function(part) for part in parts]``, the parts run at once on the pool, with autograd off
    (as in a custom autograd Function's forward and backward, where this is used)."""
    if len(parts) == 1:
        return [function(parts[0])]

    def run(part: Part) -> Result:
        with torch.no_grad():
            return function(part)

    return list(_pool_of(len(parts)).map(run, parts))
