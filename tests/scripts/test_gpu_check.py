"""scripts/gpu_check.py without a GPU: the plan and the cuda-marked tests it lists, the CPU smoke run with the
packages the scan and arch sections must not need blocked, and every way a section can end up NOT RUN or
FAIL making the exit status non-zero."""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys

import pytest

from testkit import REPO

spec = importlib.util.spec_from_file_location('gpu_check', REPO / 'scripts' / 'gpu_check.py')
gpu_check = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_check)
CUDA_SECTIONS = ('cuda_tests', 'train_cli', 'torchrun_nccl', 'infer_sharded', 'scan_benchmark')
# What the scan and arch sections must run without (a GPU machine has CUDA torch, Triton and numpy).
NOT_NEEDED = ('rasterio', 'cv2', 'basicsr', 'yaml', 'timm', 'torchvision', 'PIL', 'scipy', 'safetensors', 'affine')
BLOCKER = '''import importlib.abc, sys
class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in {blocked!r}:
            raise ModuleNotFoundError(f'No module named {{name!r}} (blocked by the test)', name=name)
sys.meta_path.insert(0, _Blocked())
'''


def smoke_args(**overrides) -> argparse.Namespace:
    return argparse.Namespace(**{'cpu_smoke': True, 'device': 'cpu', 'only': None, **overrides})


def test_list_prints_the_sections_correctness_first_and_every_cuda_marked_test():
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'gpu_check.py'), '--list'], cwd=REPO, text=True,
                          capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    sections, tests = proc.stdout.split('cuda-marked tests (')
    order = [line.split()[0] for line in sections.splitlines()[1:]]
    assert order.index('scan_backends') < order.index('cuda_tests') < order.index('arch:repmamba') < order.index(
        'scan_benchmark')
    assert '  cuda_tests (limit 150 s): NOT RUN here, needs CUDA' in sections
    nodes = tests.splitlines()[1:]
    assert all('::' in node for node in nodes) and len(nodes) == int(tests.split(')')[0])
    files = {node.split('::')[0] for node in nodes}
    assert files == {'tests/ops/test_selective_scan.py', 'tests/ops/test_scan_triton.py',
                     'tests/models/test_sr_model.py', 'tests/losses/test_edge_frequency.py'}
    assert sum('test_cuda_backends_match_reference[' in node for node in nodes) == 8
    assert 'tests/models/test_sr_model.py::test_autocast_runs_the_network_in_half_precision_and_learns[fp16-dtype1-' \
           'cuda]' in nodes


def test_cpu_smoke_passes_without_the_packages_the_scan_and_arch_sections_do_not_need(tmp_path):
    (tmp_path / 'blocker').mkdir()
    (tmp_path / 'blocker' / 'sitecustomize.py').write_text(BLOCKER.format(blocked=set(NOT_NEEDED)))
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(tmp_path / 'blocker'), str(REPO)])}
    proc = subprocess.run([sys.executable, str(REPO / 'scripts' / 'gpu_check.py'), '--cpu-smoke', '--out',
                           str(tmp_path)], cwd=tmp_path, env=env, text=True, capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / 'gpu_check.json').read_text())
    sections = report['sections']
    assert {label: entry['status'] for label, entry in sections.items()} == {
        'environment': 'PASS', 'scan_backends': 'PASS', 'arch:repmamba': 'PASS'}
    assert report['passed']
    assert [(row['section'], row['status']) for row in report['summary']] == [
        ('environment', 'PASS'), ('scan_backends', 'PASS'), ('arch:repmamba', 'PASS')]
    versions = sections['environment']['result']['versions']
    assert all(versions[name].startswith('missing') for name in ('rasterio', 'basicsr', 'cv2', 'yaml'))
    torch_scan = sections['scan_backends']['result']['backends']['torch']
    assert max(torch_scan['errors'].values()) < 1e-5
    assert set(torch_scan['errors']) == {'y', 'grad_u', 'grad_delta', 'grad_A', 'grad_B', 'grad_C', 'grad_D',
                                         'grad_z', 'grad_delta_bias'}
    repmamba = sections['arch:repmamba']['result']
    assert repmamba['params'] == 795984 and repmamba['uses_selective_scan']
    assert repmamba['parity_vs_float64']['reference']['output'] < 1e-5
    assert repmamba['bf16_losses'][-1] < repmamba['bf16_losses'][0]
    table = (tmp_path / 'gpu_check.md').read_text()
    assert table.rstrip().endswith('Overall: PASS')
    assert '| arch:repmamba | PASS |' in table.split('## Summary')[1]


def test_sections_that_cannot_run_are_not_run_and_make_the_exit_non_zero(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(gpu_check, 'SECTIONS', gpu_check.SECTIONS[:1] + (
        gpu_check.Section('scan_backends', 90, False, ('numpy', 'no_such_package_rssr')),) + gpu_check.SECTIONS[2:])
    code = gpu_check.main(['--only', 'scan_backends', 'cuda_tests', 'train', '--out', str(tmp_path)])
    assert code == 1
    sections = json.loads((tmp_path / 'gpu_check.json').read_text())['sections']
    assert sections == {
        'scan_backends': {'status': 'NOT RUN', 'reason': 'missing packages: no_such_package_rssr (carry their wheels: '
                                                        'docs/gpu.md)'},
        'cuda_tests': {'status': 'NOT RUN', 'reason': 'needs CUDA'},
        'train_cli': {'status': 'NOT RUN', 'reason': 'needs CUDA'}}
    output = capsys.readouterr().out
    assert output.rstrip().endswith('Overall: NOT PASSED: every section must be PASS')
    assert '| cuda_tests | NOT RUN | - | needs CUDA |' in output.split('## Summary')[1]


def test_a_spent_time_budget_leaves_sections_not_run(tmp_path):
    assert gpu_check.main(['--cpu-smoke', '--only', 'environment', '--budget-s', '0', '--out', str(tmp_path)]) == 1
    entry = json.loads((tmp_path / 'gpu_check.json').read_text())['sections']['environment']
    assert entry == {'status': 'NOT RUN', 'reason': 'the time budget of 0 s was spent'}


def test_a_crash_is_not_run_and_a_failed_check_is_fail(tmp_path):
    crashed = gpu_check.run_section('arch', 'no_such_model', smoke_args(), timeout=300)
    assert crashed['status'] == 'NOT RUN' and crashed['reason'].startswith('crashed: UnknownModelError') \
        and 'no_such_model' in crashed['reason']
    failing = smoke_args(run_section='environment', result_file=str(tmp_path / 'r.json'))

    def failing_check(args):
        raise gpu_check.CheckFailed('triton grad_D 3.0e-02')
    gpu_check.SECTION_FUNCTIONS['environment'], original = failing_check, gpu_check.SECTION_FUNCTIONS['environment']
    try:
        assert gpu_check._section_main(failing) == 1
    finally:
        gpu_check.SECTION_FUNCTIONS['environment'] = original
    payload = json.loads((tmp_path / 'r.json').read_text())
    assert payload['failed_check'] and payload['error'].startswith('CheckFailed: triton grad_D 3.0e-02')


def test_a_section_past_its_time_limit_is_stopped_and_not_run():
    entry = gpu_check.run_section('scan_backends', None, smoke_args(), timeout=0.3)
    assert entry['status'] == 'NOT RUN' and entry['reason'] == 'stopped at its time limit of 0.3 s'
    assert entry['seconds'] < 30


def test_plan_orders_correctness_first_and_filters_by_label():
    plan = gpu_check.planned_sections(smoke_args(cpu_smoke=False), cuda=False)
    assert [label for label, _, _, reason in plan if reason] == list(CUDA_SECTIONS)
    assert [label for label, *_ in plan][:3] == ['environment', 'scan_backends', 'cuda_tests']
    assert {label for label, *_ in plan} >= {f'arch:{name}' for name in ('convmambasr', 'mambacsr', 'repmamba')}
    only = gpu_check.planned_sections(smoke_args(cpu_smoke=False, only=['arch:mamba', 'cuda']), cuda=True)
    assert [(label, reason) for label, _, _, reason in only] == [
        ('cuda_tests', None), ('arch:mambacsr', None), ('arch:mambacsr_wo', None)]
    assert [label for label, *_ in gpu_check.planned_sections(smoke_args(), cuda=False)] == [
        'environment', 'scan_backends', 'arch:repmamba']


@pytest.mark.parametrize('status, reason', [('FAIL', 'CheckFailed: triton grad_D 3.0e-02\ntraceback'),
                                            ('NOT RUN', 'stopped at its time limit of 60 s')])
def test_markdown_ends_with_one_summary_table(status, reason):
    report = {'device': 'NVIDIA H100', 'started': 'now', 'total_s': 1.0, 'passed': False, 'sections': {
        'environment': {'status': 'PASS', 'seconds': 1.0, 'result': {
            'gpu': 'NVIDIA H100', 'versions': {'torch': '2.9', 'triton': '3.4'},
            'scan_backends': {'mamba_ssm': {'usable': False}, 'triton': {'usable': True}}}},
        'scan_backends': {'status': status, 'seconds': 3.0, 'reason': reason},
        'arch:mambacsr': {'status': 'PASS', 'seconds': 9.0, 'result': {
            'params': 22051842, 'lr_size': 64, 'batch': 8, 'uses_selective_scan': True, 'step_s': 0.5,
            'images_per_s': 16.0, 'peak_memory_gib': 12.5, 'parity_vs_float64': {'triton': {
                'output': 1e-6, 'torch_output': 2e-6, 'worst_parameter': 'A_logs', 'worst_error': 2e-5,
                'torch_error': 1e-5}}}}}}
    table = gpu_check.markdown(report).split('## Summary')[1]
    assert ('| environment | PASS | 1.0 | NVIDIA H100, torch 2.9, triton 3.4; mamba_ssm unusable, triton usable |'
            in table)
    assert f'| scan_backends | {status} | 3.0 | {reason.splitlines()[0]} |' in table
    assert ('| arch:mambacsr | PASS | 9.0 | triton out 1.0e-06 (torch 2.0e-06), worst grad A_logs 2.0e-05 (torch '
            '1.0e-05); bf16 step 0.5 s, 16.0 img/s |') in table
    assert table.rstrip().endswith('Overall: NOT PASSED: every section must be PASS')
