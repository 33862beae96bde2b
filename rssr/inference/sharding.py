"""Scenes on many processes: ``torchrun --nproc_per_node=N -m rssr.infer --input dir/ --output out/``.

Each rank takes every N-th file (in name order), runs on its own device (``cuda:LOCAL_RANK``, or the
CPU without CUDA; the process group uses NCCL on GPUs, gloo on the CPU) and logs what it writes with
its rank. Outputs appear under their final name only once complete (written to a temporary name,
then renamed), so a killed run resumes: a folder run skips outputs that exist, removes temporary files
left by killed processes and redoes those scenes. ``--overwrite`` redoes everything. Rank 0 prints a
summary of who wrote what.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.distributed as dist

from rssr.errors import InferenceError
from rssr.inference.scene import stale_partial_outputs
from rssr.torchrun import local_rank, start_process_group

logger = logging.getLogger('rssr')
WRITTEN, SKIPPED, FAILED = 'wrote', 'skipped (already complete)', 'failed'


class ShardFailed(InferenceError):
    """A rank of a multi-process run could not write one of its outputs."""


@dataclass(frozen=True)
class Shard:
    """This process's place among the ranks and the device it runs on."""

    rank: int = 0
    world_size: int = 1
    device: str = 'cpu'

    def take(self, jobs: Sequence[Tuple[Path, Path]]) -> List[Tuple[Path, Path]]:
        """The jobs of this rank: every ``world_size``-th, starting at ``rank``."""
        return list(jobs[self.rank::self.world_size])

    @property
    def name(self) -> str:
        return f'rank {self.rank}/{self.world_size} ({self.device})'


@dataclass(frozen=True)
class JobResult:
    """What one rank did with one output."""

    rank: int
    destination: str
    status: str
    seconds: float = 0.0
    error: str = ''


def rank_device(requested: Optional[str], local: int) -> str:
    """The device of local rank ``local``: ``cuda`` (or nothing, with CUDA present) means ``cuda:local``."""
    requested = requested or ('cuda' if torch.cuda.is_available() else 'cpu')
    if requested == 'cuda':
        return f'cuda:{local % torch.cuda.device_count()}'
    return requested


def start_shard(requested_device: Optional[str]) -> Shard:
    """This process's shard; under torchrun (``WORLD_SIZE`` > 1) also starts the process group."""
    world_size = int(os.environ.get('WORLD_SIZE', 1))
    if world_size > 1 and not dist.is_initialized():
        start_process_group()
    return Shard(int(os.environ.get('RANK', 0)), world_size, rank_device(requested_device, local_rank()))


def run_shard(shard: Shard, jobs: Sequence[Tuple[Path, Path]], process: Callable[[Path, Path], Path],
              skip_complete: bool) -> List[JobResult]:
    """Run this rank's jobs with ``process(source, destination)``; with ``skip_complete``, outputs that
    exist are kept. A failure ends this rank's loop and is recorded (re-raised by :func:`finish`)."""
    results = []
    for source, destination in shard.take(jobs):
        if skip_complete and destination.exists():
            logger.info('%s: skipped %s (already complete)', shard.name, destination)
            results.append(JobResult(shard.rank, str(destination), SKIPPED))
            continue
        for partial in stale_partial_outputs(destination):
            logger.info('%s: removed %s, left by a killed run', shard.name, partial)
            partial.unlink(missing_ok=True)
        started = time.perf_counter()
        try:
            written = process(source, destination)
        except Exception as err:
            results.append(JobResult(shard.rank, str(destination), FAILED, error=f'{type(err).__name__}: {err}'))
            if shard.world_size == 1:
                raise
            logger.error('%s: failed on %s: %s', shard.name, source, err)
            break
        seconds = time.perf_counter() - started
        logger.info('%s: wrote %s in %.1f s', shard.name, written, seconds)
        results.append(JobResult(shard.rank, str(written), WRITTEN, seconds))
    return results


def summary(results: Sequence[JobResult], world_size: int) -> str:
    """One paragraph: how many outputs were written, skipped and failed, and which rank wrote which."""
    counts = {status: sum(r.status == status for r in results) for status in (WRITTEN, SKIPPED, FAILED)}
    lines = [f'rssr.infer: {len(results)} output(s) on {world_size} rank(s): {counts[WRITTEN]} written, '
             f'{counts[SKIPPED]} skipped (already complete), {counts[FAILED]} failed']
    for rank in range(world_size):
        mine = [r for r in results if r.rank == rank]
        if mine:
            lines.append(f'  rank {rank}: ' + '; '.join(
                f'{r.status} {Path(r.destination).name}' + (f' ({r.error})' if r.error else '') for r in mine))
    return '\n'.join(lines)


def finish(shard: Shard, results: List[JobResult]) -> None:
    """Gather every rank's results, log the summary on rank 0, end the process group; then re-raise a
    failure of this rank as :class:`ShardFailed`."""
    everything = results
    if shard.world_size > 1:
        gathered: List[Optional[List[JobResult]]] = [None] * shard.world_size
        dist.all_gather_object(gathered, results)
        everything = [result for rank_results in gathered for result in rank_results or []]
        dist.destroy_process_group()
    if shard.rank == 0:
        logger.info('%s', summary(everything, shard.world_size))
    failed = [r for r in results if r.status == FAILED]
    if failed:
        raise ShardFailed(f'{shard.name} failed on {failed[0].destination}: {failed[0].error}')
