"""Everything rssr claims for CUDA GPUs, checked in one run: one JSON and one Markdown table.

    PYTHONPATH=.gl:. python scripts/gpu_check.py --out gpu_check/     # on the GPU machine (docs/gpu.md)
    python scripts/gpu_check.py --cpu-smoke --out /tmp/gpu_check      # CPU: the non-CUDA parts, small

Sections, each in its own subprocess with its own time limit, so one failure, hang or CUDA error does
not stop the others (the JSON records its status, seconds and error):

* ``environment``: versions, the GPU, Triton and mamba_ssm, and any of rssr's dependencies missing;
* ``scan_backends``: every selective-scan backend (triton, torch, mamba_ssm if importable) against the
  sequential reference at an SR shape, forward and backward;
* ``arch:<name>`` for every zoo model (``rssr.list_models()``) at its official size: forward+backward
  parity of the fast backends against ``torch``, bf16 autocast training steps, peak memory, images/s;
* ``train_cli``: a short ``python -m rssr.train`` on the GPU; ``torchrun_nccl``: the same under a
  1-process ``torchrun`` (NCCL); ``infer_sharded``: ``torchrun -m rssr.infer`` over a folder on ``cuda:0``;
* ``scan_benchmark``: ``scripts/benchmark_scan.py --device cuda``;
* ``cuda_tests``: the test suite's CUDA tests (``-k "cuda or triton"`` in the files that use CUDA).

``--cpu-smoke`` runs the sections that can run without CUDA at small sizes on the CPU (environment,
scan backends, one small arch) and reports the CUDA-only sections as skipped.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]
DEPENDENCIES = ('torch', 'torchvision', 'basicsr', 'timm', 'cv2', 'yaml', 'numpy', 'rasterio',
                'torchmetrics', 'tqdm', 'safetensors', 'triton')
# section name -> (time limit in seconds, needs CUDA)
SECTIONS: Dict[str, tuple] = {
    'environment': (60, False),
    'scan_backends': (90, False),
    'arch': (75, False),
    'train_cli': (90, True),
    'torchrun_nccl': (90, True),
    'infer_sharded': (60, True),
    'scan_benchmark': (100, True),
    'cuda_tests': (150, True),
}
SMOKE_ARCHS = ('repmamba',)
SMOKE_TIME_FACTOR = 4  # --cpu-smoke: the limits catch hangs, and a CI CPU may be shared with other jobs


def relative_error(value, truth) -> float:
    """max|value - truth| / max|truth| (0 when both are 0)."""
    scale = truth.abs().max().item()
    return (value.float() - truth.float()).abs().max().item() / (scale or 1.0)


def _scan_inputs(batch: int, channels: int, state: int, groups: int, length: int, device: str):
    """Inputs like an SS2D block's: softplus'd deltas with bias, S4D-real A, D skip; grads on all."""
    import torch

    generator = torch.Generator().manual_seed(0)
    tensors = {
        'u': torch.randn(batch, channels, length, generator=generator),
        'delta': torch.randn(batch, channels, length, generator=generator) * 0.5,
        'A': -torch.arange(1, state + 1, dtype=torch.float32).repeat(channels, 1),
        'B': torch.randn(batch, groups, state, length, generator=generator),
        'C': torch.randn(batch, groups, state, length, generator=generator),
        'D': torch.ones(channels),
        'delta_bias': torch.rand(channels, generator=generator) - 4.0,
    }
    return {name: t.to(device).requires_grad_(True) for name, t in tensors.items()}


def section_environment(args: argparse.Namespace) -> Dict[str, Any]:
    import platform

    from rssr.basicsr import compat as _compat

    _compat.install()  # basicsr 1.4.2 needs its shims on current torchvision and Python
    found, missing = {}, []
    for module in DEPENDENCIES + ('rssr',):
        try:
            found[module] = getattr(importlib.import_module(module), '__version__', 'present')
        except Exception as err:  # noqa: BLE001  (any import failure means: not usable here)
            missing.append(f'{module} ({type(err).__name__}: {err})')
    import torch

    result: Dict[str, Any] = {'python': platform.python_version(), 'versions': found, 'missing': missing,
                              'cuda': torch.cuda.is_available()}
    if torch.cuda.is_available():
        result.update(gpu=torch.cuda.get_device_name(0), cuda_version=torch.version.cuda,
                      memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2 ** 30, 1))
    try:
        import mamba_ssm
        result['mamba_ssm'] = getattr(mamba_ssm, '__version__', 'present')
    except Exception as err:  # noqa: BLE001
        result['mamba_ssm'] = f'not usable ({type(err).__name__})'
    if missing:
        raise RuntimeError(f'missing: {"; ".join(missing)} (carry them as wheels: docs/gpu.md)')
    return result


def _available_backends(device: str) -> List[str]:
    import torch

    from rssr.ops.selective_scan import ScanBackendUnavailable, resolve_backend

    backends = []
    for name in ('triton', 'torch', 'mamba_ssm'):
        try:
            resolve_backend(torch.zeros(1, device=device), name)
            backends.append(name)
        except ScanBackendUnavailable:
            pass
    return backends


def section_scan_backends(args: argparse.Namespace) -> Dict[str, Any]:
    """Each backend vs the sequential reference: y and every input gradient."""
    import torch

    from rssr.ops import selective_scan

    device = args.device
    shape = (1, 64, 16, 4, 256) if args.cpu_smoke else (2, 768, 16, 4, 1024)
    rows = {}
    truth = None
    for backend in ['reference'] + [b for b in _available_backends(device) if b != 'reference']:
        inputs = _scan_inputs(*shape, device=device)
        started = time.perf_counter()
        y = selective_scan(inputs['u'], inputs['delta'], inputs['A'], inputs['B'], inputs['C'], inputs['D'],
                           delta_bias=inputs['delta_bias'], delta_softplus=True, backend=backend)
        y.backward(torch.ones_like(y))
        _synchronize(device)
        seconds = time.perf_counter() - started
        outputs = {'y': y.detach(), **{f'grad_{k}': v.grad for k, v in inputs.items()}}
        if truth is None:
            truth = outputs
            rows[backend] = {'seconds': round(seconds, 3)}
            continue
        errors = {name: relative_error(outputs[name], truth[name]) for name in truth}
        rows[backend] = {'seconds': round(seconds, 3), 'max_rel_error': max(errors.values()),
                         'worst': max(errors, key=errors.get)}
    bad = {b: r['max_rel_error'] for b, r in rows.items() if r.get('max_rel_error', 0) > 1e-3}
    result = {'shape (b, d, n, groups, l)': list(shape), 'device': device, 'backends': rows}
    if bad:
        raise AssertionError(f'backends off the reference by more than 1e-3: {bad}; {json.dumps(result)}')
    return result


def _synchronize(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def section_arch(args: argparse.Namespace) -> Dict[str, Any]:
    """One zoo model at its official size: backend parity (fwd+bwd), bf16 training steps, memory, images/s."""
    import torch

    import rssr

    scan_module = importlib.import_module('rssr.ops.selective_scan')

    device, name = args.device, args.arch
    size, batch, steps = (16, 1, 1) if args.cpu_smoke else (64, 8, 5)
    scan_calls = []
    resolve = scan_module.resolve_backend

    def counting_resolve(u, backend=None):
        scan_calls.append(backend)
        return resolve(u, backend)

    scan_module.resolve_backend = counting_resolve
    result: Dict[str, Any] = {'lr_size': size, 'batch': batch}

    def forward_backward(backend: str):
        os.environ[scan_module.ENV_VAR] = backend
        torch.manual_seed(0)
        model = rssr.create_model(name, scale=4, in_chans=3).to(device)
        lr = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(1)).to(device)
        out = model(lr)
        out.square().mean().backward()
        grads = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return out.detach(), grads, sum(p.numel() for p in model.parameters())

    truth_out, truth_grads, params = forward_backward('torch')
    result['params'] = params
    result['uses_selective_scan'] = bool(scan_calls)
    parity = {}
    if scan_calls:
        for backend in _available_backends(device):
            if backend != 'torch':
                out, grads, _ = forward_backward(backend)
                parity[backend] = {'forward': relative_error(out, truth_out),
                                   'backward': relative_error(grads, truth_grads)}
    result['parity_vs_torch'] = parity
    os.environ.pop(scan_module.ENV_VAR, None)

    model = rssr.create_model(name, scale=4, in_chans=3).to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    generator = torch.Generator().manual_seed(2)
    lr = torch.rand(batch, 3, size, size, generator=generator).to(device)
    hr = torch.rand(batch, 3, 4 * size, 4 * size, generator=generator).to(device)
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
    problems = [f'{b} {kind} {err:.1e}' for b, errs in parity.items() for kind, err in errs.items() if err > 1e-2]
    if not all(map(lambda x: x == x and abs(x) != float('inf'), losses)):
        problems.append(f'non-finite bf16 loss {losses}')
    if problems:
        raise AssertionError(f'{name}: {"; ".join(problems)}; {json.dumps(result)}')
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
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'benchmark_scan.py'), '--device', 'cuda'],
                          cwd=REPO, env=_child_env(), text=True, capture_output=True, timeout=args.timeout)
    if proc.returncode != 0:
        raise RuntimeError(f'exit {proc.returncode}\n{(proc.stdout + proc.stderr)[-2500:]}')
    return {'table': proc.stdout.strip()}


def cuda_test_files() -> List[str]:
    """Test files that use CUDA (their CUDA tests carry ``cuda`` or ``triton`` in their names or ids)."""
    return sorted(str(p.relative_to(REPO)) for p in (REPO / 'tests').glob('test_*.py') if 'cuda' in p.read_text())


def section_cuda_tests(args: argparse.Namespace) -> Dict[str, Any]:
    proc = subprocess.run([sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', '-k',
                           'cuda or triton', *cuda_test_files()], cwd=REPO, env=_child_env(), text=True,
                          capture_output=True, timeout=args.timeout)
    output = proc.stdout + proc.stderr
    counts = {kind: int(number) for number, kind in re.findall(r'(\d+) (passed|failed|skipped|errors?|deselected)',
                                                                 output)}
    if proc.returncode != 0:
        raise RuntimeError(f'pytest exit {proc.returncode}: {counts}\n{output[-2500:]}')
    return {'files': cuda_test_files(), 'counts': counts}


SECTION_FUNCTIONS: Dict[str, Callable[[argparse.Namespace], Dict[str, Any]]] = {
    'environment': section_environment, 'scan_backends': section_scan_backends, 'arch': section_arch,
    'train_cli': section_train_cli, 'torchrun_nccl': section_torchrun_nccl, 'infer_sharded': section_infer_sharded,
    'scan_benchmark': section_scan_benchmark,
    'cuda_tests': section_cuda_tests,
}


def _child_env() -> Dict[str, str]:
    """The environment with the repository (and whatever PYTHONPATH held, e.g. carried wheels) importable."""
    paths = [str(REPO)] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
    return {**os.environ, 'PYTHONPATH': os.pathsep.join(dict.fromkeys(paths))}


def run_section(section: str, arch: Optional[str], args: argparse.Namespace, timeout: float) -> Dict[str, Any]:
    """Run one section in a subprocess of this script; its status, seconds and result or error."""
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
            return {'status': 'timeout', 'seconds': round(time.perf_counter() - started, 1),
                    'error': f'no result within {timeout:.0f} s'}
        seconds = round(time.perf_counter() - started, 1)
        text = Path(result_file.name).read_text()
    if proc.returncode == 0 and text:
        return {'status': 'passed', 'seconds': seconds, 'result': json.loads(text)}
    detail = json.loads(text)['error'] if text else f'exit {proc.returncode}\n{output[-2500:]}'
    return {'status': 'failed', 'seconds': seconds, 'error': detail}


def _section_main(args: argparse.Namespace) -> int:
    """Inside the section's subprocess: run it and write ``{'result': ...}`` or ``{'error': ...}``."""
    import traceback

    try:
        payload = {'result': SECTION_FUNCTIONS[args.run_section](args)}
        code = 0
    except Exception as err:  # noqa: BLE001  (the point is to record any failure)
        payload = {'error': f'{type(err).__name__}: {err}\n{traceback.format_exc(limit=4)}'}
        code = 1
    Path(args.result_file).write_text(json.dumps(payload['result'] if code == 0 else payload, default=str))
    return code


def planned_sections(args: argparse.Namespace, cuda: bool) -> List[tuple]:
    """(label, section, arch, reason to skip or None) in the order they run."""
    import rssr

    archs = SMOKE_ARCHS if args.cpu_smoke else tuple(rssr.list_models())
    plan = []
    for section, (_, needs_cuda) in SECTIONS.items():
        skip = 'needs CUDA' if needs_cuda and (args.cpu_smoke or not cuda) else None
        for arch in (archs if section == 'arch' else (None,)):
            label = f'arch:{arch}' if arch else section
            if args.only and not any(label.startswith(prefix) for prefix in args.only):
                continue
            plan.append((label, section, arch, skip))
    return plan


def markdown(report: Dict[str, Any]) -> str:
    """The report as Markdown: one row per section, one per arch, the scan benchmark's own table."""
    lines = [f'# rssr GPU check ({report["device"]}, {report["started"]}, {report["total_s"]} s)', '',
             '| section | status | seconds | summary |', '|---|---|---|---|']
    for label, entry in report['sections'].items():
        summary = entry.get('reason') or (entry.get('error', '').splitlines() or [''])[0][:160]
        result = entry.get('result') or {}
        if label == 'environment' and result:
            summary = f'{result.get("gpu", "no GPU")}, torch {result["versions"].get("torch")}, ' \
                      f'triton {result["versions"].get("triton", "-")}, mamba_ssm {result.get("mamba_ssm")}'
        elif label == 'scan_backends' and result:
            summary = ', '.join(f'{b} {r.get("max_rel_error", 0):.1e}' for b, r in result['backends'].items()
                                if b != 'reference') + ' (max rel. error vs reference, fwd+bwd)'
        elif label == 'cuda_tests' and result:
            summary = ', '.join(f'{n} {k}' for k, n in result['counts'].items())
        lines.append(f'| {label} | {entry["status"]} | {entry.get("seconds", "-")} | {summary} |')
    archs = {k[len('arch:'):]: v['result'] for k, v in report['sections'].items()
             if k.startswith('arch:') and v.get('result')}
    if archs:
        lines += ['', '| arch | params | LR size x batch | parity vs torch (fwd / bwd) | bf16 step s | images/s | '
                      'peak GiB |', '|---|---|---|---|---|---|---|']
        for name, r in archs.items():
            parity = '; '.join(f'{b} {e["forward"]:.1e} / {e["backward"]:.1e}' for b, e in r['parity_vs_torch'].items())
            parity = parity or ('no other backend' if r['uses_selective_scan'] else 'no selective scan')
            lines.append(f'| {name} | {r["params"]:,} | {r["lr_size"]} x {r["batch"]} | {parity} | {r["step_s"]} | '
                         f'{r["images_per_s"]} | {r.get("peak_memory_gib", "-")} |')
    benchmark = report['sections'].get('scan_benchmark', {}).get('result')
    if benchmark:
        lines += ['', '## scripts/benchmark_scan.py --device cuda', '', benchmark['table']]
    return '\n'.join(lines) + '\n'


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default='gpu_check', help='folder for gpu_check.json and gpu_check.md')
    parser.add_argument('--cpu-smoke', action='store_true', help='CPU only, small sizes; CUDA sections skipped')
    parser.add_argument('--budget-s', type=float, default=420, help='stop starting sections after this many seconds')
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
    started = time.perf_counter()
    report: Dict[str, Any] = {'device': torch.cuda.get_device_name(0) if cuda else 'cpu',
                              'started': time.strftime('%Y-%m-%d %H:%M:%S'), 'cpu_smoke': args.cpu_smoke,
                              'sections': {}}
    for label, section, arch, skip in planned_sections(args, cuda):
        left = args.budget_s - (time.perf_counter() - started)
        if skip is None and left < 10:
            skip = f'time budget of {args.budget_s:.0f} s spent'
        if skip:
            entry = {'status': 'skipped', 'reason': skip}
        else:
            limit = SECTIONS[section][0] * (SMOKE_TIME_FACTOR if args.cpu_smoke else 1)
            entry = run_section(section, arch, args, min(limit, left))
        report['sections'][label] = entry
        print(f'{label}: {entry["status"]} {entry.get("seconds", "")}', flush=True)
    report['total_s'] = round(time.perf_counter() - started, 1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / 'gpu_check.json').write_text(json.dumps(report, indent=1, default=str))
    (out / 'gpu_check.md').write_text(markdown(report))
    print(markdown(report))
    return 0 if all(e['status'] in ('passed', 'skipped') for e in report['sections'].values()) else 1


if __name__ == '__main__':
    sys.exit(main())
