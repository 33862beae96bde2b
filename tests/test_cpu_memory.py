"""rssr.cpu_memory: after retain_freed_memory(), a tensor allocated again after being freed does not fault its
pages in again (each check runs in a fresh interpreter: the settings are process-wide)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from testkit import REPO

PROGRAM = r'''
import resource, sys
import torch
from rssr.cpu_memory import retain_freed_memory
applied = retain_freed_memory() if sys.argv[1] == 'retain' else None
def faults_of_allocations(count):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(count):
        torch.ones(64 << 20, dtype=torch.uint8)  # 64 MiB, above glibc's largest mmap threshold; freed at once
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
faults_of_allocations(4)  # the heap settles: the first few may land beside small objects and grow it
print(applied, faults_of_allocations(4))
'''


def run(mode: str, **env: str) -> tuple:
    """(whether the settings were applied, page faults of four allocations of 64 MiB after four others) in a fresh
    interpreter whose environment holds no malloc tuning of its own."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith('MALLOC_') and k != 'RSSR_KEEP_FREED_MEMORY'}
    result = subprocess.run([sys.executable, '-c', PROGRAM, mode], capture_output=True, text=True, cwd=REPO,
                            env={**clean, 'PYTHONPATH': str(REPO), **env}, check=True)
    applied, faults = result.stdout.split()
    return applied, int(faults)


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='glibc malloc settings; elsewhere it is a no-op')
def test_freed_memory_is_reused_without_page_faults():
    default = run('default')
    assert default[1] > 4 * 16_000, default  # 16384 pages of 4 KiB, faulted in again on every allocation
    retained = run('retain')
    assert retained[0] == 'True' and retained[1] < 1_000, retained


def test_the_environment_variable_leaves_malloc_alone():
    applied, faults = run('retain', RSSR_KEEP_FREED_MEMORY='0')
    assert applied == 'False' and (faults > 4 * 16_000 or not sys.platform.startswith('linux'))
