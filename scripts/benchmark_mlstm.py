"""Chunkwise vs parallel mLSTM (rssr.ops.mlstm): peak memory and time at growing sequence lengths.

The parallel (official, quadratic) form keeps (B, NH, S, S) matrices; the chunkwise form keeps
O(S * chunk + S / chunk * DH^2). Shapes default to LSTMConvSR's official configuration (C = 128:
4 heads of DH = 64); S = (LR side / 2)^2, e.g. S = 4096 for a 128 x 128 LR tile. Prints a
markdown table; the ratio columns compare the two forms measured in the same run. The max relative
difference (max |chunkwise - parallel| / max |parallel|) is taken on the same inputs, and the
error of both against a float64 evaluation (``--check-float64``) shows which one drifts.

CPU peak memory is the growth of the resident set over the call (peak ``VmHWM`` minus ``VmRSS``
before it), measured in a fresh subprocess per cell; on CUDA it is ``torch.cuda.max_memory_allocated``
above the inputs.

    python scripts/benchmark_mlstm.py                                   # CPU, forward
    python scripts/benchmark_mlstm.py --device cuda --backward --lengths 1024 4096 16384 65536
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Dict, List, Optional

import torch

from rssr.ops.mlstm import mlstm


def _inputs(length: int, args: argparse.Namespace, device: str, dtype=torch.float32) -> List[torch.Tensor]:
    generator = torch.Generator().manual_seed(length)
    shape = (args.batch, args.heads, length, args.head_dim)
    q, k, v = (torch.randn(shape, generator=generator) for _ in range(3))
    igate = 0.5 * torch.randn(shape[:3], generator=generator)
    fgate = 2.0 + torch.randn(shape[:3], generator=generator)
    return [t.to(device=device, dtype=dtype).requires_grad_(args.backward) for t in (q, k, v, igate, fgate)]


def _call(backend: str, tensors: List[torch.Tensor], args: argparse.Namespace) -> torch.Tensor:
    with torch.set_grad_enabled(args.backward):
        out = mlstm(*tensors, backend=backend, chunk_size=args.chunk_size)
        if args.backward:
            out.sum().backward()
    return out.detach()


def _synchronize(device: str) -> None:
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def _resident_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since exec) of this process, in KiB, from /proc/self/status."""
    with open('/proc/self/status') as status:
        for line in status:
            if line.startswith(field + ':'):
                return int(line.split()[1])
    raise RuntimeError(f'/proc/self/status has no {field}; CPU peak memory needs Linux')


def measure(backend: str, length: int, args: argparse.Namespace) -> Dict[str, float]:
    """Peak memory (MiB) and median time (ms) of one backend at one length, in this process."""
    tensors = _inputs(length, args, args.device)
    if args.device.startswith('cuda'):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
        _call(backend, tensors, args)
        peak_mib = (torch.cuda.max_memory_allocated() - before) / 2 ** 20
    else:
        resident_before = _resident_kib('VmRSS')
        _call(backend, tensors, args)
        peak_mib = max(0, _resident_kib('VmHWM') - resident_before) / 2 ** 10
    times = []
    for _ in range(args.repeats):
        for t in tensors:
            t.grad = None
        _synchronize(args.device)
        start = time.perf_counter()
        _call(backend, tensors, args)
        _synchronize(args.device)
        times.append((time.perf_counter() - start) * 1e3)
    return {'peak_mib': peak_mib, 'ms': statistics.median(times)}


def measure_isolated(backend: str, length: int, args: argparse.Namespace) -> Optional[Dict[str, float]]:
    """``measure`` in a fresh interpreter on CPU (so the peak RSS starts clean); in-process on CUDA."""
    if args.device.startswith('cuda'):
        result = measure(backend, length, args)
        torch.cuda.empty_cache()
        return result
    command = [sys.executable, __file__, '--worker', backend, str(length), *sys.argv[1:]]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


def relative_errors(length: int, args: argparse.Namespace) -> Dict[str, float]:
    tensors = [t.detach() for t in _inputs(length, args, args.device)]
    with torch.no_grad():
        parallel = mlstm(*tensors, backend='parallel')
        chunkwise = mlstm(*tensors, backend='chunkwise', chunk_size=args.chunk_size)
        errors = {'chunk_vs_par': ((chunkwise - parallel).abs().max() / parallel.abs().max()).item()}
        if args.check_float64:
            exact = mlstm(*(t.double() for t in tensors), backend='chunkwise', chunk_size=args.chunk_size)
            for name, value in (('par_vs_f64', parallel), ('chunk_vs_f64', chunkwise)):
                errors[name] = ((value.double() - exact).abs().max() / exact.abs().max()).item()
    return errors


def _cell(result: Optional[Dict[str, float]], key: str, spec: str) -> str:
    return format(result[key], spec) if result else 'skipped'


def _ratio(parallel: Optional[Dict[str, float]], chunkwise: Optional[Dict[str, float]], key: str) -> str:
    if not parallel or not chunkwise or chunkwise[key] <= 0:
        return '-'
    return f'{parallel[key] / chunkwise[key]:.1f}x'


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--lengths', type=int, nargs='+', default=[256, 1024, 4096, 16384])
    parser.add_argument('--batch', type=int, default=1)
    parser.add_argument('--heads', type=int, default=4)
    parser.add_argument('--head-dim', type=int, default=64)
    parser.add_argument('--chunk-size', type=int, default=64)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--backward', action='store_true', help='time forward + backward')
    parser.add_argument('--repeats', type=int, default=3)
    parser.add_argument('--threads', type=int, default=2, help='CPU threads (torch.set_num_threads)')
    parser.add_argument('--parallel-max-length', type=int, default=4096,
                        help='skip the parallel form above this length (its memory grows as S^2)')
    parser.add_argument('--check-float64', action='store_true',
                        help='also report both forms against a float64 evaluation')
    parser.add_argument('--worker', nargs=2, metavar=('BACKEND', 'LENGTH'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.worker:
        print(json.dumps(measure(args.worker[0], int(args.worker[1]), args)))
        return

    from tqdm import tqdm

    load_average = os.getloadavg()[0]
    columns = ['S (LR side)', 'parallel peak MiB', 'chunkwise peak MiB', 'memory ratio', 'parallel ms',
               'chunkwise ms', 'time ratio', 'max rel. diff']
    if args.check_float64:
        columns += ['parallel vs f64', 'chunkwise vs f64']
    rows = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
    for length in tqdm(args.lengths, desc='mLSTM benchmark'):
        chunk = measure_isolated('chunkwise', length, args)
        par = measure_isolated('parallel', length, args) if length <= args.parallel_max_length else None
        errors = relative_errors(length, args) if par is not None else {}
        side = round(length ** 0.5)
        cells = [f'{length} ({2 * side})' if side * side == length else str(length),
                 _cell(par, 'peak_mib', '.0f'), _cell(chunk, 'peak_mib', '.0f'), _ratio(par, chunk, 'peak_mib'),
                 _cell(par, 'ms', '.1f'), _cell(chunk, 'ms', '.1f'), _ratio(par, chunk, 'ms'),
                 _cell(errors, 'chunk_vs_par', '.1e')]
        if args.check_float64:
            cells += [_cell(errors, 'par_vs_f64', '.1e'), _cell(errors, 'chunk_vs_f64', '.1e')]
        rows.append('| ' + ' | '.join(cells) + ' |')
    mode = 'forward + backward' if args.backward else 'forward'
    print(f'\nmLSTM {mode}, B={args.batch}, NH={args.heads}, DH={args.head_dim}, chunk {args.chunk_size}, '
          f'device {args.device}, float32, {args.threads} CPU threads, load average at start {load_average:.1f}\n')
    print('\n'.join(rows))


if __name__ == '__main__':
    main()
