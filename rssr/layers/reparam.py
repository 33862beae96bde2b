"""Structural re-parameterisation: train multi-branch convolutions, deploy single convolutions.

Training-time blocks (:class:`ConvBN`, :class:`RepDWConv`) keep their BatchNorms and branches so
official checkpoints load unchanged; ``fuse()`` returns the equivalent single convolution (a
:class:`FusedConvBN` / :class:`FusedRepDWConv`). Those fused classes are plain ``nn.Conv2d`` layers
(state-dict keys ``weight`` and ``bias``) that also accept the *unfused* keys of the block they
replace and fold them while loading, so a model built in deploy form loads training checkpoints
directly. :func:`reparameterize` swaps every fusable block of a model in place.

The folding math is done on tensors (:func:`fold_batchnorm`, :func:`fold_repdw`), once, for both
``fuse()`` and loading. BatchNorms are folded with their running statistics, i.e. as in eval mode.
"""
from __future__ import annotations

from typing import Dict, List, Mapping, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_BN_KEYS = ('weight', 'bias', 'running_mean', 'running_var')


def fold_batchnorm(weight: Tensor, bias: Optional[Tensor], bn_weight: Tensor, bn_bias: Tensor,
                   running_mean: Tensor, running_var: Tensor, eps: float) -> Tuple[Tensor, Tensor]:
    """Fold ``BN(conv(x))`` into one conv: W' = W * s, b' = beta + (b - mean) * s, s = gamma / std."""
    scale = bn_weight / torch.sqrt(running_var + eps)
    conv_bias = torch.zeros_like(running_mean) if bias is None else bias
    return weight * scale.reshape(-1, 1, 1, 1), bn_bias + (conv_bias - running_mean) * scale


def fold_repdw(inner: Tuple[Tensor, Tensor], pointwise: Tuple[Tensor, Tensor], outer_bn: Mapping[str, Tensor],
               eps: float) -> Tuple[Tensor, Tensor]:
    """Fold ``BN_outer(conv3x3_bn(x) + conv1x1(x) + x)`` (all depthwise) into one depthwise 3x3 conv.

    Args:
        inner: (weight (C,1,3,3), bias (C)) of the 3x3 branch with its BatchNorm already folded.
        pointwise: (weight (C,1,1,1), bias (C)) of the 1x1 branch.
        outer_bn: the outer BatchNorm's ``weight``, ``bias``, ``running_mean``, ``running_var``.
        eps: the outer BatchNorm's eps.
    """
    inner_weight, inner_bias = inner
    pad = (inner_weight.shape[-1] - 1) // 2
    pointwise_weight = F.pad(pointwise[0], [pad] * 4)
    identity = torch.zeros_like(inner_weight)
    identity[:, :, pad, pad] = 1
    return fold_batchnorm(inner_weight + pointwise_weight + identity, inner_bias + pointwise[1], outer_bn['weight'],
                          outer_bn['bias'], outer_bn['running_mean'], outer_bn['running_var'], eps)


def is_depthwise_pointwise(conv: nn.Conv2d) -> bool:
    """True for a 1x1, stride-1, unpadded conv with one group per channel: a per-channel scale and shift."""
    return (conv.kernel_size == (1, 1) and conv.stride == (1, 1) and conv.padding in ((0, 0), 'valid')
            and conv.groups == conv.in_channels == conv.out_channels)


def convolve(conv: nn.Conv2d, x: Tensor, weight: Optional[Tensor] = None, bias: Optional[Tensor] = None) -> Tensor:
    """``conv``'s convolution of x with ``weight`` and ``bias`` (default: its own).

    A depthwise 1x1 conv is computed as one multiply-add (the same products and sums): PyTorch's CPU
    convolution runs it as one tiny convolution per channel, which costs more than the rest of a block.
    """
    weight = conv.weight if weight is None else weight
    bias = conv.bias if bias is None else bias
    if is_depthwise_pointwise(conv):
        scaled = x * weight.view(1, -1, 1, 1)
        return scaled if bias is None else scaled + bias.view(1, -1, 1, 1)
    return conv._conv_forward(x, weight, bias)


def _pop_batchnorm(state_dict: Dict[str, Tensor], prefix: str) -> Dict[str, Tensor]:
    """Remove one BatchNorm's entries (``num_batches_tracked`` included) from a state_dict."""
    state_dict.pop(prefix + 'num_batches_tracked', None)
    return {key: state_dict.pop(prefix + key).float() for key in _BN_KEYS}


class _FoldingConv2d(nn.Conv2d):
    """A deploy-form convolution that converts its training-form keys while loading a state_dict."""

    unfused_probe = ''  # a key that only the training form has

    def __init__(self, *args, bn_eps: float = 1e-5, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.bn_eps = bn_eps

    def fold_state_dict(self, state_dict: Dict[str, Tensor], prefix: str) -> Tuple[Tensor, Tensor]:
        """Pop this block's training-form keys and return the fused (weight, bias)."""
        raise NotImplementedError

    def forward(self, x: Tensor) -> Tensor:
        return convolve(self, x)

    def _load_from_state_dict(self, state_dict: Dict[str, Tensor], prefix: str, local_metadata: dict, strict: bool,
                              missing_keys: List[str], unexpected_keys: List[str], error_msgs: List[str]) -> None:
        if prefix + self.unfused_probe in state_dict:
            try:
                weight, bias = self.fold_state_dict(state_dict, prefix)
            except KeyError as err:
                error_msgs.append(f'{prefix[:-1]}: the checkpoint has the training-form (unfused) keys of this '
                                  f'layer but misses {err.args[0]!r}, so it cannot be folded.')
                return
            state_dict[prefix + 'weight'] = weight.to(self.weight.dtype)
            state_dict[prefix + 'bias'] = bias.to(self.weight.dtype)
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class FusedConvBN(_FoldingConv2d):
    """Deploy form of :class:`ConvBN`: a conv with bias; also loads ``c.weight`` + ``bn.*`` keys."""

    unfused_probe = 'c.weight'

    def fold_state_dict(self, state_dict: Dict[str, Tensor], prefix: str) -> Tuple[Tensor, Tensor]:
        weight = state_dict[prefix + 'c.weight']
        bn = _pop_batchnorm(state_dict, prefix + 'bn.')
        del state_dict[prefix + 'c.weight']
        return fold_batchnorm(weight.float(), None, bn['weight'], bn['bias'], bn['running_mean'], bn['running_var'],
                              self.bn_eps)


class FusedRepDWConv(_FoldingConv2d):
    """Deploy form of :class:`RepDWConv`: a depthwise 3x3 conv with bias; also loads the branch keys."""

    unfused_probe = 'conv.c.weight'

    def fold_state_dict(self, state_dict: Dict[str, Tensor], prefix: str) -> Tuple[Tensor, Tensor]:
        required = [prefix + key for key in ('conv.c.weight', 'conv1.weight', 'conv1.bias')]
        missing = [key for key in required if key not in state_dict]
        if missing:
            raise KeyError(missing[0])
        inner_bn = _pop_batchnorm(state_dict, prefix + 'conv.bn.')
        inner = fold_batchnorm(state_dict.pop(required[0]).float(), None, inner_bn['weight'], inner_bn['bias'],
                               inner_bn['running_mean'], inner_bn['running_var'], self.bn_eps)
        pointwise = (state_dict.pop(required[1]).float(), state_dict.pop(required[2]).float())
        return fold_repdw(inner, pointwise, _pop_batchnorm(state_dict, prefix + 'bn.'), self.bn_eps)


class _RejectsFusedKeys:
    """Mixin for training-form blocks: a deploy-form checkpoint gets an actionable error, not a key list."""

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs) -> None:
        if prefix + 'weight' in state_dict and prefix + self.unfused_probe not in state_dict:
            error_msgs.append(f'{prefix[:-1]}: the checkpoint holds the fused (deploy) form of this layer '
                              f'({prefix}weight) but the model is in training form; build the model with '
                              f'deploy=True to load it (fused weights cannot be split back into branches).')
            return
        super()._load_from_state_dict(state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                                      error_msgs)


class ConvBN(_RejectsFusedKeys, nn.Sequential):
    """Conv2d without bias followed by BatchNorm2d (keys ``c.*``, ``bn.*``), as RepViT's Conv2d_BN.

    Args mirror ``nn.Conv2d``; ``bn_weight_init`` sets the BatchNorm scale at init.
    """

    unfused_probe = 'c.weight'

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                 dilation: int = 1, groups: int = 1, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module('c', nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups,
                                       bias=False))
        self.add_module('bn', nn.BatchNorm2d(out_channels))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)

    def folded(self) -> Tuple[Tensor, Tensor]:
        """(weight, bias) of the single convolution equal to this block in eval mode."""
        bn = self.bn
        return fold_batchnorm(self.c.weight, None, bn.weight, bn.bias, bn.running_mean, bn.running_var, bn.eps)

    def forward(self, x: Tensor) -> Tensor:
        """conv then BatchNorm; in eval mode as the one folded convolution (same result within rounding)."""
        if self.training:
            return self.bn(convolve(self.c, x))
        return convolve(self.c, x, *self.folded())

    @staticmethod
    def deploy_form(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1, padding: int = 0,
                    dilation: int = 1, groups: int = 1, bn_eps: float = 1e-5) -> FusedConvBN:
        """The single convolution this block fuses into, built directly (deploy mode)."""
        return FusedConvBN(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias=True,
                           bn_eps=bn_eps)

    @torch.no_grad()
    def fuse(self) -> FusedConvBN:
        """The equivalent single convolution (BatchNorm folded with its running statistics)."""
        conv, bn = self.c, self.bn
        fused = self.deploy_form(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                                 conv.dilation, conv.groups, bn.eps).to(conv.weight.device)
        weight, bias = self.folded()
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        return fused.train(self.training)


class RepDWConv(_RejectsFusedKeys, nn.Module):
    """Re-parameterisable depthwise conv (RepVGG-DW style): ``BN(DW3x3_BN(x) + DW1x1(x) + x)``.

    Keys: ``conv.c.weight`` + ``conv.bn.*`` (3x3 branch), ``conv1.weight/bias`` (1x1 branch), ``bn.*``.
    Branch weights start from trunc_normal(std 0.02), 1x1 bias 0, as in RepViT.
    """

    unfused_probe = 'conv.c.weight'

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConvBN(channels, channels, 3, 1, 1, groups=channels)
        self.conv1 = nn.Conv2d(channels, channels, 1, 1, 0, groups=channels)
        self.bn = nn.BatchNorm2d(channels)
        for conv in (self.conv.c, self.conv1):
            nn.init.trunc_normal_(conv.weight, std=0.02)
        nn.init.zeros_(self.conv1.bias)

    @staticmethod
    def deploy_form(channels: int, bn_eps: float = 1e-5) -> FusedRepDWConv:
        """The single depthwise 3x3 convolution this block fuses into, built directly (deploy mode)."""
        return FusedRepDWConv(channels, channels, 3, 1, 1, groups=channels, bias=True, bn_eps=bn_eps)

    def folded(self) -> Tuple[Tensor, Tensor]:
        """(weight, bias) of the single depthwise 3x3 convolution equal to this block in eval mode."""
        bn = self.bn
        outer = {'weight': bn.weight, 'bias': bn.bias, 'running_mean': bn.running_mean,
                 'running_var': bn.running_var}
        return fold_repdw(self.conv.folded(), (self.conv1.weight, self.conv1.bias), outer, bn.eps)

    def forward(self, x: Tensor) -> Tensor:
        """The three branches and the outer BatchNorm; in eval mode as the one folded convolution."""
        if self.training:
            return self.bn(self.conv(x) + convolve(self.conv1, x) + x)
        return convolve(self.conv.c, x, *self.folded())

    @torch.no_grad()
    def fuse(self) -> FusedRepDWConv:
        """The equivalent single depthwise 3x3 convolution (every BatchNorm folded)."""
        bn = self.bn
        fused = self.deploy_form(bn.num_features, bn.eps).to(bn.weight.device)
        weight, bias = self.folded()
        fused.weight.copy_(weight)
        fused.bias.copy_(bias)
        return fused.train(self.training)


def reparameterize(model: nn.Module) -> int:
    """Replace, in place, every :class:`ConvBN` / :class:`RepDWConv` in ``model`` by its fused conv.

    Outermost blocks are fused first, so a RepDWConv's inner ConvBN is folded as part of it.
    Returns the number of blocks replaced. The model should be in eval-equivalent state: running
    statistics, not batch statistics, are folded.
    """
    replaced = 0
    for name, child in list(model.named_children()):
        if isinstance(child, (ConvBN, RepDWConv)):
            setattr(model, name, child.fuse())
            replaced += 1
        else:
            replaced += reparameterize(child)
    return replaced
