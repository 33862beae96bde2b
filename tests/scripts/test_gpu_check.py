"""scripts/gpu_check.py on a machine without a GPU: the CPU smoke run passes its non-CUDA sections and
reports the CUDA ones as skipped; a failing or hanging section is recorded and the others still run."""
from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys

import pytest

from testkit import REPO

spec = importlib.util.spec_from_file_location('gpu_check', REPO / 'scripts' / 'gpu_check.py')
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)
CUDA_SECTIONS = ('train_cli', 'torchrun_nccl', 'infer_sharded', 'scan_benchmark', 'cuda_tests')


def smoke_args(**overrides) -> argparse.Namespace:
    return argparse.Namespace(**{'cpu_smoke': True, 'device': 'cpu', 'only': None, **overrides})


def test_cpu_smoke_passes_the_cpu_sections_and_skips_the_cuda_ones(tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'gpu_check.py'), '--cpu-smoke', '--out',
                           str(tmp_path)], cwd=tmp_path, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    sections = report['sections']
    assert [label for label, entry in sections.items() if entry['status'] == 'passed'] == [
        'environment', 'scan_backends', 'arch:repmamba']
    assert all(sections[name] == {'status': 'skipped', 'reason': 'needs CUDA'} for name in CUDA_SECTIONS)
    assert sections['environment']['result']['missing'] == []
    assert sections['scan_backends']['result']['backends']['torch']['max_rel_error'] < 1e-5
    repmamba = sections['arch:repmamba']['result']
    assert repmamba['params'] == 795984 and repmamba['uses_selective_scan']
    table = (tmp_path / 'gpu_check.md').read_text()
    assert '| train_cli | skipped | - | needs CUDA |' in table
    assert '| repmamba | 795,984 | 16 x 1 | no other backend |' in table


def test_a_failing_section_is_recorded_with_its_error():
    entry = gpu_check.run_section('arch', 'no_such_model', smoke_args(), timeout=300)
    assert entry['status'] == 'failed'
    assert 'no_such_model' in entry['error']


def test_a_section_past_its_time_limit_is_stopped():
    entry = gpu_check.run_section('scan_backends', None, smoke_args(), timeout=2)
    assert entry['status'] == 'timeout' and entry['seconds'] < 30


def test_plan_skips_cuda_sections_without_cuda_and_filters_by_label():
    plan = gpu_check.planned_sections(smoke_args(cpu_smoke=False), cuda=False)
    assert [label for label, _, _, skip in plan if skip] == list(CUDA_SECTIONS)
    assert {label for label, *_ in plan} >= {f'arch:{name}' for name in ('convmambasr', 'mambacsr', 'repmamba')}
    only = gpu_check.planned_sections(smoke_args(cpu_smoke=False, only=['arch:mamba', 'cuda']), cuda=True)
    assert [(label, skip) for label, _, _, skip in only] == [
        ('arch:mambacsr', None), ('arch:mambacsr_wo', None), ('cuda_tests', None)]


@pytest.mark.parametrize('status', ['failed', 'timeout'])
def test_markdown_shows_every_section_and_the_first_error_line(status):
    report = {'device': 'NVIDIA H100', 'started': 'now', 'total_s': 1.0, 'sections': {
        'environment': {'status': 'passed', 'seconds': 1.0, 'result': {
            'gpu': 'NVIDIA H100', 'versions': {'torch': '2.9', 'triton': '3.4'}, 'mamba_ssm': 'not usable'}},
        'train_cli': {'status': status, 'seconds': 3.0, 'error': 'RuntimeError: exit 1\ntraceback'},
        'arch:mambacsr': {'status': 'passed', 'seconds': 9.0, 'result': {
            'params': 22051842, 'lr_size': 64, 'batch': 8, 'uses_selective_scan': True, 'step_s': 0.5,
            'images_per_s': 16.0, 'peak_memory_gib': 12.5,
            'parity_vs_torch': {'triton': {'forward': 1e-6, 'backward': 2e-5}}}}}}
    table = gpu_check.markdown(report)
    assert '| environment | passed | 1.0 | NVIDIA H100, torch 2.9, triton 3.4, mamba_ssm not usable |' in table
    assert f'| train_cli | {status} | 3.0 | RuntimeError: exit 1 |' in table
    assert '| mambacsr | 22,051,842 | 64 x 8 | triton 1.0e-06 / 2.0e-05 | 0.5 | 16.0 | 12.5 |' in table
