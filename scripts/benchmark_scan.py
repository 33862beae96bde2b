"""Selective-scan backends on the SR shapes, as a Markdown table for docs/benchmarks.md.

    python scripts/benchmark_scan.py                      # CPU: torch vs the sequential reference
    python scripts/benchmark_scan.py --device cuda        # + triton and mamba_ssm where they run
    python scripts/benchmark_scan.py --lengths 4096 --no-train --repeats 3

Cases: b=1, d=768 (4 directions x 192 channels, B/C in 4 groups), n=16, forward for each length;
and the training case b=4, l=2304 forward + backward. Inputs look like an SS2D block's (softplus'd
deltas with bias, S4D-real A, D skip). Columns:
- median: median wall time of ``--repeats`` runs after one warm-up (the reference: ``--reference-repeats``
  runs, no warm-up);
- vs reference: the reference's median divided by the backend's, both measured in this run;
- max err: max|y - y_true| / max|y_true| over the output (and, for fwd+bwd, every input gradient),
  y_true from the torch backend in float64, which the tests hold to the float64 reference within 1e-12;
- peak: the most memory torch held at once during one run (CPU: summed from the profiler's
  allocation events; CUDA: max_memory_allocated), and that peak over the inputs' size.
The reference's fwd+bwd is not timed unless ``--reference-train`` (its autograd backward takes more
than 30 minutes on a 2-core CPU).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Callable, Dict, List, Optional, Tuple

import torch
from torch.profiler import ProfilerActivity, profile
from tqdm import tqdm

from rssr.ops import ScanBackendUnavailable
from rssr.ops.scan_torch import selective_scan_torch
from rssr.ops.selective_scan import resolve_backend

DIRECTIONS, CHANNELS, STATE = 4, 192, 16
INPUT_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')


def make_inputs(batch: int, length: int, device: str, dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    d = DIRECTIONS * CHANNELS

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    dt_init = torch.exp(torch.rand(d, generator=gen) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3)))
                        + torch.log(torch.tensor(1e-3)))
    inputs = dict(u=randn(batch, d, length), delta=randn(batch, d, length) * 0.5,
                  A=-torch.arange(1, STATE + 1, dtype=torch.float32).repeat(d, 1),
                  B=randn(batch, DIRECTIONS, STATE, length), C=randn(batch, DIRECTIONS, STATE, length),
                  D=torch.ones(d), delta_bias=dt_init + torch.log(-torch.expm1(-dt_init)))
    return {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()}


def run_once(scan: Callable, inputs: Dict[str, torch.Tensor], backward: bool) -> Dict[str, torch.Tensor]:
    """One scan (and backward of a fixed random projection of y); returns y and the input grads."""
    leaves = {k: v.detach().clone().requires_grad_(backward) for k, v in inputs.items()}
    with torch.set_grad_enabled(backward):
        y = scan(*(leaves[k] for k in INPUT_NAMES[:5]), leaves['D'], None, leaves['delta_bias'], True)
        if not backward:
            return {'y': y}
        weights = torch.randn(y.shape, generator=torch.Generator().manual_seed(1)).to(y)
        (y * weights).sum().backward()
    return {'y': y.detach(), **{f'grad_{k}': v.grad for k, v in leaves.items()}}


def sync(device: str) -> None:
    if device == 'cuda':
        torch.cuda.synchronize()


def median_time(scan: Callable, inputs, backward: bool, repeats: int, device: str,
                warm_up: bool) -> Tuple[float, Dict[str, torch.Tensor]]:
    """Median wall time of ``repeats`` runs, and the last run's outputs."""
    if warm_up:  # kernel compilation, allocator
        run_once(scan, inputs, backward)
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        outputs = run_once(scan, inputs, backward)
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times), outputs


def peak_bytes(scan: Callable, inputs, backward: bool, device: str) -> int:
    """Most bytes torch held at once during one run, beyond what was allocated before it."""
    if device == 'cuda':
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        run_once(scan, inputs, backward)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - before
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run_once(scan, inputs, backward)
    events = sorted((e.time_range.start, e.self_cpu_memory_usage) for e in prof.events())
    held = peak = 0
    for _, delta_bytes in events:
        held += delta_bytes
        peak = max(peak, held)
    return peak


def max_error(got: Dict[str, torch.Tensor], want: Dict[str, torch.Tensor]) -> float:
    return max(((got[k].double() - want[k]).abs().max() / want[k].abs().max()).item() for k in want)


def backends_for(device: str, requested: List[str]) -> List[Tuple[str, Callable]]:
    available = []
    probe = torch.zeros(1, device=device)
    for name in requested:
        try:
            available.append(resolve_backend(probe, name))
        except ScanBackendUnavailable as error:
            print(f'<!-- {name}: {error} -->', file=sys.stderr)
    return available


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backends', nargs='+', default=['torch', 'triton', 'mamba_ssm'])
    parser.add_argument('--lengths', nargs='+', type=int, default=[2304, 4096, 9216])
    parser.add_argument('--no-train', action='store_true', help='skip the b=4, l=2304 forward+backward case')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--reference-repeats', type=int, default=3)
    parser.add_argument('--reference-train', action='store_true', help='also time the reference fwd+bwd (very slow)')
    parser.add_argument('--threads', type=int, default=torch.get_num_threads())
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    backends = backends_for(args.device, [b for b in args.backends if b != 'reference'])
    reference = resolve_backend(torch.zeros(1), 'reference')
    cases = [(1, length, False) for length in args.lengths] + ([] if args.no_train else [(4, 2304, True)])

    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    command = ' '.join(['python scripts/benchmark_scan.py'] + (argv if argv is not None else sys.argv[1:]))
    print(f'`{command}` (device {args.device}, {args.threads} threads, torch {torch.__version__}, '
          f'load average {load:.1f} at start)\n')
    print('| case | backend | median s | vs reference | max err | peak MiB | peak / inputs |')
    print('|---|---|---|---|---|---|---|')
    for batch, length, backward in tqdm(cases, desc='cases', file=sys.stderr):
        inputs = make_inputs(batch, length, args.device)
        input_bytes = sum(v.numel() * v.element_size() for v in inputs.values())
        truth = run_once(selective_scan_torch, {k: v.double() for k, v in inputs.items()}, backward)
        truth = {k: v.detach().cpu() for k, v in truth.items()}
        case = f'b={batch} l={length} {"fwd+bwd" if backward else "fwd"}'
        rows = list(backends)
        if not backward or args.reference_train:
            rows.append(reference)
        results = {}
        for name, scan in tqdm(rows, desc=case, file=sys.stderr, leave=False):
            scan_inputs = inputs if name != 'reference' else {k: v.cpu() for k, v in inputs.items()}
            device = args.device if name != 'reference' else 'cpu'
            repeats = args.reference_repeats if name == 'reference' else args.repeats
            seconds, outputs = median_time(scan, scan_inputs, backward, repeats, device, warm_up=name != 'reference')
            error = max_error({k: v.cpu() for k, v in outputs.items()}, truth)
            results[name] = (seconds, error, peak_bytes(scan, scan_inputs, backward, device))
        ref_seconds = results.get('reference', (None,))[0]
        for name, (seconds, error, peak) in results.items():
            ratio = f'{ref_seconds / seconds:.1f}x' if ref_seconds else 'n/a (reference not run)'
            print(f'| {case} | {name} | {seconds:.4f} | {ratio} | {error:.1e} | {peak / 2**20:.0f} | '
                  f'{peak / input_bytes:.1f} |')


if __name__ == '__main__':
    main()
