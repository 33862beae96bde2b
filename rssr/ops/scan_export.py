"""The selective scan in a form ONNX exporters trace into a small graph that onnxruntime runs in cache.

The ``torch`` backend (:mod:`rssr.ops.scan_torch`) is an autograd.Function working in place on
segment buffers: traced for export, its Python loops unroll into thousands of in-place slice
updates, which take minutes to export (the dynamo exporter) or fail (the TorchScript exporter).
:func:`blocked_selective_scan` solves ``h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t``,
``y_t = <C_t, h_t>`` with the torch backend's blocked scheme, written with out-of-place ops only:
time is cut into P blocks of T ~ sqrt(l) steps; T steps solve every block at once from a zero start,
each forming its decays, drives and partial outputs from (P, b, d) slices and keeping each block's
running product of decays; P steps chain the blocks' end states; T more steps add each block's
incoming state to the outputs. Every op works on one step of every block, (P, b, d, n), small
enough for the CPU cache, and the (b, d, n, l) tensors of all states or decays are never formed.
Like the torch backend it only ever multiplies decays (never divides by them), so it cannot
overflow; its results equal the sequential recurrence to float32 rounding
(tests/ops/test_selective_scan.py holds it to 1e-5).
"""
from __future__ import annotations

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor


def _steps(x: Tensor, blocks: int, block: int) -> List[Tensor]:
    """(..., l) -> the T block-local steps, each (1, P, ...) with step t of every block, padded with zeros; the
    leading 1 is kept (a Split without Squeeze nodes)."""
    last = x.dim() - 1  # explicit dims: the TorchScript exporter writes negative ones into invalid perms
    padding = blocks * block - int(x.shape[-1])
    x = F.pad(x, (0, padding)) if padding else x
    return list(x.unflatten(last, (blocks, block)).permute(last + 1, last, *range(last)).split(1))


def blocked_selective_scan(dt: Tensor, u: Tensor, A: Tensor, B: Tensor, C: Tensor) -> Tuple[Tensor, Tensor]:
    """y (b, d, l) = <C_t, h_t> and the last state (b, d, n) for dt, u (b, d, l), A (d, n) and B, C
    (b, g, n, l) with g dividing d; padded steps have dt = 0: decay 1, drive 0, the state carried on."""
    b, d, length = (int(size) for size in dt.shape)
    groups, n = int(B.shape[1]), int(A.shape[1])
    block = max(math.isqrt(length), 1)
    blocks = -(-length // block)
    channels = (b, groups, d // groups, 1, length)  # states are (1, P, b, g, d/g, n): channels by group
    dts, drives = _steps(dt.reshape(channels), blocks, block), _steps((dt * u).reshape(channels), blocks, block)
    Bs, Cs = (_steps(coef.unsqueeze(2), blocks, block) for coef in (B, C))  # (1, P, b, g, 1, n)
    decay_rate = A.reshape(groups, d // groups, n)
    states, products, partial = [], [], []
    for t in range(block):
        decay = torch.exp(dts[t] * decay_rate)
        drive = drives[t] * Bs[t]
        states.append(drive if t == 0 else drive + decay * states[-1])
        products.append(decay if t == 0 else decay * products[-1])
        partial.append((states[-1] * Cs[t]).sum(-1))  # (1, P, b, g, d/g)
    ends, end_products = states[-1].split(1, dim=1), products[-1].split(1, dim=1)
    incoming = [torch.zeros_like(ends[0])]  # the state each block starts from
    for index in range(1, blocks):
        incoming.append(ends[index - 1] + end_products[index - 1] * incoming[-1])
    carried = torch.cat(incoming, dim=1)  # (1, P, b, g, d/g, n)
    y = torch.cat([partial[t] + (products[t] * carried * Cs[t]).sum(-1) for t in range(block)])  # (T, P, b, g, d/g)
    y = y.permute(2, 3, 4, 1, 0).reshape(b, d, blocks * block)[..., :length]
    last_block, last_step = divmod(length - 1, block)
    last = states[last_step][0, last_block] + products[last_step][0, last_block] * incoming[last_block][0, 0]
    return y, last.reshape(b, d, n)
