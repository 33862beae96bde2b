"""The suite's ``conftest.py``: torch's process-wide state that one test changes is back to what it was
when the next test starts (RSSRModel's ``deterministic: true`` calls make_deterministic, which would
otherwise leave deterministic algorithms on for the rest of the pytest process). Checked in a pytest run of
its own (pytester), with this suite's conftest and without it."""
from __future__ import annotations

from pathlib import Path

import pytest

TWO_TESTS = '''
import os
import torch
from rssr.basicsr.models.sr_model import make_deterministic

BEFORE = {}


def global_state():
    return {'deterministic': torch.are_deterministic_algorithms_enabled(),
            'cudnn': (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark),
            'dtype': torch.get_default_dtype(), 'threads': torch.get_num_threads(), 'grad': torch.is_grad_enabled(),
            'cublas_workspace': os.environ.get('CUBLAS_WORKSPACE_CONFIG')}


def test_a_test_that_makes_everything_deterministic():
    BEFORE.update(global_state())
    make_deterministic()
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(torch.get_num_threads() + 1)
    torch.set_grad_enabled(False)
    assert global_state() != BEFORE


def test_the_next_test_starts_from_the_state_before_it():
    assert global_state() == BEFORE
'''


@pytest.mark.parametrize('with_conftest', [True, False])
def test_global_torch_state_does_not_leak_into_the_next_test(pytester, with_conftest):
    if with_conftest:
        pytester.makeconftest((Path(__file__).parent / 'conftest.py').read_text())
    pytester.makepyfile(test_two=TWO_TESTS)
    result = pytester.runpytest_subprocess('-p', 'no:cacheprovider')
    if with_conftest:
        result.assert_outcomes(passed=2)
    else:  # the leak the conftest prevents: the second test fails
        result.assert_outcomes(passed=1, failed=1)
