"""The ``triton`` selective-scan backend: rssr's own fused forward and backward Triton kernels.

For CUDA users without mamba_ssm (Triton ships with CUDA builds of torch, so nothing is compiled at
install time). Each program owns one batch element, one B/C group and a block of BLOCK_D channels
with all n states in registers, and walks the sequence in time; softplus, delta_bias, D and the
silu(z) gate are fused. The forward pass stores the state at the start of every chunk of CHUNK steps
(only when a gradient is needed); the backward pass walks the chunks in reverse, recomputes the
chunk's states into a small per-program scratch buffer and runs the adjoint recurrence
``lambda_t = C_t g_t + a_{t+1} lambda_{t+1}`` backwards through it. Gradients of B and C, which are
shared by the channels of a group, are accumulated with atomic adds (so they are not bitwise
deterministic, like mamba_ssm's).

The kernels run on the CPU in Triton's interpreter when TRITON_INTERPRET=1 is set before this
module is imported (slow; used by the tests). ``INTERPRETED`` records which mode they were built in.
"""
from __future__ import annotations

import math
import os
import re
from typing import Optional, Tuple

import torch
import triton
import triton.language as tl
from torch import Tensor
from torch.autograd.function import once_differentiable

MIN_TRITON = (3, 2)  # the oldest Triton whose kernels pass tests/ops/test_scan_triton.py (3.0 and 3.1 fail)


def _release(version: str) -> tuple:
    """(major, minor) of a version string such as '3.2.0' or '3.5.0+git1234'."""
    return tuple(int(part) for part in re.findall(r'\d+', version)[:2])


if _release(getattr(triton, '__version__', '0.0')) < MIN_TRITON:
    raise ImportError(f'triton {getattr(triton, "__version__", "(no version)")} is older than '
                      f'{".".join(map(str, MIN_TRITON))}, the oldest Triton rssr\'s kernels work with; '
                      f'`pip install "triton>={".".join(map(str, MIN_TRITON))}"`')


def _interpreter_enabled() -> bool:
    """Whether Triton runs kernels in its CPU interpreter: ``triton.knobs`` (Triton >= 3.4), else the
    TRITON_INTERPRET variable that every Triton version reads."""
    runtime = getattr(getattr(triton, 'knobs', None), 'runtime', None)
    if runtime is not None and hasattr(runtime, 'interpret'):
        return bool(runtime.interpret)
    return os.environ.get('TRITON_INTERPRET', '0').strip().lower() in ('1', 'true', 'on', 'yes')


INTERPRETED = _interpreter_enabled()
BLOCK_D = 4  # channels per program: small blocks give enough programs for a GPU at b=1
DEFAULT_CHUNK = 64  # time steps between saved states (backward recomputes one chunk at a time)


@triton.jit
def _softplus(x):
    """torch's softplus (threshold 20), with Kahan's accurate log1p(exp(x)) (no libdevice needed)."""
    w = tl.exp(tl.minimum(x, 20.0))
    v = 1.0 + w
    log1p_w = tl.where(v == 1.0, w, tl.log(v) * (w / (v - 1.0)))
    return tl.where(x > 20.0, x, log1p_w)


@triton.jit
def _program_block(A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, dim, group_dim, n_state,
                   stride_b_batch, stride_b_group, stride_b_state, stride_c_batch, stride_c_group, stride_c_state,
                   HAS_D: tl.constexpr, HAS_BIAS: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """The block of channels and states this program owns, its parameters and where its data lie.

    A program owns one batch element, one B/C group and BLOCK_D of the group's channels, each with BLOCK_N >= n
    states; ``mask_d``, ``mask_n`` and ``mask_dn`` mark the real ones. ``batch_channel`` numbers the block's
    (batch, channel) rows of u, delta, z and the outputs; ``states_base`` is the offset of each (channel, state)
    in a (batch, d, n) buffer; ``b_base`` and ``c_base`` point at B and C of each state at t = 0. A comes also as
    the exp2 exponent (exp(x) = exp2(x * log2(e))); D and delta_bias are zeros where absent.
    """
    pid_batch = tl.program_id(0).to(tl.int64)
    pid_group = tl.program_id(1).to(tl.int64)
    channel_in_group = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask_d = channel_in_group < group_dim
    channel = pid_group * group_dim + channel_in_group
    state = tl.arange(0, BLOCK_N)
    mask_n = state < n_state
    mask_dn = mask_d[:, None] & mask_n[None, :]
    A = tl.load(A_ptr + channel[:, None] * n_state + state[None, :], mask=mask_dn, other=0.0)
    if HAS_D:
        skip = tl.load(D_ptr + channel, mask=mask_d, other=0.0)
    else:
        skip = tl.zeros((BLOCK_D,), dtype=tl.float32)
    if HAS_BIAS:
        bias = tl.load(bias_ptr + channel, mask=mask_d, other=0.0)
    else:
        bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    batch_channel = pid_batch * dim + channel
    states_base = batch_channel[:, None] * n_state + state[None, :]
    b_base = B_ptr + pid_batch * stride_b_batch + pid_group * stride_b_group + state * stride_b_state
    c_base = C_ptr + pid_batch * stride_c_batch + pid_group * stride_c_group + state * stride_c_state
    return (state, mask_d, mask_n, mask_dn, A, A * 1.4426950408889634, skip, bias, batch_channel, states_base,
            b_base, c_base)


@triton.jit
def _step_inputs(u_ptr, delta_ptr, b_base, row, t, stride_b_time, bias, mask_d, mask_n,
                 HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr):
    """u_t, dt_t before softplus (delta_t + delta_bias), dt_t, and B_t of the program's block."""
    u = tl.load(u_ptr + row + t, mask=mask_d, other=0.0)
    dt_raw = tl.load(delta_ptr + row + t, mask=mask_d, other=0.0)
    if HAS_BIAS:
        dt_raw += bias
    if SOFTPLUS:
        dt = _softplus(dt_raw)
    else:
        dt = dt_raw
    B_t = tl.load(b_base + t * stride_b_time, mask=mask_n, other=0.0)
    return u, dt_raw, dt, B_t


@triton.jit
def _next_state(h, u, dt, B_t, A_log2):
    """h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t."""
    return tl.exp2(dt[:, None] * A_log2) * h + (dt * u)[:, None] * B_t[None, :]


@triton.jit
def _scan_fwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                     out_ptr, chunk_states_ptr, last_state_ptr,
                     length, dim, group_dim, n_state, n_chunks,
                     stride_b_batch, stride_b_group, stride_b_state, stride_b_time,
                     stride_c_batch, stride_c_group, stride_c_state, stride_c_time,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                     SAVE_STATES: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """The scan of one program's block: h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t and y_t = C_t h_t (+ D u_t)
    (* silu(z_t)) for t = 0 .. l-1; writes y, the last state and, with SAVE_STATES, the state at the start of
    every chunk of CHUNK steps (what the backward kernel recomputes from)."""
    state, mask_d, mask_n, mask_dn, A, A_log2, skip, bias, batch_channel, states_base, b_base, c_base = \
        _program_block(A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, dim, group_dim, n_state,
                       stride_b_batch, stride_b_group, stride_b_state, stride_c_batch, stride_c_group, stride_c_state,
                       HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
    row = batch_channel * length
    h = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    for chunk in range(0, n_chunks):
        if SAVE_STATES:
            tl.store(chunk_states_ptr + states_base * n_chunks + chunk, h, mask=mask_dn)
        for t in range(chunk * CHUNK, tl.minimum(chunk * CHUNK + CHUNK, length)):
            u, _, dt, B_t = _step_inputs(u_ptr, delta_ptr, b_base, row, t, stride_b_time, bias, mask_d, mask_n,
                                         HAS_BIAS, SOFTPLUS)
            h = _next_state(h, u, dt, B_t, A_log2)
            C_t = tl.load(c_base + t * stride_c_time, mask=mask_n, other=0.0)
            y = tl.sum(h * C_t[None, :], axis=1)
            if HAS_D:
                y += skip * u
            if HAS_Z:
                z = tl.load(z_ptr + row + t, mask=mask_d, other=0.0)
                y *= z * tl.sigmoid(z)
            tl.store(out_ptr + row + t, y, mask=mask_d)
    tl.store(last_state_ptr + states_base, h, mask=mask_dn)


@triton.jit
def _scan_bwd_kernel(u_ptr, delta_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr,
                     grad_out_ptr, grad_last_ptr, chunk_states_ptr, scratch_ptr,
                     grad_u_ptr, grad_delta_ptr, grad_z_ptr, grad_A_ptr, grad_D_ptr, grad_bias_ptr,
                     grad_B_ptr, grad_C_ptr,
                     length, dim, group_dim, n_state, n_chunks,
                     stride_b_batch, stride_b_group, stride_b_state, stride_b_time,
                     stride_c_batch, stride_c_group, stride_c_state, stride_c_time,
                     HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
                     HAS_GRAD_LAST: tl.constexpr, CHUNK: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr):
    """The gradients of one program's block, chunk by chunk from the last: recompute the chunk's states into
    the program's scratch slot, then run the adjoint lambda_t = C_t g_t + exp(dt_{t+1} A) lambda_{t+1} back
    through them. Writes the gradients of u, delta and z; those of A, D and delta_bias per batch element
    (summed by the caller); those of B and C with atomic adds over the group's channel blocks."""
    state, mask_d, mask_n, mask_dn, A, A_log2, skip, bias, batch_channel, states_base, b_base, c_base = \
        _program_block(A_ptr, B_ptr, C_ptr, D_ptr, bias_ptr, dim, group_dim, n_state,
                       stride_b_batch, stride_b_group, stride_b_state, stride_c_batch, stride_c_group, stride_c_state,
                       HAS_D, HAS_BIAS, BLOCK_D, BLOCK_N)
    row = batch_channel * length
    # the program's slot in the scratch buffer: room for the CHUNK + 1 states of one chunk of its block
    batch_group = tl.program_id(0).to(tl.int64) * tl.num_programs(1) + tl.program_id(1)
    program = batch_group * tl.num_programs(2) + tl.program_id(2)
    scratch = (scratch_ptr + program * (CHUNK + 1) * BLOCK_D * BLOCK_N
               + tl.arange(0, BLOCK_D)[:, None] * BLOCK_N + state[None, :])
    # grad_B / grad_C: (batch, group, n, l), summed over the group's channel blocks with atomic adds
    coef_grad_base = batch_group * n_state + state
    if HAS_GRAD_LAST:
        carry = tl.load(grad_last_ptr + states_base, mask=mask_dn, other=0.0)  # a_{t+1} * lambda_{t+1}
    else:
        carry = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    grad_A = tl.zeros((BLOCK_D, BLOCK_N), dtype=tl.float32)
    grad_D = tl.zeros((BLOCK_D,), dtype=tl.float32)
    grad_bias = tl.zeros((BLOCK_D,), dtype=tl.float32)
    for chunk_from_end in range(0, n_chunks):
        chunk = n_chunks - 1 - chunk_from_end
        start = chunk * CHUNK
        steps = tl.minimum(start + CHUNK, length) - start
        # recompute the chunk's states: scratch slot s holds h_{start + s - 1}
        h = tl.load(chunk_states_ptr + states_base * n_chunks + chunk, mask=mask_dn, other=0.0)
        tl.store(scratch, h)
        for s in range(0, steps):
            u, _, dt, B_t = _step_inputs(u_ptr, delta_ptr, b_base, row, start + s, stride_b_time, bias, mask_d,
                                         mask_n, HAS_BIAS, SOFTPLUS)
            h = _next_state(h, u, dt, B_t, A_log2)
            tl.store(scratch + (s + 1) * BLOCK_D * BLOCK_N, h)
        tl.debug_barrier()
        for s_from_end in range(0, steps):
            s = steps - 1 - s_from_end
            t = start + s
            u, dt_raw, dt, B_t = _step_inputs(u_ptr, delta_ptr, b_base, row, t, stride_b_time, bias, mask_d, mask_n,
                                              HAS_BIAS, SOFTPLUS)
            C_t = tl.load(c_base + t * stride_c_time, mask=mask_n, other=0.0)
            h = tl.load(scratch + (s + 1) * BLOCK_D * BLOCK_N)
            h_prev = tl.load(scratch + s * BLOCK_D * BLOCK_N)
            decay = tl.exp2(dt[:, None] * A_log2)
            grad_y = tl.load(grad_out_ptr + row + t, mask=mask_d, other=0.0)
            if HAS_Z:
                z = tl.load(z_ptr + row + t, mask=mask_d, other=0.0)
                y = tl.sum(h * C_t[None, :], axis=1)
                if HAS_D:
                    y += skip * u
                gate = tl.sigmoid(z)
                tl.store(grad_z_ptr + row + t, grad_y * y * gate * (1.0 + z * (1.0 - gate)), mask=mask_d)
                grad_y = grad_y * z * gate
            adjoint = C_t[None, :] * grad_y[:, None] + carry  # lambda_t
            tl.atomic_add(grad_C_ptr + coef_grad_base * length + t, tl.sum(grad_y[:, None] * h, axis=0), mask=mask_n)
            dtu = dt * u
            tl.atomic_add(grad_B_ptr + coef_grad_base * length + t, tl.sum(adjoint * dtu[:, None], axis=0),
                          mask=mask_n)
            grad_dtu = tl.sum(adjoint * B_t[None, :], axis=1)
            log_decay_grad = adjoint * decay * h_prev
            grad_A += log_decay_grad * dt[:, None]
            grad_dt = grad_dtu * u + tl.sum(log_decay_grad * A, axis=1)
            grad_u = grad_dtu * dt
            if HAS_D:
                grad_u += skip * grad_y
                grad_D += grad_y * u
            if SOFTPLUS:
                grad_dt = grad_dt * tl.sigmoid(dt_raw)
            grad_bias += grad_dt
            tl.store(grad_u_ptr + row + t, grad_u, mask=mask_d)
            tl.store(grad_delta_ptr + row + t, grad_dt, mask=mask_d)
            carry = decay * adjoint
        tl.debug_barrier()
    tl.store(grad_A_ptr + states_base, grad_A, mask=mask_dn)
    tl.store(grad_D_ptr + batch_channel, grad_D, mask=mask_d)
    tl.store(grad_bias_ptr + batch_channel, grad_bias, mask=mask_d)


def _grouped(coef: Tensor, groups: int, batch: int, length: int) -> Tensor:
    """B or C as float32 (b, groups, n, l); a time-invariant (d, n) one as a broadcast view (groups == d)."""
    if coef.dim() == 2:
        return coef.float()[None, :, :, None].expand(batch, -1, -1, length)
    grouped = coef.unsqueeze(1) if coef.dim() == 3 else coef
    return grouped.float().repeat_interleave(groups // grouped.shape[1], dim=1).contiguous()


def _ungrouped_grad(grad: Tensor, shape: torch.Size) -> Tensor:
    """Sum a (b, groups, n, l) gradient back to the shape of the B/C it belongs to."""
    if len(shape) == 2:
        return grad.sum((0, 3))
    b, groups, n, length = grad.shape
    own_groups = 1 if len(shape) == 3 else shape[1]
    return grad.reshape(b, own_groups, groups // own_groups, n, length).sum(2).reshape(shape)


def _scan_groups(d: int, B: Tensor, C: Tensor) -> int:
    """Groups of the kernel layout: d if B or C is time-invariant, else the lcm of their group counts."""
    if B.dim() == 2 or C.dim() == 2:
        return d
    groups = 1
    for coef in (B, C):
        if coef.dim() == 4:
            groups = groups * coef.shape[1] // math.gcd(groups, coef.shape[1])
    return groups


class _TritonScan(torch.autograd.Function):

    @staticmethod
    def forward(ctx, u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor],
                z: Optional[Tensor], delta_bias: Optional[Tensor], delta_softplus: bool,
                chunk_len: int) -> Tuple[Tensor, Tensor]:
        batch, dim, length = u.shape
        n_state = A.shape[1]
        groups = _scan_groups(dim, B, C)
        group_dim = dim // groups
        n_chunks = max(1, triton.cdiv(length, chunk_len))
        u32, delta32 = u.float().contiguous(), delta.float().contiguous()
        A32 = A.float().contiguous()
        B32, C32 = _grouped(B, groups, batch, length), _grouped(C, groups, batch, length)
        D32 = D.float().contiguous() if D is not None else None
        z32 = z.float().contiguous() if z is not None else None
        bias32 = delta_bias.float().contiguous() if delta_bias is not None else None
        save_states = any(ctx.needs_input_grad[:8])
        out = torch.empty_like(u32)
        last_state = u32.new_empty(batch, dim, n_state)
        chunk_states = u32.new_empty(batch, dim, n_state, n_chunks) if save_states else last_state
        grid = (batch, groups, triton.cdiv(group_dim, BLOCK_D))
        _scan_fwd_kernel[grid](
            u32, delta32, A32, B32, C32, _or(D32, u32), _or(z32, u32), _or(bias32, u32),
            out, chunk_states, last_state, length, dim, group_dim, n_state, n_chunks,
            *B32.stride(), *C32.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None, SOFTPLUS=delta_softplus,
            SAVE_STATES=save_states, CHUNK=chunk_len, BLOCK_D=BLOCK_D, BLOCK_N=triton.next_power_of_2(n_state),
            num_warps=1)
        ctx.save_for_backward(u32, delta32, A32, B32, C32, D32, z32, bias32, chunk_states if save_states else None)
        ctx.delta_softplus, ctx.chunk_len, ctx.groups = delta_softplus, chunk_len, groups
        ctx.coef_shapes = (B.shape, C.shape)
        ctx.dtypes = [None if t is None else t.dtype for t in (u, delta, A, B, C, D, z, delta_bias)]
        return out.to(u.dtype), last_state

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_out: Optional[Tensor], grad_last: Optional[Tensor]):
        u32, delta32, A32, B32, C32, D32, z32, bias32, chunk_states = ctx.saved_tensors
        delta_softplus, chunk_len, groups = ctx.delta_softplus, ctx.chunk_len, ctx.groups
        batch, dim, length = u32.shape
        n_state = A32.shape[1]
        group_dim = dim // groups
        n_blocks = triton.cdiv(group_dim, BLOCK_D)
        n_chunks = chunk_states.shape[-1]
        block_n = triton.next_power_of_2(n_state)
        grad_out = (grad_out.float().contiguous() if grad_out is not None else torch.zeros_like(u32))
        grad_u, grad_delta = torch.empty_like(u32), torch.empty_like(u32)
        grad_z = torch.empty_like(u32) if z32 is not None else None
        grad_A = u32.new_empty(batch, dim, n_state)
        grad_D, grad_bias = u32.new_empty(batch, dim), u32.new_empty(batch, dim)
        grad_B = u32.new_zeros(batch, groups, n_state, length)
        grad_C = u32.new_zeros(batch, groups, n_state, length)
        scratch = u32.new_empty(batch * groups * n_blocks, chunk_len + 1, BLOCK_D, block_n)
        _scan_bwd_kernel[(batch, groups, n_blocks)](
            u32, delta32, A32, B32, C32, _or(D32, u32), _or(z32, u32), _or(bias32, u32),
            grad_out, _or(grad_last.float().contiguous() if grad_last is not None else None, u32),
            chunk_states, scratch, grad_u, grad_delta, _or(grad_z, u32), grad_A, grad_D, grad_bias,
            grad_B, grad_C, length, dim, group_dim, n_state, n_chunks,
            *B32.stride(), *C32.stride(),
            HAS_D=D32 is not None, HAS_Z=z32 is not None, HAS_BIAS=bias32 is not None, SOFTPLUS=delta_softplus,
            HAS_GRAD_LAST=grad_last is not None, CHUNK=chunk_len, BLOCK_D=BLOCK_D, BLOCK_N=block_n, num_warps=1)
        B_shape, C_shape = ctx.coef_shapes
        grads = (grad_u, grad_delta, grad_A.sum(0), _ungrouped_grad(grad_B, B_shape), _ungrouped_grad(grad_C, C_shape),
                 grad_D.sum(0), grad_z, grad_bias.sum(0))
        return tuple(None if dtype is None else grad.to(dtype) for grad, dtype in zip(grads, ctx.dtypes)) + (None, None)


def _or(tensor: Optional[Tensor], placeholder: Tensor) -> Tensor:
    """A kernel pointer argument for an optional input (the placeholder is never read)."""
    return tensor if tensor is not None else placeholder


def selective_scan_triton(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                          z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                          delta_softplus: bool = False, return_last_state: bool = False,
                          chunk_len: int = DEFAULT_CHUNK):
    """Selective scan with rssr's fused Triton kernels (same semantics as ``selective_scan``).

    ``chunk_len`` is the number of steps between the states saved for the backward pass.
    """
    y, last_state = _TritonScan.apply(u, delta, A, B, C, D, z, delta_bias, delta_softplus, chunk_len)
    return (y, last_state) if return_last_state else y
