"""rssr.threads: intra-op threads per process from cores, torchrun's local world size, DataLoader
workers and explicit overrides; one log line; one thread in every DataLoader worker."""
from __future__ import annotations

import functools
import os
import pickle
import warnings

import cv2
import numpy as np
import pytest
import torch

from rssr import threads
from rssr.threads import (
    LowPriorityWorkerInit,
    ThreadChoice,
    choose_threads,
    configure_threads,
    dataloader_workers,
    explicit_threads,
)
from testkit import train_options, write_yaml


@pytest.fixture(autouse=True)
def restore_threads(monkeypatch):
    """Leave torch's and OpenCV's thread counts and the environment as they were."""
    torch_threads, cv2_threads = torch.get_num_threads(), cv2.getNumThreads()
    for name in ('RSSR_NUM_THREADS', 'OMP_NUM_THREADS', 'LOCAL_WORLD_SIZE', 'LOCAL_RANK'):
        monkeypatch.delenv(name, raising=False)
    yield
    torch.set_num_threads(torch_threads)
    cv2.setNumThreads(cv2_threads)


@pytest.mark.parametrize('cores, world_size, expected', [(2, 1, 2), (2, 2, 1), (16, 4, 4), (6, 4, 1), (3, 8, 1)])
def test_cores_are_shared_evenly_by_the_processes_on_the_node(cores, world_size, expected):
    assert choose_threads(cores, world_size, workers=0).threads == expected


def test_workers_run_at_one_thread_each_and_keep_the_main_process_share():
    choice = choose_threads(2, 1, workers=2)
    assert choice == ThreadChoice(2, '2 cores / 1 process on this node; 2 DataLoader workers per process at 1 torch '
                                     'thread, niceness +10')
    assert choose_threads(8, 2, workers=1).threads == 4


def test_explicit_choices_win_in_order():
    assert choose_threads(16, 2, 0, override=('3', 'RSSR_NUM_THREADS'), omp_num_threads='5') == ThreadChoice(
        3, 'set by RSSR_NUM_THREADS')
    assert choose_threads(16, 1, 0, omp_num_threads='5') == ThreadChoice(5, 'set by OMP_NUM_THREADS')
    # torchrun's own OMP_NUM_THREADS=1 for several processes is not a user's choice
    assert choose_threads(16, 2, 0, omp_num_threads='1').threads == 8
    assert choose_threads(16, 1, 0, omp_num_threads='1') == ThreadChoice(1, 'set by OMP_NUM_THREADS')
    with pytest.raises(ValueError, match='RSSR_NUM_THREADS must be a positive whole number of threads, not .zero.'):
        choose_threads(2, 1, 0, override=('zero', 'RSSR_NUM_THREADS'))


def test_environment_override_beats_the_option_file():
    opt = {'num_threads': 4}
    assert explicit_threads(opt, {}) == (4, '`num_threads:` in the option file')
    assert explicit_threads(opt, {'RSSR_NUM_THREADS': '2'}) == ('2', 'RSSR_NUM_THREADS')
    assert explicit_threads({}, {'RSSR_NUM_THREADS': ' '}) is None


def test_only_training_loaders_have_workers():
    opt = {'datasets': {'train': {'num_worker_per_gpu': 3}, 'val': {'num_worker_per_gpu': 8},
                        'val_2': {'num_worker_per_gpu': 8}}}
    assert dataloader_workers(opt) == 3
    assert dataloader_workers({'datasets': {'test_1': {'num_worker_per_gpu': 4}}}) == 0
    assert dataloader_workers(None) == 0


def test_configure_sets_torch_and_opencv_and_logs_once_per_node(monkeypatch, capsys):
    monkeypatch.setattr(threads, 'available_cores', lambda: 6)
    monkeypatch.setenv('LOCAL_WORLD_SIZE', '2')
    monkeypatch.setenv('OMP_NUM_THREADS', '1')  # as torchrun sets it
    choice = configure_threads({'datasets': {'train': {'num_worker_per_gpu': 2}}})
    assert choice.threads == 3 and torch.get_num_threads() == 3 and cv2.getNumThreads() == 3
    assert capsys.readouterr().err == ('rssr: 3 intra-op threads per process (6 cores / 2 processes on this node; '
                                       '2 DataLoader workers per process at 1 torch thread, niceness +10)\n')
    monkeypatch.setenv('LOCAL_RANK', '1')
    monkeypatch.setenv('RSSR_NUM_THREADS', '1')
    assert configure_threads(None).threads == 1 and torch.get_num_threads() == 1
    assert capsys.readouterr().err == ''


class _ThreadCounts(torch.utils.data.Dataset):
    def __len__(self) -> int:
        return 2

    def __getitem__(self, index: int):
        return torch.tensor([torch.get_num_threads(), cv2.getNumThreads(), os.nice(0)])


def test_training_loader_workers_run_one_torch_thread_at_lower_priority_and_never_hang(monkeypatch, capsys):
    from rssr.basicsr.distributed import with_low_priority_workers

    import basicsr.train

    monkeypatch.setenv('RSSR_NUM_THREADS', '2')
    configure_threads(None)
    build_dataloader = with_low_priority_workers(basicsr.train.build_dataloader)
    assert with_low_priority_workers(build_dataloader) is build_dataloader  # idempotent: wrapped once
    loader = build_dataloader(_ThreadCounts(), {'phase': 'train', 'num_worker_per_gpu': 1, 'batch_size_per_gpu': 2},
                              num_gpu=0, dist=False, sampler=None, seed=0)
    assert isinstance(loader.worker_init_fn, LowPriorityWorkerInit)
    assert isinstance(loader.worker_init_fn.worker_init, functools.partial)  # BasicSR's seeding, still run
    pickle.dumps(loader.worker_init_fn)  # workers can be spawned, not only forked
    niceness = min(19, os.nice(0) + threads.WORKER_NICENESS)  # 19 is the lowest priority
    image = np.random.default_rng(0).random((1024, 1024), dtype=np.float32)
    cv2.resize(image, (256, 256), interpolation=cv2.INTER_CUBIC)  # the parent's OpenCV pool is in use before the fork
    loader.timeout = 60  # a worker that hangs (cv2.setNumThreads after fork did) fails the test instead of CI
    assert next(iter(loader)).tolist() == [[1, 2, niceness], [1, 2, niceness]]
    assert torch.get_num_threads() == 2


def test_num_threads_is_a_valid_option_and_is_used(tmp_path, monkeypatch, capsys):
    from rssr.basicsr.options import check_options

    opt = train_options(tmp_path / 'data')
    opt['num_threads'] = 1
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        checked = check_options(str(write_yaml(opt, tmp_path / 'x.yml')))
    assert configure_threads(checked) == ThreadChoice(1, 'set by `num_threads:` in the option file')
