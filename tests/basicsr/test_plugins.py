"""Other BasicSR projects with rssr: ``--import`` for train/test/infer (the stand-in project of
docs/other_projects.md, run exactly as documented), the ``SMSR`` alias that leaves BasicSR's
registry free, BasicSR 1.3's ``matlab_functions`` colour imports, and a shadowing ``rssr`` folder."""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from testkit import REPO

PROJECT = REPO / 'tests' / 'fixtures' / 'plugin_project'
DOC = REPO / 'docs' / 'other_projects.md'
PSNR_LINE = re.compile(r'# psnr: (\S+)')


def cli_env(with_repo_on_path: bool = True) -> dict:
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1', 'CUDA_VISIBLE_DEVICES': ''}
    env.pop('PYTHONPATH', None)
    if with_repo_on_path:
        env['PYTHONPATH'] = str(REPO)
    return env


def run_python(args: list, cwd: Path, env: dict = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env or cli_env(), text=True, capture_output=True,
                          timeout=timeout)


def documented_commands() -> tuple:
    """The stand-in example's ``cd`` folder and ``python -m rssr.*`` lines from docs/other_projects.md."""
    block = DOC.read_text().split('## Worked example')[1].split('```bash')[1].split('```')[0]
    lines = [line.strip() for line in block.strip().splitlines()]
    assert lines[0].startswith('cd ')
    return lines[0][len('cd '):], [shlex.split(line) for line in lines[1:]]


def test_documented_stand_in_project_trains_tests_and_infers(tmp_path):
    folder, commands = documented_commands()
    assert [c[:4] for c in commands] == [['python', '-m', 'rssr.train', '--import'],
                                         ['python', '-m', 'rssr.test', '--import'],
                                         ['python', '-m', 'rssr.infer', '--import']]
    shutil.copytree(REPO / folder, tmp_path / folder)  # same layout: ../../../datasets resolves
    (tmp_path / 'datasets').symlink_to(REPO / 'datasets')
    cwd = tmp_path / folder
    outputs = []
    for command in commands:
        result = run_python(command[1:], cwd)
        outputs.append(result.stdout + result.stderr)
        assert result.returncode == 0, (command, outputs[-1][-4000:])

    train_log, test_log, infer_log = outputs
    assert 'l_pix:' in train_log and len(PSNR_LINE.findall(train_log)) == 2  # val_freq and the end
    trained = cwd / 'experiments' / 'standin_x2' / 'models' / 'net_g_latest.pth'
    assert trained.is_file()
    assert "'type': 'CombinedLoss'" in train_log or 'type: CombinedLoss' in train_log
    # rssr.test evaluates the same weights on the same crop with the same padding: the same PSNR
    assert PSNR_LINE.findall(test_log) == PSNR_LINE.findall(train_log)[-1:]
    assert (cwd / 'results' / 'val_rgb_x2.tif').is_file()


def test_project_smsr_wins_over_the_rssr_alias_and_the_alias_builds_repmamba():
    probe = '''
import rssr
from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from rssr.archs.repmamba import RepMamba
assert 'SMSR' not in ARCH_REGISTRY, 'rssr must not occupy the name SMSR'
kwargs = dict(type='SMSR', upscale=2, depths=[1])
assert type(build_network(dict(kwargs))) is RepMamba
import standin_sr
assert ARCH_REGISTRY.get('SMSR') is standin_sr.SMSR
assert type(build_network(dict(type='SMSR', upscale=2))) is standin_sr.SMSR
print('ok')
'''
    env = {**cli_env(), 'PYTHONPATH': f'{REPO}{os.pathsep}{PROJECT}'}
    result = run_python(['-c', probe], REPO, env=env)
    assert result.returncode == 0 and result.stdout.strip().endswith('ok'), result.stderr[-3000:]


def test_basicsr_1_3_colour_imports_work_after_import_rssr():
    import rssr  # noqa: F401

    from basicsr.utils import color_util
    from basicsr.utils.matlab_functions import bgr2ycbcr, imresize, rgb2ycbcr, ycbcr2bgr, ycbcr2rgb  # noqa: F401

    assert (rgb2ycbcr, bgr2ycbcr, ycbcr2rgb, ycbcr2bgr) == (
        color_util.rgb2ycbcr, color_util.bgr2ycbcr, color_util.ycbcr2rgb, color_util.ycbcr2bgr)


def run_in_process(cli: str, args: list, cwd: Path, monkeypatch, capsys) -> tuple:
    """(exit code, stderr) of ``python -m <cli> ARGS`` run in this process from ``cwd`` (on the module path, as
    ``python -m`` puts it)."""
    import importlib

    monkeypatch.chdir(cwd)
    monkeypatch.syspath_prepend(str(cwd))
    with pytest.raises(SystemExit) as stop:
        importlib.import_module(cli).main(args)
    return stop.value.code, capsys.readouterr().err


def test_import_of_a_missing_package_is_one_paragraph(tmp_path, monkeypatch, capsys):
    code, err = run_in_process('rssr.train', ['--import', 'no_such_project', '-opt', 'x.yml'], tmp_path, monkeypatch,
                               capsys)
    assert code == 2 and 'Traceback' not in err
    assert "--import no_such_project: no module named 'no_such_project'" in err


def test_import_of_a_package_with_a_missing_dependency_names_it(tmp_path, monkeypatch, capsys):
    (tmp_path / 'needs_dep.py').write_text('import no_such_dependency\n')
    code, err = run_in_process('rssr.test', ['--import=needs_dep', '-opt', 'x.yml'], tmp_path, monkeypatch, capsys)
    assert code == 2 and 'Traceback' not in err
    assert "needs the module 'no_such_dependency'" in err


# ``python -m rssr.train ARGS`` as it runs under an import-hook install (setuptools' editable mode) from a
# directory holding a folder named ``rssr``: ``rssr`` itself resolves to that folder (a namespace package, the
# current directory being first on the module path), its submodules to the installed files through the hook.
# Both finders are put in place here, so the situation arises whichever way this checkout is installed.
SHADOWED_TRAIN = """
import os, runpy, sys
from importlib.machinery import PathFinder

package_dir = sys.argv.pop(1)

class CurrentDirectoryFirst:
    @staticmethod
    def find_spec(name, path=None, target=None):
        return PathFinder.find_spec(name, [os.getcwd()]) if name == 'rssr' else None

class InstalledSubmodules:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if not name.startswith('rssr.'):
            return None
        return PathFinder.find_spec(name, [os.path.join(os.path.dirname(package_dir), *name.split('.')[:-1])])

sys.meta_path.insert(0, CurrentDirectoryFirst)
sys.meta_path.append(InstalledSubmodules)
runpy.run_module('rssr.train', run_name='__main__', alter_sys=True)
"""


def test_shadowing_rssr_folder_in_the_current_directory_is_explained(tmp_path):
    (tmp_path / 'rssr').mkdir()  # e.g. a clone named rssr, run from its parent directory
    env = cli_env(with_repo_on_path=False)
    result = run_python(['-c', SHADOWED_TRAIN, str(REPO / 'rssr'), '-opt', 'x.yml'], tmp_path, env=env)
    assert result.returncode == 2, result.stderr[-3000:]
    assert 'Traceback' not in result.stderr
    assert f'the folder {tmp_path / "rssr"} hides the installed rssr package' in result.stderr


def test_official_rep_mamba_option_file_with_type_smsr_passes_the_check(tmp_path):
    import yaml

    from rssr.basicsr.options import OptionsError, check_options

    opt = yaml.safe_load((REPO / 'options' / 'train' / 'RepMamba' / 'train_RepMamba_x2_AID.yml').read_text())
    opt['network_g']['type'] = 'SMSR'  # the official file's spelling
    for dataset in opt['datasets'].values():
        for key in ('dataroot_gt', 'dataroot_lq'):
            dataset[key] = str(tmp_path)
    (tmp_path / 'official.yml').write_text(yaml.safe_dump(opt))
    assert check_options(str(tmp_path / 'official.yml'))['network_g']['type'] == 'SMSR'

    opt['network_g']['type'] = 'SMSRR'
    (tmp_path / 'typo.yml').write_text(yaml.safe_dump(opt))
    with pytest.raises(OptionsError, match="network_g.type 'SMSRR' is not in BasicSR's arch registry"):
        check_options(str(tmp_path / 'typo.yml'))
