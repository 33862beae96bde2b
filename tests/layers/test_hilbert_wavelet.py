"""LSTMConvSR's own building blocks against their definitions: the Hilbert scan and the Haar DWT / IDWT."""
import pytest
import torch

from rssr.layers.wavelet import HaarDWT, HaarIDWT
from rssr.ops.hilbert import hilbert_distance, hilbert_scan_order

# ----------------------------------------------------------------------------- Hilbert curve

# Raster indices in scan order, from hilbertcurve 2.0.5 (HilbertCurve(p, 2), point = (column, row)).
KNOWN_ORDERS = {
    2: [0, 2, 3, 1],
    4: [0, 1, 5, 4, 8, 12, 13, 9, 10, 14, 15, 11, 7, 6, 2, 3],
    8: [0, 8, 9, 1, 2, 3, 11, 10, 18, 19, 27, 26, 25, 17, 16, 24, 32, 33, 41, 40, 48, 56, 57, 49, 50, 58, 59, 51, 43,
        42, 34, 35, 36, 37, 45, 44, 52, 60, 61, 53, 54, 62, 63, 55, 47, 46, 38, 39, 31, 23, 22, 30, 29, 28, 20, 21, 13,
        12, 4, 5, 6, 14, 15, 7],
}


def hilbert_curve_by_construction(order):
    """The Hilbert curve from its geometric definition: the order-(p+1) curve visits the four quadrants
    (x = column, y = row) in the order (0,0), (0,1), (1,1), (1,0), running a transposed copy of the
    order-p curve in the first, plain copies in the middle two and an anti-transposed copy in the last."""
    points = [(0, 0)]
    for level in range(order):
        side = 1 << level
        points = ([(y, x) for x, y in points] + [(x, y + side) for x, y in points]
                  + [(x + side, y + side) for x, y in points]
                  + [(2 * side - 1 - y, side - 1 - x) for x, y in points])
    return points


@pytest.mark.parametrize('side', sorted(KNOWN_ORDERS))
def test_known_small_orders(side):
    assert hilbert_scan_order(side)[0].tolist() == KNOWN_ORDERS[side]


@pytest.mark.parametrize('order', range(1, 8))
def test_matches_the_recursive_definition(order):
    side = 1 << order
    expected = [y * side + x for x, y in hilbert_curve_by_construction(order)]
    assert hilbert_scan_order(side)[0].tolist() == expected


@pytest.mark.parametrize('order', range(1, 9))
def test_is_a_bijection_of_adjacent_steps_from_top_left_to_top_right(order):
    side = 1 << order
    scan, inverse = hilbert_scan_order(side)
    assert sorted(scan.tolist()) == list(range(side * side))
    assert torch.equal(scan[inverse], torch.arange(side * side))
    rows, cols = scan // side, scan % side
    steps = (rows.diff().abs() + cols.diff().abs())
    assert (steps == 1).all()
    assert (rows[0].item(), cols[0].item()) == (0, 0)
    assert (rows[-1].item(), cols[-1].item()) == (0, side - 1)


def test_distance_is_the_position_on_the_curve():
    points = hilbert_curve_by_construction(5)
    xs, ys = torch.tensor([p[0] for p in points]), torch.tensor([p[1] for p in points])
    assert torch.equal(hilbert_distance(xs, ys, 5), torch.arange(len(points)))


@pytest.mark.parametrize('side', [1, 3, 6, 12])
def test_rejects_grids_without_a_hilbert_curve(side):
    with pytest.raises(ValueError, match=f'power-of-two side >= 2, got side {side}'):
        hilbert_scan_order(side)


# ----------------------------------------------------------------------------- Haar DWT / IDWT


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
