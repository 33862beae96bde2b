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


def test_to_map_is_a_channels_last_view_at_batch_one():
    tokens = torch.rand(1, 12, 5)
    folded = to_map(tokens, (3, 4))
    assert folded.data_ptr() == tokens.data_ptr()
    assert folded.stride() == (60, 1, 20, 5)  # recognised as channels-last, so convolutions need no copy
    assert torch.equal(folded, tokens.transpose(1, 2).reshape(1, 5, 3, 4))
