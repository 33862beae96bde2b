"""CPU time per training step (forward + L1 backward + Adam step) of compact models, as a Markdown table.

    python scripts/benchmark_train_step.py options/train/examples/*.yml --threads 1
    python scripts/benchmark_train_step.py mambacsr_deep --baseline 251fb75 --threads 1

Models: option files (their ``network_g``) or the built-in names in ``BUILT_IN`` (``mambacsr_deep``:
a compact MambaCSR whose 12 global-window blocks each scan a 64 x 64 window, 4096 tokens, for a
24 x 24 patch). Batch 8 of random LR patches (``--size``, default 24) and their x``scale`` targets.
Every row is timed in the same process with the repeats interleaved (row 1, row 2, ..., row 1, ...),
median of ``--repeats`` after one warm-up, so rows are comparable even on a busy machine.

``--per-gmac`` takes zoo names instead (their official configurations, e.g. ``convformersr lstmconvsr
convmambasr mambacsr repmamba``) with ``--bands`` input bands, and divides each step's time by the model's
forward MACs on the same input, counted as ``scripts/benchmark_archs.py`` counts them (convolutions, linears,
matmuls and einsums by torch's FlopCounterMode, the selective scan by VMamba's formula)::

    python scripts/benchmark_train_step.py convformersr lstmconvsr convmambasr mambacsr repmamba \
        --per-gmac --batch 1 --size 48 --threads 1

``--baseline REV`` adds, for each model with window scans, a row run the way rssr did at git revision
REV: its ``rssr/ops/scan_torch.py`` (loaded from git) as the torch scan backend, and every window pad
token scanned instead of collapsing pad runs.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, ContextManager, Dict, Iterator, List, Optional, Tuple

import torch
import yaml
from benchmark_archs import count_macs

import rssr  # noqa: F401  (registries filled)
from rssr.archs.mambacsr import MultiDirectionScan
from rssr.cpu_memory import retain_freed_memory
from rssr.registry import ARCHS
from rssr.zoo import create_model

REPO = Path(__file__).resolve().parents[1]
scan_dispatch = importlib.import_module('rssr.ops.selective_scan')  # the module (rssr.ops re-exports the function)
BUILT_IN: Dict[str, dict] = {
    'mambacsr_deep': dict(type='MambaCSR', upscale=4, in_chans=4, embed_dim=32, depths=[6] * 6, d_state=8,
                          mlp_ratio=1, upsampler='pixelshuffle'),
}


def network_options(model: str) -> Tuple[str, dict]:
    """(label, network_g) of a built-in name or an option file."""
    if model in BUILT_IN:
        return model, dict(BUILT_IN[model])
    with open(model) as handle:
        return Path(model).stem, dict(yaml.safe_load(handle)['network_g'])


@contextlib.contextmanager
def baseline_of(revision: str) -> Iterator[None]:
    """Run as rssr did at ``revision``: its torch scan backend, every window pad token scanned."""
    source = subprocess.run(['git', 'show', f'{revision}:rssr/ops/scan_torch.py'], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f'scan_torch_{revision}.py'
        path.write_text(source)
        spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    saved_scan, saved_order = scan_dispatch.selective_scan_torch, MultiDirectionScan.compact_order
    scan_dispatch.selective_scan_torch = module.selective_scan_torch
    MultiDirectionScan.compact_order = lambda self, height, width: None
    try:
        yield
    finally:
        scan_dispatch.selective_scan_torch, MultiDirectionScan.compact_order = saved_scan, saved_order


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, lq: torch.Tensor, gt: torch.Tensor) -> None:
    optimizer.zero_grad(set_to_none=True)
    torch.nn.functional.l1_loss(model(lq), gt).backward()
    optimizer.step()


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='+', help=f'option files or built-in names ({", ".join(BUILT_IN)})')
    parser.add_argument('--batch', type=int, default=8)
    parser.add_argument('--size', type=int, default=24, help='LR patch side')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    parser.add_argument('--baseline', metavar='REV', help='also time each window-scan model as at git revision REV')
    parser.add_argument('--per-gmac', action='store_true',
                        help='models are zoo names (official configurations); print ms per step per forward GMAC')
    parser.add_argument('--bands', type=int, default=4, help='input bands with --per-gmac')
    parser.add_argument('--default-malloc', action='store_true',
                        help="leave glibc's malloc as it is (by default it is set up as rssr.train sets it up: "
                             "rssr.cpu_memory.retain_freed_memory)")
    parser.add_argument('--scale', type=int, default=4, help='scale with --per-gmac')
    args = parser.parse_args(argv)
    if not args.default_malloc:
        retain_freed_memory()
    torch.set_num_threads(args.threads)

    rows: List[Tuple[str, str, Callable[[], None], Callable[[], ContextManager]]] = []
    forward_macs: List[int] = []
    generator = torch.Generator().manual_seed(0)
    for model_name in args.models:
        torch.manual_seed(0)
        if args.per_gmac:
            label, scale, bands = model_name, args.scale, args.bands
            model = create_model(model_name, scale=scale, in_chans=bands).eval()
            forward_macs.append(count_macs(model, torch.rand(args.batch, bands, args.size, args.size))['total'])
            model.train()
        else:
            label, options = network_options(model_name)
            arch = options.pop('type')
            model = ARCHS.get(arch)(**options).train()
            scale, bands = options.get('upscale', options.get('scale', 4)), options.get('in_chans', 3)
        lq = torch.rand(args.batch, bands, args.size, args.size, generator=generator)
        gt = torch.rand(args.batch, bands, args.size * scale, args.size * scale, generator=generator)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        step = (lambda m, o, a, b: lambda: train_step(m, o, a, b))(model, optimizer, lq, gt)
        params = f'{sum(p.numel() for p in model.parameters()):,}'
        rows.append((label, params, step, contextlib.nullcontext))
        if args.baseline and not args.per_gmac and arch == 'MambaCSR':
            rows.append((f'{label} (as at {args.baseline})', params, step,
                         (lambda revision: lambda: baseline_of(revision))(args.baseline)))

    command = ' '.join(['python scripts/benchmark_train_step.py'] + (argv if argv is not None else sys.argv[1:]))
    print(f'`{command}`\n\nbatch {args.batch}, LR {args.size}x{args.size}, {args.threads} CPU threads, '
          f'torch {torch.__version__}, load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n')
    times: Dict[int, List[float]] = {index: [] for index in range(len(rows))}
    for repeat in range(args.repeats + 1):
        for index, (_, _, step, context) in enumerate(rows):
            with context():
                start = time.perf_counter()
                step()
                if repeat:  # the first round is the warm-up
                    times[index].append(time.perf_counter() - start)
    if args.per_gmac:
        print_per_gmac([label for label, *_ in rows], [statistics.median(times[i]) for i in range(len(rows))],
                       forward_macs)
    else:
        print_per_row(rows, times)
    load = os.getloadavg()[0]
    if load > 1.5 * args.threads:
        print(f'\nWarning: load average {load:.1f} at the end on {os.cpu_count()} CPUs: other processes were busy.')


def print_per_gmac(labels: List[str], seconds: List[float], macs: List[int]) -> None:
    """The per-GMAC table: training-step milliseconds per forward GMAC, and each row's ratio to the best."""
    per_gmac = [1e3 * step / (count / 1e9) for step, count in zip(seconds, macs)]
    best = min(per_gmac)
    print('| arch | ms per step | forward GMACs | ms per GMAC | ratio to best |')
    print('|---|---|---|---|---|')
    for label, step, count, value in zip(labels, seconds, macs, per_gmac):
        print(f'| {label} | {1e3 * step:.0f} | {count / 1e9:.3f} | {value:.0f} | {value / best:.2f}x |')


def print_per_row(rows: list, times: Dict[int, List[float]]) -> None:
    """Seconds per training step of each row, and its ratio to the first row."""
    first = statistics.median(times[0])
    print('| model | params | s / training step | ratio to first row |')
    print('|---|---|---|---|')
    for index, (label, params, _, _) in enumerate(rows):
        seconds = statistics.median(times[index])
        print(f'| {label} | {params} | {seconds:.3f} | {seconds / first:.2f} |')


if __name__ == '__main__':
    main()
