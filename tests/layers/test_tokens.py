"""Token folding and patch embedding (rssr.layers.tokens)."""
import torch
from torch import nn

from rssr.layers.tokens import PatchEmbed, to_map, to_tokens


def test_tokens_round_trip_and_optional_norm():
    x = torch.rand(2, 5, 3, 4)
    tokens = to_tokens(x)
    assert tokens.shape == (2, 12, 5) and torch.equal(tokens[:, 1 * 4 + 2], x[:, :, 1, 2])
    assert torch.equal(to_map(tokens, (3, 4)), x)
    assert list(PatchEmbed(5, nn.LayerNorm).state_dict()) == ['norm.weight', 'norm.bias']
    assert list(PatchEmbed(5).state_dict()) == []
