"""The Hilbert scan order (rssr.ops.hilbert) against known orders and the curve's recursive definition."""
import pytest
import torch

from rssr.ops.hilbert import hilbert_distance, hilbert_scan_order

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
