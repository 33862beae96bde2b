"""The ``torch`` selective-scan backend: fast, exact and stable in plain eager PyTorch, on any device.

The recurrence ``h_t = a_t * h_{t-1} + x_t`` (a_t = exp(dt_t * A), x_t = dt_t * u_t * B_t) is solved
for all b * d * n state channels at once by a blocked scan: time is cut into blocks of about
sqrt(S) steps, one op per step solves all blocks at once from a zero start while accumulating each
block's product of decays, a few small ops chain the blocks' end states and one op adds each
block's incoming state (:func:`_blocked_scan_`). There is no Python loop over single time steps of
one channel, and only products of decays are ever formed, never quotients, so nothing can overflow
however large delta * A gets (decays just underflow to 0, as in the sequential recurrence).
Blocks cost two extra passes over the states, so they are used only where they buy parallelism or
fewer ops: steps that are large (window-sized batches; at one CPU thread, any step of 4096 state
elements or more) are scanned one op per step.

Layout: every per-step tensor is batch-major and time-second, (b, l, ...), with the channels
contiguous. Inputs already stored that way (time-major: a (b, d, l) transposed view of (b, l, d) memory,
as the SS2D blocks pass their direction sequences) are read in place, and y and the input gradients are
then returned in that layout too; contiguous (b, d, l) inputs cost one 2-D transpose per batch element
each way. Each op of the scan is a large contiguous elementwise op that torch spreads over its
intra-op threads. Time is cut into segments sized for the CPU cache; the state is carried from one
segment to the next, so the (b, l, d, n) state tensor is never materialised, and the segment
buffers are allocated once per call, with their per-step views (making a view costs about as much
as dispatching the small op that uses it). delta_bias, softplus and dt * u run over cache-sized time
chunks (whole-tensor temporaries would each be a pass through memory), and the D skip is added to
each segment's y while it is in cache; none of them uses a torch op whose CPU kernel is scalar
(``where``, ``log1p``).

The backward pass is hand-written: it recomputes each segment's states from the segment-start
states saved by the forward pass and runs the adjoint recurrence in reverse, so memory stays a small
multiple of the inputs' size. It reuses the forward's inputs in the working layout (u, dt, dt * u,
B, C: about 3 (b, d, l) tensors kept between the passes) instead of converting them again.
"""
from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.autograd.function import once_differentiable

_LOG2_E = 1.4426950408889634  # exp(x) == exp2(x * log2(e)); torch's exp2 is the fastest exp on CPU
_CPU_SEGMENT_ELEMENTS = 1 << 19  # per working tensor and thread: 2 MiB in float32, in one core's caches
_DEVICE_SEGMENT_ELEMENTS = 1 << 26  # on accelerators fewer, larger kernel launches are cheaper
# delta_bias, softplus and dt * u run over time chunks of this many elements: their temporaries stay in cache
_SETUP_CHUNK_ELEMENTS = 1 << 17
# Steps at least this large are scanned one op per step, no blocks (blocks cost two extra passes).
_SEQUENTIAL_STEP_ELEMENTS = 1 << 15  # torch's grain size: smaller ops run on one thread, so blocks pay off
_SEQUENTIAL_STEP_ELEMENTS_ONE_THREAD = 1 << 12  # on one CPU thread, only per-op overhead favours blocks
# torch's CPU bmm multiplies matrices with rows * inner * cols below 400 in a scalar loop: for a
# contraction over n of n * d/g below this, a multiply and a sum are ~5x faster (n = 8, d/g = 48)
_SMALL_CPU_BMM = 400


def _blocks(length: int, step_elements: int, device: torch.device) -> Tuple[int, int]:
    """(number of blocks, steps per block) for a blocked scan of ``length`` steps of ``step_elements``
    each; (0, 0): step by step."""
    one_thread = device.type == 'cpu' and torch.get_num_threads() == 1
    sequential_from = _SEQUENTIAL_STEP_ELEMENTS_ONE_THREAD if one_thread else _SEQUENTIAL_STEP_ELEMENTS
    block = math.isqrt(length)
    if step_elements >= sequential_from or block < 2:
        return 0, 0
    return length // block, block


def _step_views(x: Tensor, start: int, stop: int, blocks: int) -> Tuple[Tensor, ...]:
    """x[start:stop] cut into its time steps along dim 0 (``blocks`` = 0), or into ``blocks`` blocks of
    equal length whose t-th steps form view t (so one op on view t advances every block)."""
    part = x[start:stop]
    return part.unflatten(0, (blocks, part.shape[0] // blocks)).unbind(1) if blocks else part.unbind(0)


StepViews = Callable[[Tensor, int, int, int], Tuple[Tensor, ...]]


def _blocked_scan_(x: Tensor, links: Tensor, initial: Tensor, views: StepViews = _step_views) -> None:
    """Solve ``x[t] += links[t] * x[t - 1]`` for t = 0 .. S-1 along dim 0 of ``x``, with x[-1] = initial,
    in place; ``links`` (same shape as ``x``) is overwritten. ``views`` cuts x and links into per-step
    views (:func:`_step_views`, or a cache of its results for reused buffers).

    Time is cut into P blocks of T ~ sqrt(S) steps. One op per step solves every block at once from a
    zero start while ``links`` becomes each block's running product of links; P small ops chain the
    blocks' end states, and one op adds each block's incoming state times those products.
    That is about 2T + P + 1 large ops per call instead of S small ones (or 6 log2(S) for pairing).
    Steps of ``_SEQUENTIAL_STEP_ELEMENTS`` or more (large batches) are solved step by step: one pass
    instead of three, and each op is large enough for every thread.
    """
    length = x.shape[0]
    blocks, block = _blocks(length, x[0].numel(), x.device)
    main = blocks * block
    if main:
        xs, products = views(x, 0, main, blocks), views(links, 0, main, blocks)
        for t in range(1, block):
            xs[t].addcmul_(products[t], xs[t - 1])
            products[t].mul_(products[t - 1])
        incoming = x.new_empty(blocks, *x.shape[1:])
        incomings, ends, end_products = incoming.unbind(0), xs[-1].unbind(0), products[-1].unbind(0)
        incomings[0].copy_(initial)
        for index in range(1, blocks):
            torch.addcmul(ends[index - 1], end_products[index - 1], incomings[index - 1], out=incomings[index])
        x[:main].unflatten(0, (blocks, block)).addcmul_(links[:main].unflatten(0, (blocks, block)),
                                                         incoming.unsqueeze(1))
    previous = initial if main == 0 else x[main - 1]
    for x_t, link in zip(views(x, main, length, 0), views(links, main, length, 0)):
        x_t.addcmul_(link, previous)
        previous = x_t


def _blocked_reverse_scan_(x: Tensor, links: Tensor, products: Tensor, views: StepViews = _step_views) -> None:
    """Solve ``x[t] += links[t + 1] * x[t + 1]`` for t = S-2 .. 0 along dim 0 of ``x``, in place, by the
    blocks of :func:`_blocked_scan_` run backwards; ``links`` is kept, ``products`` (same shape) is scratch."""
    length = x.shape[0]
    blocks, block = _blocks(length, x[0].numel(), x.device)
    tail = length - blocks * block
    solved_from = length - 1
    if blocks:
        xb = x[tail:].unflatten(0, (blocks, block))
        pb = products[tail:].unflatten(0, (blocks, block))  # pb[:, t]: product of the block's links after t
        xs, ls, ps = views(x, tail, length, blocks), views(links, tail, length, blocks), views(products, tail,
                                                                                                 length, blocks)
        ps[-1].fill_(1.0)
        for t in range(block - 2, -1, -1):
            xs[t].addcmul_(ls[t + 1], xs[t + 1])
            torch.mul(ps[t + 1], ls[t + 1], out=ps[t])
        incoming = x.new_zeros(blocks, *x.shape[1:])  # what the next block adds at a block's end
        incomings, starts, start_products, start_links = (incoming.unbind(0), xs[0].unbind(0), ps[0].unbind(0),
                                                          ls[0].unbind(0))
        for index in range(blocks - 2, -1, -1):
            torch.addcmul(starts[index + 1], start_products[index + 1], incomings[index + 1], out=incomings[index])
            incomings[index].mul_(start_links[index + 1])
        xb.addcmul_(pb, incoming.unsqueeze(1))
        solved_from = tail
    xs, ls = views(x, 0, solved_from + 1, 0), views(links, 0, solved_from + 1, 0)
    for t in range(solved_from - 1, -1, -1):
        xs[t].addcmul_(ls[t + 1], xs[t + 1])


def _is_time_major(x: Tensor) -> bool:
    """Whether (b, c, l) ``x`` is stored as a contiguous (b, l, c), as a transposed view of channels-last
    features is: the scan then reads it, and writes its output in the same layout, without a transpose."""
    return x.dim() == 3 and x.transpose(1, 2).is_contiguous()


def _swap_last_two(x: Tensor) -> Tensor:
    """(b, m, k) -> contiguous (b, k, m): one 2-D transpose per batch element (torch's blocked fast path)."""
    out = x.new_empty(x.shape[0], x.shape[2], x.shape[1])
    for index in range(x.shape[0]):
        out[index].copy_(x[index].t())
    return out


def _time_major(x: Tensor, dtype: torch.dtype) -> Tensor:
    """(b, c, l) -> contiguous (b, l, c) in ``dtype``: a view of a time-major ``x``, else a transposed copy."""
    x = x.to(dtype)
    return x.transpose(1, 2) if _is_time_major(x) else _swap_last_two(x)


def _caller_layout(x: Tensor, like: Tensor, dtype: torch.dtype) -> Tensor:
    """(b, l, ...) -> (b, prod(...), l) in ``dtype``, stored like ``like``: a view of ``x`` where ``like`` is
    time-major, else a contiguous transposed copy."""
    flat = x.reshape(x.shape[0], x.shape[1], -1)
    return (flat.transpose(1, 2) if _is_time_major(like) else _swap_last_two(flat)).to(dtype)


def _softplus_(x: Tensor) -> Tensor:
    """torch's softplus, in place, from ops with vectorised CPU kernels (no ``where``/``log1p``):
    softplus(x) = max(x, 0) + log1p(w), w = exp(-|x|) in (0, 1], with log1p(w) = log(v) + (w - (v - 1)) / v
    for v = 1 + w (the correction restores what rounding 1 + w lost, so small w stay exact)."""
    w = torch.abs(x).mul_(-_LOG2_E).exp2_()
    v = w + 1.0
    correction = torch.sub(w, v - 1.0).div_(v)
    return x.clamp_(min=0.0).add_(v.log_()).add_(correction)


def _small_bmm(states: Tensor) -> bool:
    """Whether contracting (..., n, d/g) states over n or d/g is faster as a multiply and a sum than as bmm."""
    return states.device.type == 'cpu' and states.shape[-2] * states.shape[-1] < _SMALL_CPU_BMM


class _Coefficient:
    """B or C in the scan's working layout, with its gradient accumulator.

    A time-varying ("variable") B/C, (b, n, l) or (b, g', n, l), is kept as (b, l, g, n); per segment
    it broadcasts as (b, S, g, n, 1). A time-invariant (d, n) one is kept as (g, n, d/g).
    Either broadcasts against a segment's states (b, S, g, n, d/g).
    """

    def __init__(self, value: Tensor, groups: int, dtype: torch.dtype) -> None:
        self.variable = value.dim() >= 3
        self.input = value
        if self.variable:
            grouped = value.unsqueeze(1) if value.dim() == 3 else value
            b, self.input_groups, n, length = grouped.shape
            data = _time_major(grouped.reshape(b, self.input_groups * n, length), dtype)
            data = data.view(b, length, self.input_groups, n)
            repeats = groups // self.input_groups
            self.data = data.repeat_interleave(repeats, dim=2) if repeats > 1 else data
        else:
            d, n = value.shape
            self.data = value.to(dtype).reshape(groups, d // groups, n).transpose(1, 2).contiguous()
        self.grad: Optional[Tensor] = None

    def start_grad(self) -> None:
        """A fresh gradient accumulator (time-varying ones are written once per segment, others summed)."""
        self.grad = torch.empty_like(self.data) if self.variable else torch.zeros_like(self.data)

    def segment(self, start: int, stop: int) -> Tensor:
        """The coefficient for time steps [start, stop), broadcastable to (b, S, g, n, d/g)."""
        return self.data[:, start:stop].unsqueeze(-1) if self.variable else self.data

    def contract(self, start: int, stop: int, states: Tensor) -> Tensor:
        """sum_n coef[n] * states[..., n, :] for states (b, S, g, n, d/g) -> (b, S, g, 1, d/g)."""
        if not self.variable:
            return torch.sum(self.data * states, -2, keepdim=True)
        if _small_bmm(states):
            return torch.sum(states * self.data[:, start:stop].unsqueeze(-1), -2, keepdim=True)
        return torch.matmul(self.data[:, start:stop].unsqueeze(-2).contiguous(), states)

    def accumulate_grad(self, start: int, stop: int, states: Tensor, weights: Tensor) -> None:
        """Add d(sum coef * states * weights)/d coef for states (b,S,g,n,d/g), weights (b,S,g,1,d/g)."""
        if self.variable and _small_bmm(states):
            self.grad[:, start:stop] = torch.sum(states * weights, -1)
        elif self.variable:
            # contiguous operands: bmm on a strided batch is ~7x slower on the CPU
            self.grad[:, start:stop] = torch.matmul(states, weights.contiguous().transpose(-1, -2)).squeeze(-1)
        else:
            self.grad += (states * weights).sum((0, 1))

    def input_grad(self, dtype: torch.dtype) -> Tensor:
        """The accumulated gradient in the caller's layout and dtype."""
        if not self.variable:
            return self.grad.transpose(1, 2).reshape(self.input.shape).to(dtype)
        b, length, groups, n = self.grad.shape
        grad = self.grad.view(b, length, self.input_groups, groups // self.input_groups, n).sum(3)
        like = self.input if self.input.dim() == 3 else self.input.flatten(1, 2)
        return _caller_layout(grad, like, dtype).reshape(self.input.shape)


def _layout_groups(d: int, B: Tensor, C: Tensor) -> int:
    """Channel groups of the working layout: every group shares one B row and one C row."""
    groups = 1
    for coef in (B, C):
        if coef.dim() == 4:
            groups = groups * coef.shape[1] // math.gcd(groups, coef.shape[1])
    return groups


def _segment_length(step_elements: int, length: int, device: torch.device) -> int:
    """Time steps per segment: as many as the working-tensor budget holds; a square number when the sequence
    takes several segments, so that the blocked scan cuts each into whole blocks (no step-by-step tail)."""
    budget = _CPU_SEGMENT_ELEMENTS * torch.get_num_threads() if device.type == 'cpu' else _DEVICE_SEGMENT_ELEMENTS
    steps = max(1, min(length, budget // max(step_elements, 1)))
    return steps if steps == length else math.isqrt(steps) ** 2


class _Problem:
    """The scan's inputs in the working layout (b, l, g, d/g), shared by the forward and backward passes."""

    def __init__(self, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, delta_bias: Optional[Tensor],
                 delta_softplus: bool, segment_len: Optional[int]) -> None:
        self.dtype = torch.float64 if u.dtype == torch.float64 else torch.float32
        self.batch, self.dim, self.length = u.shape
        self.state_dim = A.shape[1]
        self.groups = _layout_groups(self.dim, B, C)
        self.group_dim = self.dim // self.groups
        layout = (self.batch, self.length, self.groups, self.group_dim)
        self.u = _time_major(u, self.dtype).view(layout)
        delta_in = _time_major(delta, self.dtype).view(layout)
        delta_is_callers = _is_time_major(delta) and delta.dtype == self.dtype  # a view: must not be written
        self.dt = torch.empty_like(delta_in) if delta_is_callers else delta_in
        self.dtu = torch.empty_like(self.u)
        bias = delta_bias.to(self.dtype).view(self.groups, self.group_dim) if delta_bias is not None else None
        steps = max(1, _SETUP_CHUNK_ELEMENTS // (self.batch * self.dim))
        for given, dt, u_chunk, dtu in zip(delta_in.split(steps, 1), self.dt.split(steps, 1), self.u.split(steps, 1),
                                           self.dtu.split(steps, 1)):
            if bias is not None:
                torch.add(given, bias, out=dt)
            elif delta_is_callers:
                dt.copy_(given)
            if delta_softplus:
                _softplus_(dt)
            torch.mul(dt, u_chunk, out=dtu)
        A_grouped = A.to(self.dtype).reshape(self.groups, self.group_dim, self.state_dim).transpose(1, 2)
        self.A = A_grouped.contiguous()  # (g, n, d/g)
        self.A_log2 = (A_grouped * _LOG2_E).contiguous()
        self.B = _Coefficient(B, self.groups, self.dtype)
        self.C = _Coefficient(C, self.groups, self.dtype)
        self.step_elements = self.batch * self.dim * self.state_dim
        self.segment_len = segment_len or _segment_length(self.step_elements, self.length, u.device)
        self.bounds = [(s, min(s + self.segment_len, self.length)) for s in range(0, self.length, self.segment_len)]
        self._buffers: List[Tensor] = []
        self._by_time: Dict[Tuple[int, int], Tensor] = {}
        self._step_views: Dict[Tuple[int, int, int, int], Tuple[Tensor, ...]] = {}

    def state_shape(self) -> Tuple[int, ...]:
        return self.batch, self.groups, self.state_dim, self.group_dim

    def buffer(self, index: int, steps: int) -> Tensor:
        """Reusable working tensor number ``index``, viewed as (b, steps, g, n, d/g) contiguous."""
        shape = (self.batch, steps, self.groups, self.state_dim, self.group_dim)
        while len(self._buffers) <= index:
            self._buffers.append(self.u.new_empty(self.batch * self.segment_len * self.dim * self.state_dim))
        return self._buffers[index][:math.prod(shape)].view(shape)

    def by_time(self, index: int, steps: int) -> Tensor:
        """Working tensor ``index`` time-major, (steps, b, g, n, d/g): the same tensor object on every call,
        so that :meth:`step_views` can reuse its per-step views."""
        key = (index, steps)
        if key not in self._by_time:
            self._by_time[key] = self.buffer(index, steps).transpose(0, 1)
        return self._by_time[key]

    def step_views(self, x: Tensor, start: int, stop: int, blocks: int) -> Tuple[Tensor, ...]:
        """:func:`_step_views` of a tensor from :meth:`by_time`, made once (S views cost as much to make as
        the S scan ops that use them cost to dispatch, and every segment reuses the same buffers)."""
        key = (id(x), start, stop, blocks)
        if key not in self._step_views:
            self._step_views[key] = _step_views(x, start, stop, blocks)
        return self._step_views[key]

    def release_buffers(self) -> None:
        """Free the working tensors (segment-sized; on accelerators up to 256 MiB each) and their views."""
        self._buffers, self._by_time, self._step_views = [], {}, {}

    def decays(self, start: int, stop: int) -> Tensor:
        """a_t = exp(dt_t * A) for t in [start, stop): (b, S, g, n, d/g), in working buffer 0."""
        out = self.buffer(0, stop - start)
        return torch.mul(self.dt[:, start:stop].unsqueeze(-2), self.A_log2, out=out).exp2_()

    def states(self, start: int, stop: int, decays_index: int, initial: Tensor) -> Tensor:
        """h_t for t in [start, stop) given h_{start-1} = initial: (b, S, g, n, d/g), in working buffer 1.
        The decays, in working buffer ``decays_index``, are overwritten."""
        steps = stop - start
        states = torch.mul(self.dtu[:, start:stop].unsqueeze(-2), self.B.segment(start, stop),
                           out=self.buffer(1, steps))
        _blocked_scan_(self.by_time(1, steps), self.by_time(decays_index, steps), initial, self.step_views)
        return states


def _scan_forward(problem: _Problem, D: Optional[Tensor],
                  keep_segment_starts: bool) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
    """y (b, l, g, d/g) with the skip D u added while its segment is in cache, the last state (b, g, n, d/g)
    and (optionally) the state before each segment."""
    p = problem
    skip = D.to(p.dtype).view(p.groups, p.group_dim) if D is not None else None
    y = p.u.new_empty(p.batch, p.length, p.groups, p.group_dim)
    slots = len(p.bounds) + 1 if keep_segment_starts else 2  # else two slots, used alternately
    boundary_states = p.u.new_empty(slots, *p.state_shape())  # slot i % slots: the state before segment i
    boundary_states[0].zero_()
    for index, (start, stop) in enumerate(p.bounds):
        p.decays(start, stop)
        states = p.states(start, stop, 0, boundary_states[index % slots])
        contracted = p.C.contract(start, stop, states).squeeze(-2)
        if skip is None:
            y[:, start:stop] = contracted
        else:
            torch.addcmul(contracted, p.u[:, start:stop], skip, out=y[:, start:stop])
        boundary_states[(index + 1) % slots].copy_(states[:, -1])
    last = boundary_states[len(p.bounds) % slots]
    return y, last, boundary_states[:-1] if keep_segment_starts else None


def _scan_backward(problem: _Problem, starts: Tensor, grad_y: Tensor,
                   grad_last: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """Gradients w.r.t. u and dt (b, l, g, d/g) and A (g, n, d/g); B/C grads accumulate in problem.

    With lambda_t = dL/dh_t (lambda_t = C_t g_t + a_{t+1} lambda_{t+1}), x_t = dt_t u_t B_t and
    a_t = exp(dt_t A): dL/dx_t = lambda_t and dL/d(dt_t A) = lambda_t * a_t * h_{t-1}.
    """
    p = problem
    grad_u = torch.empty_like(p.u)
    grad_dt = torch.empty_like(p.dt)
    grad_A = torch.zeros_like(p.A)
    p.B.start_grad()
    p.C.start_grad()
    carry = p.u.new_zeros(p.state_shape())  # a_{t+1} lambda_{t+1}, one buffer for all segments
    if grad_last is not None:
        carry.copy_(grad_last)
    for index in reversed(range(len(p.bounds))):
        start, stop = p.bounds[index]
        initial = starts[index]
        steps = stop - start
        decays = p.decays(start, stop)
        scratch = p.buffer(3, steps)
        blocked = _blocks(steps, p.step_elements, p.u.device)[0] > 0  # only blocks overwrite the decays
        if blocked:
            scratch.copy_(decays)
        states = p.states(start, stop, 3 if blocked else 0, initial)
        g = grad_y[:, start:stop].unsqueeze(-2)  # (b, S, g, 1, d/g)
        p.C.accumulate_grad(start, stop, states, g)
        adjoint = torch.mul(p.C.segment(start, stop), g, out=p.buffer(2, stop - start))
        adjoint_by_time, decays_by_time = p.by_time(2, steps), p.by_time(0, steps)
        adjoint_by_time[-1] += carry
        _blocked_reverse_scan_(adjoint_by_time, decays_by_time, p.by_time(3, steps), p.step_views)
        torch.mul(decays_by_time[0], adjoint_by_time[0], out=carry)
        dtu = p.dtu[:, start:stop].unsqueeze(-2)
        p.B.accumulate_grad(start, stop, adjoint, dtu)
        grad_dtu = p.B.contract(start, stop, adjoint).squeeze(-2)
        log_decay_grad = decays  # reuse the buffer: lambda_t * a_t * h_{t-1}
        log_decay_grad[:, 1:].mul_(states[:, :-1])
        log_decay_grad[:, 0].mul_(initial)
        log_decay_grad.mul_(adjoint)
        dt = p.dt[:, start:stop]
        grad_A += torch.mul(log_decay_grad, dt.unsqueeze(-2), out=scratch).sum((0, 1))
        torch.addcmul(log_decay_grad.mul_(p.A).sum(-2), grad_dtu, p.u[:, start:stop], out=grad_dt[:, start:stop])
        torch.mul(grad_dtu, dt, out=grad_u[:, start:stop])
    return grad_u, grad_dt, grad_A


class _SelectiveScanCore(torch.autograd.Function):
    """y_t = sum_n C_t h_t [+ D u_t], h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t, dt = [softplus](delta + bias):
    returns (y, last h)."""

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                delta_bias: Optional[Tensor], delta_softplus: bool,
                segment_len: Optional[int]) -> Tuple[Tensor, Tensor]:
        p = _Problem(u, delta, A, B, C, delta_bias, delta_softplus, segment_len)
        y, last, starts = _scan_forward(p, D, keep_segment_starts=any(ctx.needs_input_grad))
        p.release_buffers()
        ctx.problem = p if any(ctx.needs_input_grad) else None  # the backward reuses its layout conversions
        ctx.save_for_backward(u, delta, A, B, C, D, delta_bias, starts)
        ctx.delta_softplus, ctx.segment_len = delta_softplus, p.segment_len
        return _caller_layout(y, u, p.dtype), last.transpose(2, 3).reshape(p.batch, p.dim, p.state_dim)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y: Optional[Tensor], grad_last: Optional[Tensor]):
        u, delta, A, B, C, D, delta_bias, starts = ctx.saved_tensors
        p = ctx.problem or _Problem(u, delta, A, B, C, delta_bias, ctx.delta_softplus, ctx.segment_len)
        ctx.problem = None  # freed with this pass, not with the graph (a retained graph converts again)
        layout = (p.batch, p.length, p.groups, p.group_dim)
        grad_y_tm = _time_major(grad_y, p.dtype).view(layout) if grad_y is not None else torch.zeros_like(p.u)
        if grad_last is not None:
            grad_last = grad_last.to(p.dtype).reshape(p.batch, p.groups, p.group_dim, p.state_dim).transpose(2, 3)
        grad_u, grad_dt, grad_A = _scan_backward(p, starts, grad_y_tm, grad_last)
        grad_D = None
        if D is not None:
            D_grouped = D.to(p.dtype).view(p.groups, p.group_dim)
            grad_D = (grad_y_tm * p.u).sum((0, 1)).reshape(-1).to(D.dtype)
            grad_u.addcmul_(grad_y_tm, D_grouped)
        grad_delta = _caller_layout(grad_dt, delta, p.dtype)
        if ctx.delta_softplus:  # d softplus(x) / dx = sigmoid(x)
            raw = delta.to(p.dtype) + delta_bias.to(p.dtype)[:, None] if delta_bias is not None else delta.to(p.dtype)
            grad_delta.mul_(torch.sigmoid(raw))
        grad_bias = grad_delta.sum((0, 2)).to(delta_bias.dtype) if delta_bias is not None else None
        p.release_buffers()
        return (_caller_layout(grad_u, u, u.dtype), grad_delta.to(delta.dtype),
                grad_A.transpose(1, 2).reshape(A.shape).to(A.dtype),
                p.B.input_grad(B.dtype), p.C.input_grad(C.dtype), grad_D, grad_bias, None, None)


def selective_scan_torch(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                         z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                         delta_softplus: bool = False, return_last_state: bool = False,
                         segment_len: Optional[int] = None):
    """Selective scan with the pure-PyTorch backend (same semantics as ``selective_scan``).

    ``segment_len`` overrides the cache-sized number of time steps processed per block (tests use
    tiny segments to exercise the state carried between them).
    """
    y, last_state = _SelectiveScanCore.apply(u, delta, A, B, C, D, delta_bias, delta_softplus, segment_len)
    if z is not None:
        y = y * F.silu(z.to(y.dtype))
    y = y.to(u.dtype)
    return (y, last_state) if return_last_state else y
