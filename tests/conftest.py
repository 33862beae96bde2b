"""Suite-wide pytest set-up: rssr imported first, the ``cuda`` marker, and torch's global state restored
after every test.

``import rssr`` here, before any test module runs, installs the hook that makes basicsr 1.4.2 importable
(its shims) whenever a test module imports basicsr, so test files may import in isort order.

Helpers (paths, synthetic rasters, option files, the CPU ``torchrun`` launcher) are plain functions in
``testkit.py``, importable from every test folder because this file's folder is on ``sys.path``.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Iterator, List

import pytest
import torch

import rssr  # noqa: F401  (before any test module imports basicsr: see the module doc)

pytest_plugins = ('pytester',)  # tests/test_conftest.py runs pytest on this conftest

CUBLAS_WORKSPACE = 'CUBLAS_WORKSPACE_CONFIG'


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line('markers', 'cuda: needs a CUDA GPU (skipped without one; each has a CPU twin)')


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason='needs a CUDA GPU')
    for item in items:
        if 'cuda' in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def restore_torch_global_state() -> Iterator[None]:
    """Undo what a test (or the code under test, e.g. ``deterministic: true``) set process-wide, including the
    cuBLAS workspace variable that deterministic CUDA kernels need."""
    deterministic = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark)
    dtype = torch.get_default_dtype()
    threads = torch.get_num_threads()
    grad = torch.is_grad_enabled()
    cublas_workspace = os.environ.get(CUBLAS_WORKSPACE)
    yield
    torch.use_deterministic_algorithms(deterministic, warn_only=warn_only)
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = cudnn
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
    torch.set_grad_enabled(grad)
    if cublas_workspace is None:
        os.environ.pop(CUBLAS_WORKSPACE, None)
    else:
        os.environ[CUBLAS_WORKSPACE] = cublas_workspace


@pytest.fixture(autouse=True)
def basicsr_logs_to_the_current_stderr() -> Iterator[None]:
    """BasicSR's logger is created once per process, its console handler bound to the ``sys.stderr`` of that
    moment; when that was a test's ``capsys`` stream, later tests that log in process would hit a closed file
    ("--- Logging error ---" and a traceback in their stderr). Point it at this test's stderr."""
    for handler in logging.getLogger('basicsr').handlers:
        if type(handler) is logging.StreamHandler:
            handler.stream = sys.stderr  # not setStream: it flushes the old stream, which may be closed
    yield
