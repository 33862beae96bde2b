"""``torchrun -m rssr.infer`` over a folder: files split across ranks (gloo on CPU), complete outputs
skipped on a rerun, temporary files of killed runs redone, rank 0's summary of who wrote what."""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

from rssr import infer
from rssr.inference.scene import stale_partial_outputs
from rssr.inference.sharding import FAILED, SKIPPED, WRITTEN, JobResult, Shard, rank_device, run_shard, summary
from testkit import run_torchrun

EDSR_KWARGS = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2, img_range=1.0,
                   rgb_mean=[0.1, 0.1, 0.1])
NAMES = ('a', 'b', 'c', 'd')


def write_scene(path: Path, seed: int, size: int = 24) -> Path:
    """A small 3-band uint16 GeoTIFF with random values."""
    values = np.random.default_rng(seed).integers(0, 10000, (3, size, size), dtype=np.uint16)
    with rasterio.open(path, 'w', driver='GTiff', width=size, height=size, count=3, dtype='uint16',
                       crs='EPSG:32633', transform=Affine(10, 0, 500000, 0, -10, 4000000)) as dst:
        dst.write(values)
    return path


@pytest.fixture()
def scenes(tmp_path: Path) -> Dict[str, Path]:
    """Four scenes in ``in/``, tiny EDSR weights, and the output folder ``out/``."""
    from basicsr.archs.edsr_arch import EDSR

    torch.manual_seed(0)
    torch.save({'params': EDSR(**EDSR_KWARGS).state_dict()}, tmp_path / 'net_g.pth')
    (tmp_path / 'in').mkdir()
    for seed, name in enumerate(NAMES):
        write_scene(tmp_path / 'in' / f'{name}.tif', seed)
    return {'root': tmp_path, 'in': tmp_path / 'in', 'out': tmp_path / 'out', 'weights': tmp_path / 'net_g.pth'}


def infer_args(scenes: Dict[str, Path]) -> List[str]:
    return ['--arch', 'EDSR', '--arch-kwargs', str(EDSR_KWARGS), '--weights', str(scenes['weights']),
            '--input', str(scenes['in']), '--output', str(scenes['out']), '--device', 'cpu',
            '--out-dtype', 'float32', '--tile', '64']


def expected_output(scenes: Dict[str, Path], name: str) -> np.ndarray:
    from basicsr.archs.edsr_arch import EDSR

    model = EDSR(**EDSR_KWARGS)
    model.load_state_dict(torch.load(scenes['weights'], weights_only=True)['params'])
    with rasterio.open(scenes['in'] / f'{name}.tif') as src:
        lr = torch.from_numpy(src.read().astype(np.float32) / 65535)[None]
    with torch.no_grad():
        return model.eval()(lr)[0].numpy()


def test_two_ranks_share_the_files_skip_complete_outputs_and_redo_killed_ones(scenes):
    out = scenes['out']
    out.mkdir()
    complete = write_scene(out / 'a.tif', seed=99, size=48)  # an earlier run's complete output: kept
    complete_bytes = complete.read_bytes()
    stale = out / '.c.tif.rssr-partial-424242.tif'  # a killed process's temporary file: c is redone
    stale.write_bytes(b'half a GeoTIFF')
    output = run_torchrun(['-m', 'rssr.infer', *infer_args(scenes)], scenes['root'], timeout=300)

    assert complete.read_bytes() == complete_bytes
    assert not stale.exists() and stale_partial_outputs(out / 'c.tif') == []
    for name in ('b', 'c', 'd'):
        with rasterio.open(out / f'{name}.tif') as dst:
            assert np.abs(dst.read() - expected_output(scenes, name)).max() < 1e-4
            assert dst.crs.to_epsg() == 32633
    # rank r takes files r, r + 2, ... in name order: rank 0 a and c, rank 1 b and d
    assert f'rank 0/2 (cpu): skipped {out / "a.tif"} (already complete)' in output
    assert f'rank 0/2 (cpu): removed {stale}, left by a killed run' in output
    assert f'rank 0/2 (cpu): wrote {out / "c.tif"}' in output
    assert f'rank 1/2 (cpu): wrote {out / "b.tif"}' in output
    assert f'rank 1/2 (cpu): wrote {out / "d.tif"}' in output
    assert ('rssr.infer: 4 output(s) on 2 rank(s): 3 written, 1 skipped (already complete), 0 failed\n'
            '  rank 0: skipped (already complete) a.tif; wrote c.tif\n'
            '  rank 1: wrote b.tif; wrote d.tif') in output
    assert output.count('rssr.infer: 4 output(s)') == 1  # the summary comes from rank 0 only


def test_rerun_skips_complete_outputs_and_overwrite_replaces_them(scenes, caplog):
    caplog.set_level('INFO', logger='rssr')
    assert infer.main(infer_args(scenes)) == 0
    first = {name: (scenes['out'] / f'{name}.tif').stat().st_mtime_ns for name in NAMES}
    assert 'rssr.infer: 4 output(s) on 1 rank(s): 4 written, 0 skipped' in caplog.text

    caplog.clear()
    assert infer.main(infer_args(scenes)) == 0
    assert {name: (scenes['out'] / f'{name}.tif').stat().st_mtime_ns for name in NAMES} == first
    assert '0 written, 4 skipped (already complete)' in caplog.text

    caplog.clear()
    assert infer.main(infer_args(scenes) + ['--overwrite']) == 0
    assert all((scenes['out'] / f'{name}.tif').stat().st_mtime_ns != first[name] for name in NAMES)
    assert '4 written, 0 skipped' in caplog.text


def test_ranks_take_every_nth_file_and_devices_follow_the_local_rank(monkeypatch):
    jobs = [(Path(f'{i}.tif'), Path(f'out/{i}.tif')) for i in range(5)]
    assert [s for s, _ in Shard(0, 2).take(jobs)] == [Path('0.tif'), Path('2.tif'), Path('4.tif')]
    assert [s for s, _ in Shard(1, 2).take(jobs)] == [Path('1.tif'), Path('3.tif')]
    assert rank_device('cpu', 3) == 'cpu'
    assert rank_device('cuda:0', 3) == 'cuda:0'
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert rank_device('cuda', 3) == 'cuda:1'


def test_a_failing_rank_records_the_failure_and_stops(tmp_path):
    jobs = [(tmp_path / f'{i}.tif', tmp_path / 'out' / f'{i}.tif') for i in range(4)]
    calls = []

    def fails(source: Path, destination: Path) -> Path:
        calls.append(source.name)
        raise ValueError('unreadable')

    results = run_shard(Shard(1, 2), jobs, fails, skip_complete=True)
    assert calls == ['1.tif']
    assert results == [JobResult(1, str(jobs[1][1]), FAILED, error='ValueError: unreadable')]
    with pytest.raises(ValueError, match='unreadable'):  # one process: the error itself, as before sharding
        run_shard(Shard(0, 1), jobs, fails, skip_complete=True)


def test_summary_names_every_rank_and_status():
    results = [JobResult(0, 'out/a.tif', WRITTEN, 1.0), JobResult(1, 'out/b.tif', SKIPPED),
               JobResult(1, 'out/c.tif', FAILED, error='RasterError: bad')]
    assert summary(results, 3) == ('rssr.infer: 3 output(s) on 3 rank(s): 1 written, 1 skipped (already complete), '
                                   '1 failed\n  rank 0: wrote a.tif\n'
                                   '  rank 1: skipped (already complete) b.tif; failed c.tif (RasterError: bad)')
