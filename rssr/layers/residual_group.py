"""SwinIR-style residual groups over token sequences, as MambaIR, ConvMambaSR and MambaCSR build them.

A group runs a stack of token blocks ``blocks.j`` (each called as ``block(tokens, (H, W))``), folds
the tokens back into a map, applies the ``resi_connection`` conv and adds the group's input.
Module names match the official checkpoints: ``residual_group.blocks.{j}`` and ``conv``.
"""
from __future__ import annotations

from typing import Iterable, Tuple

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from rssr.layers.tokens import to_map, to_tokens

RESI_CONNECTIONS = ('1conv', '3conv')


def resi_connection_conv(dim: int, resi_connection: str = '1conv') -> nn.Module:
    """The conv closing a residual group / the body: '1conv' = 3x3 dim->dim; '3conv' = the
    bottleneck [3x3 dim->dim/4, LeakyReLU(0.2), 1x1, LeakyReLU(0.2), 3x3 dim/4->dim] (keys .0 .2 .4)."""
    if resi_connection == '1conv':
        return nn.Conv2d(dim, dim, 3, 1, 1)
    if resi_connection == '3conv':
        return nn.Sequential(
            nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim // 4, 1, 1, 0), nn.LeakyReLU(negative_slope=0.2, inplace=True),
            nn.Conv2d(dim // 4, dim, 3, 1, 1))
    raise ValueError(f'resi_connection must be one of {RESI_CONNECTIONS}, got {resi_connection!r}')


class BasicLayer(nn.Module):
    """A sequence of token blocks (``blocks``), optionally gradient-checkpointed block by block.

    Args:
        blocks: modules called as ``block(tokens (B, H*W, C), (H, W)) -> tokens``.
        use_checkpoint: recompute each block in backward instead of storing its activations
            (torch.utils.checkpoint, non-reentrant, RNG state preserved so DropPath matches).
    """

    def __init__(self, blocks: Iterable[nn.Module], use_checkpoint: bool = False) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.use_checkpoint = use_checkpoint

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        for block in self.blocks:
            if self.use_checkpoint and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, x_size, use_reentrant=False)
            else:
                tokens = block(tokens, x_size)
        return tokens


class ResidualGroup(nn.Module):
    """tokens + embed(conv(unembed(blocks(tokens)))): a residual group of token blocks.

    Args:
        blocks: the group's token blocks (see :class:`BasicLayer`).
        dim: channels C.
        resi_connection: '1conv' or '3conv' (see :func:`resi_connection_conv`).
        use_checkpoint: gradient checkpointing per block.
    """

    def __init__(self, blocks: Iterable[nn.Module], dim: int, resi_connection: str = '1conv',
                 use_checkpoint: bool = False) -> None:
        super().__init__()
        self.residual_group = BasicLayer(blocks, use_checkpoint)
        self.conv = resi_connection_conv(dim, resi_connection)

    def forward(self, tokens: Tensor, x_size: Tuple[int, int]) -> Tensor:
        return to_tokens(self.conv(to_map(self.residual_group(tokens, x_size), x_size))) + tokens
