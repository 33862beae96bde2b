"""SS2D's four scan directions: the VMamba / MambaIR orders, the time-major storage the scan reads without a
transpose, and a graph that exporters trace (no in-place writes into fresh tensors)."""
from __future__ import annotations

import io

import pytest
import torch

from rssr.ops.cross_scan import cross_merge, cross_scan


def official_orders(x: torch.Tensor) -> torch.Tensor:
    """MambaIR's cross scan written out: row-major, column-major, and their reverses, (B, 4, C, H*W)."""
    b, c, h, w = x.shape
    row, col = x.reshape(b, c, h * w), x.transpose(2, 3).reshape(b, c, h * w)
    return torch.stack([row, col, row.flip(-1), col.flip(-1)], dim=1)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_directions_are_the_official_orders_stored_time_major(memory_format):
    x = torch.randn(2, 5, 3, 4).contiguous(memory_format=memory_format)
    ys = cross_scan(x)
    assert torch.equal(ys, official_orders(x))
    assert ys.permute(0, 3, 1, 2).is_contiguous()  # (B, L, 4, C) in memory


def test_merge_undoes_each_order_and_sums_into_pixels_last_storage():
    x = torch.randn(2, 5, 3, 4)
    weights = torch.tensor([1., 10., 100., 1000.]).view(1, 4, 1, 1)
    merged = cross_merge(cross_scan(x) * weights, 3, 4)
    assert torch.allclose(merged, 1111. * x.reshape(2, 5, 12))
    assert merged.transpose(1, 2).is_contiguous()  # (B, H*W, C): the LayerNorm after it reads it as is
    contiguous_input = cross_merge(official_orders(x) * weights, 3, 4)
    assert torch.allclose(contiguous_input, merged)


def test_scan_and_merge_trace_for_onnx():
    onnxruntime = pytest.importorskip('onnxruntime')

    class ScanAndMerge(torch.nn.Module):
        def forward(self, x):
            ys = cross_scan(x)
            return ys.contiguous(), cross_merge(ys.sin(), x.shape[2], x.shape[3]).contiguous()

    x = torch.randn(1, 5, 4, 6)
    buffer = io.BytesIO()
    torch.onnx.export(ScanAndMerge(), (x,), buffer, dynamo=False)
    session = onnxruntime.InferenceSession(buffer.getvalue())
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    for value, want in zip(got, ScanAndMerge()(x)):
        assert torch.allclose(torch.from_numpy(value), want, atol=1e-6)
