"""``python -m rssr.train`` / ``rssr.test`` end to end on CPU: outputs in cwd, kill and --auto_resume,
torchrun with gloo, and the one-paragraph errors for bad option files."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import pytest
import torch

from rssr.basicsr.startup import EXIT_BAD_OPTIONS, normalize_argv
from testkit import REPO, run_torchrun, train_options, write_yaml

LOG_LINE = re.compile(r'iter:\s+(\d+),.*l_pix: (\S+) grad_norm: (\S+)')


# ``python -m rssr.train`` that SIGKILLs itself as iteration ``kill_at`` starts (after the state of an earlier
# iteration was saved): the kill lands at a known point however loaded the machine is.
KILLED_AT_ITERATION = """
import os, signal, sys
from rssr.basicsr.models.sr_model import RSSRModel
from rssr.train import main
kill_at = int(sys.argv.pop(1))
optimize_parameters = RSSRModel.optimize_parameters
def optimize_unless_killed(self, current_iter):
    if current_iter == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
    optimize_parameters(self, current_iter)
RSSRModel.optimize_parameters = optimize_unless_killed
main(sys.argv[1:])
"""


def start(args: List[str], cwd: Path, kill_at: Optional[int] = None) -> subprocess.Popen:
    """``python -m rssr.train ARGS`` in ``cwd``; with ``kill_at``, it SIGKILLs itself as that iteration starts."""
    env = {**os.environ, 'PYTHONPATH': str(REPO), 'OMP_NUM_THREADS': '1', 'PYTHONUNBUFFERED': '1'}
    launch = ['-m', 'rssr.train'] if kill_at is None else ['-c', KILLED_AT_ITERATION, str(kill_at)]
    return subprocess.Popen([sys.executable, *launch, *args], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def losses_until(proc: subprocess.Popen, last_iter: int) -> Tuple[Dict[int, Tuple[str, str]], str]:
    """Read the training log; SIGKILL the run once it logged ``last_iter`` (or read until it ended)."""
    losses, lines = {}, []
    for line in proc.stdout:
        lines.append(line)
        match = LOG_LINE.search(line)
        if match:
            losses[int(match.group(1))] = match.group(2, 3)
            if int(match.group(1)) >= last_iter:
                proc.send_signal(signal.SIGKILL)
                break
    proc.wait(timeout=60)
    return losses, ''.join(lines)


def test_kill_then_auto_resume_continues_the_same_run(tmp_path):
    """SIGKILL mid-epoch, --auto_resume from the same cwd: same iteration counter, same optimizer
    state, same loss sequence as an uninterrupted run."""
    opt = train_options(tmp_path / 'data', name='resume', total_iter=200, with_val=False)
    opt['logger']['save_checkpoint_freq'] = 3  # 2 iterations per epoch: 3 is mid-epoch
    runs = {name: tmp_path / name for name in ('uninterrupted', 'killed')}
    for folder in runs.values():
        folder.mkdir()
        write_yaml(opt, folder / 'resume.yml')

    reference, _ = losses_until(start(['-opt', 'resume.yml'], runs['uninterrupted']), last_iter=10)
    killed = start(['-opt', 'resume.yml'], runs['killed'], kill_at=5)  # newest state then: 3.state, mid-epoch
    before_kill, log = losses_until(killed, last_iter=10)
    assert killed.returncode == -signal.SIGKILL and max(before_kill) == 4, log[-4000:]
    states = runs['killed'] / 'experiments' / 'resume' / 'training_states'
    assert sorted(path.name for path in states.iterdir()) == ['3.state']  # complete: saved through a rename
    after_resume, log = losses_until(start(['-opt', 'resume.yml', '--auto_resume'], runs['killed']), last_iter=10)

    assert 'Resuming training from epoch: 1, iter: 3.' in log
    assert min(after_resume) == 4
    assert before_kill == {i: reference[i] for i in before_kill}
    assert after_resume == {i: reference[i] for i in after_resume}
    assert max(after_resume) >= 10
    same = [torch.load(run / 'experiments' / 'resume' / 'training_states' / '9.state', weights_only=True)
            for run in runs.values()]
    for a, b in zip(same[0]['optimizers'][0]['state'].values(), same[1]['optimizers'][0]['state'].values()):
        assert all(torch.equal(a[key], b[key]) for key in ('exp_avg', 'exp_avg_sq', 'step'))
    assert (runs['killed'] / 'experiments' / 'resume' / 'models' / 'net_g_9.pth').is_file()


def test_torchrun_two_cpu_processes_with_gloo(tmp_path):
    opt = train_options(tmp_path / 'data', name='ddp', total_iter=4)
    opt['val']['val_freq'] = 4
    write_yaml(opt, tmp_path / 'ddp.yml')
    output = run_torchrun(['-m', 'rssr.train', '-opt', 'ddp.yml', '--launcher', 'pytorch'], tmp_path)
    assert "'world_size': 2" in output or 'world_size: 2' in output
    assert 'iter:       4' in output and '# psnr:' in output
    models = tmp_path / 'experiments' / 'ddp' / 'models'
    assert (models / 'net_g_4.pth').is_file() and (models / 'net_g_latest.pth').is_file()


def test_local_rank_spellings():
    assert normalize_argv(['-opt', 'x.yml', '--local-rank=1']) == ['-opt', 'x.yml', '--local_rank=1']
    assert normalize_argv(['--local-rank', '0', '--local_rank', '2']) == ['--local_rank', '0', '--local_rank', '2']


def run_cli(module: str, args: List[str], cwd: Path, capsys) -> Tuple[int, str]:
    """Run ``rssr.train.main`` / ``rssr.test.main`` in process; return (exit code, stderr)."""
    import importlib
    main = importlib.import_module(module).main
    old = os.getcwd()
    os.chdir(cwd)
    try:
        with pytest.raises(SystemExit) as info:
            main(args)
    finally:
        os.chdir(old)
    return info.value.code, capsys.readouterr().err


def assert_one_paragraph(message: str) -> None:
    assert 'Traceback' not in message
    assert message.strip().count('\n') == 0, message


def test_missing_option_file(tmp_path, capsys):
    code, err = run_cli('rssr.train', ['-opt', 'nope.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    assert 'option file nope.yml does not exist' in err
    assert_one_paragraph(err)


def test_malformed_yaml_names_the_line(tmp_path, capsys):
    (tmp_path / 'bad.yml').write_text('name: x\nnetwork_g:\n  type: EDSR\n num_feat: 8\n')
    code, err = run_cli('rssr.train', ['-opt', 'bad.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    assert 'bad.yml is not valid YAML at line 4' in err
    assert_one_paragraph(err)


def test_unknown_type_names_the_registry_and_close_names(tmp_path, capsys):
    opt = train_options(tmp_path / 'data')
    opt['network_g']['type'] = 'EDRS'
    opt['train']['pixel_opt']['type'] = 'L1Los'
    write_yaml(opt, tmp_path / 'x.yml')
    code, err = run_cli('rssr.train', ['-opt', 'x.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    assert re.search(r"network_g.type 'EDRS' is not in BasicSR's arch registry \(closest: [^)]*EDSR", err)
    assert "train.pixel_opt.type 'L1Los' is not in BasicSR's loss registry (closest: L1Loss" in err
    assert_one_paragraph(err)
    assert not (tmp_path / 'experiments').exists()


def test_missing_dataset_folder(tmp_path, capsys):
    opt = train_options(tmp_path / 'data')
    opt['datasets']['train']['dataroot_gt'] = 'no/such/folder'
    write_yaml(opt, tmp_path / 'x.yml')
    code, err = run_cli('rssr.train', ['-opt', 'x.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    assert 'datasets.train.dataroot_gt: no/such/folder does not exist' in err
    assert_one_paragraph(err)


def test_misspelled_keys_get_the_closest_valid_name(tmp_path, capsys):
    opt = train_options(tmp_path / 'data')
    opt['network_g']['num_feats'] = opt['network_g'].pop('num_feat')
    opt['train']['totl_iter'] = opt['train'].pop('total_iter')
    opt['train']['grad_clip_nrom'] = 1.0
    opt['train']['optim_g']['weight_decy'] = 0.0
    opt['datasets']['train']['gt_szie'] = opt['datasets']['train'].pop('gt_size')
    opt['val']['metrics']['psnr']['crop_boarder'] = opt['val']['metrics']['psnr'].pop('crop_border')
    write_yaml(opt, tmp_path / 'x.yml')
    code, err = run_cli('rssr.train', ['-opt', 'x.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    for expected in ("network_g.num_feats is not an option of arch EDSR; did you mean 'num_feat'",
                     "train.totl_iter is not an option of model RSSRModel training; did you mean 'total_iter'",
                     "train.grad_clip_nrom is not an option of model RSSRModel training; "
                     "did you mean 'grad_clip_norm'",
                     "train.optim_g.weight_decy is not an option of optimizer AdamW; did you mean 'weight_decay'",
                     "datasets.train.gt_szie is not an option of dataset type PairedImageDataset; "
                     "did you mean 'gt_size'",
                     "val.metrics.psnr.crop_boarder is not an option of metric calculate_psnr; "
                     "did you mean 'crop_border'"):
        assert expected in err
    assert_one_paragraph(err)


def test_test_cli_validates_and_writes_results_in_cwd(tmp_path, capsys):
    opt = train_options(tmp_path / 'data')
    test_opt = {key: opt[key] for key in ('model_type', 'scale', 'num_gpu', 'manual_seed', 'network_g', 'val')}
    test_opt.update(name='tiny_test', path={'pretrain_network_g': 'missing.pth'},
                    datasets={'test_1': opt['datasets']['val']})
    write_yaml(test_opt, tmp_path / 't.yml')
    code, err = run_cli('rssr.test', ['-opt', 't.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS and 'path.pretrain_network_g missing.pth does not exist' in err

    import rssr  # noqa: F401

    from basicsr.archs import build_network
    net = build_network(dict(opt['network_g']))
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    test_opt['path']['pretrain_network_g'] = 'net.pth'
    test_opt['val']['save_img'] = True
    write_yaml(test_opt, tmp_path / 't.yml')
    from rssr.test import main
    old = os.getcwd()
    os.chdir(tmp_path)
    try:
        main(['-opt', 't.yml'])
    finally:
        os.chdir(old)
    assert list((tmp_path / 'results' / 'tiny_test' / 'visualization' / 'tiny_val').glob('*.png'))


def test_unknown_model_type(tmp_path, capsys):
    opt = train_options(tmp_path / 'data')
    opt['model_type'] = 'RSSRModle'
    write_yaml(opt, tmp_path / 'x.yml')
    code, err = run_cli('rssr.train', ['-opt', 'x.yml'], tmp_path, capsys)
    assert code == EXIT_BAD_OPTIONS
    assert re.search(r"model_type 'RSSRModle' is not in BasicSR's model registry \(closest: RSSRModel", err)


def test_diverging_run_stops_with_advice_and_exit_code(tmp_path, capsys):
    from rssr.basicsr.startup import EXIT_NON_FINITE
    opt = train_options(tmp_path / 'data', name='diverge', total_iter=6, with_val=False)
    opt['train']['optim_g'] = {'type': 'SGD', 'lr': 1e30}
    write_yaml(opt, tmp_path / 'x.yml')
    code, err = run_cli('rssr.train', ['-opt', 'x.yml'], tmp_path, capsys)
    assert code == EXIT_NON_FINITE
    assert re.search(r'training stopped at iteration \d: the (loss|gradient norm) is not finite', err)
    assert 'lower train.optim_g.lr' in err and 'Traceback' not in err
