"""Run BasicSR 1.4.2's pipelines on CPU, one GPU or many, from one YAML.

BasicSR 1.4.2 assumes CUDA + NCCL in three places this module replaces, only inside rssr's entry
points (entries of the patch table, :mod:`rssr.basicsr.patches`):

* ``init_dist`` calls ``torch.cuda.set_device(rank % device_count())`` (a ZeroDivisionError on CPU)
  and always uses NCCL. rssr uses NCCL with the device taken from ``LOCAL_RANK`` when CUDA is
  available, else gloo.
* ``load_resume_state`` maps the saved state to ``torch.cuda.current_device()``. rssr maps it to the
  device the model will train on.
* The training sampler restarts a resumed epoch from its first batch. rssr's
  :class:`ResumableSampler` skips the batches already trained on and restores the random state
  saved with them, so a resumed run sees the same batches as an uninterrupted one. The position
  reaches it from :func:`load_resume_state`, which runs just before the pipeline builds its sampler.

It also replaces two methods of every BasicSR model (SRModel, SRGANModel, ESRGANModel, HATModel,
rssr's models, ...):

* ``BaseModel.model_to_device`` wraps in DDP with ``device_ids=[current CUDA device]`` even on the
  CPU; :func:`model_to_device` passes ``device_ids`` only on CUDA, so ``net_g`` and ``net_d`` train
  under gloo too.
* ``SRModel.dist_validation`` validates on rank 0 through the DDP-wrapped network while the other
  ranks train on: DDP's forward then broadcasts buffers on one rank alone (gloo fails with
  "Connection closed by peer", NCCL can hang). :func:`validate_on_rank_zero` validates on rank 0
  with the unwrapped networks (no collective), then every rank waits at a barrier.

And the training pipeline's ``build_dataloader`` starts its workers at a lower priority
(:func:`rssr.threads.lower_worker_priority`, see :mod:`rssr.threads`).
"""
from __future__ import annotations

import functools
import math
import os
import random
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Dict, Iterator, List, Optional

import numpy as np
import torch
import torch.distributed as dist

from rssr.checkpoint import checkpoint_suffix
from rssr.threads import lower_worker_priority
from rssr.torchrun import local_rank, start_process_group

_validation_wait_group: Optional[Any] = None
VALIDATION_WAIT_TIMEOUT = timedelta(hours=24)  # ranks > 0 wait this long for rank 0's validation


def uses_cuda(opt: Dict[str, Any]) -> bool:
    """Whether the run trains on CUDA: GPUs asked for (``num_gpu`` != 0) and present."""
    return opt.get('num_gpu', 0) not in (0, None) and torch.cuda.is_available()


def training_device(opt: Dict[str, Any]) -> torch.device:
    """The device this process trains on: ``cuda:LOCAL_RANK`` with CUDA, else the CPU."""
    if uses_cuda(opt):
        return torch.device('cuda', local_rank() % torch.cuda.device_count())
    return torch.device('cpu')


def init_dist(launcher: str, backend: Optional[str] = None, **kwargs: Any) -> None:
    """Start the process group: NCCL on the GPU named by LOCAL_RANK, gloo without CUDA."""
    if launcher == 'pytorch':
        start_process_group(backend, **kwargs)
    elif launcher == 'slurm':
        from basicsr.utils import dist_util
        if not torch.cuda.is_available():
            raise RuntimeError('rssr: --launcher slurm needs CUDA; on CPU launch with torchrun and --launcher pytorch')
        dist_util._init_dist_slurm(backend or 'nccl', **kwargs)
    else:
        raise ValueError(f'Invalid launcher {launcher!r}: use none, pytorch or slurm')


def rng_state() -> Dict[str, Any]:
    """Python, NumPy and torch random states, stored as plain values and tensors (weights_only-loadable)."""
    name, keys, pos, has_gauss, cached_gauss = np.random.get_state()
    state = {
        'python': random.getstate(),
        'numpy': (name, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached_gauss),
        'torch': torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    """Inverse of :func:`rng_state`."""
    version, internal, gauss = state['python']
    random.setstate((version, tuple(internal), gauss))
    name, keys, pos, has_gauss, cached_gauss = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached_gauss))
    torch.set_rng_state(state['torch'].cpu())
    if 'cuda' in state and torch.cuda.is_available() and len(state['cuda']) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in state['cuda']])


def gather_rng_states(opt: Dict[str, Any]) -> List[Dict[str, Any]]:
    """Every rank's random state, in rank order (a collective call when distributed)."""
    state = rng_state()
    if not opt.get('dist'):
        return [state]
    gathered: List[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, state)
    return gathered


@dataclass(frozen=True)
class ResumePosition:
    """Where a resumed run continues: the iteration, the batch size per GPU, and this rank's saved random
    state (None in states saved without one)."""

    iteration: int
    batch_size: int
    rng: Optional[Dict[str, Any]]


class ResumableSampler:
    """BasicSR's EnlargedSampler that can continue a resumed epoch where the saved run stopped.

    A run resumed at iteration ``n`` (batch size ``b``, ``k`` batches per epoch) skips the first
    ``n - epoch * k`` batches of its first epoch and, before yielding its first index, restores the
    random state saved at iteration ``n``: dataset augmentation then draws the same numbers as in an
    uninterrupted run (exact with ``num_worker_per_gpu: 0``; with worker processes the batches are
    the same, their random augmentations are not).
    """

    def __init__(self, dataset: Any, num_replicas: int, rank: int, ratio: int = 1,
                 resume: Optional[ResumePosition] = None) -> None:
        self.dataset = dataset
        self.num_replicas = num_replicas
        self.rank = rank
        self.epoch: Optional[int] = None
        self.num_samples = math.ceil(len(dataset) * ratio / num_replicas)
        self.total_size = self.num_samples * num_replicas
        self._resume = resume

    def _epoch_indices(self) -> List[int]:
        generator = torch.Generator()
        generator.manual_seed(self.epoch or 0)
        order = torch.randperm(self.total_size, generator=generator).tolist()
        return [index % len(self.dataset) for index in order][self.rank:self.total_size:self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        indices = self._epoch_indices()
        if self._resume is not None and self.epoch is not None:  # not before the pipeline's first set_epoch
            resume, self._resume = self._resume, None
            batches_per_epoch = self.num_samples // resume.batch_size
            batches_done = min(max(resume.iteration - self.epoch * batches_per_epoch, 0), batches_per_epoch)
            indices = indices[batches_done * resume.batch_size:]
            if resume.rng is not None:
                set_rng_state(resume.rng)
        return iter(indices)

    def __len__(self) -> int:
        return self.num_samples

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch


_resume_position: Optional[ResumePosition] = None  # recorded by load_resume_state for the next sampler


def resumable_sampler(dataset: Any, num_replicas: int, rank: int, ratio: int = 1) -> ResumableSampler:
    """BasicSR's ``EnlargedSampler`` replaced: a :class:`ResumableSampler` that continues from the position
    :func:`load_resume_state` recorded (taken once: only the training sampler resumes)."""
    global _resume_position
    resume, _resume_position = _resume_position, None
    return ResumableSampler(dataset, num_replicas, rank, ratio, resume)


def load_resume_state(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
    """Find (``--auto_resume``: the newest state under ./experiments/<name>) and load the resume state.

    Storages are mapped to the device this process trains on. The training pipeline builds its sampler
    next: :func:`resumable_sampler` continues from the state's data position and random state.
    """
    from basicsr.utils import check_resume, scandir

    global _resume_position
    _resume_position = None
    path = opt['path'].get('resume_state')
    if opt['auto_resume']:
        states_dir = os.path.join('experiments', opt['name'], 'training_states')
        if os.path.isdir(states_dir):
            iters = [int(name[:-len('.state')]) for name in scandir(states_dir, suffix='.state')]
            if iters:
                path = os.path.join(states_dir, f'{max(iters)}.state')
                opt['path']['resume_state'] = path
    if not path:
        return None
    state = torch.load(path, map_location=training_device(opt), weights_only=True)
    check_resume(opt, state['iter'])
    _use_checkpoint_format(opt)
    rng_states = state.get('rng')
    _resume_position = ResumePosition(
        iteration=state['iter'], batch_size=opt['datasets']['train']['batch_size_per_gpu'],
        rng=rng_states[opt['rank']] if rng_states and len(rng_states) > opt['rank'] else None)
    return state


def _use_checkpoint_format(opt: Dict[str, Any]) -> None:
    """Point BasicSR's resumed network paths (always ``.pth``) at the format the run saves in."""
    suffix = checkpoint_suffix(opt)
    for key, value in opt['path'].items():
        if key.startswith('pretrain_network') and isinstance(value, str) and value.endswith('.pth'):
            opt['path'][key] = value[:-len('.pth')] + suffix


def model_to_device(model: Any, net: torch.nn.Module) -> torch.nn.Module:
    """``BaseModel.model_to_device`` for any device: move ``net`` to ``model.device``; wrap it in DDP
    (``device_ids`` only on CUDA) when distributed, in DataParallel for several GPUs in one process."""
    net = net.to(model.device)
    if model.opt['dist']:
        device_ids = None
        if model.device.type == 'cuda':
            device_ids = [model.device.index if model.device.index is not None else torch.cuda.current_device()]
        return torch.nn.parallel.DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=model.opt.get('find_unused_parameters', False))
    if model.opt['num_gpu'] > 1:
        return torch.nn.DataParallel(net)
    return net


def _wait_for_all_ranks() -> None:
    """A barrier with a long timeout (validation on rank 0 may take long): a gloo group of its own,
    made on first use in each process group (every rank reaches it together), so NCCL's shorter
    watchdog never fires."""
    global _validation_wait_group
    if _validation_wait_group is None or _validation_wait_group[0] is not dist.group.WORLD:
        _validation_wait_group = (dist.group.WORLD, dist.new_group(backend='gloo', timeout=VALIDATION_WAIT_TIMEOUT))
    dist.barrier(group=_validation_wait_group[1])


def validate_on_rank_zero(model: Any, dataloader: Any, current_iter: int, tb_logger: Any, save_img: bool) -> None:
    """``SRModel.dist_validation`` without collectives on one rank: rank 0 runs ``nondist_validation``
    with every DDP/DataParallel-wrapped network of ``model`` temporarily unwrapped (``net_g_ema`` is
    never wrapped), its random state restored afterwards (validation does not change training), and
    every rank then waits for it. Metrics are those of a single-process run on the same weights."""
    if dist.get_rank() == 0:
        wrapped = {name: net for name, net in vars(model).items()
                   if isinstance(net, (torch.nn.parallel.DistributedDataParallel, torch.nn.DataParallel))}
        state = rng_state()
        try:
            for name, net in wrapped.items():
                setattr(model, name, net.module)
            model.nondist_validation(dataloader, current_iter, tb_logger, save_img)
        finally:
            for name, net in wrapped.items():
                setattr(model, name, net)
            set_rng_state(state)
    _wait_for_all_ranks()


def with_low_priority_workers(build_dataloader: Callable[..., Any]) -> Callable[..., Any]:
    """BasicSR's ``build_dataloader`` whose loaders start their workers with :func:`lower_worker_priority`."""
    if getattr(build_dataloader, 'lowers_worker_priority', False):
        return build_dataloader

    @functools.wraps(build_dataloader)
    def build(*args: Any, **kwargs: Any) -> Any:
        return lower_worker_priority(build_dataloader(*args, **kwargs))

    build.lowers_worker_priority = True
    return build
