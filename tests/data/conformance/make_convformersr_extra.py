"""Make ``convformersr_extra.pt``: more official ConvFormerSR outputs, for configurations the shared
fixture (``convformersr.pt``) does not cover.

Runs the official ``model.py`` of github.com/junjieliwhu/ConvFormerSR (commit e6515c9, Apache-2.0;
needs timm), given by path, with the shared fixture's scheme: model built under
``torch.manual_seed(seed)``; every floating parameter perturbed by s * N(0, 1) from a seeded
generator (s = 1/sqrt(fan_in) for >= 2-dim weights except the relative position bias table,
0.1 for 1-dim tensors and the table, 1.0 for the CAM gamma); values rounded to float16 and stored
so; the output computed in float32 (eval, no_grad) after loading exactly those values.

    python tests/data/conformance/make_convformersr_extra.py /path/to/official/model.py
"""
import importlib.util
import sys
from pathlib import Path

import torch

CASES = [
    ('x3_6band_window_clamped_no_patch_norm_no_qkv_bias_qk_scale', 11,
     dict(upscale=3, in_chans=6, img_size=4, window_size=8, embed_dim=16, depths=[2], num_heads=[2],
          mlp_ratio=2.0, num_block=1, patch_norm=False, qkv_bias=False, qk_scale=0.25), (1, 6, 7, 9)),
    ('x1_4band_window8_runtime_shift_masks_2stages', 12,
     dict(upscale=1, in_chans=4, img_size=16, window_size=8, embed_dim=16, depths=[2, 2], num_heads=[2, 4],
          mlp_ratio=2.0, num_block=2), (1, 4, 21, 11)),
    ('x1_3band_patch_size2_stored_mask_at_8x8_img_range255', 13,
     dict(upscale=1, in_chans=3, img_size=16, patch_size=2, window_size=4, embed_dim=16, depths=[2],
          num_heads=[4], mlp_ratio=1.5, num_block=1, img_range=255., rgb_mean=[0.4, 0.5, 0.3]), (1, 3, 8, 8)),
]


def perturb(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith('gamma'):
                scale = 1.0
            elif param.dim() >= 2 and 'relative_position_bias_table' not in name:
                scale = (param.numel() / param.shape[0]) ** -0.5
            else:
                scale = 0.1
            param.add_(scale * torch.randn(param.shape, generator=generator))


def main(model_py: str) -> None:
    spec = importlib.util.spec_from_file_location('official_convformersr', model_py)
    official = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(official)
    cases = []
    for name, seed, kwargs, input_shape in CASES:
        torch.manual_seed(seed)
        model = official.ConvFormerSR(**kwargs)
        perturb(model, seed + 1000)
        state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
        model.load_state_dict(state, strict=True)
        model.eval()
        lr = torch.rand(input_shape, generator=torch.Generator().manual_seed(seed + 2000))
        with torch.no_grad():
            output = model(lr)
        cases.append(dict(name=name, kwargs=kwargs, state_dict=state, input=lr, output=output))
        print(name, tuple(output.shape))
    notes = (__doc__ or '').strip()
    torch.save(dict(arch='ConvFormerSR', cases=cases, notes=notes), Path(__file__).with_name('convformersr_extra.pt'))


if __name__ == '__main__':
    main(sys.argv[1])
