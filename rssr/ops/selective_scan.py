"""Mamba's selective scan with ``mamba_ssm.selective_scan_fn`` semantics.

For every channel j of group k = j // (d / g):
    dt_t = softplus(delta_t + delta_bias_j)   (softplus only if delta_softplus)
    h_t  = exp(dt_t * A_j) * h_{t-1} + dt_t * u_t * B_{k,t}
    y_t  = <C_{k,t}, h_t> + D_j * u_t,  then y_t *= silu(z_t) if z is given.
The state is kept in float32 whatever the input dtype; y is returned in u's dtype.
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor


def _expand_groups(bc: Tensor, d: int) -> Tensor:
    """(b, n, l) or (b, g, n, l) -> (b, d, n, l) float32, one row per channel."""
    if bc.dim() == 3:
        return bc.float().unsqueeze(1).expand(-1, d, -1, -1)
    groups = bc.shape[1]
    if d % groups:
        raise ValueError(f'selective_scan: {groups} B/C groups do not divide {d} channels')
    return bc.float().repeat_interleave(d // groups, dim=1)


def selective_scan_reference(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                             z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None,
                             delta_softplus: bool = False,
                             return_last_state: bool = False) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """The plain sequential recurrence: slow, obviously right; the ground truth for tests."""
    dtype_in = u.dtype
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias.float()[..., None]
    if delta_softplus:
        delta = F.softplus(delta)
    b, d, length = u.shape
    A = A.float()
    B = _expand_groups(B, d) if B.dim() >= 3 else B.float()[None, :, :, None].expand(b, -1, -1, length)
    C = _expand_groups(C, d) if C.dim() >= 3 else C.float()[None, :, :, None].expand(b, -1, -1, length)
    decay = torch.exp(delta.unsqueeze(2) * A[None, :, :, None])  # (b, d, n, l)
    drive = (delta * u).unsqueeze(2) * B  # (b, d, n, l)
    state = u.new_zeros(b, d, A.shape[1], dtype=torch.float32)
    outputs = []
    for t in range(length):
        state = decay[..., t] * state + drive[..., t]
        outputs.append((state * C[..., t]).sum(-1))
    y = torch.stack(outputs, dim=-1) if outputs else u.new_zeros(b, d, 0)
    if D is not None:
        y = y + u * D.float()[:, None]
    if z is not None:
        y = y * F.silu(z.float())
    y = y.to(dtype_in)
    return (y, state) if return_last_state else y


def selective_scan(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Optional[Tensor] = None,
                   z: Optional[Tensor] = None, delta_bias: Optional[Tensor] = None, delta_softplus: bool = False,
                   return_last_state: bool = False, backend: Optional[str] = None) -> Union[Tensor, Tuple[Tensor, Tensor]]:
    """Selective scan over u (b, d, l); see the module docstring for the math and shapes."""
    return selective_scan_reference(u, delta, A, B, C, D, z, delta_bias, delta_softplus, return_last_state)
