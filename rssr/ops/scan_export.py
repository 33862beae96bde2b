"""The linear recurrence of the selective scan in a form ONNX exporters can trace into a small graph.

The ``torch`` backend (:mod:`rssr.ops.scan_torch`) is an autograd.Function working in place on
segment buffers: traced for export, its Python loops unroll into thousands of in-place slice
updates, which take minutes to export (the dynamo exporter) or fail (the TorchScript exporter).
:func:`blocked_scan` solves ``h_t = a_t * h_{t-1} + x_t`` with the same blocked scheme, written with
out-of-place ops only: time is cut into P blocks of T ~ sqrt(l) steps; T steps solve every block at
once from a zero start while forming each block's running product of decays, P steps chain the
blocks' end states, and one op adds each block's incoming state. That is about 2T + P ops of
(P, ...) tensors per scan, whatever the export tile. Like the torch backend it only ever multiplies
decays (never divides by them), so it cannot overflow; its results equal the sequential recurrence
to float32 rounding (tests/ops/test_selective_scan.py holds it to 1e-5).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def blocked_scan(decay: Tensor, drive: Tensor) -> Tensor:
    """All states h_t = decay_t * h_{t-1} + drive_t (h_{-1} = 0) along the last dim of (..., l) tensors."""
    length = int(decay.shape[-1])  # an int also under the TorchScript tracer, where sizes are tensors
    block = max(math.isqrt(length), 1)
    blocks = -(-length // block)
    padding = blocks * block - length
    if padding:  # steps with decay 1 and drive 0 leave the state as it is; they are cut off at the end
        decay, drive = F.pad(decay, (0, padding), value=1.0), F.pad(drive, (0, padding))
    last = decay.dim() - 1  # explicit dims: the TorchScript exporter writes movedim's -1 into an invalid perm
    time_first = (last, *range(last))
    a, x = decay.permute(time_first), drive.permute(time_first)  # each step is one contiguous slice
    a_steps = a.unflatten(0, (blocks, block)).unbind(1)  # block-local step t of every block: (P, ...)
    x_steps = x.unflatten(0, (blocks, block)).unbind(1)
    states, products = [x_steps[0]], [a_steps[0]]
    for a_t, x_t in zip(a_steps[1:], x_steps[1:]):
        states.append(x_t + a_t * states[-1])
        products.append(a_t * products[-1])
    ends, end_products = states[-1].unbind(0), products[-1].unbind(0)
    incoming = [torch.zeros_like(ends[0])]  # the state each block starts from
    for index in range(1, blocks):
        incoming.append(ends[index - 1] + end_products[index - 1] * incoming[-1])
    solved = torch.stack(states, 1) + torch.stack(products, 1) * torch.stack(incoming).unsqueeze(1)
    return solved.flatten(0, 1)[:length].permute(*range(1, last + 1), 0)
