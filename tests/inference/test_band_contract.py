"""The band contract of scene inference (issue 24): bands found by their descriptions in the model's order,
one warning when they cannot be, refusals naming the bands, and every check before statistics and network."""
import logging
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch

import rssr.data.band_statistics
from rssr import infer
from rssr.band_normalization import BandNormalization, BandNormalizedSR
from rssr.basicsr.loading import load_model
from rssr.checkpoint import describe_checkpoint, stored_bands
from rssr.errors import CannotWriteError, DataError, InferenceError
from rssr.inference import OutputOptions, TilingOptions, super_resolve_scene
from rssr.inference.bands import BandContract
from rssr.io import RasterError, read_raster
from testkit import SENTINEL2, LocalNet, make_pair_folders, tiny_model_opt, write_geotiff

S2_BANDS = ('B02', 'B03', 'B04', 'B08')
CARD = BandContract(count=4, names=S2_BANDS, owner="the test's model card")
FLOAT_OUT = OutputOptions(dtype='float32')
TILING = TilingOptions(tile=32, overlap=8, margin=2)


def s2_crop(path: Path, order=(0, 1, 2, 3), descriptions=S2_BANDS, extra_bands: int = 0, size: int = 24) -> Path:
    """A crop of the bundled Sentinel-2 val scene with its bands in ``order`` described by ``descriptions``
    (None: undescribed), plus ``extra_bands`` constant bands described X1, X2, ... in front."""
    with rasterio.open(SENTINEL2 / 'val_B02_B03_B04_B08.tif') as src:
        dn = src.read(window=((40, 40 + size), (60, 60 + size)))
    dn = np.concatenate([np.full((extra_bands, size, size), 500, np.uint16), dn[list(order)]])
    names = [f'X{i + 1}' for i in range(extra_bands)] + ([None] * 4 if descriptions is None else list(descriptions))
    path = write_geotiff(path, dn, nodata=None)
    with rasterio.open(path, 'r+') as dst:
        for band, name in enumerate(names, start=1):
            dst.set_band_description(band, name or '')
    return path


def sr(path: Path, contract: BandContract = CARD, **kwargs) -> tuple:
    out = super_resolve_scene(LocalNet(), path, path.with_name(path.stem + '_sr.tif'), band_contract=contract,
                              tiling=TILING, output=FLOAT_OUT, progress=False, **kwargs)
    with rasterio.open(out) as dst:
        return dst.read(), dst.descriptions


def test_bands_described_in_another_order_are_read_in_the_models_order(tmp_path, caplog):
    expected, descriptions = sr(s2_crop(tmp_path / 'ordered.tif'))
    caplog.set_level(logging.INFO, logger='rssr')
    shuffled, shuffled_descriptions = sr(s2_crop(tmp_path / 'nir_first.tif', order=(3, 2, 1, 0),
                                                 descriptions=S2_BANDS[::-1]))
    assert descriptions == shuffled_descriptions == S2_BANDS
    np.testing.assert_array_equal(shuffled, expected)
    assert "the bands the test's model card takes (B02, B03, B04, B08): reading bands 4, 3, 2, 1 in that order" \
        in caplog.text
    # among other bands, the model's bands are found by their descriptions too
    among_others, _ = sr(s2_crop(tmp_path / 'six.tif', order=(3, 0, 2, 1), descriptions=('B08', 'B02', 'B04', 'B03'),
                                 extra_bands=2))
    np.testing.assert_array_equal(among_others, expected)
    assert 'reading bands 4, 6, 5, 3 in that order' in caplog.text


def test_shipped_model_reads_the_bands_its_card_names(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='rssr')
    outputs = []
    for name, order in (('ordered', (0, 1, 2, 3)), ('shuffled', (3, 2, 1, 0))):
        source = s2_crop(tmp_path / f'{name}.tif', order=order, descriptions=[S2_BANDS[i] for i in order], size=32)
        assert infer.main(['--model', 'convmambasr_s2_x4', '--input', str(source), '--output',
                           str(tmp_path / f'{name}_sr.tif'), '--radiometry', 'sentinel2', '--device', 'cpu']) == 0
        with rasterio.open(tmp_path / f'{name}_sr.tif') as dst:
            outputs.append(dst.read())
            assert dst.descriptions == S2_BANDS
    np.testing.assert_array_equal(outputs[1], outputs[0])
    assert "convmambasr_s2_x4's model card takes (B02, B03, B04, B08): reading bands 4, 3, 2, 1" in caplog.text


def test_bands_not_described_as_the_model_names_them_are_assumed_with_one_warning(tmp_path, caplog):
    contract = BandContract(count=4, names=S2_BANDS, owner='the card')
    for index in range(2):
        sr(s2_crop(tmp_path / f'plain{index}.tif', descriptions=None), contract)
    sr(s2_crop(tmp_path / 'other.tif', descriptions=('blue', 'green', 'red', 'nir')), contract)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2, warnings
    assert 'plain0.tif: its band descriptions (none) do not name the bands the card takes (B02, B03, B04, B08); ' \
           'assuming band 1 as B02, band 2 as B03, band 3 as B04, band 4 as B08' in warnings[0]
    assert 'other.tif: its band descriptions (blue, green, red, nir)' in warnings[1]


def test_selecting_the_models_bands_in_another_order_is_refused(tmp_path):
    source = s2_crop(tmp_path / 'scene.tif')
    with pytest.raises(InferenceError, match=r"--bands B08,3,B03,B02 selects the bands B08, B04, B03, B02 of \S+"
                                             r"scene\.tif, but the test's model card takes them in the order B02, "
                                             r"B03, B04, B08: use --bands B02,B03,B04,B08"):
        sr(source, bands=['B08', 3, 'B03', 'B02'])


def test_band_count_mismatch_names_the_bands_the_model_takes(tmp_path):
    source = s2_crop(tmp_path / 'scene.tif')
    with pytest.raises(InferenceError, match=r"The model takes 4 bands \(B02, B03, B04, B08, as the test's model "
                                             r"card names them\) but 3 bands are selected from \S+scene\.tif "
                                             r"\(bands 3 \(B04\), 2 \(B03\), 1 \(B02\)\)"):
        sr(source, bands=[3, 2, 1])
    with pytest.raises(InferenceError, match=r'The model takes 3 bands but 4 bands are selected'):
        super_resolve_scene(LocalNet(bands=3), source, tmp_path / 'sr.tif', progress=False)


class Spy:
    """Records when the scene statistics are computed and when the network runs."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.events = []
        compute = rssr.data.band_statistics.scene_band_statistics

        def statistics(*args, **kwargs):
            self.events.append('statistics')
            return compute(*args, **kwargs)

        monkeypatch.setattr(rssr.data.band_statistics, 'scene_band_statistics', statistics)
        net = LocalNet()
        forward = net.forward
        monkeypatch.setattr(net, 'forward', lambda x: self.events.append('network') or forward(x))
        self.model = BandNormalizedSR(net, BandNormalization(mode='image'))


BAD_INPUTS = {
    'png for 4 bands': ({'destination': 'sr.png'}, InferenceError, r'A PNG holds 1 or 3 bands of uint8/uint16; the '
                        r'output \S+sr\.png would have 4 bands of uint16'),
    'png for float32': ({'destination': 'sr.png', 'bands': [3, 2, 1], 'band_contract': BandContract(count=3),
                         'output': FLOAT_OUT}, InferenceError, r'would have 3 bands of float32'),
    'unknown output format': ({'destination': 'sr.jpg'}, InferenceError, r'Output \S+sr\.jpg: rssr.infer writes '
                              r'GeoTIFF \(.tif, .tiff\) or PNG \(.png\), not .jpg'),
    'output folder not writable': ({'destination': '/sys/rssr_out/sr.tif'}, CannotWriteError,
                                   r'cannot write /sys/rssr_out/sr\.tif: /sys is not writable'),
    'output folder is a file': ({'destination': 'scene.tif/sr.tif'}, InferenceError,
                                r'Output \S+scene\.tif/sr\.tif: \S+scene\.tif is a file, not a folder'),
    'band selected twice': ({'bands': ['B02', 'B03', 3, 'B03']}, RasterError,
                            r"Band 2 \(B03\) of \S+scene\.tif is selected twice, as 'B03' and 'B03'"),
    'band count': ({'bands': [1, 2, 3]}, InferenceError, r'The model takes 4 bands \(B02, B03, B04, B08'),
    'bands in another order': ({'bands': [4, 3, 2, 1]}, InferenceError, r'takes them in the order B02, B03, B04'),
    'nodata out of range': ({'nodata': -1}, InferenceError, r'--nodata -1 is not a uint16 value \(0..65535\)'),
    'unknown radiometry': ({'radiometry_preset': 'sentinel3'}, DataError,
                           r"Unknown radiometry preset 'sentinel3'"),
}


@pytest.mark.parametrize('case', sorted(BAD_INPUTS))
def test_every_check_runs_before_the_statistics_and_the_network(case, tmp_path, monkeypatch):
    source = s2_crop(tmp_path / 'scene.tif')
    spy = Spy(monkeypatch)
    changes, error, message = BAD_INPUTS[case]
    changes = dict(changes)
    destination = tmp_path / changes.pop('destination', 'sr.tif')
    options = {'band_contract': CARD, 'tiling': TILING, 'progress': False, **changes}
    with pytest.raises(error, match=message):
        super_resolve_scene(spy.model, source, destination, **options)
    assert spy.events == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ['scene.tif']


def test_the_spy_sees_statistics_then_network_on_good_input(tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    super_resolve_scene(spy.model, s2_crop(tmp_path / 'scene.tif'), tmp_path / 'sr.tif', band_contract=CARD,
                        tiling=TILING, progress=False)
    assert spy.events[0] == 'statistics' and set(spy.events[1:]) == {'network'}
    assert torch.isfinite(torch.from_numpy(read_raster(tmp_path / 'sr.tif').values)).all()


@pytest.mark.parametrize('checkpoint_format', ['pth', 'safetensors'])
def test_checkpoints_store_the_training_bands_and_rssr_infer_holds_files_to_them(tmp_path, checkpoint_format,
                                                                                 caplog, capsys):
    from basicsr.archs.srresnet_arch import MSRResNet
    from basicsr.utils.registry import MODEL_REGISTRY

    folders = make_pair_folders(tmp_path / 'data', 4, names=('a',), gt_size=32)  # bands described B01..B04
    dataset_opt = dict(name='train', type='MultibandPairedDataset', phase='train', scale=4, gt_size=16,
                       bands=['B04', 'B03', 'B02', 'B01'], batch_size_per_gpu=1, num_worker_per_gpu=0, **folders)
    opt = tiny_model_opt(4, tmp_path, {'train': dataset_opt}, {})
    opt.update(is_train=True, logger={'checkpoint_format': checkpoint_format}, train={
        'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5},
        'total_iter': 1, 'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}})
    opt['path']['models'] = str(tmp_path)
    model = MODEL_REGISTRY.get('RSSRModel')(opt)
    model.save_network(model.net_g, 'net_g', 1)
    weights = tmp_path / f'net_g_1.{checkpoint_format}'
    assert stored_bands(weights) == ('B04', 'B03', 'B02', 'B01')
    assert 'bands: B04 B03 B02 B01' in describe_checkpoint(weights)

    kwargs = {k: v for k, v in opt['network_g'].items() if k != 'type'}
    assert isinstance(load_model(arch='MSRResNet', arch_kwargs=kwargs, weights=str(weights)), MSRResNet)
    caplog.set_level(logging.INFO, logger='rssr')
    scene = tmp_path / 'data' / 'LQ' / 'a.tif'  # described B01..B04: read as bands 4, 3, 2, 1
    argv = ['--arch', 'MSRResNet', '--arch-kwargs', str(kwargs), '--weights', str(weights), '--input', str(scene),
            '--device', 'cpu', '--out-dtype', 'float32']
    assert infer.main([*argv, '--output', str(tmp_path / 'sr.tif')]) == 0
    assert f'the bands the checkpoint {weights} takes (B04, B03, B02, B01): reading bands 4, 3, 2, 1' in caplog.text
    with rasterio.open(tmp_path / 'sr.tif') as dst:
        assert dst.descriptions == ('B04', 'B03', 'B02', 'B01')
    with pytest.raises(SystemExit) as stop:
        infer.main([*argv, '--output', str(tmp_path / 'sr2.tif'), '--bands', '1,2,3,4'])
    assert stop.value.code == 2 and not (tmp_path / 'sr2.tif').exists()
    assert f'but the checkpoint {weights} takes them in the order B04, B03, B02, B01' in capsys.readouterr().err
