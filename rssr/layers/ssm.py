"""The selective state-space core shared by every SS2D variant (ConvMambaSR, MambaCSR, Rep-Mamba).

:class:`DirectionalSSM` owns the per-direction parameters under the official names
(``x_proj_weight``, ``dt_projs_weight``, ``dt_projs_bias``, ``A_logs``, ``Ds``) so that subclasses
(the SS2D blocks) load official checkpoints unchanged, and runs K direction sequences through
:func:`rssr.ops.selective_scan` in one call.
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor, nn

from rssr.ops import selective_scan


class DirectionalSSM(nn.Module):
    """K independent selective-scan directions over d_inner channels with state size d_state.

    Args:
        d_inner: channels per direction (d).
        d_state: SSM state size (N).
        dt_rank: rank R of the delta projection.
        directions: number of scan directions K.
        scan_backend: force a selective-scan backend (None: automatic).
    """

    def __init__(self, d_inner: int, d_state: int, dt_rank: int, directions: int,
                 dt_min: float = 1e-3, dt_max: float = 0.1, dt_init_floor: float = 1e-4,
                 scan_backend: Optional[str] = None) -> None:
        super().__init__()
        self.d_inner, self.d_state, self.dt_rank, self.directions = d_inner, d_state, dt_rank, directions
        self.scan_backend = scan_backend
        bound = d_inner ** -0.5  # nn.Linear(d_inner, R + 2N)'s default kaiming-uniform bound
        self.x_proj_weight = nn.Parameter(
            torch.empty(directions, dt_rank + 2 * d_state, d_inner).uniform_(-bound, bound))
        self.dt_projs_weight = nn.Parameter(
            torch.empty(directions, d_inner, dt_rank).uniform_(-dt_rank ** -0.5, dt_rank ** -0.5))
        dt = torch.exp(torch.rand(directions, d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        self.dt_projs_bias = nn.Parameter(dt + torch.log(-torch.expm1(-dt)))  # inverse softplus
        A = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(directions * d_inner, 1)
        self.A_logs = nn.Parameter(torch.log(A))
        self.Ds = nn.Parameter(torch.ones(directions * d_inner))
        self.A_logs._no_weight_decay = True
        self.Ds._no_weight_decay = True

    def scan(self, xs: Tensor, delta_offset: Optional[Tensor] = None) -> Tensor:
        """Run direction sequences xs (B, K, d, L) through the SSM; returns (B, K, d, L) float32.

        Works on xs in any layout; time-major xs ((B, L, K, d) in memory, as :func:`rssr.ops.cross_scan`
        makes) are projected and scanned without a transpose, and the output is stored the same way.
        ``delta_offset`` (K, d, L), if given, is added to the projected deltas before the scan.
        """
        b, k, d, length = xs.shape
        steps = xs.permute(0, 3, 1, 2)  # (B, L, K, d)
        projected = torch.einsum('blkd,kcd->blkc', steps, self.x_proj_weight)
        dt_raw, B, C = torch.split(projected, [self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = torch.einsum('blkr,kdr->blkd', dt_raw, self.dt_projs_weight)
        if delta_offset is not None:
            delta = delta + delta_offset.permute(2, 0, 1)
        y = selective_scan(
            steps.float().reshape(b, length, k * d).transpose(1, 2),
            delta.float().reshape(b, length, k * d).transpose(1, 2),
            -torch.exp(self.A_logs.float()), B.float().permute(0, 2, 3, 1), C.float().permute(0, 2, 3, 1),
            self.Ds.float(), delta_bias=self.dt_projs_bias.float().reshape(-1), delta_softplus=True,
            backend=self.scan_backend)
        return y.reshape(b, k, d, length)
