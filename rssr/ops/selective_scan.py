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
``auto`` (the default) picks mamba_ssm, then triton, for CUDA tensors and torch otherwise. The
``backend`` argument (the archs' ``scan_backend`` kwarg) or the ``RSSR_SCAN_BACKEND`` environment
variable force one; a forced backend that cannot run raises :class:`ScanBackendUnavailable`.
"""
from __future__ import annotations

import logging
import os
from typing import Callable, Optional, Tuple, Union

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


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                             z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = False,
                             return_last_state: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The plain sequential recurrence: slow, obviously right; the ground truth for tests."""
    dtype_in = u.dtype
    dtype = torch.float64 if dtype_in == torch.float64 else torch.float32
    u, delta, A = u.to(dtype), delta.to(dtype), A.to(dtype)
    if delta_bias is not None:
        delta = delta + delta_bias.to(dtype)[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, length = u.shape
    B = _expand_groups(B.to(dtype), d) if B.dim() >= 3 else B.to(dtype)[None, :, :, None].expand(b, -1, -1, length)
    C = _expand_groups(C.to(dtype), d) if C.dim() >= 3 else C.to(dtype)[None, :, :, None].expand(b, -1, -1, length)
    decay = torch.exp(delta.unsqueeze(2) * A[None, :, :, None])  # (b, d, n, l)
    drive = (delta * u).unsqueeze(2) * B  # (b, d, n, l)
    state = u.new_zeros(b, d, A.shape[1])
    outputs = []
    for t in range(length):
        state = decay[..., t] * state + drive[..., t]
        outputs.append((state * C[..., t]).sum(-1))
    y = torch.stack(outputs, dim=-1) if outputs else u.new_zeros(b, d, 0)
    if D is not None:
        y = y + u * D.to(dtype)[:, None]
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y


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


def _import_once(loader: Callable[[], object]) -> Callable[[], object]:
    """Run ``loader`` on first use only and replay its result, or the ScanBackendUnavailable it raised
    (a failed import is otherwise retried, with file-system lookups, on every scan)."""
    outcome: list = []

    def load() -> object:
        if not outcome:
            try:
                outcome.append((True, loader()))
            except ScanBackendUnavailable as error:
                outcome.append((False, error))
        ok, value = outcome[0]
        if not ok:  # a fresh exception each time, so tracebacks do not pile up on one object
            raise ScanBackendUnavailable(str(value)) from value.__cause__
        return value
    return load


@_import_once
def _import_mamba_ssm() -> Callable:
    try:
        from mamba_ssm.ops.selective_scan_interface import selective_scan_fn
    except Exception as error:  # ImportError, or an OSError/RuntimeError from a mismatched CUDA build
        raise ScanBackendUnavailable(
            f"selective_scan backend 'mamba_ssm' is unavailable: importing mamba_ssm failed ({error}). Install it on "
            "a CUDA machine with `pip install mamba-ssm --no-build-isolation` (or `pip install rssr[cuda]`), or use "
            "backend 'triton' or 'torch'.") from error
    return selective_scan_fn


@_import_once
def _import_triton_backend():
    try:
        from rssr.ops import scan_triton
    except ImportError as error:
        raise ScanBackendUnavailable(
            f"selective_scan backend 'triton' is unavailable: importing triton failed ({error}). Install it with "
            "`pip install triton` (it ships with CUDA builds of torch on Linux), or use backend 'torch'.") from error
    return scan_triton


def _require_cuda(backend: str, u: Tensor) -> None:
    if u.device.type != 'cuda':
        hint = (' To run the Triton kernel on the CPU in its (slow) interpreter, start Python with '
                'TRITON_INTERPRET=1 in the environment.' if backend == 'triton' else '')
        raise ScanBackendUnavailable(
            f"selective_scan backend '{backend}' needs CUDA tensors; got tensors on {u.device}.{hint} "
            "Use backend 'torch' (or 'auto') on this device.")


def _runner(backend: str, u: Tensor) -> Callable:
    """The scan function of a forced backend, or raise ScanBackendUnavailable saying how to enable it."""
    if backend == 'reference':
        return selective_scan_reference
    if backend == 'torch':
        return selective_scan_torch
    if backend == 'mamba_ssm':
        selective_scan_fn = _import_mamba_ssm()
        _require_cuda(backend, u)
        return selective_scan_fn
    scan_triton = _import_triton_backend()
    if not (u.device.type == 'cpu' and scan_triton.INTERPRETED):
        _require_cuda(backend, u)
    return scan_triton.selective_scan_triton


def _auto_backend(u: Tensor) -> Tuple[str, str]:
    """(backend, reason) for backend='auto'."""
    if u.device.type != 'cuda':
        return 'torch', f'tensors on {u.device.type}; the fused kernels need CUDA'
    try:
        _import_mamba_ssm()
        return 'mamba_ssm', 'CUDA tensors and mamba_ssm is importable'
    except ScanBackendUnavailable as mamba_error:
        missing = str(mamba_error.__cause__)
    try:
        _import_triton_backend()
        return 'triton', f'CUDA tensors, mamba_ssm not importable ({missing})'
    except ScanBackendUnavailable as triton_error:
        return 'torch', f'CUDA tensors, but neither mamba_ssm ({missing}) nor triton ({triton_error.__cause__}) imports'


def resolve_backend(u: Tensor, backend: Optional[str] = None) -> Tuple[str, Callable]:
    """The backend that will run for tensors like ``u``, and its scan function; logs new choices once."""
    source = 'backend argument'
    if backend is None or backend == 'auto':
        backend, source = os.environ.get(ENV_VAR, 'auto').strip().lower() or 'auto', ENV_VAR
    if backend not in BACKENDS:
        raise ValueError(f"selective_scan: unknown backend {backend!r} (from the {source}); "
                         f"choose one of {', '.join(BACKENDS)}")
    if backend == 'auto':
        backend, reason = _auto_backend(u)
        reason = f'auto: {reason}'
    else:
        reason = f'forced by the {source}'
    runner = _runner(backend, u)
    if (backend, reason) not in _logged_choices:
        _logged_choices.add((backend, reason))
        logger.info("selective_scan backend '%s' (%s)", backend, reason)
    return backend, runner


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                   return_last_state: bool = False,
                   backend: Optional[str] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Selective scan over u (b, d, l); see the module docstring for the math, shapes and backends."""
    _check_shapes(u, delta, A, B, C, D, z, delta_bias)
    _, runner = resolve_backend(u, backend)
    return runner(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
