"""Selective-scan backends on the SR shapes, as a Markdown table for docs/benchmarks.md.

    python scripts/benchmark_scan.py                      # CPU: 1 thread and the default count
    python scripts/benchmark_scan.py --device cuda        # + triton and mamba_ssm where they run
    python scripts/benchmark_scan.py --lengths 4096 --no-train --no-windows --repeats 3

Cases: b=1, d=768 (4 directions x 192 channels, B/C in 4 groups), n=16, forward for each length and
forward + backward at the longest (issue 26's shape at l=4096); the training case b=4, l=2304
forward + backward; and window-sized batches forward + backward at d=192 (one direction's channels,
B/C in 4 groups): b=64, l=256 and b=8, l=576. Inputs look like an SS2D block's (softplus'd deltas
with bias, S4D-real A, D skip), passed as the archs pass them (delta_bias, softplus, D).
Each case runs at every ``--threads`` count (default: 1 and torch's default for this machine).
Rows:
- the backends, with inputs stored (b, d, l) contiguous, as the issue's yardstick takes them;
- ``torch, time-major inputs``: the torch backend with u, delta, B and C stored time-major ((b, l, ...) in
  memory), as rssr's SS2D blocks pass them: the scan reads them, and writes y and the gradients, without
  a transpose;
- ``ref-style loop``: issue 26's yardstick (b = 1 cases, at the same thread count, interleaved with the
  backends): a loop in the style of mamba_ssm's ``selective_scan_ref`` in float32, exp(dt A) and dt B u
  precomputed as (b, d, l, n); timed region: the loop, the stack and the D skip (fwd+bwd: also the
  autograd backward into the precomputed tensors); see ``ref_style_loop``;
- ``loop``: a plain float32 sequential loop over time, h = a_t * h + x_t, y_t = sum_n C_t * h, with
  the exponentials, drives and C laid out time-major and precomputed (only the loop is timed), at
  the same thread count: a strict yardstick (contiguous memory at every step);
- ``reference``: rssr's sequential reference (``selective_scan_reference``: exponentials precomputed in
  (b, d, n, l), one strided step per iteration) at the default thread count, the yardstick whose
  times match issue 16's "plain float32 loop" (1.45-1.67 s at l=4096 on a quiet 2-core machine).
Columns:
- median: median wall time of ``--repeats`` runs after one warm-up, the backends' and the loop's
  runs interleaved (the reference: ``--reference-repeats`` runs, no warm-up);
- vs ref-style loop / vs loop / vs reference: the yardstick's or the loop's (same thread count, same run)
  or the reference's median divided by the row's; the lines after the table repeat the issue-26 figure;
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

from rssr.cpu_memory import retain_freed_memory
from rssr.ops import ScanBackendUnavailable
from rssr.ops.scan_torch import selective_scan_torch
from rssr.ops.selective_scan import resolve_backend

DIRECTIONS, CHANNELS, STATE = 4, 192, 16
INPUT_NAMES = ('u', 'delta', 'A', 'B', 'C', 'D', 'delta_bias')
TIME_MAJOR = 'torch, time-major inputs'


def make_inputs(batch: int, length: int, device: str, dtype: torch.dtype = torch.float32,
                d: int = DIRECTIONS * CHANNELS) -> Dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)

    def randn(*shape):
        return torch.randn(*shape, generator=gen)

    dt_init = torch.exp(torch.rand(d, generator=gen) * (torch.log(torch.tensor(0.1)) - torch.log(torch.tensor(1e-3)))
                        + torch.log(torch.tensor(1e-3)))
    inputs = dict(u=randn(batch, d, length), delta=randn(batch, d, length) * 0.5,
                  A=-torch.arange(1, STATE + 1, dtype=torch.float32).repeat(d, 1),
                  B=randn(batch, DIRECTIONS, STATE, length), C=randn(batch, DIRECTIONS, STATE, length),
                  D=torch.ones(d), delta_bias=dt_init + torch.log(-torch.expm1(-dt_init)))
    return {k: v.to(device=device, dtype=dtype) for k, v in inputs.items()}


def time_major(inputs: Dict[str, torch.Tensor]) -> Dict[str, torch.Tensor]:
    """The same inputs with u, delta, B and C stored time-major, (b, l, ...) in memory, as the SS2D blocks pass
    them (their direction sequences come from channels-last maps)."""
    return {k: v.movedim(-1, 1).contiguous().movedim(1, -1) if v.dim() >= 3 else v for k, v in inputs.items()}


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


def timed(run: Callable[[], object], device: str) -> Tuple[float, object]:
    """Wall time of one call of ``run`` and its result."""
    sync(device)
    start = time.perf_counter()
    result = run()
    sync(device)
    return time.perf_counter() - start, result


def interleaved_medians(runs: Dict[str, Callable[[], object]], repeats: int,
                        device: str) -> Dict[str, Tuple[float, object]]:
    """Median wall time of each run over ``repeats`` interleaved rounds after one warm-up round, and its
    last result (interleaving spreads a busy machine's slow spells over all runs alike)."""
    for run in runs.values():  # kernel compilation, allocator
        run()
    times: Dict[str, List[float]] = {name: [] for name in runs}
    results: Dict[str, object] = {}
    for _ in range(repeats):
        for name, run in runs.items():
            seconds, results[name] = timed(run, device)
            times[name].append(seconds)
    return {name: (statistics.median(times[name]), results[name]) for name in runs}


def sequential_loop(inputs: Dict[str, torch.Tensor]) -> Callable[[], Dict[str, torch.Tensor]]:
    """A plain float32 loop over time with everything but the recurrence precomputed, time-major
    (a stricter yardstick than the reference); returns the loop, which gives {'y': y (b, d, l)}."""
    u, A, D = inputs['u'].float(), inputs['A'].float(), inputs['D'].float()
    batch, d, length = u.shape
    dt = torch.nn.functional.softplus(inputs['delta'].float() + inputs['delta_bias'].float()[:, None])
    per_group = d // inputs['B'].shape[1]
    B = inputs['B'].float().repeat_interleave(per_group, 1)
    C = inputs['C'].float().repeat_interleave(per_group, 1)
    decays = torch.exp(dt[:, :, None] * A[None, :, :, None]).permute(3, 0, 1, 2).contiguous()  # (l, b, d, n)
    drives = ((dt * u)[:, :, None] * B).permute(3, 0, 1, 2).contiguous()
    C = C.permute(3, 0, 1, 2).contiguous()
    skip = (u * D[:, None]).permute(2, 0, 1).contiguous()

    def loop() -> Dict[str, torch.Tensor]:
        state = torch.zeros(batch, d, A.shape[1], device=u.device)
        outputs = []
        for t in range(length):
            state = decays[t] * state + drives[t]
            outputs.append((state * C[t]).sum(-1) + skip[t])
        return {'y': torch.stack(outputs, dim=-1)}
    return loop


def ref_style_loop(inputs: Dict[str, torch.Tensor], backward: bool) -> Callable[[], Dict[str, torch.Tensor]]:
    """Issue 26's yardstick, a loop in the style of mamba_ssm's ``selective_scan_ref``, float32.

    Not timed (prepared here): dt = softplus(delta + delta_bias), exp(dt A) and dt B u as (b, d, l, n) with B
    and C repeated to every channel of their group. Timed (the returned run): the zero state, one Python
    step per time index ``h = dA[:, :, t] * h + dBu[:, :, t]``, ``y_t = (h * C_t).sum(-1)``, the stack
    and the D skip; with ``backward`` also the autograd backward of sum(y * weights) into the
    precomputed dA, dBu and C (the precomputation's own backward is not timed: a strict yardstick).
    The forward indexes ``[:, :, t]`` as the issue writes it; with ``backward`` the same strided per-step
    views come from one ``unbind`` instead (the autograd backward of ``dA[:, :, t]`` adds a full-size
    zero tensor per step: minutes at l = 512, hours at l = 4096).
    """
    u, A, D = inputs['u'].float(), inputs['A'].float(), inputs['D'].float()
    dt = torch.nn.functional.softplus(inputs['delta'].float() + inputs['delta_bias'].float()[:, None])
    per_group = u.shape[1] // inputs['B'].shape[1]
    B = inputs['B'].float().repeat_interleave(per_group, 1)  # (b, d, n, l)
    C_all = inputs['C'].float().repeat_interleave(per_group, 1)
    decays = torch.exp(torch.einsum('bdl,dn->bdln', dt, A))
    drives = torch.einsum('bdl,bdnl,bdl->bdln', dt, B, u)
    skip = u * D[:, None]
    weights = torch.randn(u.shape, generator=torch.Generator().manual_seed(1)).to(u)

    def run() -> Dict[str, torch.Tensor]:
        dA, dBu, C = (x.detach().requires_grad_(backward) for x in (decays, drives, C_all))
        with torch.set_grad_enabled(backward):
            h = u.new_zeros(u.shape[0], u.shape[1], A.shape[1])
            ys = []
            if backward:  # see the docstring
                steps = zip(dA.unbind(2), dBu.unbind(2), C.unbind(3))
            else:
                steps = ((dA[:, :, t], dBu[:, :, t], C[:, :, :, t]) for t in range(u.shape[2]))
            for dA_t, dBu_t, C_t in steps:
                h = dA_t * h + dBu_t
                ys.append((h * C_t).sum(-1))
            y = torch.stack(ys, dim=2) + skip
            if backward:
                (y * weights).sum().backward()
        return {'y': y.detach()}
    return run


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


def load_warning(when: str) -> Optional[str]:
    """A warning when the 1-minute load average shows other busy processes, else None."""
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else 0.0
    if load > 1.0:
        return (f'load average {load:.1f} {when} on {os.cpu_count()} CPUs: other processes are busy, so these '
                f'times are not those of a quiet machine (rerun when `uptime` shows < 1)')
    return None


def main(argv: Optional[List[str]] = None) -> None:
    default_threads = torch.get_num_threads()
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backends', nargs='+', default=['torch', 'triton', 'mamba_ssm'])
    parser.add_argument('--lengths', nargs='+', type=int, default=[2304, 4096])
    parser.add_argument('--no-single-backward', action='store_true',
                        help='skip the b=1 forward+backward case at the longest length')
    parser.add_argument('--no-train', action='store_true', help='skip the b=4, l=2304 forward+backward case')
    parser.add_argument('--no-windows', action='store_true', help='skip the window-sized forward+backward cases')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--reference-repeats', type=int, default=1)
    parser.add_argument('--reference-train', action='store_true', help='also time the reference fwd+bwd (very slow)')
    parser.add_argument('--threads', type=int, nargs='+', default=sorted({1, default_threads}),
                        help=f'thread counts to run every case at (default: 1 and this machine\'s {default_threads})')
    parser.add_argument('--retain-freed-memory', action='store_true',
                        help='set malloc up as rssr\'s CLIs do (rssr.cpu_memory.retain_freed_memory)')
    args = parser.parse_args(argv)
    if args.retain_freed_memory:
        retain_freed_memory()
    backends = backends_for(args.device, [b for b in args.backends if b != 'reference'])
    reference = resolve_backend(torch.zeros(1), 'reference')
    d = DIRECTIONS * CHANNELS
    cases = ([(1, d, length, False) for length in args.lengths]
             + ([] if args.no_single_backward else [(1, d, max(args.lengths), True)])
             + ([] if args.no_train else [(4, d, 2304, True)])
             + ([] if args.no_windows else [(64, CHANNELS, 256, True), (8, CHANNELS, 576, True)]))

    command = ' '.join(['python scripts/benchmark_scan.py'] + (argv if argv is not None else sys.argv[1:]))
    load = os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan')
    print(f'`{command}` (device {args.device}, threads {args.threads}, torch default {default_threads}, '
          f'torch {torch.__version__}, load average {load:.1f} at start on {os.cpu_count()} CPUs)\n')
    warnings = [w for w in [load_warning('at start')] if w]
    print('| case | threads | backend | median s | vs ref-style loop | vs loop | vs reference | max err | peak MiB '
          '| peak / inputs |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    yardstick_ratios = []
    for batch, dim, length, backward in tqdm(cases, desc='cases', file=sys.stderr):
        inputs = make_inputs(batch, length, args.device, d=dim)
        input_bytes = sum(v.numel() * v.element_size() for v in inputs.values())
        truth = run_once(selective_scan_torch, {k: v.double() for k, v in inputs.items()}, backward)
        truth = {k: v.detach().cpu() for k, v in truth.items()}
        case = f'b={batch} d={dim} l={length} {"fwd+bwd" if backward else "fwd"}'
        ref_seconds = None
        if not backward or args.reference_train:
            torch.set_num_threads(default_threads)
            ref_inputs = {k: v.cpu() for k, v in inputs.items()}
            ref_seconds, ref_outputs = interleaved_medians(
                {'reference': lambda: run_once(reference[1], ref_inputs, backward)}, args.reference_repeats, 'cpu')[
                'reference']
            error = max_error(ref_outputs, truth)
            peak = peak_bytes(reference[1], ref_inputs, backward, 'cpu')
            print(f'| {case} | {default_threads} | reference | {ref_seconds:.4f} | - | - | 1.0x | {error:.1e} | '
                  f'{peak / 2**20:.0f} | {peak / input_bytes:.1f} |', flush=True)
        for threads in args.threads:
            torch.set_num_threads(threads)
            variants = {name: (scan, inputs) for name, scan in backends}
            if 'torch' in variants:
                variants[TIME_MAJOR] = (variants['torch'][0], time_major(inputs))
            runs = {name: (lambda scan=scan, given=given: run_once(scan, given, backward))
                    for name, (scan, given) in variants.items()}
            if batch == 1:
                runs['ref-style loop'] = ref_style_loop(inputs, backward)
            if not backward:
                runs['loop'] = sequential_loop(inputs)
            medians = interleaved_medians(runs, args.repeats, args.device)
            yardstick_seconds = medians['ref-style loop'][0] if 'ref-style loop' in medians else None
            loop_seconds = medians['loop'][0] if 'loop' in medians else None
            for name, (seconds, outputs) in medians.items():
                vs_yardstick = f'{yardstick_seconds / seconds:.1f}x' if yardstick_seconds else 'n/a'
                vs_loop = f'{loop_seconds / seconds:.1f}x' if loop_seconds else 'n/a'
                vs_reference = f'{ref_seconds / seconds:.1f}x' if ref_seconds else 'n/a'
                if name in ('loop', 'ref-style loop'):
                    label = 'loop (float32, exps precomputed, time-major)' if name == 'loop' else name
                    y_error = max_error({'y': outputs['y'].cpu()}, {'y': truth['y']})
                    print(f'| {case} | {threads} | {label} | {seconds:.4f} | {vs_yardstick} | {vs_loop} | '
                          f'{vs_reference} | {y_error:.1e} (y) | - | - |', flush=True)
                    continue
                scan, given = variants[name]
                error = max_error({k: v.cpu() for k, v in outputs.items()}, truth)
                peak = peak_bytes(scan, given, backward, args.device)
                print(f'| {case} | {threads} | {name} | {seconds:.4f} | {vs_yardstick} | {vs_loop} | {vs_reference} | '
                      f'{error:.1e} | {peak / 2**20:.0f} | {peak / input_bytes:.1f} |', flush=True)
                if yardstick_seconds:
                    yardstick_ratios.append(f'{case}, {threads} thread(s): {name} {seconds * 1e3:.1f} ms, '
                                            f'ref-style loop {yardstick_seconds * 1e3:.0f} ms, '
                                            f'{yardstick_seconds / seconds:.1f}x')
    if yardstick_ratios:
        print('\nIssue 26 scan figure, against the ref-style loop measured in this run (forward and fwd+bwd apart):\n')
        print('\n'.join(f'- {line}' for line in yardstick_ratios))
    torch.set_num_threads(default_threads)
    warnings += [w for w in [load_warning('at the end')] if w]
    for warning in warnings:
        print(f'\nWarning: {warning}')
        print(f'Warning: {warning}', file=sys.stderr)


if __name__ == '__main__':
    main()
