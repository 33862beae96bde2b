"""The mLSTM op: parallel form against the recurrent definition, chunkwise form against the parallel one."""
import math

import pytest
import torch

import rssr.ops.mlstm as mlstm_module
from rssr.ops.mlstm import mlstm, mlstm_chunkwise, mlstm_parallel


def make_inputs(length, batch=2, heads=3, head_dim=8, forget_bias=0.0, forget_std=1.0, input_std=1.0, seed=0,
                dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=generator, dtype=dtype) for _ in range(3))
    igate = input_std * torch.randn(batch, heads, length, generator=generator, dtype=dtype)
    fgate = forget_bias + forget_std * torch.randn(batch, heads, length, generator=generator, dtype=dtype)
    return q, k, v, igate, fgate


def recurrent_mlstm(q, k, v, igate, fgate, eps=1e-6):
    """The mLSTM as the xLSTM paper writes it: a stabilised recurrence over a DH x DH memory, step by step."""
    batch, heads, length, head_dim = q.shape
    k = k / math.sqrt(head_dim)
    memory = q.new_zeros(batch, heads, head_dim, head_dim)
    normaliser = q.new_zeros(batch, heads, head_dim)
    stabiliser = q.new_full((batch, heads), float('-inf'))
    outputs = []
    for t in range(length):
        log_forget = torch.nn.functional.logsigmoid(fgate[..., t])
        new_stabiliser = torch.maximum(log_forget + stabiliser, igate[..., t])
        forget = torch.exp(log_forget + stabiliser - new_stabiliser)
        write = torch.exp(igate[..., t] - new_stabiliser)
        memory = forget[..., None, None] * memory + write[..., None, None] * k[..., t, :, None] * v[..., t, None, :]
        normaliser = forget[..., None] * normaliser + write[..., None] * k[..., t, :]
        stabiliser = new_stabiliser
        query = q[..., t, :]
        denominator = torch.maximum((normaliser * query).sum(-1).abs(), torch.exp(-stabiliser)) + eps
        outputs.append((query[..., None] * memory).sum(-2) / denominator[..., None])
    return torch.stack(outputs, dim=2)


def relative_error(value, reference):
    return ((value - reference).abs().max() / reference.abs().max()).item()


@pytest.mark.parametrize('length', [1, 5, 33])
@pytest.mark.parametrize('forget_bias', [0.0, 4.0])
def test_parallel_form_is_the_recurrence(length, forget_bias):
    inputs = make_inputs(length, forget_bias=forget_bias, input_std=3.0)
    assert relative_error(mlstm_parallel(*inputs), recurrent_mlstm(*inputs)) < 1e-12


@pytest.mark.parametrize('length,chunk_size', [(1, 4), (3, 4), (16, 4), (50, 16), (130, 64), (257, 32)])
@pytest.mark.parametrize('forget_bias,input_std', [(0.0, 1.0), (3.0, 0.5), (-2.0, 5.0)])
def test_chunkwise_equals_parallel_in_float64(length, chunk_size, forget_bias, input_std):
    inputs = make_inputs(length, forget_bias=forget_bias, input_std=input_std, seed=length)
    assert relative_error(mlstm_chunkwise(*inputs, chunk_size=chunk_size), mlstm_parallel(*inputs)) < 1e-12


@pytest.mark.parametrize('length', [64, 200, 256, 700])
@pytest.mark.parametrize('forget_bias,forget_std', [(0.0, 0.5), (3.0, 1.0), (-1.0, 1.0), (0.0, 3.0)])
def test_chunkwise_equals_parallel_in_float32(length, forget_bias, forget_std):
    inputs = make_inputs(length, batch=1, heads=4, head_dim=32, forget_bias=forget_bias, forget_std=forget_std,
                         input_std=0.5, seed=length, dtype=torch.float32)
    parallel = mlstm(*inputs, backend='parallel')
    chunkwise = mlstm(*inputs, backend='chunkwise')
    assert parallel.dtype == chunkwise.dtype == torch.float32
    assert relative_error(chunkwise, parallel) < 1e-5


def test_both_forms_stay_at_float32_precision_for_long_sequences():
    """S = 2048 (a 90 x 90 LR tile): no error growth with S, both forms agree and match float64."""
    inputs = make_inputs(2048, batch=1, heads=2, head_dim=16, forget_bias=0.0, forget_std=0.5, input_std=0.5,
                         seed=7, dtype=torch.float32)
    exact = mlstm_parallel(*(t.double() for t in inputs))
    parallel, chunkwise = mlstm(*inputs, backend='parallel'), mlstm(*inputs, backend='chunkwise')
    assert relative_error(chunkwise, parallel) < 1e-5
    assert relative_error(chunkwise.double(), exact) < 1e-5
    assert relative_error(parallel.double(), exact) < 1e-5


def test_chunkwise_gradients_equal_parallel_gradients():
    inputs = [t.requires_grad_() for t in make_inputs(45, forget_bias=1.0, input_std=2.0, seed=3)]
    weights = torch.randn(2, 3, 45, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    grads = {}
    for backend in ('parallel', 'chunkwise'):
        out = mlstm(*inputs, backend=backend, chunk_size=16)
        grads[backend] = torch.autograd.grad((out * weights).sum(), inputs)
    for parallel_grad, chunkwise_grad in zip(grads['parallel'], grads['chunkwise']):
        assert torch.isfinite(chunkwise_grad).all()
        assert relative_error(chunkwise_grad, parallel_grad) < 1e-10


def test_large_gates_stay_finite():
    """exp(i) of input gates up to ~150 overflows float32; the stabiliser must keep every exp argument <= 0."""
    q, k, v, igate, fgate = make_inputs(70, dtype=torch.float32)
    igate, fgate = igate.abs() * 40.0, fgate * 40.0
    for backend in ('parallel', 'chunkwise'):
        tensors = [t.clone().requires_grad_() for t in (q, k, v, igate, fgate)]
        out = mlstm(*tensors, backend=backend, chunk_size=16)
        out.sum().backward()
        assert torch.isfinite(out).all()
        assert all(torch.isfinite(t.grad).all() for t in tensors)


def test_automatic_selection_by_length(monkeypatch):
    chosen = []
    monkeypatch.setattr(mlstm_module, 'mlstm_parallel', lambda *a, **kw: chosen.append('parallel') or a[0])
    monkeypatch.setattr(mlstm_module, 'mlstm_chunkwise', lambda *a, **kw: chosen.append('chunkwise') or a[0])
    limit = mlstm_module.PARALLEL_MAX_LENGTH
    for length in (limit, limit + 1):
        mlstm(*make_inputs(length, batch=1, heads=1, head_dim=2))
    mlstm(*make_inputs(4, batch=1, heads=1, head_dim=2), backend='chunkwise')
    assert chosen == ['parallel', 'chunkwise', 'chunkwise']


def test_half_precision_runs_in_float32_and_keeps_dtype():
    inputs = make_inputs(40, dtype=torch.float32)
    reference = mlstm(*inputs, backend='parallel')
    out = mlstm(*(t.bfloat16() for t in inputs), backend='chunkwise', chunk_size=16)
    assert out.dtype == torch.bfloat16
    assert relative_error(out.float(), reference) < 0.05


def test_autocast_does_not_lower_the_precision():
    inputs = make_inputs(100, dtype=torch.float32)
    reference = mlstm_parallel(*inputs)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        for backend in ('parallel', 'chunkwise'):
            out = mlstm(*inputs, backend=backend, chunk_size=32)
            assert out.dtype == torch.float32
            assert relative_error(out, reference) < 1e-5


def test_bad_arguments_are_named():
    q, k, v, igate, fgate = make_inputs(8)
    with pytest.raises(ValueError, match='unknown backend'):
        mlstm(q, k, v, igate, fgate, backend='triton')
    with pytest.raises(ValueError, match=r'igate and fgate must have the shape \(B, NH, S\)'):
        mlstm(q, k, v, igate[..., None], fgate)
    with pytest.raises(ValueError, match='q, k, v must share the shape'):
        mlstm(q, k[..., :4], v, igate, fgate)
