"""Everything rssr claims for CUDA GPUs, checked in one run, correctness first; one summary table.

    PYTHONPATH=.gl:. python scripts/gpu_check.py --out gpu_check/     # on the GPU machine (docs/gpu.md)
    python scripts/gpu_check.py --list                                # the plan and the CUDA-marked tests
    python scripts/gpu_check.py --cpu-smoke --out /tmp/gpu_check      # CPU: the non-CUDA parts, small

Sections run in this order, each in its own subprocess with its own time limit, so one failure, hang
or CUDA error does not stop the others:

correctness
* ``environment``: versions, the GPU, each fused scan backend's usability (rssr.info's probe);
* ``scan_backends``: every usable backend against the float64 scan at an SR shape, the output and the
  gradient of every input, each tensor against its own scale;
* ``cuda_tests``: every test the suite marks ``cuda`` (collected by marker), and the Triton kernel tests;
* ``arch:<name>`` for every zoo model at its official size: the fused backends against ``torch``,
  output and each parameter's gradient against its own scale; then bf16 training steps (finite,
  falling loss), seconds per step, images/s, peak memory;
pipelines
* ``train_cli``: a short ``python -m rssr.train`` on the GPU; ``torchrun_nccl``: the same under a
  1-process ``torchrun`` (NCCL); ``infer_sharded``: ``torchrun -m rssr.infer`` over a folder on ``cuda:0``;
speed
* ``scan_benchmark``: ``scripts/benchmark_scan.py --device cuda``.

Each section ends PASS (ran, every check held), FAIL (ran, a check failed) or NOT RUN (not started:
no CUDA, a missing package, the time budget; or not finished: a crash or its time limit). Anything but
PASS makes the exit status 1. ``--cpu-smoke`` plans only the sections that run without CUDA, at small
sizes. The scan, arch and benchmark sections need only torch, triton and numpy besides rssr's
plain-torch modules; the others name the packages they need (docs/gpu.md: the wheels to carry).
"""
from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Tuple

REPO = Path(__file__).resolve().parents[1]
PASS, FAIL, NOT_RUN = 'PASS', 'FAIL', 'NOT RUN'
CLI_PACKAGES = ('basicsr', 'cv2', 'yaml', 'scipy', 'tqdm', 'safetensors')  # rssr.train/test/infer with BasicSR
SUITE_PACKAGES = ('pytest', 'timm', 'rasterio', 'affine', 'torchmetrics') + CLI_PACKAGES  # what the tests import


class Section(NamedTuple):
    name: str
    limit_s: int
    needs_cuda: bool
    packages: Tuple[str, ...]  # importable modules it needs besides torch and rssr


SECTIONS = (  # in running order: correctness, then the pipelines, then speed
    Section('environment', 60, False, ()),
    Section('scan_backends', 90, False, ('numpy',)),
    Section('cuda_tests', 150, True, SUITE_PACKAGES),
    Section('arch', 45, False, ('numpy',)),
    Section('train_cli', 60, True, CLI_PACKAGES),
    Section('torchrun_nccl', 60, True, CLI_PACKAGES),
    Section('infer_sharded', 45, True, CLI_PACKAGES + ('rasterio', 'affine')),
    Section('scan_benchmark', 60, True, ('numpy', 'tqdm')),
)
SECTION_BY_NAME = {section.name: section for section in SECTIONS}
SMOKE_ARCHS = ('repmamba',)
SMOKE_TIME_FACTOR = 8  # --cpu-smoke: the limits only catch hangs; a CPU shared with other torch processes is 20x slower
OUR_TOLERANCE = 1e-4  # rssr's kernels vs the float64 reference, max|error| / max|truth| per tensor, float32
# Through a whole network a fused backend is held, per output and per parameter gradient, to rssr's float32 torch
# path: against the float64 model its error may be at most ARCH_RATIO x torch's own (or ARCH_ABSOLUTE).
ARCH_RATIO, ARCH_ABSOLUTE = 10.0, 1e-5
# A parameter's gradient is judged on its own scale, but not below this fraction of the model's largest gradient:
# gradients that are zero in exact arithmetic (a bias before a normalisation) are rounding noise, ~1e-13.
GRADIENT_FLOOR = 1e-6


class CheckFailed(AssertionError):
    """A section ran and one of its checks did not hold (FAIL, not NOT RUN)."""


def relative_error(value, truth, floor: float = 0.0) -> float:
    """max|value - truth| / max(max|truth|, floor): one tensor's error against its own scale (absolute if 0)."""
    scale = max(truth.abs().max().item(), floor)
    return (value.double() - truth.double()).abs().max().item() / (scale or 1.0)


def _synchronize(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def section_environment(args: argparse.Namespace) -> Dict[str, Any]:
    """Versions, the GPU, which packages the other sections need are missing, each fused backend's usability."""
    import platform

    import torch

    from rssr.ops.selective_scan import FUSED_BACKENDS, backend_status

    versions = {}
    for module in ('torch', 'triton', 'numpy', 'mamba_ssm') + SUITE_PACKAGES:
        try:
            versions[module] = getattr(importlib.import_module(module), '__version__', 'present')
        except Exception as err:  # noqa: BLE001  (any import failure means: not usable here)
            versions[module] = f'missing ({type(err).__name__})'
    result: Dict[str, Any] = {'python': platform.python_version(), 'versions': versions,
                              'cuda': torch.cuda.is_available()}
    if torch.cuda.is_available():
        result.update(gpu=torch.cuda.get_device_name(0), cuda_version=torch.version.cuda,
                      memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1))
    result['scan_backends'] = {backend: backend_status(backend, args.device)._asdict() for backend in FUSED_BACKENDS}
    return result


def _scan_inputs(batch: int, channels: int, state: int, groups: int, length: int, device: str):
    """Inputs like an SS2D block's (softplus'd deltas with bias, S4D-real A, D skip) plus a gate z; all float64
    leaves on the CPU, cast per backend."""
    import torch

    generator = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float64)

    return {'u': randn(batch, channels, length), 'delta': randn(batch, channels, length) * 0.5,
            'A': -torch.arange(1, state + 1, dtype=torch.float64).repeat(channels, 1),
            'B': randn(batch, groups, state, length), 'C': randn(batch, groups, state, length),
            'D': torch.ones(channels, dtype=torch.float64), 'z': randn(batch, channels, length),
            'delta_bias': torch.rand(channels, generator=generator, dtype=torch.float64) - 4.0}


def _scan_outputs(backend: str, inputs, device: str, dtype) -> Dict[str, Any]:
    """The output and every input gradient of one backend, on the CPU in float64 for comparing."""
    import torch

    from rssr.ops import selective_scan

    leaves = {k: v.detach().to(device=device, dtype=dtype, copy=True).requires_grad_() for k, v in inputs.items()}
    y = selective_scan(leaves['u'], leaves['delta'], leaves['A'], leaves['B'], leaves['C'], leaves['D'],
                       z=leaves['z'], delta_bias=leaves['delta_bias'], delta_softplus=True, backend=backend)
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    (y * upstream.to(device, y.dtype)).sum().backward()
    _synchronize(device)
    return {'y': y.detach().double().cpu(), **{f'grad_{k}': v.grad.double().cpu() for k, v in leaves.items()}}


def _within_mamba_ssm_tolerances(got, want) -> Dict[str, bool]:
    import torch

    from rssr.ops.selective_scan import MAMBA_SSM_TEST_TOLERANCES
    return {name: torch.allclose(got[name], want[name], rtol=rtol, atol=atol)
            for name, (rtol, atol) in MAMBA_SSM_TEST_TOLERANCES.items() if name in want}


def section_scan_backends(args: argparse.Namespace) -> Dict[str, Any]:
    """Each backend usable here against the float64 truth: y and every input gradient, each on its own scale.
    The truth is rssr's torch scan in float64 on the same device (the suite holds it to the sequential reference
    within 1e-12; the reference itself takes minutes at this size on a CPU). On CUDA, rssr's triton backend must
    be usable (it is rssr's claim); mamba_ssm is checked when installed."""
    import torch

    from rssr.ops.selective_scan import backend_status

    device = args.device
    shape = (1, 64, 16, 4, 256) if args.cpu_smoke else (2, 768, 16, 4, 1024)
    inputs = _scan_inputs(*shape, device='cpu')
    truth = _scan_outputs('torch', inputs, device, torch.float64)
    rows, problems = {}, []
    for backend in ('torch', 'triton', 'mamba_ssm'):
        status = backend_status(backend, device)
        if not status.usable:
            rows[backend] = {'usable': False, 'reason': status.reason}
            if device.startswith('cuda') and (backend == 'triton' or status.installed):
                problems.append(f'{backend} unusable: {status.reason}')
            continue
        started = time.perf_counter()
        got = _scan_outputs(backend, inputs, device, torch.float32)
        errors = {name: relative_error(got[name], truth[name]) for name in truth}
        worst = max(errors, key=errors.get)
        rows[backend] = {'seconds': round(time.perf_counter() - started, 3), 'errors': errors,
                         'worst': f'{worst} {errors[worst]:.1e}'}
        if backend == 'mamba_ssm':
            outside = [name for name, ok in _within_mamba_ssm_tolerances(got, truth).items() if not ok]
            problems += [f'mamba_ssm {name} outside mamba_ssm\'s own test tolerances' for name in outside]
        else:
            problems += [f'{backend} {name} {error:.1e}' for name, error in errors.items() if error > OUR_TOLERANCE]
    result = {'shape (b, d, n, groups, l)': list(shape), 'device': device, 'backends': rows}
    if problems:
        raise CheckFailed(f'{"; ".join(problems)}; {json.dumps(result, default=str)}')
    return result


def _per_parameter_errors(model_factory: Callable, backend: str, lr, truth=None) -> Tuple[Dict[str, Any], Dict]:
    """The output and each parameter's gradient of a fresh model (same seed) with ``backend``; their errors
    against ``truth`` (the float64 model's), each on its own scale (see GRADIENT_FLOOR)."""
    import torch

    os.environ['RSSR_SCAN_BACKEND'] = backend
    try:
        torch.manual_seed(0)
        model = model_factory()
        out = model(lr)
        out.square().mean().backward()
    finally:
        os.environ.pop('RSSR_SCAN_BACKEND', None)
    values = {'output': out.detach(), **{name: p.grad.detach() for name, p in model.named_parameters()
                                          if p.grad is not None}}
    if truth is None:
        return values, {}
    floor = GRADIENT_FLOOR * max(value.abs().max().item() for name, value in truth.items() if name != 'output')
    return values, {name: relative_error(value, truth[name], 0.0 if name == 'output' else floor)
                    for name, value in values.items()}


def section_arch(args: argparse.Namespace) -> Dict[str, Any]:
    """One zoo model at its official size: fused backends vs torch (output and each parameter gradient),
    then bf16 training steps: finite and falling loss, seconds per step, images/s, peak memory."""
    import torch

    import rssr
    from rssr.ops.selective_scan import backend_status

    scan_module = importlib.import_module('rssr.ops.selective_scan')
    device, name = args.device, args.arch
    size, batch, steps = (16, 1, 2) if args.cpu_smoke else (64, 8, 5)
    scan_calls = []
    resolve = scan_module.resolve_backend

    def counting_resolve(u, backend=None):
        scan_calls.append(backend)
        return resolve(u, backend)

    scan_module.resolve_backend = counting_resolve

    def factory():
        return rssr.create_model(name, scale=4, in_chans=3).to(device)

    lr = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
    truth, _ = _per_parameter_errors(lambda: factory().double(), 'torch', lr.double())
    _, torch_errors = _per_parameter_errors(factory, 'torch', lr, truth)
    result: Dict[str, Any] = {'lr_size': size, 'batch': batch, 'uses_selective_scan': bool(scan_calls),
                              'params': sum(p.numel() for p in factory().parameters())}
    others = ('triton', 'mamba_ssm') if device.startswith('cuda') else ('reference',)  # reference: the CPU smoke
    parity, problems = {}, []
    for backend in others if scan_calls else ():
        if not backend_status(backend, device).usable:
            continue
        _, errors = _per_parameter_errors(factory, backend, lr, truth)
        allowed = {key: max(ARCH_RATIO * torch_errors[key], ARCH_ABSOLUTE) for key in errors}
        worst = max(errors, key=lambda key: errors[key] / allowed[key])
        parity[backend] = {'output': errors['output'], 'torch_output': torch_errors['output'],
                           'worst_parameter': worst, 'worst_error': errors[worst], 'torch_error': torch_errors[worst]}
        problems += [f'{backend} {key} {errors[key]:.1e} (torch float32: {torch_errors[key]:.1e})'
                     for key in errors if errors[key] > allowed[key]]
    result['parity_vs_float64'] = parity

    model = factory().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
    generator = torch.Generator().manual_seed(2)
    lr = torch.rand(batch, 3, size, size, generator=generator).to(device)
    hr = torch.nn.functional.interpolate(lr, scale_factor=4, mode='bicubic').clamp(0, 1)
    amp = torch.autocast(device_type=torch.device(device).type, dtype=torch.bfloat16)
    losses = []

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with amp:
            loss = (model(lr).float() - hr).abs().mean()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())

    step()  # warm-up (kernel compilation, cuDNN autotuning)
    if device.startswith('cuda'):
        torch.cuda.reset_peak_memory_stats()
    _synchronize(device)
    started = time.perf_counter()
    for _ in range(steps):
        step()
    _synchronize(device)
    seconds = time.perf_counter() - started
    result.update(bf16_losses=[round(x, 5) for x in losses], images_per_s=round(batch * steps / seconds, 2),
                  step_s=round(seconds / steps, 4))
    if device.startswith('cuda'):
        result['peak_memory_gib'] = round(torch.cuda.max_memory_allocated() / 2 ** 30, 3)
    if not all(x == x and abs(x) != float('inf') for x in losses):
        problems.append(f'non-finite bf16 loss {losses}')
    elif not losses[-1] < losses[0]:
        problems.append(f'bf16 loss did not fall over {len(losses)} steps: {losses}')
    if problems:
        raise CheckFailed(f'{name}: {"; ".join(problems)}; {json.dumps(result, default=str)}')
    return result


def _tiny_training_options(folder: Path, name: str, iters: int) -> Path:
    """Option file for a 20-iteration RepMamba x2 run on random RGB pairs written into ``folder``."""
    import cv2
    import numpy as np
    import yaml

    rng = np.random.default_rng(0)
    for kind, size in (('hr', 64), ('lr', 32)):
        (folder / kind).mkdir(parents=True, exist_ok=True)
    for index in range(4):
        hr = cv2.GaussianBlur((rng.random((64, 64, 3)) * 255).astype(np.uint8), (5, 5), 1.5)
        cv2.imwrite(str(folder / 'hr' / f'{index}.png'), hr)
        cv2.imwrite(str(folder / 'lr' / f'{index}.png'), cv2.resize(hr, (32, 32), interpolation=cv2.INTER_AREA))
    opt = {
        'name': name, 'model_type': 'RSSRModel', 'scale': 2, 'num_gpu': 1, 'manual_seed': 0,
        'datasets': {'train': {'name': 'pairs', 'type': 'PairedImageDataset', 'dataroot_gt': str(folder / 'hr'),
                               'dataroot_lq': str(folder / 'lr'), 'io_backend': {'type': 'disk'}, 'gt_size': 64,
                               'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 1,
                               'batch_size_per_gpu': 4}},
        'network_g': {'type': 'RepMamba', 'in_chans': 3, 'depths': [1, 1], 'upscale': 2},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'amp': 'bf16', 'optim_g': {'type': 'AdamW', 'lr': 2e-4},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000]}, 'total_iter': iters,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 5, 'save_checkpoint_freq': iters, 'use_tb_logger': False},
    }
    path = folder / f'{name}.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def _run_training(command: List[str], name: str, iters: int, timeout: float) -> Dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix='rssr-gpu-check-') as tmp:
        _tiny_training_options(Path(tmp), name, iters)
        started = time.perf_counter()
        proc = subprocess.run(command + ['-opt', f'{name}.yml'], cwd=tmp, env=_child_env(), text=True,
                              capture_output=True, timeout=timeout)
        output = proc.stdout + proc.stderr
        seconds = time.perf_counter() - started
        finished = re.search(rf'iter:\s*{iters},', output) is not None
        models = sorted(p.name for p in (Path(tmp) / 'experiments' / name / 'models').glob('*'))
    if proc.returncode != 0 or not finished:
        raise RuntimeError(f'exit {proc.returncode}, iteration {iters} logged: {finished}\n{output[-2500:]}')
    device_lines = [line.strip() for line in output.splitlines() if 'cuda' in line.lower() or 'nccl' in line.lower()]
    return {'seconds': round(seconds, 1), 'iterations': iters, 'models': models, 'device_lines': device_lines[:5]}


def section_train_cli(args: argparse.Namespace) -> Dict[str, Any]:
    return _run_training([sys.executable, '-m', 'rssr.train'], 'gpu_check_train', 20, args.timeout)


def section_torchrun_nccl(args: argparse.Namespace) -> Dict[str, Any]:
    result = _run_training([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=1',
                            '-m', 'rssr.train', '--launcher', 'pytorch'], 'gpu_check_torchrun', 20, args.timeout)
    import torch.distributed as dist
    result['nccl_available'] = dist.is_nccl_available()
    return result


def section_infer_sharded(args: argparse.Namespace) -> Dict[str, Any]:
    """A 1-process ``torchrun -m rssr.infer`` over a folder of two GeoTIFFs: rank 0 on ``cuda:0``."""
    import numpy as np
    import rasterio
    import torch
    from affine import Affine

    import rssr  # noqa: F401  (BasicSR importable)

    from basicsr.archs.edsr_arch import EDSR

    kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=2, upscale=2, img_range=1.0,
                  rgb_mean=[0.5, 0.5, 0.5])
    with tempfile.TemporaryDirectory(prefix='rssr-gpu-check-') as tmp:
        folder = Path(tmp)
        torch.save({'params': EDSR(**kwargs).state_dict()}, folder / 'net_g.pth')
        (folder / 'in').mkdir()
        for index in range(2):
            values = np.random.default_rng(index).integers(0, 10000, (3, 96, 96), dtype=np.uint16)
            with rasterio.open(folder / 'in' / f'{index}.tif', 'w', driver='GTiff', width=96, height=96, count=3,
                               dtype='uint16', crs='EPSG:32633', transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
                dst.write(values)
        proc = subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=1',
                               '-m', 'rssr.infer', '--arch', 'EDSR', '--arch-kwargs', json.dumps(kwargs),
                               '--weights', 'net_g.pth', '--input', 'in', '--output', 'out', '--tile', '64'],
                              cwd=folder, env=_child_env(), text=True, capture_output=True, timeout=args.timeout)
        output = proc.stdout + proc.stderr
        written = sorted(p.name for p in (folder / 'out').glob('*.tif'))
    lines = [line for line in output.splitlines() if line.startswith(('rank ', 'rssr.infer: '))]
    if proc.returncode != 0 or written != ['0.tif', '1.tif'] or 'rank 0/1 (cuda:0): wrote' not in output:
        raise RuntimeError(f'exit {proc.returncode}, outputs {written}\n{output[-2500:]}')
    return {'outputs': written, 'log': lines}


def section_scan_benchmark(args: argparse.Namespace) -> Dict[str, Any]:
    command = [sys.executable, str(REPO / 'scripts' / 'benchmark_scan.py'), '--device', 'cuda', '--lengths', '4096',
               '--repeats', '3']
    proc = subprocess.run(command, cwd=REPO, env=_child_env(), text=True, capture_output=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-2500:]}')
    return {'command': ' '.join(command[1:]), 'table': proc.stdout.strip()}


def _pytest(arguments: List[str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pytest', '-p', 'no:cacheprovider', *arguments], cwd=REPO,
                          env=_child_env(), text=True, capture_output=True, timeout=timeout)


def cuda_marked_tests(timeout: float = 300) -> List[str]:
    """Node ids of every test the suite marks ``cuda`` (pytest's own collection, by marker)."""
    proc = _pytest(['--collect-only', '-q', '-m', 'cuda', 'tests'], timeout)
    nodes = [line.strip() for line in proc.stdout.splitlines() if '::' in line]
    if proc.returncode != 0 or not nodes:
        raise RuntimeError(f'collecting the cuda-marked tests failed (pytest exit {proc.returncode})\n'
                           f'{(proc.stdout + proc.stderr)[-2500:]}')
    return nodes


def section_cuda_tests(args: argparse.Namespace) -> Dict[str, Any]:
    """The cuda-marked tests; on a GPU none may be skipped (a skip there would be a pass by mistake)."""
    proc = _pytest(['-q', '-rs', '-m', 'cuda', 'tests'], args.timeout)
    output = proc.stdout + proc.stderr
    counts = {kind: int(number) for number, kind in re.findall(r'(\d+) (passed|failed|skipped|errors?|deselected)',
                                                                 output)}
    result = {'command': 'python -m pytest -q -rs -m cuda tests', 'counts': counts}
    if proc.returncode not in (0, 1) or not counts.get('passed'):
        raise RuntimeError(f'pytest exit {proc.returncode}: {counts}\n{output[-2500:]}')
    if proc.returncode == 1 or counts.get('skipped'):
        raise CheckFailed(f'{counts}\n{output[-2500:]}')
    return result


SECTION_FUNCTIONS: Dict[str, Callable[[argparse.Namespace], Dict[str, Any]]] = {
    'environment': section_environment, 'scan_backends': section_scan_backends, 'cuda_tests': section_cuda_tests,
    'arch': section_arch, 'train_cli': section_train_cli, 'torchrun_nccl': section_torchrun_nccl,
    'infer_sharded': section_infer_sharded, 'scan_benchmark': section_scan_benchmark,
}


def _child_env() -> Dict[str, str]:
    """The environment with the repository (and whatever PYTHONPATH held, e.g. carried wheels) importable."""
    paths = [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(dict.fromkeys(paths))}


def run_section(section: str, arch: Optional[str], args: argparse.Namespace, timeout: float) -> Dict[str, Any]:
    """Run one section in a subprocess of this script: its status, seconds and result, or why not."""
    command = [sys.executable, str(Path(__file__).resolve()), '--run-section', section, '--device', args.device,
               '--timeout', str(timeout)]
    command += ['--arch', arch] if arch else []
    command += ['--cpu-smoke'] if args.cpu_smoke else []
    started = time.perf_counter()
    with tempfile.NamedTemporaryFile(suffix='.json') as result_file:
        proc = subprocess.Popen(command + ['--result-file', result_file.name], env=_child_env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            output, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the section and anything it started (training, pytest)
            proc.communicate()
            return {'status': NOT_RUN, 'seconds': round(time.perf_counter() - started, 1),
                    'reason': f'stopped at its time limit of {timeout:g} s'}
        seconds = round(time.perf_counter() - started, 1)
        text = Path(result_file.name).read_text()
    payload = json.loads(text) if text else {}
    if proc.returncode == 0 and 'result' in payload:
        return {'status': PASS, 'seconds': seconds, 'result': payload['result']}
    if payload.get('failed_check'):
        return {'status': FAIL, 'seconds': seconds, 'reason': payload['error']}
    return {'status': NOT_RUN, 'seconds': seconds,
            'reason': 'crashed: ' + (payload.get('error') or f'exit {proc.returncode}\n{output[-2500:]}')}


def _section_main(args: argparse.Namespace) -> int:
    """Inside the section's subprocess: run it and write ``{'result': ...}`` or ``{'error': ...}``."""
    import traceback

    try:
        payload: Dict[str, Any] = {'result': SECTION_FUNCTIONS[args.run_section](args)}
    except Exception as err:  # noqa: BLE001  (the point is to record any failure)
        payload = {'error': f'{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}',
                   'failed_check': isinstance(err, CheckFailed)}
    Path(args.result_file).write_text(json.dumps(payload, default=str))
    return 0 if 'result' in payload else 1


def missing_packages(section: Section) -> List[str]:
    return [name for name in section.packages if importlib.util.find_spec(name) is None]


def planned_sections(args: argparse.Namespace, cuda: bool) -> List[tuple]:
    """(label, section, arch, reason it cannot run or None) in running order. --cpu-smoke plans only the
    sections that run without CUDA."""
    import rssr

    archs = SMOKE_ARCHS if args.cpu_smoke else tuple(rssr.list_models())
    plan = []
    for section in SECTIONS:
        if section.needs_cuda and args.cpu_smoke:
            continue
        missing = missing_packages(section)
        reason = ('needs CUDA' if section.needs_cuda and not cuda else
                  f'missing packages: {", ".join(missing)} (carry their wheels: docs/gpu.md)' if missing else None)
        for arch in (archs if section.name == 'arch' else (None,)):
            label = f'arch:{arch}' if arch else section.name
            if args.only and not any(label.startswith(prefix) for prefix in args.only):
                continue
            plan.append((label, section.name, arch, reason))
    return plan


def key_figures(label: str, entry: Dict[str, Any]) -> str:
    """The one-line summary of a section: its main numbers, or the first line of why it did not pass."""
    result = entry.get('result')
    if result is None:
        return entry['reason'].splitlines()[0][:200] if entry.get('reason') else ''
    if label == 'environment':
        backends = ', '.join(f'{backend} {"usable" if status["usable"] else "unusable"}'
                             for backend, status in result['scan_backends'].items())
        return (f'{result.get("gpu", "no GPU")}, torch {result["versions"]["torch"]}, triton '
                f'{result["versions"]["triton"]}; {backends}')
    if label == 'scan_backends':
        return '; '.join(f'{b}: worst {r["worst"]}' if 'worst' in r else f'{b}: unusable'
                         for b, r in result['backends'].items()) + ' (vs float64, fwd + every grad)'
    if label == 'cuda_tests':
        return ', '.join(f'{n} {k}' for k, n in result['counts'].items())
    if label.startswith('arch:'):
        parity = '; '.join(f'{b} out {e["output"]:.1e} (torch {e["torch_output"]:.1e}), worst grad '
                           f'{e["worst_parameter"]} {e["worst_error"]:.1e} (torch {e["torch_error"]:.1e})'
                           for b, e in result['parity_vs_float64'].items()) or (
            'no fused backend to compare' if result['uses_selective_scan'] else 'no selective scan')
        return f'{parity}; bf16 step {result["step_s"]} s, {result["images_per_s"]} img/s'
    if label == 'scan_benchmark':
        return 'table below'
    return f'{result.get("seconds", "")} s' if 'seconds' in result else ''


def markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown: the arch table and the benchmark's table, then the one summary table."""
    lines = [f'# rssr GPU check ({report["device"]}, {report["started"]}, {report["total_s"]} s)', '']
    archs = {k[len('arch:'):]: v['result'] for k, v in report['sections'].items()
             if k.startswith('arch:') and v.get('result')}
    if archs:
        lines += ['| arch | params | LR size x batch | bf16 step s | images/s | peak GiB |',
                  '|---|---|---|---|---|---|']
        lines += [f'| {name} | {r["params"]:,} | {r["lr_size"]} x {r["batch"]} | {r["step_s"]} | '
                  f'{r["images_per_s"]} | {r.get("peak_memory_gib", "-")} |' for name, r in archs.items()]
        lines.append('')
    benchmark = report['sections'].get('scan_benchmark', {}).get('result')
    if benchmark:
        lines += [f'## {benchmark["command"]}', '', benchmark['table'], '']
    lines += ['## Summary', '', '| section | status | seconds | key figures |', '|---|---|---|---|']
    lines += [f'| {label} | {entry["status"]} | {entry.get("seconds", "-")} | {key_figures(label, entry)} |'
              for label, entry in report['sections'].items()]
    verdict = 'PASS' if report['passed'] else 'NOT PASSED: every section must be PASS'
    return '\n'.join(lines + ['', f'Overall: {verdict}']) + '\n'


def print_plan(args: argparse.Namespace, cuda: bool) -> int:
    """--list: the sections in running order (with why one could not run here), then the cuda-marked tests."""
    print('sections, in running order:')
    for label, section, _, reason in planned_sections(args, cuda):
        limit = SECTION_BY_NAME[section].limit_s * (SMOKE_TIME_FACTOR if args.cpu_smoke else 1)
        print(f'  {label} (limit {limit} s)' + (f': NOT RUN here, {reason}' if reason else ''))
    nodes = cuda_marked_tests()
    print(f'cuda-marked tests ({len(nodes)}), run by the cuda_tests section:')
    print('\n'.join(nodes))
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='gpu_check', help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--list', action='store_true', help='print the plan and the cuda-marked tests, run nothing')
    parser.add_argument('--cpu-smoke', action='store_true', help='CPU only, small sizes; only the non-CUDA sections')
    parser.add_argument('--budget-s', type=float, default=480, help='start no section after this many seconds')
    parser.add_argument('--only', nargs='+', help='run only sections whose label starts with one of these')
    parser.add_argument('--device', help='default: cuda when available (cpu with --cpu-smoke)')
    parser.add_argument('--run-section', help=argparse.SUPPRESS)
    parser.add_argument('--arch', help=argparse.SUPPRESS)
    parser.add_argument('--timeout', type=float, default=60, help=argparse.SUPPRESS)
    parser.add_argument('--result-file', help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.run_section:
        return _section_main(args)

    import torch

    cuda = torch.cuda.is_available() and not args.cpu_smoke
    args.device = args.device or ('cuda' if cuda else 'cpu')
    if args.list:
        return print_plan(args, cuda)
    started = time.perf_counter()
    report: Dict[str, Any] = {'device': torch.cuda.get_device_name(0) if cuda else 'cpu',
                              'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'cpu_smoke': args.cpu_smoke,
                              'sections': {}}
    for label, section, arch, reason in planned_sections(args, cuda):
        left = args.budget_s - (time.perf_counter() - started)
        limit = SECTION_BY_NAME[section].limit_s * (SMOKE_TIME_FACTOR if args.cpu_smoke else 1)
        if reason is None and left < min(limit, 10):
            reason = f'the time budget of {args.budget_s:.0f} s was spent'
        entry = {'status': NOT_RUN, 'reason': reason} if reason else run_section(section, arch, args, min(limit, left))
        report['sections'][label] = entry
        print(f'{label}: {entry["status"]} {entry.get("seconds", "")} {key_figures(label, entry)}', flush=True)
    report['total_s'] = round(time.perf_counter() - started, 1)
    report['passed'] = bool(report['sections']) and all(e['status'] == PASS for e in report['sections'].values())
    report['summary'] = [{'section': label, 'status': entry['status'], 'seconds': entry.get('seconds'),
                          'key_figures': key_figures(label, entry)} for label, entry in report['sections'].items()]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'gpu_check.json').write_text(json.dumps(report, indent=1, default=str))
    text = markdown(report)
    (out / 'gpu_check.md').write_text(text)
    print(text)
    return 0 if report['passed'] else 1


if __name__ == '__main__':
    sys.exit(main())
