"""CPU forward time of the five compact 4-band example networks in two rssr trees, A/B in one run.

    python scripts/benchmark_forward.py /path/to/old/checkout .              # default threads
    python scripts/benchmark_forward.py /path/to/old/checkout . --threads 1 --repeats 7

The nets are the ``network_g`` of ``options/train/examples/sentinel2_4band_x4_{convformersr,lstmconvsr,
mambacsr,repmamba,onthefly}.yml`` (the last is ConvMambaSR), read from the *new* tree and built in both,
with the same seed, so both trees hold the same weights. Input: batch 1, 4 bands, ``--size`` x ``--size``
LR (default 128), eval mode, ``torch.no_grad()``, float32.

Each tree runs in its own worker process (its rssr on ``sys.path``); the parent times one forward in the
old worker, then one in the new, and so on (``--repeats`` pairs after one warm-up each), so both see the
same machine load. Only one worker computes at a time. Printed: per net the median seconds of each tree,
the speedup (old / new), and the maximum absolute difference between the two outputs; then the geometric
mean of the speedups.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import yaml

NETS = (('ConvFormerSR', 'convformersr'), ('LSTMConvSR', 'lstmconvsr'), ('MambaCSR', 'mambacsr'),
        ('RepMamba', 'repmamba'), ('ConvMambaSR', 'onthefly'))
OPTIONS = 'options/train/examples/sentinel2_4band_x4_{}.yml'

WORKER = r'''
import json, sys, time
import torch
root, threads, size, output_dir = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sys.path.insert(0, root)
import rssr  # noqa: F401
from rssr.registry import ARCHS
if threads > 0:
    torch.set_num_threads(threads)
nets = {}
for label, kwargs in json.loads(sys.stdin.readline()).items():
    kwargs = dict(kwargs)
    torch.manual_seed(0)
    nets[label] = ARCHS.get(kwargs.pop('type'))(**kwargs).eval()
x = torch.rand(1, 4, size, size, generator=torch.Generator().manual_seed(1))
print('ready', flush=True)
for line in sys.stdin:
    label = line.strip()
    with torch.no_grad():
        start = time.perf_counter()
        y = nets[label](x)
        seconds = time.perf_counter() - start
    torch.save(y, f'{output_dir}/{label}.pt')
    print(seconds, flush=True)
'''


class Worker:
    """A process holding one tree's nets; ``time(label)`` runs one forward and returns its seconds."""

    def __init__(self, root: Path, threads: int, size: int, networks: Dict[str, dict], output_dir: Path) -> None:
        output_dir.mkdir()
        self.output_dir = output_dir
        env = {**os.environ, 'PYTHONPATH': str(root)}
        self.process = subprocess.Popen([sys.executable, '-c', WORKER, str(root), str(threads), str(size),
                                         str(output_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, env=env, cwd=root)
        self._send(json.dumps(networks))
        if self.process.stdout.readline().strip() != 'ready':
            raise RuntimeError(f'the worker for {root} failed to build the networks')

    def _send(self, line: str) -> None:
        self.process.stdin.write(line + '\n')
        self.process.stdin.flush()

    def time(self, label: str) -> float:
        self._send(label)
        return float(self.process.stdout.readline())

    def output(self, label: str):
        import torch
        return torch.load(self.output_dir / f'{label}.pt')

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait()


def compare(old_root: Path, new_root: Path, threads: int, size: int, repeats: int,
            labels: List[str]) -> List[Tuple[str, float, float, float]]:
    """Rows (net, old median s, new median s, max |old - new|), old and new timed alternately."""
    networks = {}
    for label, option in NETS:
        if label not in labels:
            continue
        with open(new_root / OPTIONS.format(option)) as handle:
            networks[label] = yaml.safe_load(handle)['network_g']
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        old = Worker(old_root, threads, size, networks, Path(folder) / 'old')
        new = Worker(new_root, threads, size, networks, Path(folder) / 'new')
        try:
            for label in networks:
                old.time(label), new.time(label)  # warm-up
                times: Dict[str, List[float]] = {'old': [], 'new': []}
                for _ in range(repeats):
                    times['old'].append(old.time(label))
                    times['new'].append(new.time(label))
                difference = float((old.output(label) - new.output(label)).abs().max())
                rows.append((label, statistics.median(times['old']), statistics.median(times['new']), difference))
        finally:
            old.close()
            new.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('old', type=Path, help='root of the old rssr tree (e.g. a checkout of 3ff64fc)')
    parser.add_argument('new', type=Path, help='root of the new rssr tree')
    parser.add_argument('--threads', type=int, default=0, help='torch threads (0: torch default)')
    parser.add_argument('--size', type=int, default=128, help='LR side in pixels')
    parser.add_argument('--repeats', type=int, default=5, help='timed forwards per tree and net')
    parser.add_argument('--nets', nargs='+', choices=[label for label, _ in NETS], default=[label for label, _ in NETS],
                        help='nets to time (default: all five)')
    args = parser.parse_args()
    rows = compare(args.old.resolve(), args.new.resolve(), args.threads, args.size, args.repeats, args.nets)
    print(f'Forward, batch 1, 4 x {args.size} x {args.size} LR, threads: {args.threads or "default"}, '
          f'median of {args.repeats}\n')
    print('| net | old s | new s | speedup | max abs diff |\n|---|---|---|---|---|')
    for label, old_seconds, new_seconds, difference in rows:
        print(f'| {label} | {old_seconds:.4f} | {new_seconds:.4f} | {old_seconds / new_seconds:.2f}x | '
              f'{difference:.2e} |')
    geometric = math.exp(statistics.mean(math.log(old / new) for _, old, new, _ in rows))
    print(f'\nGeometric mean speedup: {geometric:.2f}x')


if __name__ == '__main__':
    main()
