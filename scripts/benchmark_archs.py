"""Parameters, MACs and CPU forward time of rssr models, as a Markdown table for docs/benchmarks.md.

    python scripts/benchmark_archs.py convmambasr                       # a zoo name (official config)
    python scripts/benchmark_archs.py convmambasr --scan-backends reference torch
    python scripts/benchmark_archs.py --arch ConvMambaSR --kwargs '{"embed_dim": 30, "depths": [1]}'
    python scripts/benchmark_archs.py convmambasr --scale 2 --size 48 --set RCG_num=8

What is counted ("MACs", one multiply-add = 1, the fvcore convention): every convolution, linear,
matmul, bmm and einsum the forward pass runs, counted by ``torch.utils.flop_counter.FlopCounterMode``
(its FLOPs / 2). Elementwise ops, norms, activations, pooling and pixel shuffle are not counted.
Sequence kernels listed in ``ANALYTIC_KERNELS`` are replaced during the count by a stub returning
zeros and counted with a closed formula instead (column "kernels"), so the count does not depend on
which backend implements them. The forward time is a separate run through the real kernels:
median wall time of ``--repeats`` eval-mode forwards under ``torch.no_grad()`` after one warm-up,
batch 1, ``--threads`` CPU threads. Rows of one run are comparable with each other (ratio column);
rows of different runs on a busy machine are not.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
import types
from collections import defaultdict
from contextlib import contextmanager
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Tuple

import torch
import yaml
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

import rssr  # noqa: F401  (registries filled)
from rssr.ops import selective_scan
from rssr.registry import ARCHS
from rssr.zoo import create_model, model_card


def selective_scan_macs(u: Tensor, delta: Tensor, A: Tensor, *args: Any, **kwargs: Any) -> int:
    """VMamba's count for one selective scan: 9*L*D*N + L*D per sample (D channels, N states, L steps)."""
    batch, channels, length = u.shape
    return batch * (9 * length * channels * A.shape[1] + length * channels)


def _selective_scan_stub(u: Tensor, delta: Tensor, A: Tensor, B: Tensor, C: Tensor, *args: Any,
                         return_last_state: bool = False, **kwargs: Any) -> Any:
    y = torch.zeros_like(u)
    return (y, u.new_zeros(u.shape[0], u.shape[1], A.shape[1])) if return_last_state else y


# kernel function -> (stub used while counting, analytic MACs of one call)
ANALYTIC_KERNELS: Dict[Callable, Tuple[Callable, Callable[..., int]]] = {
    selective_scan: (_selective_scan_stub, selective_scan_macs),
}

OP_GROUPS = {'convolution': 'conv', 'mm': 'linear/mm', 'addmm': 'linear/mm', 'bmm': 'bmm/einsum',
             'baddbmm': 'bmm/einsum'}
COLUMNS = ('conv', 'linear/mm', 'bmm/einsum', 'other')


@contextmanager
def analytic_kernels(tally: Dict[str, int]) -> Iterator[None]:
    """Swap every reference to an ANALYTIC_KERNELS function inside rssr for a counting stub."""
    swapped: List[Tuple[Any, str, Callable]] = []

    def counting(stub: Callable, macs: Callable, name: str) -> Callable:
        def run(*args: Any, **kwargs: Any) -> Any:
            tally[name] += macs(*args, **kwargs)
            return stub(*args, **kwargs)
        return run

    for module_name, module in list(sys.modules.items()):
        if module is None or not module_name.startswith('rssr'):
            continue
        for attr, value in list(vars(module).items()):
            if isinstance(value, types.FunctionType) and value in ANALYTIC_KERNELS:
                stub, macs = ANALYTIC_KERNELS[value]
                setattr(module, attr, counting(stub, macs, value.__name__))
                swapped.append((module, attr, value))
    try:
        yield
    finally:
        for module, attr, value in swapped:
            setattr(module, attr, value)


def count_macs(model: nn.Module, x: Tensor) -> Dict[str, int]:
    """MACs of one forward by column (see the module docstring), plus 'kernels' and 'total'."""
    kernels: Dict[str, int] = defaultdict(int)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), analytic_kernels(kernels), counter:
        model(x)
    macs = dict.fromkeys(COLUMNS, 0)
    for op, flops in counter.get_flop_counts()['Global'].items():
        macs[OP_GROUPS.get(op.__name__.split('.')[0], 'other')] += flops // 2
    macs['kernels'] = sum(kernels.values())
    macs['total'] = sum(macs.values())
    return macs


def format_macs(macs: int) -> str:
    return f'{macs / 1e9:.2f} G' if macs >= 1e8 else f'{macs / 1e6:.1f} M'


def time_forward(model: nn.Module, x: Tensor, repeats: int) -> float:
    """Median seconds of one forward after a warm-up."""
    times = []
    with torch.no_grad():
        model(x)
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(name: Optional[str], arch: Optional[str], kwargs: Mapping[str, Any], scale: int,
          scale_kwarg: str) -> Tuple[str, nn.Module, int]:
    """A zoo configuration (``name``) or a registered arch with explicit kwargs, at ``scale``;
    returns a row label, the model in eval mode and its band count."""
    if name is not None:
        model = create_model(name, scale=scale, **kwargs)
        return name, model.eval(), kwargs.get('in_chans') or model_card(name).in_chans
    label = arch + (f' {json.dumps(dict(kwargs), separators=(",", ":"))}' if kwargs else '')
    model = ARCHS.get(arch)(**{scale_kwarg: scale, **kwargs})
    return label, model.eval(), kwargs.get('in_chans', 3)


def parse_overrides(pairs: List[str]) -> Dict[str, Any]:
    """``key=value`` pairs, values read as YAML (``depths=[1,1]``, ``mlp_ratio=1.5``)."""
    overrides = {}
    for pair in pairs:
        key, sep, value = pair.partition('=')
        if not sep:
            raise SystemExit(f'--set expects key=value, got {pair!r}')
        overrides[key] = yaml.safe_load(value)
    return overrides


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('models', nargs='*', help='zoo names (rssr.list_models())')
    parser.add_argument('--arch', help='a registered arch name instead of a zoo name')
    parser.add_argument('--kwargs', default='{}', help='JSON constructor kwargs for --arch')
    parser.add_argument('--scale-kwarg', default='upscale', help="--arch's constructor kwarg for the scale")
    parser.add_argument('--set', nargs='*', default=[], metavar='KEY=VALUE', help='overrides for every model')
    parser.add_argument('--scale', type=int, default=4)
    parser.add_argument('--size', type=int, default=64, help='LR side (square input)')
    parser.add_argument('--in-chans', type=int, default=None, help='bands (default: the card\'s / the arch\'s)')
    parser.add_argument('--scan-backends', nargs='*', default=[None],
                        help='run each model once per selective-scan backend (passed as scan_backend=)')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2)
    parser.add_argument('--no-time', action='store_true', help='skip the forward timing')
    args = parser.parse_args(argv)
    if not args.models and not args.arch:
        parser.error('give zoo names or --arch')
    torch.set_num_threads(args.threads)
    overrides = parse_overrides(args.set)
    if args.in_chans is not None:
        overrides['in_chans'] = args.in_chans

    print(f'LR {args.size}x{args.size}, x{args.scale}, batch 1, {args.threads} CPU threads, torch {torch.__version__}, '
          f'load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
    print('MACs: conv / linear / bmm+einsum counted by FlopCounterMode; selective scan analytic (9LDN + LD); '
          'elementwise, norms and pixel shuffle not counted.\n')
    print('| model | scan backend | params | conv | linear | einsum/bmm | scan (analytic) | total MACs | '
          'CPU forward (s) | time ratio |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    jobs = [(name, None, {}) for name in args.models]
    if args.arch:
        jobs.append((None, args.arch, json.loads(args.kwargs)))
    for name, arch, kwargs in jobs:
        first_time = None
        uses_scan = name is None or 'selective_scan' in model_card(name).kernels
        for backend in args.scan_backends if uses_scan else [None]:
            model_kwargs = {**kwargs, **overrides}
            if backend is not None:
                model_kwargs['scan_backend'] = backend
            label, model, in_chans = build(name, arch, model_kwargs, args.scale, args.scale_kwarg)
            x = torch.rand(1, in_chans, args.size, args.size)
            params = sum(p.numel() for p in model.parameters())
            macs = count_macs(model, x)
            seconds = None if args.no_time else time_forward(model, x, args.repeats)
            first_time = first_time or seconds
            g = {k: format_macs(v) for k, v in macs.items()}
            timing = 'n/a' if seconds is None else f'{seconds:.2f}'
            ratio = 'n/a' if seconds is None else f'{seconds / first_time:.2f}'
            print(f'| {label} | {backend or "auto"} | {params:,} | {g["conv"]} | {g["linear/mm"]} | '
                  f'{g["bmm/einsum"]} | {g["kernels"]} | {g["total"]} | {timing} | {ratio} |', flush=True)
            if macs['other']:
                print(f'|   (also counted: {g["other"]} in other matmul-like ops) |||||||||', flush=True)


if __name__ == '__main__':
    main()
