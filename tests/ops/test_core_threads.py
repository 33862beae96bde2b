"""The core pool that scans parts of the channels at once: one torch thread per pool thread, autograd off,
the caller's thread count untouched, and a forked child that makes its own pool."""
from __future__ import annotations

import multiprocessing
import threading

import torch

from rssr.ops import core_threads
from rssr.ops.core_threads import cores_for_parts, map_on_cores


def _describe_thread(part: int):
    return part, threading.current_thread().name, torch.get_num_threads(), cores_for_parts(), torch.is_grad_enabled()


def test_parts_run_on_pool_threads_with_one_torch_thread_each_and_autograd_off():
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        results = map_on_cores(_describe_thread, [0, 1, 2])
        assert torch.get_num_threads() == 2  # the pool's start-up gave the process-wide count back
    finally:
        torch.set_num_threads(threads)
    assert [part for part, *_ in results] == [0, 1, 2]
    for _, name, torch_threads, cores, grad in results:
        assert name.startswith('rssr-core') and torch_threads == 1 and cores == 1 and not grad


def test_a_single_part_runs_in_the_calling_thread():
    [(_, name, *_rest)] = map_on_cores(_describe_thread, [0])
    assert name == threading.current_thread().name


def _map_in_child(queue) -> None:
    queue.put(map_on_cores(lambda part: part * 2, [1, 2]))


def test_a_forked_child_starts_its_own_pool():
    map_on_cores(lambda part: part, [0, 1])  # the parent's pool exists before the fork
    assert core_threads._pool is not None
    context = multiprocessing.get_context('fork')
    queue = context.Queue()
    child = context.Process(target=_map_in_child, args=(queue,))
    child.start()
    assert queue.get(timeout=60) == [2, 4]
    child.join(timeout=60)
    assert child.exitcode == 0
