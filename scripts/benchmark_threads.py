"""Per-sample training time of ``python -m rssr.train`` on the CPU: 1 process vs a 2-process torchrun,
DataLoader workers vs none, rssr's thread choice vs torch's default.

    python scripts/benchmark_threads.py                  # all cases, 30 iterations each (5 warm-up)
    python scripts/benchmark_threads.py --iters 20 --policies rssr

Each case trains a compact RepMamba (4 bands, x4, ``depths [1, 1]``) on the bundled Sentinel-2 crop
with LR made on the fly (blur, bicubic, noise: real work for the DataLoader workers), 8 samples per
step in total (a 2-process run takes 4 per process). The time per step is read from the timestamps of
BasicSR's log lines between the end of the warm-up and the last iteration, so it includes data
loading and the gradient all-reduce. Policy ``rssr`` is rssr's own thread choice
(:mod:`rssr.threads`); ``torch`` pins ``RSSR_NUM_THREADS`` to what torch chooses by itself (all cores
in one process; 1 per process under torchrun, its ``OMP_NUM_THREADS=1``); ``minus-workers`` gives the
main process its share of the cores less one per DataLoader worker (the alternative rssr did not
choose; see :mod:`rssr.threads`). OMP/MKL thread variables
of the calling shell are removed for every case: thread settings are what this measures.
"""
from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Dict, List, Optional

import yaml

REPO = Path(__file__).resolve().parents[1]
SAMPLES_PER_STEP = 8
LOG_TIME = re.compile(r'^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) INFO: \[.*?iter:\s*(\d+),')
THREAD_LINE = re.compile(r'rssr: (\d+) intra-op threads? per process')


@dataclass(frozen=True)
class Case:
    processes: int
    workers_per_process: int
    policy: str

    @property
    def label(self) -> str:
        launcher = 'torchrun x2' if self.processes == 2 else '1 process'
        return f'{launcher}, {self.workers_per_process} worker(s)/process, {self.policy}'


def option_file(folder: Path, case: Case, iters: int) -> Path:
    """The training options of one case, written into ``folder``."""
    data = REPO / 'datasets' / 'sentinel2_demo'
    opt = {
        'name': 'threads', 'model_type': 'RSSRModel', 'scale': 4, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': {
            'name': 's2', 'type': 'SceneDegradationDataset', 'dataroot_gt': str(data / 'train_B02_B03_B04_B08.tif'),
            'radiometry': 'sentinel2', 'gt_size': 64, 'num_patches': 800, 'use_hflip': True, 'use_rot': True,
            'degradations': [{'type': 'blur', 'kind': 'sensor', 'mtf': 0.3}, {'type': 'bicubic'},
                             {'type': 'noise', 'sigma': [0.0, 0.002]}],
            'num_worker_per_gpu': case.workers_per_process, 'batch_size_per_gpu': SAMPLES_PER_STEP // case.processes,
            'dataset_enlarge_ratio': 1}},
        'network_g': {'type': 'RepMamba', 'in_chans': 4, 'depths': [1, 1], 'upscale': 4},
        'path': {'pretrain_network_g': None, 'resume_state': None},
        'train': {'optim_g': {'type': 'Adam', 'lr': 2e-4},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [10 ** 6]}, 'total_iter': iters,
                  'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 10 ** 6, 'use_tb_logger': False},
    }
    path = folder / 'threads.yml'
    path.write_text(yaml.safe_dump(opt, sort_keys=False))
    return path


def case_environment(case: Case) -> Dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in ('OMP_NUM_THREADS', 'MKL_NUM_THREADS')}
    env.pop('RSSR_NUM_THREADS', None)
    env['PYTHONPATH'] = os.pathsep.join(filter(None, [str(REPO), env.get('PYTHONPATH')]))
    share = max(1, len(os.sched_getaffinity(0)) // case.processes)
    if case.policy == 'torch':
        env['RSSR_NUM_THREADS'] = str(1 if case.processes > 1 else share)
    elif case.policy == 'minus-workers':
        env['RSSR_NUM_THREADS'] = str(max(1, share - case.workers_per_process))
    return env


def run_case(case: Case, iters: int, warmup: int) -> Dict[str, object]:
    """Train one case in a fresh folder; seconds per step after the warm-up and the thread count used."""
    with tempfile.TemporaryDirectory(prefix='rssr-threads-') as tmp:
        folder = Path(tmp)
        option_file(folder, case, iters)
        command = [sys.executable, '-m', 'rssr.train', '-opt', 'threads.yml']
        if case.processes > 1:
            command = [sys.executable, '-m', 'torch.distributed.run', '--standalone',
                       f'--nproc_per_node={case.processes}', '-m', 'rssr.train', '-opt', 'threads.yml',
                       '--launcher', 'pytorch']
        proc = subprocess.run(command, cwd=folder, env=case_environment(case), text=True, capture_output=True)
        output = proc.stdout + proc.stderr
        if proc.returncode != 0:
            raise RuntimeError(f'{case.label} failed:\n{output[-3000:]}')
        stamps = {}
        for line in output.splitlines():
            match = LOG_TIME.search(line)
            if match:
                stamps[int(match.group(2))] = datetime.strptime(match.group(1), '%Y-%m-%d %H:%M:%S,%f')
        threads = THREAD_LINE.search(output)
    step_s = (stamps[iters] - stamps[warmup]).total_seconds() / (iters - warmup)
    return {'threads': int(threads.group(1)) if threads else None, 'step_s': step_s}


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--iters', type=int, default=30)
    parser.add_argument('--warmup', type=int, default=5)
    parser.add_argument('--policies', nargs='+', default=['torch', 'rssr', 'minus-workers'],
                        choices=['torch', 'rssr', 'minus-workers'])
    parser.add_argument('--workers', type=int, default=2, help='DataLoader workers in total (split across processes)')
    args = parser.parse_args(argv)

    cores = len(os.sched_getaffinity(0))
    load = os.getloadavg()[0]
    print(f'{cores} cores, load average {load:.1f} at start, {SAMPLES_PER_STEP} samples/step, '
          f'{args.iters} iterations ({args.warmup} warm-up)')
    if load > 0.5 * cores:
        print(f'WARNING: load average {load:.1f} on {cores} cores: another process is busy, times are not comparable')
    print()
    print('| policy | launcher | workers/process | threads/process | s/step | ms/sample | vs first row |')
    print('|---|---|---|---|---|---|---|')
    baseline = None
    for policy in args.policies:
        for processes in (1, 2):
            for workers in (0, args.workers // processes):
                if policy == 'minus-workers' and workers == 0:
                    continue  # the same threads as policy rssr
                case = Case(processes, workers, policy)
                result = run_case(case, args.iters, args.warmup)
                per_sample = result['step_s'] / SAMPLES_PER_STEP
                baseline = baseline or per_sample
                launcher = '1 process' if processes == 1 else 'torchrun x2'
                print(f'| {policy} | {launcher} | {workers} | {result["threads"] or "?"} | {result["step_s"]:.3f} | '
                      f'{1000 * per_sample:.1f} | {per_sample / baseline:.2f}x |', flush=True)


if __name__ == '__main__':
    main()
