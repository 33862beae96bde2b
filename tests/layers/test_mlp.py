"""rssr's plain-torch Mlp and DropPath against timm's (which the official code uses)."""
from __future__ import annotations

import torch
from timm.layers import DropPath as TimmDropPath
from timm.layers import Mlp as TimmMlp
from torch import nn

from rssr.layers.mlp import DropPath, Mlp


def test_mlp_loads_timm_weights_strictly_and_matches():
    ours, theirs = Mlp(6, 10, act_layer=nn.GELU), TimmMlp(6, 10, act_layer=nn.GELU)
    ours.load_state_dict(theirs.state_dict(), strict=True)
    x = torch.randn(2, 5, 6)
    assert torch.equal(ours(x), theirs(x))


def test_drop_path_draws_the_same_masks_as_timm_in_training_and_is_identity_in_eval():
    x = torch.randn(64, 3, 4, 4)
    ours, theirs = DropPath(0.3).train(), TimmDropPath(0.3).train()
    torch.manual_seed(0)
    dropped = ours(x)
    torch.manual_seed(0)
    assert torch.equal(dropped, theirs(x))
    per_sample = dropped.flatten(1) / x.flatten(1)
    kept = per_sample[:, 0] != 0
    assert 0 < kept.sum() < 64  # some samples dropped, some kept, whole samples at a time
    assert torch.allclose(per_sample[kept], torch.full_like(per_sample[kept], 1 / 0.7))
    assert torch.equal(per_sample[~kept], torch.zeros_like(per_sample[~kept]))
    assert ours.eval()(x) is x
