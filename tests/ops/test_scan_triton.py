"""rssr's Triton selective-scan kernels against the float64 reference (same cases as test_selective_scan).

On a CUDA machine the compiled kernels run. Without one, Triton's interpreter runs them on the CPU;
it must be switched on (TRITON_INTERPRET=1) before the kernels are defined, so
``test_triton_kernels_in_interpreter`` re-runs this file in a subprocess with the variable set, where
the accuracy tests below execute instead of being skipped.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch
from test_selective_scan import CASES, EXTREME_CASE, Case, check_against_reference

from rssr.ops import selective_scan
from testkit import REPO

triton = pytest.importorskip('triton', reason='the triton backend needs the triton package')

INTERPRETER = os.environ.get('TRITON_INTERPRET') == '1'
RUNS_HERE = INTERPRETER or torch.cuda.is_available()
DEVICE = 'cuda' if torch.cuda.is_available() and not INTERPRETER else 'cpu'
# Compiled on a GPU, these are cuda-marked tests (the suite skips them without CUDA); their CPU twin is
# test_triton_kernels_in_interpreter, which reruns this file under TRITON_INTERPRET=1, where they run unmarked.
needs_kernels = pytest.mark.cuda if not INTERPRETER else (lambda test: test)
# The interpreter executes every tensor op in Python: keep the sequences short there.
SMALL_EXTREME = Case(*EXTREME_CASE[:3], 24 if INTERPRETER else EXTREME_CASE.length, *EXTREME_CASE[4:])


@needs_kernels
@pytest.mark.parametrize('case', CASES[:2] + CASES[4:6], ids=lambda c: c.id)
def test_triton_matches_reference(case):
    from rssr.ops.scan_triton import selective_scan_triton
    check_against_reference(selective_scan_triton, case, device=DEVICE, chunk_len=8)


@needs_kernels
def test_triton_extreme_delta_and_dispatch():
    check_against_reference(selective_scan, SMALL_EXTREME, device=DEVICE, backend='triton')


@pytest.mark.skipif(INTERPRETER, reason='the interpreter does not compile')
def test_triton_kernels_compile_for_cuda():
    """Both kernels (all optional inputs on, and off) lower to a cubin for sm_90, even without a GPU."""
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    from rssr.ops import scan_triton
    for kernel, flags in ((scan_triton._scan_fwd_kernel, ('HAS_D', 'HAS_Z', 'HAS_BIAS', 'SOFTPLUS', 'SAVE_STATES')),
                          (scan_triton._scan_bwd_kernel, ('HAS_D', 'HAS_Z', 'HAS_BIAS', 'SOFTPLUS', 'HAS_GRAD_LAST'))):
        for on in (True, False):
            constants = dict({flag: on for flag in flags}, CHUNK=64, BLOCK_D=scan_triton.BLOCK_D, BLOCK_N=16)
            signature = {name: 'constexpr' if name in constants else '*fp32' if name.endswith('_ptr') else 'i32'
                         for name in kernel.arg_names}
            compiled = triton.compile(ASTSource(fn=kernel, signature=signature, constexprs=constants),
                                      target=GPUTarget('cuda', 90, 32), options={'num_warps': 1})
            assert compiled.asm['cubin']


@pytest.mark.skipif(RUNS_HERE, reason='the kernels already run in this process')
def test_triton_kernels_in_interpreter():
    env = dict(os.environ, TRITON_INTERPRET='1')
    result = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', __file__],
                            cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert '5 passed' in result.stdout, result.stdout[-2000:]
