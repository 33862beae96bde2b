"""The scan-sensitive official conformance cases (tests/fixtures/conformance/*_scan.pt) for every Mamba arch.

In these cases the selective scan dominates each SS2D's output (each case's ``sensitivity`` entry:
replacing the scan by its skip term, reversing it or dropping the dt bias moves the official output
by 3e-2 or more), so they pin the scan backends and MambaCSR's pad-run collapsing, not only the
layers around them. Each case runs through the float64-exact ``torch`` backend and the sequential
``reference``.
"""

import pytest
import torch

import rssr  # noqa: F401  (registries filled)
from rssr.archs.convmambasr import ConvMambaSR
from rssr.archs.mambacsr import MambaCSR
from rssr.archs.repmamba import RepMamba
from testkit import CONFORMANCE

ARCHS = {'convmambasr': ConvMambaSR, 'repmamba': RepMamba, 'mambacsr': MambaCSR}
CASES = [pytest.param(name, case, id=f"{name}-{case['name']}") for name in ARCHS
         for case in torch.load(CONFORMANCE / f'{name}_scan.pt', weights_only=True)['cases']]


@pytest.mark.parametrize('scan_backend', ['torch', 'reference'])
@pytest.mark.parametrize('name,case', CASES)
def test_scan_sensitive_official_outputs(name, case, scan_backend):
    model = ARCHS[name](**case['kwargs'], scan_backend=scan_backend).eval()
    state = {k: v.float() if v.is_floating_point() else v for k, v in case['state_dict'].items()}
    model.load_state_dict(state, strict=True)
    assert sum(p.numel() for p in model.parameters()) == case['param_count']
    with torch.no_grad():
        output = model(case['input'])
    assert output.shape == case['output'].shape
    assert (output - case['output']).abs().max().item() <= 1e-4
    if 'output_fused' in case:
        model.switch_to_deploy()
        with torch.no_grad():
            assert (model(case['input']) - case['output_fused']).abs().max().item() <= 1e-4


@pytest.mark.parametrize('name', ARCHS)
def test_every_ssm_parameter_is_marked_for_no_weight_decay(name):
    """Mamba's convention: A_logs and Ds carry ``_no_weight_decay`` (the optimizer builder honours it)."""
    kwargs = next(case for case in CASES if case.values[0] == name).values[1]['kwargs']
    model = ARCHS[name](**kwargs)
    ssm = [(key, param) for key, param in model.named_parameters() if key.rsplit('.', 1)[-1] in ('A_logs', 'Ds')]
    assert ssm and all(getattr(param, '_no_weight_decay', False) for _, param in ssm)
    marked = {key for key, param in model.named_parameters() if getattr(param, '_no_weight_decay', False)}
    assert marked == {key for key, _ in ssm}
