"""The Haar DWT / IDWT (rssr.layers.wavelet) against their definitions, filtering with their buffers."""
import pytest
import torch

from rssr.layers.wavelet import HaarDWT, HaarIDWT


def dwt_by_definition(x, h0_row, h1_row, h0_col, h1_col):
    """Band(R, C)[i, j] = sum_{u, v} R[u] C[v] X[2i + u, 2j + v] (rows filter the height, columns the width),
    bands LL = (h0_row, h0_col), then (h1_row, h0_col), (h0_row, h1_col), (h1_row, h1_col); zero padding."""
    x = torch.nn.functional.pad(x, (0, x.shape[-1] % 2, 0, x.shape[-2] % 2))
    bands = []
    for along_h, along_w in ((h0_row, h0_col), (h1_row, h0_col), (h0_row, h1_col), (h1_row, h1_col)):
        band = sum(along_h[u] * along_w[v] * x[..., u::2, v::2] for u in range(2) for v in range(2))
        bands.append(band)
    return bands[0], torch.stack(bands[1:], dim=2)


def test_haar_bands_by_hand():
    x = torch.tensor([[1., 2.], [3., 5.]]).view(1, 1, 2, 2)
    low, (high,) = HaarDWT()(x)
    a, b, c, d = 1., 2., 3., 5.
    assert torch.allclose(low.flatten(), torch.tensor([(a + b + c + d) / 2]))
    assert torch.allclose(high.flatten(), torch.tensor([(a + b - c - d) / 2, (a - b + c - d) / 2, (a - b - c + d) / 2]))


def test_buffers_are_pytorch_wavelets_haar_filters():
    dwt = HaarDWT()
    state = dwt.state_dict()
    assert sorted(state) == ['h0_col', 'h0_row', 'h1_col', 'h1_row']
    s = 0.70710677
    assert state['h0_col'].shape == state['h1_col'].shape == (1, 1, 2, 1)
    assert state['h0_row'].shape == state['h1_row'].shape == (1, 1, 1, 2)
    assert torch.equal(state['h1_col'].flatten(), torch.tensor([s, -s]))
    assert sorted(HaarIDWT().state_dict()) == ['g0_col', 'g0_row', 'g1_col', 'g1_row']


@pytest.mark.parametrize('size', [(6, 8), (5, 7), (1, 3)])
def test_forward_filters_with_its_buffers(size):
    """Arbitrary buffer values (as in a checkpoint): *_row taps act along the height, *_col along the width."""
    dwt = HaarDWT()
    generator = torch.Generator().manual_seed(0)
    for buffer in dwt.buffers():
        buffer.copy_(torch.randn(buffer.shape, generator=generator))
    x = torch.randn(2, 3, *size, generator=generator)
    low, (high,) = dwt(x)
    expected_low, expected_high = dwt_by_definition(x, dwt.h0_row.flatten(), dwt.h1_row.flatten(),
                                                    dwt.h0_col.flatten(), dwt.h1_col.flatten())
    assert low.shape == (2, 3, (size[0] + 1) // 2, (size[1] + 1) // 2)
    assert high.shape == (2, 3, 3, *low.shape[-2:])
    assert torch.allclose(low, expected_low, atol=1e-6)
    assert torch.allclose(high, expected_high, atol=1e-6)


def test_inverse_reconstructs_and_uses_its_buffers():
    x = torch.randn(2, 3, 6, 10, generator=torch.Generator().manual_seed(1))
    idwt = HaarIDWT()
    assert torch.allclose(idwt(HaarDWT()(x)), x, atol=1e-6)
    low, high = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 3, 4)
    for buffer in idwt.buffers():
        buffer.mul_(2.0)
    # synthesis is linear in each filter pair: doubling both taps of rows and columns scales by 4
    assert torch.allclose(idwt((low, [high])), 4 * HaarIDWT()((low, [high])), atol=1e-5)


def test_inverse_by_definition():
    """x[2i + u, 2j + v] = sum_bands coeff[i, j] * R[u] * C[v] with the synthesis taps (g0 = [s, s], g1 = [s, -s])."""
    low, high = torch.randn(1, 1, 2, 3), torch.randn(1, 1, 3, 2, 3)
    s = 0.5 ** 0.5
    g0, g1 = torch.tensor([s, s]), torch.tensor([s, -s])
    bands = [(low, g0, g0), (high[:, :, 0], g1, g0), (high[:, :, 1], g0, g1), (high[:, :, 2], g1, g1)]
    expected = torch.zeros(1, 1, 4, 6)
    for coeff, along_h, along_w in bands:
        for u in range(2):
            for v in range(2):
                expected[..., u::2, v::2] += coeff * along_h[u] * along_w[v]
    assert torch.allclose(HaarIDWT()((low, [high])), expected, atol=1e-6)
