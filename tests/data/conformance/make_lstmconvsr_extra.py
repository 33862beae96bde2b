"""Make ``lstmconvsr_extra.pt``: more official LSTMConvSR outputs, for configurations the shared
fixture (``lstmconvsr.pt``, x4 pixelshuffle and x2 pixelshuffledirect) does not cover.

Runs the official ``basicsr/archs/LSTMConvSR_arch.py`` + ``vision_lstm2.py`` + ``vision_lstm_util.py``
of github.com/Doswin/LSTMConvSR (commit cac9bd45, Apache-2.0), given as the directory holding them,
with its own dependencies (hilbertcurve 2.0.5, pytorch_wavelets 1.3.0, PyWavelets, timm, basicsr)
importable, e.g. installed with ``pip install --target DIR`` and put on PYTHONPATH. Two stand-ins are
set up here only so that the official code imports: torchvision's removed ``functional_tensor``
(rssr's compat shim, for basicsr) and ``pkg_resources`` (gone from current setuptools; pytorch_wavelets
needs it only for its dual-tree coefficients, which the Haar DWT does not touch).

Same scheme as the shared fixture: model built under ``torch.manual_seed(seed)``; every floating
state_dict tensor (the DWT filter buffers included) perturbed by seeded Gaussian noise, std 0.02 for
1-D tensors and the DWT buffers, max(0.02, 0.9 / sqrt(fan_in)) otherwise; values rounded to float16
and stored so; the output computed in float32 (eval, no_grad) after loading exactly those values.

    PYTHONPATH=/path/to/deps python tests/data/conformance/make_lstmconvsr_extra.py /path/to/official/basicsr/archs
"""
import importlib
import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
OFFICIAL_FILES = ('LSTMConvSR_arch.py', 'vision_lstm2.py', 'vision_lstm_util.py')
CASES = [
    ('x3_pixelshuffle_3conv_C32_mlp1.5_custom_mean', 21,
     dict(upscale=3, in_chans=3, img_range=1.0, embed_dim=32, depths=[1], mlp_ratio=1.5, CNN_num=1,
          upsampler='pixelshuffle', resi_connection='3conv', rgb_mean=[0.3, 0.5, 0.2]), (1, 3, 8, 8)),
    ('no_upsampler_1band_C16_smallest_side4', 22,
     dict(upscale=1, in_chans=1, img_range=1.0, embed_dim=16, depths=[1], mlp_ratio=2.0, CNN_num=1,
          upsampler=''), (1, 1, 4, 4)),
    ('no_upsampler_1band_C8_side128_hilbert_p6_seq4096', 23,
     dict(upscale=1, in_chans=1, img_range=1.0, embed_dim=8, depths=[1], mlp_ratio=2.0, CNN_num=1,
          upsampler=''), (1, 1, 128, 128)),
]


def import_official(archs_dir: Path) -> types.ModuleType:
    """Import the official arch as package ``official_lstmconvsr`` (it uses relative imports)."""
    spec = importlib.util.spec_from_file_location('rssr_compat', HERE.parents[2] / 'rssr' / '_compat.py')
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    compat.install()
    if importlib.util.find_spec('pkg_resources') is None:
        stub = types.ModuleType('pkg_resources')

        def resource_stream(*args, **kwargs):
            raise RuntimeError('pkg_resources stand-in: only the dual-tree wavelets need it')

        stub.resource_stream = resource_stream
        sys.modules['pkg_resources'] = stub
    package = Path(tempfile.mkdtemp()) / 'official_lstmconvsr'
    package.mkdir()
    for name in OFFICIAL_FILES:
        shutil.copy(archs_dir / name, package / name)
    (package / '__init__.py').write_text('')
    (package / 'arch_util.py').write_text('from basicsr.archs.arch_util import make_layer\n')
    sys.path.insert(0, str(package.parent))
    return importlib.import_module('official_lstmconvsr.LSTMConvSR_arch')


def perturb(model: torch.nn.Module, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            is_dwt_buffer = '.wt.' in name
            if tensor.dim() >= 2 and not is_dwt_buffer:
                std = max(0.02, 0.9 / (tensor.numel() / tensor.shape[0]) ** 0.5)
            else:
                std = 0.02
            tensor.add_(std * torch.randn(tensor.shape, generator=generator))


def main(archs_dir: str) -> None:
    official = import_official(Path(archs_dir))
    cases = []
    for name, seed, kwargs, input_shape in CASES:
        torch.manual_seed(seed)
        model = official.LSTMConvSR(**kwargs)
        perturb(model, seed + 1000)
        state = {k: v.half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
        model.load_state_dict(state, strict=True)
        model.eval()
        lr = torch.rand(input_shape, generator=torch.Generator().manual_seed(seed + 2000))
        with torch.no_grad():
            output = model(lr)
        cases.append(dict(name=name, kwargs=kwargs, state_dict=state, input=lr, output=output,
                          param_count=sum(p.numel() for p in model.parameters())))
        print(f'{name}: output {tuple(output.shape)}, {cases[-1]["param_count"]} parameters')
    torch.save(dict(arch='LSTMConvSR', cases=cases, notes=__doc__), HERE / 'lstmconvsr_extra.pt')


if __name__ == '__main__':
    main(sys.argv[1])
