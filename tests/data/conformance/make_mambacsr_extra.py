"""Make ``mambacsr_extra.pt``: official MambaCSR outputs for configurations the shared fixture
(``mambacsr.pt``: Final-like x2 square, wo x4 odd) does not cover: the official column-first
cross-scale inverse on non-square window grids, 4-direction blocks (no dual interleaving), 4 bands,
x3, '3conv', img_range 255.

Runs the official ``basicsr/archs/mambacsr_arch.py`` of github.com/renyulin-f/MambaCSR (commit
f71199e; no license file: the code is only executed here, never copied into rssr), given the path
of its ``basicsr/archs`` folder. Stand-ins for what cannot be imported on a CPU machine: the CUDA
scan ``selective_scan_cuda.fwd`` by rssr's sequential ``selective_scan_reference`` (mamba_ssm
``selective_scan_ref`` semantics, as the shared fixture used), basicsr's registry by a no-op, fvcore
and ``csms6s`` (FLOP counting only) by empty modules. Same scheme as the shared fixture:
torch.manual_seed(2000 + i), official MambaCSR(**kwargs); every floating state_dict tensor +
std * randn (Generator seeded 2001 + i, keys in state_dict order; std 0.2 for in_proj,
in_proj_down, x_proj_weight and out_proj weights, else 0.02), rounded to float16 and stored so;
input = torch.rand from the same generator; output in float32, eval, no_grad.

    python tests/data/conformance/make_mambacsr_extra.py /path/to/MambaCSR/basicsr/archs
"""
import importlib.util
import sys
import types
from pathlib import Path

import torch

import rssr  # noqa: F401  (basicsr importable)
from rssr.ops.selective_scan import selective_scan_reference

BASE = dict(img_size=64, embed_dim=24, img_range=1., upsampler='pixelshuffle', resi_connection='1conv')
CASES = [
    ('cross_nodual_x2_nonsquare_b2',
     dict(BASE, in_chans=3, upscale=2, d_state=8, mlp_ratio=2, depths=[1, 1], depths2=[1], resi_connection='3conv',
          dual_interleaved_scan=False, cross_scale_scan=True, scan_size=8), (2, 3, 16, 32)),
    ('nodual_4band_x2',
     dict(BASE, in_chans=4, upscale=2, d_state=8, mlp_ratio=2, depths=[2], depths2=[6], scan_size=4,
          dual_interleaved_scan=False, cross_scale_scan=False), (1, 4, 10, 14)),
    ('cross_4band_x3_nonsquare',
     dict(BASE, in_chans=4, upscale=3, d_state=4, mlp_ratio=1, depths=[2, 1], depths2=[2], scan_size=4,
          img_range=255., dual_interleaved_scan=True, cross_scale_scan=True), (1, 4, 16, 48)),
]
LARGE_NOISE_KEYS = ('in_proj.weight', 'in_proj_down.weight', 'x_proj_weight', 'out_proj.weight')


def stand_in(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def load_official(archs_dir: Path) -> types.ModuleType:
    no_op_registry = types.SimpleNamespace(register=lambda *a, **k: (lambda obj: obj))
    stand_ins = {
        'basicsr.utils.registry': stand_in('basicsr.utils.registry', ARCH_REGISTRY=no_op_registry),
        'fvcore': stand_in('fvcore'), 'fvcore.nn': stand_in('fvcore.nn', flop_count=None),
        'csms6s': stand_in('csms6s', selective_scan_flop_jit=None),
        'selective_scan_cuda': stand_in('selective_scan_cuda', fwd=lambda u, delta, A, B, C, D, z, bias, softplus: (
            selective_scan_reference(u, delta, A, B, C, D, z, bias, softplus), None)),
    }
    saved = {name: sys.modules.get(name) for name in stand_ins}
    sys.modules.update(stand_ins)
    sys.path.insert(0, str(archs_dir))  # the official file imports `mamba.multi_mamba` from there
    try:
        spec = importlib.util.spec_from_file_location('official_mambacsr_arch', archs_dir / 'mambacsr_arch.py')
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(archs_dir))
        for name, original in saved.items():
            if original is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = original
    return module


def main(archs_dir: str) -> None:
    official = load_official(Path(archs_dir))
    cases = []
    for i, (name, kwargs, shape) in enumerate(CASES):
        torch.manual_seed(2000 + i)
        model = official.MambaCSR(**kwargs).eval()
        generator = torch.Generator().manual_seed(2001 + i)
        state = model.state_dict()
        for key, value in state.items():
            if value.is_floating_point():
                std = 0.2 if key.endswith(LARGE_NOISE_KEYS) else 0.02
                value.add_(std * torch.randn(value.shape, generator=generator))
                value.copy_(value.half().float())
        x = torch.rand(shape, generator=generator)
        with torch.no_grad():
            y = model(x)
        cases.append({'name': name, 'kwargs': kwargs, 'input': x, 'output': y,
                      'state_dict': {k: v.half() if v.is_floating_point() else v for k, v in state.items()},
                      'param_count': sum(p.numel() for p in model.parameters())})
        print(name, tuple(y.shape))
    notes = __doc__.split('\n\n    python')[0]
    torch.save({'arch': 'MambaCSR', 'cases': cases, 'notes': notes}, Path(__file__).with_name('mambacsr_extra.pt'))


if __name__ == '__main__':
    main(sys.argv[1])
