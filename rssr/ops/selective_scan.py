"""Mamba's selective scan with ``mamba_ssm.selective_scan_fn`` semantics, and its backend dispatch.

For every channel j of group k = j // (d / g):
    dt_t = softplus(delta_t + delta_bias_j)   (softplus only if delta_softplus)
    h_t  = exp(dt_t * A_j) * h_{t-1} + dt_t * u_t * B_{k,t}
    y_t  = <C_{k,t}, h_t> + D_j * u_t,  then y_t *= silu(z_t) if z is given.
The state is kept in float32 (float64 for float64 inputs) whatever the input dtype; y is returned in
u's dtype.

Backends:
    ``mamba_ssm``  the official fused CUDA kernel (CUDA tensors, ``pip install mamba-ssm``);
    ``triton``     rssr's own fused Triton kernel (CUDA tensors, or CPU under TRITON_INTERPRET=1);
    ``torch``      rssr's parallel pure-PyTorch scan (any device, no compiler needed);
    ``reference``  the sequential recurrence, the ground truth for tests.
While a model is exported (``python -m rssr.export``: torch.onnx or torch.export tracing) the scan is
:func:`selective_scan_export` whatever the backend: the torch backend's in-place autograd.Function
unrolls into a huge graph (see :mod:`rssr.ops.scan_export`).
The ``backend`` argument (the archs' ``scan_backend`` kwarg) or the ``RSSR_SCAN_BACKEND`` environment
variable choose one; ``auto`` (the default) takes, for CUDA tensors, mamba_ssm, then triton, then torch,
and torch elsewhere. A fused backend is used only after it has been imported and probed once per device
(a tiny forward and backward against the reference, so a broken install, another Triton API, a kernel
that fails to compile or launch, or wrong results are all caught before real work). Under ``auto`` an
unusable one is skipped with one ScanBackendWarning naming the cause (silently when it is simply not
installed); a forced one raises ScanBackendUnavailable naming the cause. ``backend_status`` tells
either without raising (``python -m rssr.info`` prints it).
"""
from __future__ import annotations

import functools
import logging
import math
import os
import warnings
from typing import Callable, Dict, NamedTuple, Optional, Set, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from rssr.ops.scan_torch import selective_scan_torch

BACKENDS = ('auto', 'mamba_ssm', 'triton', 'torch', 'reference')
ENV_VAR = 'RSSR_SCAN_BACKEND'
logger = logging.getLogger('rssr')
_logged_choices: set = set()


class ScanBackendUnavailable(RuntimeError):
    """A forced selective-scan backend cannot run here; the message says how to enable it."""


def _expand_groups(bc: Tensor, d: int) -> Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l), one row per channel."""
    if bc.dim() == 3:
        return bc.unsqueeze(1).expand(-1, d, -1, -1)
    return bc.repeat_interleave(d // bc.shape[1], dim=1)


def _scan_inputs(u: Tensor, delta: Tensor, A: Tensor, delta_bias: Optional[Tensor],
                 delta_softplus: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """u, dt (delta with its bias and softplus) and A in the state dtype (float32, or float64 for float64)."""
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    return u, delta, A


def _scan_output(y: Tensor, u: Tensor, D: Optional[Tensor], z: Optional[Tensor], dtype_in: torch.dtype) -> Tensor:
    """y + D u, gated by silu(z), in the input dtype."""
    if D is not None:
        y = y + u * D.to(u.dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(u.dtype))
    return y.to(dtype_in)


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                             z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = False,
                             return_last_state: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The plain sequential recurrence: slow, obviously right; the ground truth for tests."""
    dtype_in = u.dtype
    u, delta, A = _scan_inputs(u, delta, A, delta_bias, delta_softplus)
    b, d, length = u.shape
    B = _expand_groups(B.to(u.dtype), d) if B.dim() >= 3 else B.to(u.dtype)[None, :, :, None].expand(b, -1, -1, length)
    C = _expand_groups(C.to(u.dtype), d) if C.dim() >= 3 else C.to(u.dtype)[None, :, :, None].expand(b, -1, -1, length)
    decay = torch.exp(delta.unsqueeze(2) * A[None, :, :, None])  # (b, d, n, l)
    drive = (delta * u).unsqueeze(2) * B  # (b, d, n, l)
    state = u.new_zeros(b, d, A.shape[1])
    outputs = []
    for t in range(length):
        state = decay[..., t] * state + drive[..., t]
        outputs.append((state * C[..., t]).sum(-1))
    y = torch.stack(outputs, dim=-1) if outputs else u.new_zeros(b, d, 0)
    y = _scan_output(y, u, D, z, dtype_in)
    return (y, state) if return_last_state else y


def selective_scan_export(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                          return_last_state: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The scan as ONNX exporters trace it (:func:`rssr.ops.scan_export.blocked_selective_scan`): out-of-place
    ops on one step of every block, about 9 sqrt(l) of them, where the torch backend's in-place
    autograd.Function unrolls into thousands."""
    from rssr.ops.scan_export import blocked_selective_scan

    dtype_in = u.dtype
    u, delta, A = _scan_inputs(u, delta, A, delta_bias, delta_softplus)
    b, d, length = u.shape

    def grouped(coef: Tensor) -> Tensor:  # (b, g, n, l); time-invariant (d, n): one group per channel
        coef = coef.to(u.dtype)
        if coef.dim() == 2:
            return coef[None, :, :, None].expand(b, -1, -1, length)
        return coef.unsqueeze(1) if coef.dim() == 3 else coef

    B, C = grouped(B), grouped(C)
    if B.shape[1] != C.shape[1]:  # different group counts: one group per channel for both
        B, C = _expand_groups(B, d), _expand_groups(C, d)
    y, last = blocked_selective_scan(delta, u, A, B, C)
    y = _scan_output(y, u, D, z, dtype_in)
    return (y, last) if return_last_state else y


def _check_shapes(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                  z: Optional[Tensor], delta_bias: Optional[Tensor]) -> None:
    """Raise a ValueError naming the offending argument and its shape."""
    if u.dim() != 3 or delta.shape != u.shape:
        raise ValueError(f'selective_scan: u and delta must both be (b, d, l); got {tuple(u.shape)} '
                         f'and {tuple(delta.shape)}')
    b, d, length = u.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f'selective_scan: A must be (d, n) = ({d}, n); got {tuple(A.shape)}')
    n = A.shape[1]
    for name, coef in (('B', B), ('C', C)):
        valid = {2: coef.shape == (d, n), 3: coef.shape == (b, n, length),
                 4: coef.dim() == 4 and coef.shape[0] == b and coef.shape[2:] == (n, length)}.get(coef.dim(), False)
        if not valid:
            raise ValueError(f'selective_scan: {name} must be (b, g, n, l), (b, n, l) or (d, n) with b={b}, n={n}, '
                             f'l={length}, d={d}; got {tuple(coef.shape)}')
        if coef.dim() == 4 and (coef.shape[1] == 0 or d % coef.shape[1]):
            raise ValueError(f'selective_scan: {name} has {coef.shape[1]} groups, which do not divide d={d} channels')
    for name, vector in (('D', D), ('delta_bias', delta_bias)):
        if vector is not None and vector.shape != (d,):
            raise ValueError(f'selective_scan: {name} must be ({d},); got {tuple(vector.shape)}')
    if z is not None and z.shape != u.shape:
        raise ValueError(f'selective_scan: z must have u\'s shape {tuple(u.shape)}; got {tuple(z.shape)}')


# ---- the fused backends: loading, probing, calling ------------------------------------------------

FUSED_BACKENDS = ('mamba_ssm', 'triton')
AUTO_ORDER = {'cuda': ('mamba_ssm', 'triton', 'torch')}  # by device type; other devices: torch
FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)  # float64 keeps a float64 state: torch only
# mamba_ssm's own float32 test tolerances (rtol, atol) against its reference (state-spaces/mamba,
# tests/ops/test_selective_scan.py, with z): out and state 6e-4/2e-3; du x2; ddelta rtol x5, atol x10;
# dA rtol 1e-3, atol 5 x 2e-3; time-varying dB, dC like out; dD, dz, ddelta_bias 1e-3/2e-3. The CUDA tests and
# scripts/gpu_check.py hold mamba_ssm to these, not to rssr's own (60x tighter) 1e-5.
MAMBA_SSM_TEST_TOLERANCES = {'y': (6e-4, 2e-3), 'last_state': (6e-4, 2e-3), 'grad_u': (1.2e-3, 4e-3),
                             'grad_delta': (3e-3, 2e-2), 'grad_A': (1e-3, 1e-2), 'grad_B': (6e-4, 2e-3),
                             'grad_C': (6e-4, 2e-3), 'grad_D': (1e-3, 2e-3), 'grad_z': (1e-3, 2e-3),
                             'grad_delta_bias': (1e-3, 2e-3)}
PROBE_TOLERANCE = 1e-3  # max |error| / max |truth| per tensor: rounding passes, a wrong kernel does not


class ScanBackendWarning(RuntimeWarning):
    """``auto`` found a fused backend unusable on a device and falls back to the next one."""


class FusedBackend(NamedTuple):
    """A loaded fused backend: its scan function and the device types it runs on."""
    run: Callable
    device_types: Tuple[str, ...]


class BackendStatus(NamedTuple):
    """Whether a backend runs correctly on a device, and why not (or what was checked)."""
    usable: bool
    reason: str
    installed: bool = True


_statuses: Dict[Tuple[str, str], BackendStatus] = {}  # (backend, device) -> status, probed once
_warned: Set[Tuple[str, str]] = set()
_logged_choices: Set[Tuple[str, str]] = set()


def _describe(error: BaseException) -> str:
    """'Type: first line of the message', for one-line reasons."""
    lines = str(error).strip().splitlines()
    return f'{type(error).__name__}: {lines[0]}' if lines else type(error).__name__


def call_mamba_ssm(selective_scan_fn: Callable, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor,
                   D: Optional[Tensor] = None, z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                   delta_softplus: bool = False,
                   return_last_state: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Call ``mamba_ssm.ops.selective_scan_interface.selective_scan_fn`` with the layouts its CUDA kernel
    checks: u, delta, z and time-varying B/C in u's dtype with unit stride in time; A, time-invariant B/C,
    D and delta_bias in float32; time-varying B and C with the same number of groups (rssr allows
    different ones: both are expanded to their least common multiple)."""
    groups = {coef.shape[1] if coef.dim() == 4 else 1 for coef in (B, C) if coef.dim() >= 3}
    common = math.lcm(*groups) if len(groups) > 1 else None  # divides d: every group count does (_check_shapes)

    def varying(coef: Tensor) -> Tensor:
        if coef.dim() == 2:
            return coef.float()
        return _unit_time_stride((_expand_groups(coef, common) if common else coef).to(u.dtype))

    return selective_scan_fn(_unit_time_stride(u), _unit_time_stride(delta.to(u.dtype)), A.float(), varying(B),
                             varying(C), D=None if D is None else D.float(),
                             z=None if z is None else _unit_time_stride(z.to(u.dtype)),
                             delta_bias=None if delta_bias is None else delta_bias.float(),
                             delta_softplus=delta_softplus, return_last_state=return_last_state)


def _unit_time_stride(tensor: Tensor) -> Tensor:
    return tensor if tensor.stride(-1) == 1 else tensor.contiguous()


def _load_fused(backend: str) -> FusedBackend:
    """Import a fused backend; any exception (ImportError, OSError from a CUDA build for another torch,
    AttributeError from another Triton API, ...) propagates to the caller, which records it."""
    if backend == 'mamba_ssm':
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
        return FusedBackend(functools.partial(call_mamba_ssm, selective_scan_fn), ('cuda',))
    from rssr.ops import scan_triton
    return FusedBackend(scan_triton.selective_scan_triton, ('cuda', 'cpu') if scan_triton.INTERPRETED else ('cuda',))


INSTALL_HINTS = {
    'mamba_ssm': 'install it on a CUDA machine with `pip install mamba-ssm --no-build-isolation` (or '
                 '`pip install rssr[cuda]`)',
    'triton': 'install it with `pip install "triton>=3.2"` (it ships with CUDA builds of torch on Linux)',
}


def _probe(run: Callable, device: torch.device) -> Optional[str]:
    """Why ``run`` cannot be trusted on ``device`` (None if it can): a tiny scan with D, delta_bias and
    softplus (the archs' configuration), forward and every input gradient, against the float64 reference."""
    generator = torch.Generator().manual_seed(0)
    b, d, n, length, groups = 1, 4, 4, 12, 2

    def randn(*shape: int) -> Tensor:
        return torch.randn(*shape, generator=generator)

    inputs = {'u': randn(b, d, length), 'delta': randn(b, d, length), 'A': -torch.rand(d, n, generator=generator) - 0.5,
              'B': randn(b, groups, n, length), 'C': randn(b, groups, n, length), 'D': randn(d),
              'delta_bias': torch.rand(d, generator=generator) - 1.0}
    upstream = randn(b, d, length)

    def outputs(scan: Callable, dtype: torch.dtype, where: torch.device) -> Dict[str, Tensor]:
        leaves = {k: v.to(where, dtype).requires_grad_() for k, v in inputs.items()}
        y = scan(leaves['u'], leaves['delta'], leaves['A'], leaves['B'], leaves['C'], leaves['D'], None,
                 leaves['delta_bias'], True, False)
        (y * upstream.to(where, y.dtype)).sum().backward()
        return {'y': y.detach(), **{f'grad_{k}': leaf.grad for k, leaf in leaves.items()}}

    with torch.inference_mode(False), torch.enable_grad(), torch.autocast(device.type, enabled=False):
        truth = outputs(selective_scan_reference, torch.float64, torch.device('cpu'))
        try:
            got = outputs(run, torch.float32, device)
            if device.type == 'cuda':
                torch.cuda.synchronize(device)
        except Exception as error:  # noqa: BLE001  (compile and launch errors of any kind)
            return f'its first launch failed ({_describe(error)})'
    errors = {}
    for name, want in truth.items():
        have = got[name]
        errors[name] = float('nan') if have is None else (
            (have.double().cpu() - want).abs().max() / want.abs().max().clamp_min(1e-30)).item()
    bad = {name: error for name, error in errors.items() if not error <= PROBE_TOLERANCE}
    if bad:
        worst = max(bad, key=lambda name: bad[name] if bad[name] == bad[name] else float('inf'))
        return f'it gives wrong results (max relative error {bad[worst]:.1e} in {worst} on a test problem)'
    return None


def backend_status(backend: str, device: Union[str, torch.device]) -> BackendStatus:
    """Whether ``backend`` runs correctly on ``device``: imported, on a device it supports, and probed once
    (forward and backward against the reference). Never raises for a broken installation."""
    device = torch.device(device)
    if device.type == 'cuda' and device.index is None:
        device = torch.device('cuda', torch.cuda.current_device())
    key = (backend, str(device))
    if key in _statuses:
        return _statuses[key]
    if backend not in FUSED_BACKENDS:
        status = BackendStatus(True, 'plain torch, any device')
    else:
        try:
            fused = _load_fused(backend)
        except Exception as error:  # noqa: BLE001  (see _load_fused)
            if isinstance(error, ModuleNotFoundError) and error.name == backend:
                status = BackendStatus(False, f'{backend} is not installed; {INSTALL_HINTS[backend]}', False)
            else:
                status = BackendStatus(False, f'importing {backend} failed ({_describe(error)})')
        else:
            if device.type not in fused.device_types:
                hint = (' (or the CPU in its slow interpreter, with TRITON_INTERPRET=1 set before Python starts)'
                        if backend == 'triton' else '')
                status = BackendStatus(False, f'{backend} needs CUDA tensors{hint}; got tensors on {device}')
            else:
                failure = _probe(fused.run, device)
                status = BackendStatus(failure is None, failure or f'probed on {device}: forward and gradients exact')
    _statuses[key] = status
    return status


def _runner(backend: str) -> Callable:
    if backend == 'reference':
        return selective_scan_reference
    if backend == 'torch':
        return selective_scan_torch
    return _load_fused(backend).run


def _unusable_error(backend: str, device: torch.device, status: BackendStatus) -> ScanBackendUnavailable:
    return ScanBackendUnavailable(f"selective_scan backend '{backend}' is unusable on {device}: {status.reason}. "
                                  "Use backend 'auto' or 'torch'.")


def _fall_back(backend: str, device: torch.device, status: BackendStatus) -> None:
    """Record that ``auto`` skips ``backend`` on ``device``: one warning naming the cause (a debug log line
    when the backend is simply not installed)."""
    key = (backend, str(device))
    if key in _warned:
        return
    _warned.add(key)
    if status.installed:
        warnings.warn(f"selective_scan: backend '{backend}' is unusable on {device} and 'auto' falls back to the "
                      f"next backend: {status.reason}", ScanBackendWarning, stacklevel=4)
    else:
        logger.debug("selective_scan: backend '%s' skipped on %s: %s", backend, device, status.reason)


def requested_backend(backend: Optional[str] = None) -> Tuple[str, str]:
    """(backend asked for, where it came from): the argument, else RSSR_SCAN_BACKEND, else 'auto'."""
    source = 'backend argument'
    if backend is None or backend == 'auto':
        backend, source = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto', ENV_VAR
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r} (from the {source}); "
                         f"choose one of {', '.join(BACKENDS)}")
    return backend, source


def resolve_backend(u: Tensor, backend: Optional[str] = None) -> Tuple[str, Callable]:
    """The backend that will run for tensors like ``u``, and its scan function; logs new choices once.

    ``auto`` takes the first usable backend of AUTO_ORDER for u's device (fused ones only for float32,
    float16 and bfloat16); a forced backend that cannot run raises ScanBackendUnavailable naming the cause.
    """
    backend, source = requested_backend(backend)
    if backend == 'auto' and u.device.type not in AUTO_ORDER:
        backend, reason = 'torch', f'auto: tensors on {u.device.type}; the fused kernels need CUDA'
    elif backend == 'auto':
        skipped = []
        for candidate in AUTO_ORDER[u.device.type]:
            if candidate in FUSED_BACKENDS:
                if u.dtype not in FUSED_DTYPES:
                    skipped.append(f'{candidate}: {u.dtype} inputs')
                    continue
                status = backend_status(candidate, u.device)
                if not status.usable:
                    _fall_back(candidate, u.device, status)
                    skipped.append(f'{candidate}: {status.reason}')
                    continue
            backend = candidate
            break
        reason = f'auto: tensors on {u.device.type}' + (f"; skipped {'; '.join(skipped)}" if skipped else '')
    else:
        if backend in FUSED_BACKENDS:
            status = backend_status(backend, u.device)
            if not status.usable:
                raise _unusable_error(backend, u.device, status)
        reason = f'forced by the {source}'
    if (backend, reason) not in _logged_choices:
        _logged_choices.add((backend, reason))
        logger.info("selective_scan backend '%s' (%s)", backend, reason)
    return backend, _runner(backend)


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                   return_last_state: bool = False,
                   backend: Optional[str] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Selective scan over u (b, d, l); see the module docstring for the math, shapes and backends.

    A fused backend that raises (anything but running out of memory) is reported, not propagated, under
    ``auto``: it is marked unusable on that device with one warning and the scan reruns on the next backend.
    """
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():  # rssr.export: a graph, not a kernel
        return selective_scan_export(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    name, runner = resolve_backend(u, backend)
    args = (u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
    if name not in FUSED_BACKENDS:
        return runner(*args)
    try:
        return runner(*args)
    except torch.cuda.OutOfMemoryError:
        raise
    except Exception as error:  # noqa: BLE001  (a compile or launch failure the probe did not meet)
        status = BackendStatus(False, f'it failed on a scan of shape {tuple(u.shape)} ({_describe(error)})')
        if requested_backend(backend)[0] != 'auto':
            raise _unusable_error(name, u.device, status) from error
        _statuses[(name, str(u.device))] = status
        _fall_back(name, u.device, status)
        return selective_scan(*args, backend='auto')
