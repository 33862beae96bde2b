"""Selective scan: every available backend against the float64 sequential reference, plus dispatch.

Accuracy contract: max|y - y_ref| / max|y_ref| <= 1e-5 for the output, the last state and the
gradient of every input, with y_ref from the reference in float64 and the backend in float32.
The triton backend runs these same cases in test_selective_scan_triton.py.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
import types
from typing import Callable, Dict, NamedTuple, Optional

import pytest
import torch

from rssr.ops import ScanBackendUnavailable, selective_scan
from rssr.ops.scan_torch import selective_scan_torch
from rssr.ops.selective_scan import resolve_backend, selective_scan_reference

scan_module = importlib.import_module('rssr.ops.selective_scan')  # rssr.ops.selective_scan is also the function
scan_torch_module = importlib.import_module('rssr.ops.scan_torch')
TOLERANCE = 1e-5
INPUT_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'z', 'delta_bias')


class Case(NamedTuple):
    """One problem: shapes and which options are on. B/C groups 0 = (b, n, l); -1 = (d, n)."""
    batch: int
    dim: int
    state: int
    length: int
    b_groups: int = 1
    c_groups: int = 1
    skip: bool = True
    gate: bool = True
    bias: bool = True
    softplus: bool = True
    last_state: bool = True
    delta_range: Optional[tuple] = None  # uniform (low, high) delta, used directly as dt

    @property
    def id(self) -> str:
        flags = ''.join(flag for flag, on in (('D', self.skip), ('z', self.gate), ('b', self.bias),
                                                ('s', self.softplus), ('h', self.last_state)) if on)
        return f'b{self.batch}d{self.dim}n{self.state}l{self.length}g{self.b_groups},{self.c_groups}-{flags or "plain"}'


CASES = [
    Case(2, 6, 4, 37, 2, 2),  # d/g = 3 channels: not a multiple of any block; odd l; g > 1
    Case(1, 3, 3, 1, 0, 0),  # l = 1, (b, n, l) B and C
    Case(2, 4, 5, 16, 0, 0, skip=False, gate=False, bias=False, softplus=False, last_state=False),
    Case(1, 6, 4, 19, 3, 3, gate=False, last_state=False),
    Case(1, 6, 4, 11, 2, 3, skip=False, bias=False),  # B and C with different group counts
    Case(2, 4, 3, 13, -1, 2, softplus=False),  # time-invariant (d, n) B
    Case(1, 4, 3, 12, 0, -1, gate=False),  # time-invariant (d, n) C
]
EXTREME_CASE = Case(1, 4, 16, 300, 1, 1, skip=False, gate=False, bias=False, softplus=False,
                    delta_range=(1e-4, 10.0))


def make_inputs(case: Case, seed: int = 0) -> Dict[str, Optional[torch.Tensor]]:
    """float64 inputs like an SS2D block's (A = -exp(A_log) with S4D-real init, softplus'd deltas)."""
    gen = torch.Generator().manual_seed(seed)
    b, d, n, length = case.batch, case.dim, case.state, case.length

    def randn(*shape):
        return torch.randn(*shape, generator=gen, dtype=torch.float64)

    def coef(groups):
        return {-1: randn(d, n), 0: randn(b, n, length)}.get(groups) if groups <= 0 else randn(b, groups, n, length)

    if case.delta_range is not None:
        low, high = case.delta_range
        delta = low * (high / low) ** torch.rand(b, d, length, generator=gen, dtype=torch.float64)
    elif case.softplus:
        delta = randn(b, d, length) * 0.5 - 1.0
    else:  # used as dt directly: keep it positive, as after a softplus
        delta = torch.exp(randn(b, d, length) * 0.5 - 1.5)
    A = -torch.arange(1, n + 1, dtype=torch.float64).repeat(d, 1) * (0.5 + torch.rand(d, 1, generator=gen,
                                                                                        dtype=torch.float64))
    return dict(u=randn(b, d, length), delta=delta, A=A, B=coef(case.b_groups), C=coef(case.c_groups),
                D=randn(d) if case.skip else None, z=randn(b, d, length) if case.gate else None,
                delta_bias=randn(d) * 0.5 if case.bias else None)


def run(scan: Callable, case: Case, inputs: Dict[str, Optional[torch.Tensor]], dtype: torch.dtype,
        device: str = 'cpu', **kwargs) -> Dict[str, torch.Tensor]:
    """Outputs and input gradients of ``scan`` for fixed random upstream gradients."""
    leaves = {k: v.detach().to(device=device, dtype=dtype, copy=True).requires_grad_()
              for k, v in inputs.items() if v is not None}
    args = {k: leaves.get(k) for k in INPUT_NAMES}
    result = scan(*(args[k] for k in INPUT_NAMES), delta_softplus=case.softplus,
                  return_last_state=case.last_state, **kwargs)
    y, last = result if case.last_state else (result, None)
    gen = torch.Generator().manual_seed(1)
    loss = (y * torch.randn(y.shape, generator=gen, dtype=torch.float64).to(device, y.dtype)).sum()
    if last is not None:
        loss = loss + (last * torch.randn(last.shape, generator=gen, dtype=torch.float64).to(device, last.dtype)).sum()
    loss.backward()
    out = {'y': y.detach(), **({'last_state': last.detach()} if last is not None else {})}
    out.update({f'grad_{k}': leaf.grad for k, leaf in leaves.items()})
    return {k: v.double().cpu() for k, v in out.items()}


def relative_errors(got: Dict[str, torch.Tensor], want: Dict[str, torch.Tensor]) -> Dict[str, float]:
    """max|got - want| / max|want| per output (absolute where want is all zeros, e.g. grad A at l = 1)."""
    assert got.keys() == want.keys()
    return {k: ((got[k] - want[k]).abs().max() / want[k].abs().max().clamp_min(1.0 if not want[k].any() else 0)).item()
            for k in want}


def check_against_reference(scan: Callable, case: Case, device: str = 'cpu', **kwargs) -> None:
    inputs = make_inputs(case)
    want = run(selective_scan_reference, case, inputs, torch.float64)
    got = run(scan, case, inputs, torch.float32, device, **kwargs)
    assert all(torch.isfinite(v).all() for v in got.values())
    errors = relative_errors(got, want)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.id)
def test_torch_backend_matches_reference(case):
    check_against_reference(selective_scan, case, backend='torch')


@pytest.mark.parametrize('segment_len', [1, 4, 7])
def test_torch_backend_state_carried_across_segments(segment_len):
    check_against_reference(selective_scan_torch, CASES[0], segment_len=segment_len)


def test_torch_backend_extreme_delta():
    check_against_reference(selective_scan, EXTREME_CASE, backend='torch')


def test_torch_backend_gradcheck_float64():
    case = Case(1, 4, 3, 9, 2, 2)
    inputs = {k: v.requires_grad_() for k, v in make_inputs(case).items() if v is not None}

    def scan(*args):
        return selective_scan_torch(*args, delta_softplus=True, return_last_state=True, segment_len=4)

    assert torch.autograd.gradcheck(scan, tuple(inputs[k] for k in INPUT_NAMES))


def test_torch_backend_long_sequence_stays_finite_and_exact():
    """l = 16384 with deltas up to 10: float32 agrees with float64 (the reference would take minutes)."""
    case = Case(1, 2, 16, 16384, 1, 1, skip=False, gate=False, bias=False, softplus=False, delta_range=(1e-4, 10.0))
    inputs = make_inputs(case)
    want = run(selective_scan_torch, case, inputs, torch.float64)
    got = run(selective_scan_torch, case, inputs, torch.float32)
    assert all(torch.isfinite(v).all() for v in got.values())
    errors = relative_errors(got, want)
    assert max(errors.values()) <= TOLERANCE, errors
    short = Case(*case[:3], 600, *case[4:])
    short_inputs = {k: v[..., :600] if v is not None and v.dim() >= 3 else v for k, v in inputs.items()}
    assert torch.allclose(run(selective_scan_reference, short, short_inputs, torch.float64)['y'],
                          want['y'][..., :600], rtol=0, atol=1e-12)


# Window scans (many short sequences) and the training shapes of the archs at compact sizes, batch 8,
# 24 x 24 LR patches: ConvMambaSR / RepMamba (4 directions of 2C channels), MambaCSR (2 directions;
# 599 tokens is a collapsed 64 x 64 window). Truth: the float64 torch backend, which
# test_float64_reference_and_torch_agree_to_rounding holds to the reference.
SHAPE_CASES = [
    Case(64, 16, 8, 64, 2, 2, gate=False, last_state=False),
    Case(16, 24, 16, 256, 2, 2, gate=False, last_state=False),
    Case(4, 16, 8, 1024, 2, 2, gate=False, last_state=False),
    Case(8, 4 * 64, 8, 576, 4, 4, gate=False, last_state=False),
    Case(8, 2 * 64, 8, 599, 2, 2, gate=False, last_state=False),
]


@pytest.mark.parametrize('case', SHAPE_CASES, ids=lambda c: c.id)
def test_torch_backend_window_and_training_shapes(case):
    inputs = make_inputs(case)
    want = run(selective_scan_torch, case, inputs, torch.float64)
    got = run(selective_scan_torch, case, inputs, torch.float32)
    errors = relative_errors(got, want)
    assert max(errors.values()) <= TOLERANCE, errors


@pytest.mark.parametrize('segment_len', [None, 7])
@pytest.mark.parametrize('sequential_from', [1, 1 << 30], ids=['step_by_step', 'blocked'])
def test_torch_backend_blocked_and_step_by_step_scans(monkeypatch, sequential_from, segment_len):
    """Both scan paths (the step size and thread count pick one per call) on a window-like batch."""
    monkeypatch.setattr(scan_torch_module, '_SEQUENTIAL_STEP_ELEMENTS', sequential_from)
    monkeypatch.setattr(scan_torch_module, '_SEQUENTIAL_STEP_ELEMENTS_ONE_THREAD', sequential_from)
    check_against_reference(selective_scan_torch, Case(6, 8, 4, 45, 2, 2), segment_len=segment_len)


def time_major_copy(x: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
    """The same values stored time-major: (b, ..., l) with the time dimension outermost after the batch."""
    if x is None or x.dim() < 3:
        return x
    return x.movedim(-1, 1).contiguous().movedim(1, -1)


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.id)
def test_torch_backend_reads_time_major_inputs_in_place_and_answers_in_their_layout(case):
    """Inputs stored time-major (a transposed view of channels-last features) give the same outputs and
    gradients; y and the gradients come back in their inputs' layout, and the caller's delta is unchanged."""
    inputs = make_inputs(case)
    want = run(selective_scan_torch, case, inputs, torch.float64)
    strided = {k: time_major_copy(v) for k, v in inputs.items()}
    delta_before = strided['delta'].clone()
    got = run(selective_scan_torch, case, strided, torch.float64)
    errors = relative_errors(got, want)
    assert max(errors.values()) <= 1e-12, errors
    assert torch.equal(strided['delta'], delta_before)
    u = strided['u'].detach().clone().float().requires_grad_()
    delta = strided['delta'].detach().clone().float().requires_grad_()
    y = selective_scan_torch(u, delta, inputs['A'].float(), strided['B'].float(), strided['C'].float(),
                             delta_softplus=case.softplus)
    assert y.transpose(1, 2).is_contiguous() and (case.length == 1 or not y.is_contiguous())
    y.backward(time_major_copy(torch.ones_like(y)))
    assert u.grad.transpose(1, 2).is_contiguous() and delta.grad.transpose(1, 2).is_contiguous()


@pytest.mark.parametrize('chunk_elements', [1, 5 * 2 * 6])
def test_torch_backend_setup_chunks(monkeypatch, chunk_elements):
    """delta_bias, softplus and dt * u run over time chunks: one step per chunk, and chunks of 5 steps
    that do not divide l = 37, give the reference's outputs and gradients."""
    monkeypatch.setattr(scan_torch_module, '_SETUP_CHUNK_ELEMENTS', chunk_elements)
    check_against_reference(selective_scan_torch, CASES[0], segment_len=7)


@pytest.mark.parametrize('small_bmm', [0, 1 << 30], ids=['bmm', 'multiply_and_sum'])
@pytest.mark.parametrize('case', CASES, ids=lambda c: c.id)
def test_torch_backend_contractions_over_n_by_bmm_and_by_multiply_and_sum(monkeypatch, small_bmm, case):
    """The C contraction and the B/C gradients give the reference's results on both paths (bmm for large
    n * d/g, a multiply and a sum below torch's scalar-bmm size)."""
    monkeypatch.setattr(scan_torch_module, '_SMALL_CPU_BMM', small_bmm)
    check_against_reference(selective_scan_torch, case, segment_len=7)


def test_torch_backend_traces_with_torch_export():
    """torch.export traces the scan (fixed-size Python loops, no branching on tensor values), and the
    exported program gives the eager outputs, over several segments of unequal length."""
    case = Case(1, 6, 4, 37, 2, 2, gate=False, last_state=False)
    inputs = {k: v.float() for k, v in make_inputs(case).items() if v is not None}

    class Scan(torch.nn.Module):
        def forward(self, u, delta, A, B, C, D, delta_bias):
            return selective_scan_torch(u, delta, A, B, C, D, None, delta_bias, True, segment_len=7)

    args = tuple(inputs[k] for k in ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias'))
    with torch.no_grad():
        exported = torch.export.export(Scan(), args)
        assert torch.equal(exported.module()(*args), Scan()(*args))


def test_float64_reference_and_torch_agree_to_rounding():
    case = CASES[0]
    inputs = make_inputs(case)
    errors = relative_errors(run(selective_scan_torch, case, inputs, torch.float64, segment_len=5),
                             run(selective_scan_reference, case, inputs, torch.float64))
    assert max(errors.values()) < 1e-12, errors


def test_half_precision_inputs_keep_float32_state():
    inputs = make_inputs(CASES[2])
    args = [inputs[k].to(torch.bfloat16) if inputs[k] is not None else None for k in INPUT_NAMES]
    y, last = selective_scan(*args, return_last_state=True, backend='torch')
    assert y.dtype == torch.bfloat16 and last.dtype == torch.float32


# ---- dispatch ----------------------------------------------------------------------------------

@pytest.fixture
def fresh_log(monkeypatch, caplog):
    """A dispatch that has probed nothing, logged nothing and warned about nothing."""
    monkeypatch.setattr(scan_module, '_logged_choices', set())
    monkeypatch.setattr(scan_module, '_statuses', {})
    monkeypatch.setattr(scan_module, '_warned', set())
    monkeypatch.delenv(scan_module.ENV_VAR, raising=False)
    caplog.set_level(logging.INFO, logger='rssr')
    return caplog


def test_auto_picks_torch_on_cpu_and_logs_once(fresh_log):
    u = torch.zeros(1, 2, 3)
    assert resolve_backend(u)[0] == 'torch'
    assert resolve_backend(u, 'auto')[0] == 'torch'
    lines = [r.getMessage() for r in fresh_log.records if r.name == 'rssr']
    assert lines == ["selective_scan backend 'torch' (auto: tensors on cpu; the fused kernels need CUDA)"]


def test_env_var_forces_backend_and_argument_wins(fresh_log, monkeypatch):
    monkeypatch.setenv('RSSR_SCAN_BACKEND', 'reference')
    u = torch.zeros(1, 2, 3)
    assert resolve_backend(u)[1] is selective_scan_reference
    assert resolve_backend(u, 'torch')[0] == 'torch'
    lines = [r.getMessage() for r in fresh_log.records if r.name == 'rssr']
    assert lines == ["selective_scan backend 'reference' (forced by the RSSR_SCAN_BACKEND)",
                     "selective_scan backend 'torch' (forced by the backend argument)"]


def test_unknown_backend_names_the_choices(monkeypatch):
    with pytest.raises(ValueError, match=r"unknown backend 'cuda'.*auto, mamba_ssm, triton, torch, reference"):
        resolve_backend(torch.zeros(1, 2, 3), 'cuda')
    monkeypatch.setenv('RSSR_SCAN_BACKEND', 'fast')
    with pytest.raises(ValueError, match=r"'fast' \(from the RSSR_SCAN_BACKEND\)"):
        resolve_backend(torch.zeros(1, 2, 3))


@pytest.mark.skipif(torch.cuda.is_available(), reason='checks the error on a machine without a GPU')
def test_forced_unavailable_backends_say_how_to_enable_them(fresh_log):
    inputs = make_inputs(CASES[1])
    args = [inputs[k] for k in INPUT_NAMES]
    if importlib.util.find_spec('mamba_ssm') is None:
        expected = r"'mamba_ssm' is unusable on cpu: mamba_ssm is not installed; .*pip install mamba-ssm"
    else:
        expected = r"'mamba_ssm' is unusable on cpu: "
    with pytest.raises(ScanBackendUnavailable, match=expected):
        selective_scan(*args, delta_softplus=True, backend='mamba_ssm')
    with pytest.raises(ScanBackendUnavailable, match=r"'triton' is unusable on cpu: triton needs CUDA tensors.*"
                                                     r"TRITON_INTERPRET=1"):
        selective_scan(*args, delta_softplus=True, backend='triton')


# A fused backend that cannot run must never crash a run under 'auto' (one warning, then the next backend)
# and must say why when forced. AUTO_ORDER gives the CPU the CUDA order so these run without a GPU.

@pytest.fixture
def cpu_as_cuda(fresh_log, monkeypatch):
    monkeypatch.setitem(scan_module.AUTO_ORDER, 'cpu', scan_module.AUTO_ORDER['cuda'])
    return fresh_log


def fake_backends(monkeypatch, **runs):
    """_load_fused replaced: the named backends run ``runs[name]`` on the CPU; the others are not installed."""
    def load(backend):
        if backend not in runs:
            raise ModuleNotFoundError(f"No module named '{backend}'", name=backend)
        return scan_module.FusedBackend(runs[backend], ('cpu',))
    monkeypatch.setattr(scan_module, '_load_fused', load)


def scan_args(case: Case = CASES[0]):
    inputs = make_inputs(case)
    return [inputs[k].float() if inputs[k] is not None else None for k in INPUT_NAMES]


def fallback_warnings(record) -> list:
    return [str(w.message) for w in record if issubclass(w.category, scan_module.ScanBackendWarning)]


def check_fallback(backend: str, cause: str) -> None:
    """Under auto: one warning naming ``cause`` over two scans, and torch's result; forced: ScanBackendUnavailable
    naming it."""
    args = scan_args()
    with pytest.warns(scan_module.ScanBackendWarning) as record:
        y = selective_scan(*args, delta_softplus=True)
        selective_scan(*args, delta_softplus=True)
    assert fallback_warnings(record) == [f"selective_scan: backend '{backend}' is unusable on cpu and 'auto' falls "
                                         f"back to the next backend: {cause}"]
    assert torch.equal(y, selective_scan(*args, delta_softplus=True, backend='torch'))
    with pytest.raises(ScanBackendUnavailable) as raised:
        selective_scan(*args, delta_softplus=True, backend=backend)
    assert f"'{backend}' is unusable on cpu: {cause}" in str(raised.value)


def test_auto_falls_back_with_one_warning_when_a_kernel_launch_raises(cpu_as_cuda, monkeypatch):
    def launch_fails(*args):
        raise RuntimeError('CUDA error: no kernel image is available for execution on the device')
    fake_backends(monkeypatch, triton=launch_fails)
    check_fallback('triton', 'its first launch failed (RuntimeError: CUDA error: no kernel image is available for '
                             'execution on the device)')


def test_a_kernel_with_wrong_results_is_not_used(cpu_as_cuda, monkeypatch):
    fake_backends(monkeypatch, triton=lambda *args: selective_scan_torch(*args) * 1.01)
    with pytest.warns(scan_module.ScanBackendWarning, match=r"'triton' .* it gives wrong results \(max relative "
                                                            r"error 1\.0e-02 in "):
        assert resolve_backend(torch.zeros(1, 2, 3))[0] == 'torch'


def test_a_kernel_that_fails_after_its_probe_falls_back_under_auto_and_raises_when_forced(cpu_as_cuda, monkeypatch):
    def fails_on_long_sequences(u, *args):
        if u.shape[-1] > 20:
            raise RuntimeError('triton.runtime.errors.OutOfResources: shared memory')
        return selective_scan_torch(u, *args)
    fake_backends(monkeypatch, triton=fails_on_long_sequences)
    args = scan_args()  # l = 37
    with pytest.raises(ScanBackendUnavailable, match=r"'triton' is unusable on cpu: it failed on a scan of shape "
                                                     r"\(2, 6, 37\) \(RuntimeError: triton.runtime.errors"):
        selective_scan(*args, delta_softplus=True, backend='triton')
    assert resolve_backend(args[0])[0] == 'triton'  # the probe passed
    with pytest.warns(scan_module.ScanBackendWarning, match='it failed on a scan of shape'):
        y = selective_scan(*args, delta_softplus=True)
    assert torch.equal(y, selective_scan(*args, delta_softplus=True, backend='torch'))
    assert resolve_backend(args[0])[0] == 'torch'


def test_a_triton_without_knobs_imports_and_reads_the_interpreter_flag_from_the_environment(fresh_log, monkeypatch):
    triton = pytest.importorskip('triton')
    import rssr.ops
    monkeypatch.delattr(triton, 'knobs', raising=False)
    monkeypatch.delitem(sys.modules, 'rssr.ops.scan_triton', raising=False)
    monkeypatch.delattr(rssr.ops, 'scan_triton', raising=False)
    monkeypatch.setenv('TRITON_INTERPRET', '1')
    scan_triton = importlib.import_module('rssr.ops.scan_triton')
    assert scan_triton.INTERPRETED and scan_triton._interpreter_enabled()
    monkeypatch.setenv('TRITON_INTERPRET', '0')
    assert not scan_triton._interpreter_enabled()


def without_real_triton(monkeypatch, fake: types.ModuleType) -> None:
    """``import triton`` gives ``fake`` (and an empty ``triton.language``), and rssr's kernel module re-imports."""
    import rssr.ops
    monkeypatch.setitem(sys.modules, 'triton', fake)
    monkeypatch.setitem(sys.modules, 'triton.language', types.ModuleType('triton.language'))
    monkeypatch.delitem(sys.modules, 'rssr.ops.scan_triton', raising=False)
    monkeypatch.delattr(rssr.ops, 'scan_triton', raising=False)


def test_a_triton_with_another_api_falls_back_under_auto_and_raises_when_forced(cpu_as_cuda, monkeypatch):
    """A Triton whose API lacks what the kernels use (here ``triton.jit``): AttributeError at import."""
    fake = types.ModuleType('triton')
    fake.__version__ = '3.9.0'
    without_real_triton(monkeypatch, fake)
    check_fallback('triton', "importing triton failed (AttributeError: module 'triton' has no attribute 'jit')")


def test_a_triton_older_than_the_kernels_need_is_named(cpu_as_cuda, monkeypatch):
    fake = types.ModuleType('triton')
    fake.__version__ = '3.1.0'
    without_real_triton(monkeypatch, fake)
    with pytest.raises(ScanBackendUnavailable, match=r"importing triton failed \(ImportError: triton 3.1.0 is older "
                                                     r"than 3.2, the oldest Triton rssr's kernels work with"):
        selective_scan(*scan_args(), delta_softplus=True, backend='triton')


@pytest.mark.parametrize('error', ['OSError("libcudart.so.12: cannot open shared object file")',
                                   'ImportError("undefined symbol: _ZN3c104cuda9SetDevice")',
                                   'RuntimeError("CUDA driver version is insufficient")',
                                   'AttributeError("module torch has no attribute library")'])
def test_a_mamba_ssm_whose_import_raises_is_skipped_under_auto_and_named_when_forced(cpu_as_cuda, monkeypatch,
                                                                                       tmp_path, error):
    package = tmp_path / 'mamba_ssm'
    package.mkdir()
    (package / '__init__.py').write_text(f'raise {error}\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in [m for m in sys.modules if m.split('.')[0] == 'mamba_ssm']:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(scan_module.AUTO_ORDER, 'cpu', ('mamba_ssm', 'torch'))
    kind, message = error.split('(', 1)
    check_fallback('mamba_ssm', f'importing mamba_ssm failed ({kind}: {message.strip(")").strip(chr(34))})')


def test_a_missing_mamba_ssm_is_skipped_quietly(cpu_as_cuda, monkeypatch, recwarn):
    fake_backends(monkeypatch, triton=selective_scan_torch)
    assert resolve_backend(torch.zeros(1, 2, 3))[0] == 'triton'
    assert resolve_backend(torch.zeros(1, 2, 3, dtype=torch.float64))[0] == 'torch'  # float64 keeps a float64 state
    assert fallback_warnings(recwarn) == []
    assert scan_module.backend_status('mamba_ssm', 'cpu').installed is False


# mamba_ssm's published interface (state-spaces/mamba, mamba_ssm/ops/selective_scan_interface.py and the
# checks of csrc/selective_scan/selective_scan.cpp): selective_scan_fn(u, delta, A, B, C, D=None, z=None,
# delta_bias=None, delta_softplus=False, return_last_state=False); u, delta, z: (b, d, l) in one input dtype
# (float32, float16 or bfloat16); A: (d, n) float32; B, C: (d, n) float32, or (b, n, l) / (b, g, n, l) in the
# input dtype, the same g for both when both are 4-D, d divisible by g; D and delta_bias: (d,) float32;
# returns out (b, d, l) in the input dtype and, if asked, last_state (b, d, n) float32.

def published_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                                return_last_state=False):
    """A stand-in that asserts the layouts mamba_ssm's kernel checks, then computes with the reference."""
    b, d, length = u.shape
    assert u.dtype in (torch.float32, torch.float16, torch.bfloat16)
    for name, tensor in (('u', u), ('delta', delta), ('z', z)):
        if tensor is not None:
            assert tensor.shape == (b, d, length) and tensor.dtype == u.dtype and tensor.stride(-1) == 1, name
    assert A.shape[0] == d and A.dim() == 2 and A.dtype == torch.float32
    n = A.shape[1]
    groups = []
    for name, coef in (('B', B), ('C', C)):
        if coef.dim() == 2:
            assert coef.shape == (d, n) and coef.dtype == torch.float32, name
            continue
        assert coef.dtype == u.dtype and coef.stride(-1) == 1, name
        assert coef.shape == ((b, n, length) if coef.dim() == 3 else (b, coef.shape[1], n, length)), name
        groups.append(coef.shape[1] if coef.dim() == 4 else 1)
    assert len(set(groups)) <= 1 and all(d % g == 0 for g in groups), groups
    for name, vector in (('D', D), ('delta_bias', delta_bias)):
        assert vector is None or (vector.shape == (d,) and vector.dtype == torch.float32), name
    y, last = selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state=True)
    assert y.dtype == u.dtype
    return (y, last.float()) if return_last_state else y


@pytest.mark.parametrize('case', CASES, ids=lambda c: c.id)
def test_the_mamba_ssm_call_matches_the_published_interface(case):
    """rssr's call on its own layouts (groups that differ, (d, n) B/C, strided and bfloat16/float32 mixes)."""
    inputs = make_inputs(case)
    args = {k: (v.float() if v is not None else None) for k, v in inputs.items()}
    args['u'] = args['u'].transpose(1, 2).contiguous().transpose(1, 2)  # not unit stride in time
    y = scan_module.call_mamba_ssm(published_selective_scan_fn, *(args[k] for k in INPUT_NAMES),
                                   delta_softplus=case.softplus, return_last_state=case.last_state)
    want = selective_scan_reference(*(inputs[k] for k in INPUT_NAMES), delta_softplus=case.softplus,
                                    return_last_state=case.last_state)
    for got, truth in zip(*((y, want) if case.last_state else ((y,), (want,)))):
        assert got.dtype == torch.float32 and torch.allclose(got.double(), truth, rtol=1e-4, atol=1e-5)
    half = {k: (v.to(torch.bfloat16) if k in ('u', 'delta', 'z') and v is not None else v) for k, v in args.items()}
    assert scan_module.call_mamba_ssm(published_selective_scan_fn, *(half[k] for k in INPUT_NAMES),
                                      delta_softplus=case.softplus).dtype == torch.bfloat16


def test_the_mamba_ssm_backend_calls_selective_scan_fn_from_its_published_module(monkeypatch):
    calls = []
    module = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    module.selective_scan_fn = lambda *args, **kwargs: calls.append(kwargs) or published_selective_scan_fn(
        *args, **kwargs)
    for name in ('mamba_ssm', 'mamba_ssm.ops'):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    monkeypatch.setitem(sys.modules, module.__name__, module)
    loaded = scan_module._load_fused('mamba_ssm')
    assert loaded.device_types == ('cuda',)
    loaded.run(*scan_args(), delta_softplus=True)
    assert calls and set(calls[0]) == {'D', 'z', 'delta_bias', 'delta_softplus', 'return_last_state'}


def test_shape_errors_name_the_argument():
    inputs = make_inputs(CASES[0])
    args = [inputs[k] for k in INPUT_NAMES]
    with pytest.raises(ValueError, match='B has 4 groups, which do not divide d=6'):
        selective_scan(args[0], args[1], args[2], torch.zeros(2, 4, 4, 37), args[4])
    with pytest.raises(ValueError, match=r'A must be \(d, n\) = \(6, n\); got \(5, 4\)'):
        selective_scan(args[0], args[1], args[2][:5], args[3], args[4])


# ---- CUDA (mamba_ssm when installed, triton, torch); the CPU twins are the tests above --------------

def cuda_backends():
    """torch, and each fused backend that is installed; one that is installed but unusable fails the test."""
    backends = ['torch']
    for name in ('triton', 'mamba_ssm'):
        status = scan_module.backend_status(name, 'cuda')
        if status.usable:
            backends.append(name)
        elif status.installed:
            pytest.fail(f'{name} is installed but unusable on CUDA: {status.reason}')
    return backends


@pytest.mark.cuda
@pytest.mark.parametrize('case', CASES + [EXTREME_CASE], ids=lambda c: c.id)
def test_cuda_backends_match_reference(case):
    """Every CUDA backend against the float64 reference; CPU twin: test_torch_backend_matches_reference."""
    for backend in cuda_backends():
        if backend != 'mamba_ssm':
            check_against_reference(selective_scan, case, device='cuda', backend=backend)
            continue
        inputs = make_inputs(case)
        want = run(selective_scan_reference, case, inputs, torch.float64)
        got = run(selective_scan, case, inputs, torch.float32, 'cuda', backend='mamba_ssm')
        for name, (rtol, atol) in scan_module.MAMBA_SSM_TEST_TOLERANCES.items():
            if name in want:
                assert torch.allclose(got[name], want[name], rtol=rtol, atol=atol), (name, case.id)


@pytest.mark.parametrize('length', [1, 2, 37, 100])
def test_export_formulation_equals_the_reference(length):
    """The scan ONNX export traces (rssr.ops.scan_export) is the recurrence to float32 rounding (1e-5)."""
    from rssr.ops.selective_scan import selective_scan_export

    generator = torch.Generator().manual_seed(length)
    b, d, n = 2, 6, 4
    u, delta, z = (torch.randn(b, d, length, generator=generator) for _ in range(3))
    A = -torch.rand(d, n, generator=generator) * 3
    B, C = (torch.randn(b, 2, n, length, generator=generator) for _ in range(2))
    D, bias = torch.randn(d, generator=generator), torch.rand(d, generator=generator)
    want, want_state = selective_scan_reference(u, delta, A, B, C, D, z, bias, True, True)
    got, got_state = selective_scan_export(u, delta, A, B, C, D, z, bias, True, True)
    assert ((got - want).abs().max() / want.abs().max()).item() <= 1e-5
    assert ((got_state - want_state).abs().max() / want_state.abs().max()).item() <= 1e-5
