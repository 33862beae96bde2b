"""How many intra-op threads each rssr process uses (one place, so processes never oversubscribe).

The cores this process may run on (``os.sched_getaffinity``) are shared evenly by the processes
torchrun started on this node (``LOCAL_WORLD_SIZE``). DataLoader workers (only the training loader
has any: BasicSR validates with ``num_workers=0``) run with one torch thread each (torch's own
loader sets it) at a lower scheduling priority (niceness +10), and are not subtracted: they prepare batches ahead in
the core time the training leaves idle (its serial Python and single-threaded ops) instead of
preempting its OpenMP threads mid-region, and giving their cores up for good would halve a 2-core
run's compute (``scripts/benchmark_threads.py`` compares both). Explicit choices win,
in this order: ``RSSR_NUM_THREADS`` in the environment, ``num_threads:`` in the option file, then
``OMP_NUM_THREADS`` set by the user. torchrun sets ``OMP_NUM_THREADS=1`` itself when it starts
several processes and the variable was unset; rssr cannot tell that value from a user's, so under
torchrun with more than one local process ``OMP_NUM_THREADS=1`` counts as torchrun's default and
rssr makes its own choice (use ``RSSR_NUM_THREADS=1`` to insist on one thread).
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Mapping, Optional, Tuple

ENV_VARIABLE = 'RSSR_NUM_THREADS'
OPTION_KEY = 'num_threads'  # a top-level option key (declared to the option checker by rssr.basicsr.options)
WORKER_NICENESS = 10  # added to each DataLoader worker's niceness: the training's threads go first


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count of this process and why it was chosen."""

    threads: int
    reason: str

    def message(self) -> str:
        plural = 's' if self.threads != 1 else ''
        return f'rssr: {self.threads} intra-op thread{plural} per process ({self.reason})'


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; all cores where that is unknown)."""
    if hasattr(os, 'sched_getaffinity'):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def local_world_size() -> int:
    """Processes torchrun started on this node (1 when not launched by it)."""
    return int(os.environ.get('LOCAL_WORLD_SIZE', 1))


def dataloader_workers(opt: Optional[Mapping[str, Any]]) -> int:
    """DataLoader workers per process: those of the training datasets (BasicSR's phase is the key up to
    the first ``_``; validation and test loaders run in the main process)."""
    datasets = (opt or {}).get('datasets') or {}
    return max((int(spec.get('num_worker_per_gpu') or 0) for key, spec in datasets.items()
                if key.split('_')[0] == 'train' and isinstance(spec, Mapping)), default=0)


def _positive_int(value: Any, source: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1:
        raise ValueError(f'{source} must be a positive whole number of threads, not {value!r}.')
    return number


def choose_threads(cores: int, world_size: int, workers: int, override: Optional[Tuple[Any, str]] = None,
                   omp_num_threads: Optional[str] = None) -> ThreadChoice:
    """Threads for one of ``world_size`` processes on ``cores`` cores, each with ``workers`` DataLoader
    workers; ``override`` is an explicit (value, where it was set) and wins, then ``omp_num_threads``
    (the environment's OMP_NUM_THREADS) unless it is torchrun's default of 1 for several processes."""
    if override is not None:
        value, source = override
        return ThreadChoice(_positive_int(value, source), f'set by {source}')
    if omp_num_threads and not (world_size > 1 and omp_num_threads.strip() == '1'):
        return ThreadChoice(_positive_int(omp_num_threads, 'OMP_NUM_THREADS'), 'set by OMP_NUM_THREADS')
    share = max(1, cores // max(1, world_size))
    reason = f'{cores} cores / {world_size} process{"es" if world_size != 1 else ""} on this node'
    if workers:
        reason += (f'; {workers} DataLoader worker{"s" if workers != 1 else ""} per process at 1 torch thread, '
                   f'niceness +{WORKER_NICENESS}')
    return ThreadChoice(share, reason)


class LowPriorityWorkerInit:
    """A DataLoader ``worker_init_fn`` that lowers the worker's priority by :data:`WORKER_NICENESS`, then
    runs the loader's own ``worker_init_fn`` (picklable, so it also works where workers are spawned).

    Workers run one torch thread (torch's worker loop sets it). OpenCV's thread count is left as the
    parent set it: ``cv2.setNumThreads`` in a forked child whose parent has used OpenCV's pool hangs
    forever (measured with opencv-python 5.1), and a worker's OpenCV calls are short and niced.
    """

    def __init__(self, worker_init: Optional[Callable[[int], None]]) -> None:
        self.worker_init = worker_init

    def __call__(self, worker_id: int) -> None:
        os.nice(WORKER_NICENESS)
        if self.worker_init is not None:
            self.worker_init(worker_id)


def lower_worker_priority(loader: Any) -> Any:
    """``loader`` (a DataLoader) with its workers started by :class:`LowPriorityWorkerInit` (once)."""
    if not isinstance(loader.worker_init_fn, LowPriorityWorkerInit):
        loader.worker_init_fn = LowPriorityWorkerInit(loader.worker_init_fn)
    return loader


def explicit_threads(opt: Optional[Mapping[str, Any]], environ: Mapping[str, str]) -> Optional[Tuple[Any, str]]:
    """The explicit thread count and where it was set: ``RSSR_NUM_THREADS``, then ``num_threads:``."""
    if environ.get(ENV_VARIABLE, '').strip():
        return environ[ENV_VARIABLE], ENV_VARIABLE
    if opt and opt.get(OPTION_KEY) is not None:
        return opt[OPTION_KEY], f'`{OPTION_KEY}:` in the option file'
    return None


def configure_threads(opt: Optional[Dict[str, Any]]) -> ThreadChoice:
    """Set torch's (and OpenCV's) intra-op thread count for this process and say so once per node (BasicSR's
    training loaders get :func:`lower_worker_priority` from the patch table, :mod:`rssr.basicsr.patches`)."""
    import cv2
    import torch

    choice = choose_threads(available_cores(), local_world_size(), dataloader_workers(opt),
                            explicit_threads(opt, os.environ), os.environ.get('OMP_NUM_THREADS'))
    torch.set_num_threads(choice.threads)
    cv2.setNumThreads(choice.threads)
    if int(os.environ.get('LOCAL_RANK', 0)) == 0:
        print(choice.message(), file=sys.stderr, flush=True)
    return choice
