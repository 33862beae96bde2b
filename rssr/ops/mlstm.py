"""The mLSTM cell (xLSTM's matrix-memory LSTM), stabilised, in a quadratic and a chunkwise form.

For one batch element and head, with log forget gates ``lf_t = logsigmoid(f_t)``, raw input gate
pre-activations ``i_t`` (exponential input gate) and keys scaled by ``1/sqrt(DH)``:

    log D[t, j] = sum_{k=j+1..t} lf_k + i_j  (j <= t),   m_t = max_j log D[t, j]
    C[t, j]     = (q_t . k_j) exp(log D[t, j] - m_t)
    h_t         = sum_j C[t, j] v_j / (max(|sum_j C[t, j]|, exp(-m_t)) + eps)

This is Vision-LSTM's ``parallel_stabilized_simple``. The ``parallel`` form materialises the
S x S matrices (memory O(S^2) per head: 268 MB per (1, 4, S, S) float32 tensor at S = 4096); it
sums the log forget gates per entry (see :func:`_log_decay_matrix`) rather than subtracting global
cumulative sums as the official code does, which keeps its float32 error flat in S (the official
form drifts to ~1e-4 relative at S = 4096).
The ``chunkwise`` form runs the same maths chunk by chunk: inside a chunk of L tokens it is the
parallel form, across chunks it carries the memory ``(C, n, m)`` (a DH x DH matrix, a DH vector
and the running maximum m of the log weights). Because that running maximum equals the row
maximum m_t of the parallel form, both forms compute the same quantities including the eps term;
memory is O(S L + (S / L) DH^2). Both compute in float32 (or float64) and return the input dtype.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

BACKENDS = ('parallel', 'chunkwise')
PARALLEL_MAX_LENGTH = 128
"""Automatic selection uses the parallel form up to this sequence length and the chunkwise form above:
about where the chunkwise form becomes the faster one on CPU; in training it also keeps O(S L)
instead of O(S^2) activations per layer for backward (see scripts/benchmark_mlstm.py)."""
DEFAULT_CHUNK_SIZE = 64


def _log_decay_matrix(log_forget: Tensor) -> Tensor:
    """(..., S) log forget gates -> (..., S, S) with [t, j] = sum_{k=j+1..t} log_forget_k, -inf for j > t.

    Each entry is summed outward from the diagonal (Mamba-2's "segsum"), so entries near the
    diagonal, which carry the weight, are accurate whatever S is. Differences of one global
    cumulative sum (the official code) lose float32 precision as the sum grows with S.
    """
    length = log_forget.shape[-1]
    ones = torch.ones(length, length, dtype=torch.bool, device=log_forget.device)
    terms = torch.where(ones.tril(-1), log_forget.unsqueeze(-1), 0.0)
    return torch.cumsum(terms, dim=-2).masked_fill_(~ones.tril(), float('-inf'))


def mlstm_parallel(q: Tensor, k: Tensor, v: Tensor, igate: Tensor, fgate: Tensor, eps: float = 1e-6) -> Tensor:
    """Quadratic stabilised mLSTM: q, k, v (B, NH, S, DH); igate, fgate pre-activations (B, NH, S)."""
    head_dim = q.shape[-1]
    log_weights = _log_decay_matrix(F.logsigmoid(fgate)) + igate.unsqueeze(-2)
    row_max = log_weights.amax(dim=-1, keepdim=True)
    scores = (q @ (k / math.sqrt(head_dim)).transpose(-2, -1)) * torch.exp(log_weights - row_max)
    normaliser = torch.maximum(scores.sum(dim=-1, keepdim=True).abs(), torch.exp(-row_max))
    return (scores / (normaliser + eps)) @ v


def mlstm_chunkwise(q: Tensor, k: Tensor, v: Tensor, igate: Tensor, fgate: Tensor, eps: float = 1e-6,
                    chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
    """Chunkwise stabilised mLSTM, linear memory in S; same arguments and result as :func:`mlstm_parallel`."""
    batch, heads, length, head_dim = q.shape
    chunk_size = min(chunk_size, length)
    pad = -length % chunk_size
    if pad:  # padding the end is exact: by causality no real token sees the padded ones
        q, k, v = (F.pad(t, (0, 0, 0, pad)) for t in (q, k, v))
        igate, fgate = F.pad(igate, (0, pad)), F.pad(fgate, (0, pad))
    chunks = (length + pad) // chunk_size
    q, k, v = (t.reshape(batch, heads, chunks, chunk_size, head_dim) for t in (q, k, v))
    k = k / math.sqrt(head_dim)
    igate = igate.reshape(batch, heads, chunks, chunk_size)
    log_forget = F.logsigmoid(fgate).reshape(batch, heads, chunks, chunk_size)
    # log decay from each chunk's start to token tau, and over the whole chunk
    log_forget_from_start = torch.cumsum(log_forget, dim=-1)
    chunk_log_forget = log_forget_from_start[..., -1]

    # What each chunk adds to the memory, stabilised by its own maximum log weight.
    log_weight_to_end = chunk_log_forget.unsqueeze(-1) - log_forget_from_start + igate
    chunk_max = log_weight_to_end.amax(dim=-1)
    weighted_keys = k * torch.exp(log_weight_to_end - chunk_max.unsqueeze(-1)).unsqueeze(-1)
    memory_increments = weighted_keys.transpose(-2, -1) @ v  # (B, NH, chunks, DH, DH)
    normaliser_increments = weighted_keys.sum(dim=-2)  # (B, NH, chunks, DH)

    # The memory entering each chunk c sums the increments of the chunks j < c, each decayed by the log
    # forgets of chunks j+1..c-1 and stabilised by the running maximum m_c of those log weights. The
    # recurrence over chunks is solved in closed form: one (chunks x chunks) weight matrix, with every
    # decay summed outward from the diagonal as in the parallel form.
    log_weights_after = (_log_decay_matrix(chunk_log_forget) + chunk_max.unsqueeze(-2))[..., :-1, :]  # [c, j]
    max_after = log_weights_after.amax(dim=-1)
    chunk_weights = torch.exp(log_weights_after - max_after.unsqueeze(-1))  # (B, NH, chunks - 1, chunks)
    entering = (0, 0, 1, 0)  # nothing enters the first chunk
    memories = F.pad(chunk_weights @ memory_increments.flatten(-2), entering).unflatten(-1, (head_dim, head_dim))
    normaliser_states = F.pad(chunk_weights @ normaliser_increments, entering)
    running_maxes = F.pad(max_after, (1, 0), value=float('-inf'))

    # Outputs: the parallel form inside each chunk plus the carried memory, under the common row max.
    log_weights = _log_decay_matrix(log_forget) + igate.unsqueeze(-2)
    log_weight_memory = log_forget_from_start + running_maxes.unsqueeze(-1)  # (B, NH, chunks, L)
    row_max = torch.maximum(log_weights.amax(dim=-1), log_weight_memory)
    scores = (q @ k.transpose(-2, -1)) * torch.exp(log_weights - row_max.unsqueeze(-1))
    memory_scale = torch.exp(log_weight_memory - row_max).unsqueeze(-1)
    numerator = scores @ v + memory_scale * (q @ memories)
    total = scores.sum(dim=-1) + memory_scale.squeeze(-1) * (q * normaliser_states.unsqueeze(-2)).sum(dim=-1)
    normaliser = torch.maximum(total.abs(), torch.exp(-row_max))
    h = numerator / (normaliser + eps).unsqueeze(-1)
    return h.reshape(batch, heads, chunks * chunk_size, head_dim)[:, :, :length]


def mlstm(q: Tensor, k: Tensor, v: Tensor, igate: Tensor, fgate: Tensor, eps: float = 1e-6,
          backend: Optional[str] = None, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Tensor:
    """Stabilised mLSTM cell: q, k, v (B, NH, S, DH), gate pre-activations igate, fgate (B, NH, S) -> (B, NH, S, DH).

    ``backend``: 'parallel' (quadratic memory), 'chunkwise' (linear memory) or None to pick the
    parallel form for S <= ``PARALLEL_MAX_LENGTH`` and the chunkwise form above. Half-precision
    inputs (and any autocast region) are computed in float32; the result has the dtype of q.
    """
    if q.dim() != 4 or k.shape != q.shape or v.shape != q.shape:
        raise ValueError(f'mlstm: q, k, v must share the shape (B, NH, S, DH); got {tuple(q.shape)}, '
                         f'{tuple(k.shape)}, {tuple(v.shape)}')
    if igate.shape != q.shape[:3] or fgate.shape != q.shape[:3]:
        raise ValueError(f'mlstm: igate and fgate must have the shape (B, NH, S) = {tuple(q.shape[:3])}; '
                         f'got {tuple(igate.shape)} and {tuple(fgate.shape)}')
    if backend is None:
        backend = 'parallel' if q.shape[2] <= PARALLEL_MAX_LENGTH else 'chunkwise'
    if backend not in BACKENDS:
        raise ValueError(f'mlstm: unknown backend {backend!r}; choose one of {BACKENDS} or None (automatic)')
    dtype = q.dtype
    compute_dtype = torch.promote_types(dtype, torch.float32)
    q, k, v, igate, fgate = (t.to(compute_dtype) for t in (q, k, v, igate, fgate))
    with torch.autocast(q.device.type, enabled=False):  # exp-gated sums need float32 even under AMP
        if backend == 'parallel':
            h = mlstm_parallel(q, k, v, igate, fgate, eps)
        else:
            h = mlstm_chunkwise(q, k, v, igate, fgate, eps, chunk_size)
    return h.to(dtype)
