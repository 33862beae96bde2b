"""The suite's ``conftest.py``: torch's process-wide state that one test changes is back to what it was
when the next test starts (RSSRModel's ``deterministic: true`` calls make_deterministic, which would
otherwise leave deterministic algorithms on for the rest of the pytest process)."""
from __future__ import annotations

import os
from typing import Any, Dict

import pytest
import torch

from rssr.basicsr.models.sr_model import make_deterministic

STATE_BEFORE: Dict[str, Any] = {}  # filled by the first test, read by the second (they run in file order)


def global_state() -> Dict[str, Any]:
    return {'deterministic': torch.are_deterministic_algorithms_enabled(),
            'cudnn': (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
            'dtype': torch.get_default_dtype(), 'threads': torch.get_num_threads(), 'grad': torch.is_grad_enabled(),
            'cublas_workspace': os.environ.get('CUBLAS_WORKSPACE_CONFIG')}


def test_a_test_that_makes_everything_deterministic():
    STATE_BEFORE.update(global_state())
    make_deterministic()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(torch.get_num_threads() + 1)
    torch.set_grad_enabled(False)
    assert torch.are_deterministic_algorithms_enabled() and torch.backends.cudnn.deterministic
    assert global_state() != STATE_BEFORE


def test_the_next_test_starts_from_the_state_before_it():
    if not STATE_BEFORE:
        pytest.skip('checks what test_a_test_that_makes_everything_deterministic left; run it first')
    assert global_state() == STATE_BEFORE
