"""The ``torch`` selective-scan backend: fast, exact and stable in plain eager PyTorch, on any device.

The recurrence ``h_t = a_t * h_{t-1} + x_t`` (a_t = exp(dt_t * A), x_t = dt_t * u_t * B_t) is solved
for all d * n state channels at once, time-major, by recursive pairing (a work-efficient parallel
scan): neighbours are combined pairwise in place, the half-length problem is solved recursively and
the other half is filled in, so there are about 3 * log2(l) tensor ops per segment and no Python
loop over time steps. Only products of decays are ever formed, never quotients, so nothing can
overflow however large delta * A gets (decays just underflow to 0, as in the sequential recurrence).

Time is cut into segments sized for the CPU cache; the state is carried from one segment to the
next, so the (l, b, d, n) state tensor is never materialised. The backward pass is hand-written:
it recomputes each segment's states from the segment-start states saved by the forward pass and
runs the adjoint recurrence in reverse, so memory stays a small multiple of the inputs' size.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

_LOG2_E = 1.4426950408889634  # exp(x) == exp2(x * log2(e)); torch's exp2 is ~4x faster on CPU
_CPU_SEGMENT_ELEMENTS = 1 << 19  # per working tensor: 2 MiB in float32, cache-resident on a CPU
_DEVICE_SEGMENT_ELEMENTS = 1 << 26  # on accelerators fewer, larger kernel launches are cheaper


def _link_scan_(x: Tensor, links: Tensor, reverse: bool = False) -> None:
    """Solve a first-order linear recurrence along dim 0 of ``x``, in place.

    ``links[t]`` couples positions t and t + 1 (so it has one row fewer than ``x``).
    Forward: ``x[t] += links[t - 1] * x[t - 1]`` for t = 1 .. L-1, in order.
    Reverse: ``x[t] += links[t] * x[t + 1]`` for t = L-2 .. 0, in order.
    ``links`` is not modified.
    """
    length = x.shape[0]
    if length <= 1:
        return
    evens, odds = x[0::2], x[1::2]
    pair_links, cross_links = links[0::2], links[1::2]  # within (2i, 2i+1) / between (2i+1, 2i+2)
    n_pairs, n_cross = odds.shape[0], cross_links.shape[0]
    if reverse:
        evens[:n_pairs].addcmul_(pair_links, odds)
        _link_scan_(evens, pair_links[:n_cross] * cross_links, reverse=True)
        odds[:n_cross].addcmul_(cross_links, evens[1:n_cross + 1])
    else:
        odds.addcmul_(pair_links, evens[:n_pairs])
        _link_scan_(odds, cross_links[:n_pairs - 1] * pair_links[1:n_pairs])
        evens[1:].addcmul_(cross_links, odds[:n_cross])


class _Coefficient:
    """B or C in the scan's working layout, with its gradient accumulator.

    A time-varying ("variable") B/C, (b, n, l) or (b, g', n, l), is kept time-major as (l, b, g, n);
    per segment it broadcasts as (S, b, g, n, 1). A time-invariant (d, n) one is kept as (g, n, d/g).
    Either broadcasts against the segment's states (S, b, g, n, d/g).
    """

    def __init__(self, value: Tensor, groups: int, dtype: torch.dtype) -> None:
        self.variable = value.dim() >= 3
        self.input_shape = value.shape
        if self.variable:
            grouped = value.unsqueeze(1) if value.dim() == 3 else value
            self.input_groups = grouped.shape[1]
            repeated = grouped.to(dtype).repeat_interleave(groups // self.input_groups, dim=1)
            self.data = repeated.permute(3, 0, 1, 2).contiguous()
        else:
            d, n = value.shape
            self.data = value.to(dtype).reshape(groups, d // groups, n).transpose(1, 2).contiguous()
        self.grad = torch.zeros_like(self.data)

    def segment(self, start: int, stop: int) -> Tensor:
        """The coefficient for time steps [start, stop), broadcastable to (S, b, g, n, d/g)."""
        return self.data[start:stop].unsqueeze(-1) if self.variable else self.data

    def contract(self, start: int, stop: int, states: Tensor, out: Optional[Tensor] = None) -> Tensor:
        """sum_n coef[n] * states[..., n, :] for states (S, b, g, n, d/g) -> (S, b, g, 1, d/g)."""
        if self.variable:
            return torch.matmul(self.data[start:stop].unsqueeze(-2), states, out=out)
        return torch.sum(self.data * states, -2, keepdim=True, out=out)

    def accumulate_grad(self, start: int, stop: int, states: Tensor, weights: Tensor) -> None:
        """Add d(sum coef * states * weights)/d coef for states (S,b,g,n,d/g), weights (S,b,g,1,d/g)."""
        if self.variable:
            torch.matmul(states, weights.transpose(-1, -2), out=self.grad[start:stop].unsqueeze(-1))
        else:
            self.grad += (states * weights).sum((0, 1))

    def input_grad(self, dtype: torch.dtype) -> Tensor:
        """The accumulated gradient in the caller's layout and dtype."""
        if not self.variable:
            return self.grad.transpose(1, 2).reshape(self.input_shape).to(dtype)
        grad = self.grad.permute(1, 2, 3, 0)  # (b, g, n, l)
        b, groups, n, length = grad.shape
        grad = grad.reshape(b, self.input_groups, groups // self.input_groups, n, length).sum(2)
        return grad.reshape(self.input_shape).to(dtype)


def _layout_groups(d: int, B: Tensor, C: Tensor) -> int:
    """Channel groups of the working layout: every group shares one B row and one C row."""
    groups = 1
    for coef in (B, C):
        if coef.dim() == 4:
            groups = groups * coef.shape[1] // math.gcd(groups, coef.shape[1])
    return groups


def _segment_length(step_elements: int, length: int, device: torch.device) -> int:
    budget = _CPU_SEGMENT_ELEMENTS if device.type == 'cpu' else _DEVICE_SEGMENT_ELEMENTS
    return max(1, min(length, budget // max(step_elements, 1)))


def _time_major(x: Tensor, groups: int, dtype: torch.dtype) -> Tensor:
    """(b, d, l) -> contiguous (l, b, g, d/g), one 2-D transpose per batch element (torch's fast path)."""
    b, d, length = x.shape
    out = x.new_empty(length, b, d, dtype=dtype)
    for index in range(b):
        out[:, index].copy_(x[index].t())
    return out.view(length, b, groups, d // groups)


def _channel_major(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(l, b, g, d/g) -> contiguous (b, d, l)."""
    length, b = x.shape[:2]
    flat = x.reshape(length, b, -1)
    out = x.new_empty(b, flat.shape[2], length, dtype=dtype)
    for index in range(b):
        out[index].copy_(flat[:, index].t())
    return out


def _softplus_(x: Tensor) -> Tensor:
    """torch's softplus (threshold 20), in place, without torch's slow scalar log1p on the CPU: Kahan's
    accurate log1p(w) = log(v) * w / (v - 1) with v = 1 + w, w = exp(x)."""
    w = torch.exp(torch.clamp(x, max=20.0))
    v = w + 1.0
    log_v = torch.log(v)
    v_minus_1 = v.sub_(1.0)
    log1p_w = torch.where(v_minus_1 == 0.0, w, log_v.mul_(w).div_(v_minus_1))
    return torch.where(x > 20.0, x, log1p_w, out=x)


class _Problem:
    """The scan's inputs in the working layout, shared by the forward and backward passes."""

    def __init__(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, delta_bias: Optional[Tensor],
                 delta_softplus: bool, segment_len: Optional[int], keep_raw_delta: bool = False) -> None:
        self.dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        self.batch, self.dim, self.length = u.shape
        self.state_dim = A.shape[1]
        self.groups = _layout_groups(self.dim, B, C)
        self.group_dim = self.dim // self.groups
        self.u = _time_major(u, self.groups, self.dtype)
        dt = _time_major(delta, self.groups, self.dtype)
        if delta_bias is not None:
            dt += delta_bias.to(self.dtype).view(self.groups, self.group_dim)
        self.dt_raw = dt.clone() if keep_raw_delta and delta_softplus else None
        self.dt = _softplus_(dt) if delta_softplus else dt
        self.dtu = self.dt * self.u
        A_grouped = A.to(self.dtype).reshape(self.groups, self.group_dim, self.state_dim).transpose(1, 2)
        self.A = A_grouped.contiguous()  # (g, n, d/g)
        self.A_log2 = (A_grouped * _LOG2_E).contiguous()
        self.B = _Coefficient(B, self.groups, self.dtype)
        self.C = _Coefficient(C, self.groups, self.dtype)
        step = self.batch * self.dim * self.state_dim
        self.segment_len = segment_len or _segment_length(step, self.length, u.device)
        self.bounds = [(s, min(s + self.segment_len, self.length)) for s in range(0, self.length, self.segment_len)]

    def state_shape(self) -> Tuple[int, ...]:
        return self.batch, self.groups, self.state_dim, self.group_dim

    def decays(self, start: int, stop: int) -> Tensor:
        """a_t = exp(dt_t * A) for t in [start, stop): (S, b, g, n, d/g)."""
        return torch.mul(self.dt[start:stop].unsqueeze(-2), self.A_log2).exp2_()

    def states(self, start: int, stop: int, decays: Tensor, initial: Tensor) -> Tensor:
        """h_t for t in [start, stop) given h_{start-1} = initial: (S, b, g, n, d/g)."""
        states = torch.mul(self.dtu[start:stop].unsqueeze(-2), self.B.segment(start, stop))
        states[0].addcmul_(decays[0], initial)
        _link_scan_(states, decays[1:])
        return states


def _scan_forward(problem: _Problem, keep_segment_starts: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """y (l, b, g, d/g), the last state and (optionally) the state before each segment."""
    p = problem
    y = p.u.new_empty(p.length, p.batch, p.groups, p.group_dim)
    state = p.u.new_zeros(p.state_shape())
    starts = p.u.new_empty(len(p.bounds), *p.state_shape()) if keep_segment_starts else None
    for index, (start, stop) in enumerate(p.bounds):
        if starts is not None:
            starts[index] = state
        states = p.states(start, stop, p.decays(start, stop), state)
        p.C.contract(start, stop, states, out=y[start:stop].unsqueeze(-2))
        state = states[-1].clone()
    return y, state, starts


def _scan_backward(problem: _Problem, starts: Tensor, grad_y: Tensor,
                   grad_last: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. u and dt (time-major) and A (g, n, d/g); B/C grads accumulate in problem.

    With lambda_t = dL/dh_t (lambda_t = C_t g_t + a_{t+1} lambda_{t+1}), x_t = dt_t u_t B_t and
    a_t = exp(dt_t A): dL/dx_t = lambda_t and dL/d(dt_t A) = lambda_t * a_t * h_{t-1}.
    """
    p = problem
    grad_u = torch.empty_like(p.u)
    grad_dt = torch.empty_like(p.dt)
    grad_A = torch.zeros_like(p.A)
    carry = grad_last if grad_last is not None else p.u.new_zeros(p.state_shape())  # a_{t+1} lambda_{t+1}
    for index in reversed(range(len(p.bounds))):
        start, stop = p.bounds[index]
        initial = starts[index]
        decays = p.decays(start, stop)
        states = p.states(start, stop, decays, initial)
        g = grad_y[start:stop].unsqueeze(-2)  # (S, b, g, 1, d/g)
        p.C.accumulate_grad(start, stop, states, g)
        adjoint = torch.mul(p.C.segment(start, stop), g)
        adjoint[-1] += carry
        _link_scan_(adjoint, decays[1:], reverse=True)
        carry = decays[0] * adjoint[0]
        dtu = p.dtu[start:stop].unsqueeze(-2)
        p.B.accumulate_grad(start, stop, adjoint, dtu)
        grad_dtu = p.B.contract(start, stop, adjoint).squeeze(-2)
        log_decay_grad = decays  # reuse the buffer: lambda_t * a_t * h_{t-1}
        log_decay_grad[1:].mul_(states[:-1])
        log_decay_grad[0].mul_(initial)
        log_decay_grad.mul_(adjoint)
        del states, adjoint
        dt = p.dt[start:stop]
        grad_A += (log_decay_grad * dt.unsqueeze(-2)).sum((0, 1))
        torch.addcmul(log_decay_grad.mul_(p.A).sum(-2), grad_dtu, p.u[start:stop], out=grad_dt[start:stop])
        torch.mul(grad_dtu, dt, out=grad_u[start:stop])
    return grad_u, grad_dt, grad_A


class _SelectiveScanCore(torch.autograd.Function):
    """y_t = sum_n C_t h_t, h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, dt = [softplus](delta + bias): (y, last h)."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, delta_bias: Optional[Tensor],
                delta_softplus: bool, segment_len: Optional[int]) -> Tuple[Tensor, Tensor]:
        p = _Problem(u, delta, A, B, C, delta_bias, delta_softplus, segment_len)
        y, last, starts = _scan_forward(p, keep_segment_starts=any(ctx.needs_input_grad))
        ctx.save_for_backward(u, delta, A, B, C, delta_bias, starts)
        ctx.delta_softplus, ctx.segment_len = delta_softplus, p.segment_len
        return _channel_major(y, p.dtype), last.transpose(2, 3).reshape(p.batch, p.dim, p.state_dim)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Optional[Tensor], grad_last: Optional[Tensor]):
        u, delta, A, B, C, delta_bias, starts = ctx.saved_tensors
        p = _Problem(u, delta, A, B, C, delta_bias, ctx.delta_softplus, ctx.segment_len, keep_raw_delta=True)
        grad_y_tm = _time_major(grad_y, p.groups, p.dtype) if grad_y is not None else torch.zeros_like(p.u)
        if grad_last is not None:
            grad_last = grad_last.to(p.dtype).reshape(p.batch, p.groups, p.group_dim, p.state_dim).transpose(2, 3)
        grad_u, grad_dt, grad_A = _scan_backward(p, starts, grad_y_tm, grad_last)
        if p.dt_raw is not None:
            grad_dt.mul_(torch.sigmoid_(p.dt_raw))  # d softplus(x) / dx = sigmoid(x)
        grad_bias = grad_dt.sum((0, 1)).reshape(-1).to(delta_bias.dtype) if delta_bias is not None else None
        return (_channel_major(grad_u, u.dtype), _channel_major(grad_dt, delta.dtype),
                grad_A.transpose(1, 2).reshape(A.shape).to(A.dtype),
                p.B.input_grad(B.dtype), p.C.input_grad(C.dtype), grad_bias, None, None)


def selective_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                         z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = False, return_last_state: bool = False,
                         segment_len: Optional[int] = None):
    """Selective scan with the pure-PyTorch backend (same semantics as ``selective_scan``).

    ``segment_len`` overrides the cache-sized number of time steps processed per block (tests use
    tiny segments to exercise the state carried between them).
    """
    dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
    y, last_state = _SelectiveScanCore.apply(u, delta, A, B, C, delta_bias, delta_softplus, segment_len)
    if D is not None:
        y = torch.addcmul(y, u.to(dtype), D.to(dtype)[:, None])
    if z is not None:
        y = y * F.silu(z.to(dtype))
    y = y.to(u.dtype)
    return (y, last_state) if return_last_state else y
