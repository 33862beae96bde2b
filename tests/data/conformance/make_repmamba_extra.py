"""Make ``repmamba_extra.pt``: official Rep-Mamba (``SMSR``) outputs for configurations the shared
fixture (``repmamba.pt``: pixelshuffledirect only) does not cover: the other upsamplers, '3conv',
4 bands, no patch norm, img_range, ape, batch 2.

Runs the official ``model/repmamba.py`` of github.com/meigeni0929/Rep-Mamba (commit 21163a9; no
license file: the code is only executed here, never copied into rssr), given by path. Its
top-level imports of mamba_ssm (CUDA only) and basicsr's registry are replaced by stand-ins: the
selective scan by the sequential recurrence below (mamba_ssm ``selective_scan_ref`` semantics, as
the shared fixture used), the registry by a no-op. Same scheme as the shared fixture: model built
under ``torch.manual_seed(seed)``; every floating tensor perturbed by +0.02 * N(0, 1) from a
seeded generator, except BatchNorm running_var, multiplied by (1 + 0.1 * U[0, 1)); rounded to
float16 and stored so; outputs computed in float32 (eval, no_grad) after loading exactly those
values. ``output_fused``: the same weights after replacing every RepDW and the standalone
Conv2d_BN of each MambaLayer by the module its official ``fuse()`` returns.

    python tests/data/conformance/make_repmamba_extra.py /path/to/Rep-Mamba/model/repmamba.py
"""
import importlib.util
import sys
import types
from pathlib import Path

import torch
import torch.nn.functional as F

CASES = [
    ('x2_pixelshuffle_3conv_batch2', 21,
     dict(upscale=2, in_chans=3, embed_dim=64, depths=[1], num_heads=[1], mlp_ratio=2.0,
          upsampler='pixelshuffle', resi_connection='3conv'), (2, 3, 6, 8)),
    ('x3_direct_4band_two_groups_3conv', 22,
     dict(upscale=3, in_chans=4, embed_dim=64, depths=[1, 1], num_heads=[1, 1], mlp_ratio=1.0,
          upsampler='pixelshuffledirect', resi_connection='3conv'), (1, 4, 6, 10)),
    ('x4_nearest_conv_4band_no_patch_norm_img_range10', 23,
     dict(upscale=4, in_chans=4, embed_dim=64, depths=[1], num_heads=[1], mlp_ratio=2.0, patch_norm=False,
          img_range=10.0, upsampler='nearest+conv', resi_connection='3conv'), (1, 4, 8, 6)),
    ('x1_no_upsampler_ape_8x12', 24,
     dict(upscale=1, in_chans=3, img_size=[8, 12], embed_dim=64, depths=[1], num_heads=[1], mlp_ratio=2.0,
          ape=True, upsampler='', resi_connection='3conv'), (1, 3, 8, 12)),
]


def selective_scan_sequential(u, delta, A, B, C, D=None, z=None, delta_bias=None, delta_softplus=False,
                              return_last_state=False):
    """mamba_ssm ``selective_scan_ref`` semantics (grouped B/C (b, g, n, l)), float32, step by step."""
    u, delta = u.float(), delta.float()
    if delta_bias is not None:
        delta = delta + delta_bias[..., None].float()
    if delta_softplus:
        delta = F.softplus(delta)
    batch, dim, length = u.shape
    groups = B.shape[1]
    B = B.float().repeat_interleave(dim // groups, dim=1)
    C = C.float().repeat_interleave(dim // groups, dim=1)
    state = u.new_zeros(batch, dim, A.shape[1])
    ys = []
    for t in range(length):
        state = torch.exp(delta[:, :, t, None] * A) * state + (delta[:, :, t] * u[:, :, t])[..., None] * B[..., t]
        ys.append((state * C[..., t]).sum(-1))
    y = torch.stack(ys, dim=-1)
    if D is not None:
        y = y + u * D[:, None]
    assert z is None and not return_last_state
    return y


def load_official(path: str):
    scan_module = types.ModuleType('mamba_ssm.ops.selective_scan_interface')
    scan_module.selective_scan_fn = scan_module.selective_scan_ref = selective_scan_sequential
    registry_module = types.ModuleType('basicsr.utils.registry')
    registry_module.ARCH_REGISTRY = types.SimpleNamespace(register=lambda: (lambda cls: cls))
    for name in ('mamba_ssm', 'mamba_ssm.ops', 'basicsr', 'basicsr.utils'):
        sys.modules.setdefault(name, types.ModuleType(name))
    sys.modules['mamba_ssm.ops.selective_scan_interface'] = scan_module
    sys.modules['basicsr.utils.registry'] = registry_module
    spec = importlib.util.spec_from_file_location('official_repmamba', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def perturbed_half_state(model: torch.nn.Module, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    state = {}
    for key, value in model.state_dict().items():
        if value.is_floating_point():
            if key.endswith('running_var'):
                value = value * (1 + 0.1 * torch.rand(value.shape, generator=generator))
            else:
                value = value + 0.02 * torch.randn(value.shape, generator=generator)
            value = value.half()
        state[key] = value
    return state


def fuse_official(module, model: torch.nn.Module) -> None:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, module.RepDW) or (isinstance(child, module.Conv2d_BN)
                                                   and isinstance(parent, module.MambaLayer)):
                setattr(parent, name, child.fuse())


def main(official_path: str) -> None:
    official = load_official(official_path)
    torch.set_num_threads(1)
    cases = []
    for name, seed, kwargs, input_shape in CASES:
        torch.manual_seed(seed)
        model = official.SMSR(**kwargs).eval()
        state = perturbed_half_state(model, seed)
        model.load_state_dict(state, strict=True)
        lr = torch.rand(input_shape, generator=torch.Generator().manual_seed(seed + 100))
        with torch.no_grad():
            output = model(lr)
            fuse_official(official, model)
            output_fused = model(lr)
        cases.append({'name': name, 'kwargs': kwargs, 'state_dict': state, 'input': lr, 'output': output,
                      'output_fused': output_fused})
        print(f'{name}: output {tuple(output.shape)}, fused vs unfused {(output - output_fused).abs().max():.2e}')
    target = Path(__file__).with_name('repmamba_extra.pt')
    torch.save({'arch': 'SMSR', 'cases': cases, 'notes': __doc__}, target)
    print(f'wrote {target} ({target.stat().st_size / 1e6:.2f} MB)')


if __name__ == '__main__':
    main(sys.argv[1])
