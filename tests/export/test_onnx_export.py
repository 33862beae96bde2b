"""ONNX export (python -m rssr.export): every arch and the shipped models run in onnxruntime as in torch, the
Deepness contract (metadata, DN / 255 in, output scaling 255) replayed on real Sentinel-2 DN, and
``rssr.infer --onnx`` through the tiler against the torch path. Each model is exported once per session."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Dict, Tuple

import numpy as np
import pytest
import rasterio
import torch
from torch import nn

import rssr
from rssr.export import main as export_main
from rssr.infer import main as infer_main
from rssr.inference import scene as scene_module
from rssr.inference.tiling import TileGrid
from rssr.io import resolve_radiometry
from rssr.onnx_export import ExportResult, export_onnx, parity
from testkit import REPO, smooth_dn, write_geotiff

onnxruntime = pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')

TILE = 16
COMPACT = {  # small enough to export in seconds; each keeps its arch's scan kind and upsampler
    'convformersr': dict(embed_dim=16, depths=[1], num_heads=[2], mlp_ratio=2., num_block=1),
    'convmambasr': dict(embed_dim=30, depths=[1], RCG_num=1, d_state=4, mlp_ratio=1.),
    'lstmconvsr': dict(embed_dim=16, depths=[1], CNN_num=1, mlp_ratio=2.),
    'mambacsr': dict(embed_dim=24, d_state=4, depths=[1], depths2=[1], mlp_ratio=1.),
    'repmamba': dict(depths=[1], num_heads=[1], mlp_ratio=1.),
}
SHIPPED = [name for name in rssr.list_models() if rssr.model_card(name).weights]
S2_VAL = REPO.parent / 'shared' / 'data' / 'sentinel2_eastern_shore' / 'val_B02_B03_B04_B08.tif'


def _arch(name: str) -> nn.Module:
    torch.manual_seed(0)
    return rssr.create_model(name, **COMPACT[name]).eval()


@pytest.fixture(scope='module')
def arch_exports(tmp_path_factory) -> Dict[str, Tuple[nn.Module, ExportResult]]:
    folder = tmp_path_factory.mktemp('archs')
    exports = {}
    for name in COMPACT:
        model = _arch(name)
        radiometry = resolve_radiometry('float32', rssr.model_card(name).in_chans)
        exports[name] = model, export_onnx(model, folder / f'{name}.onnx', tile=TILE, radiometry=radiometry,
                                           card_fields=dict(bands=(), radiometry=None, band_normalization={},
                                                            model=name))
    return exports


@pytest.mark.parametrize('name', list(COMPACT))
def test_every_arch_exports_and_matches_torch(arch_exports, name):
    model, result = arch_exports[name]
    assert result.exporter == 'torchscript'  # every arch traces (the dynamo fallback takes 10-50x longer)
    radiometry = resolve_radiometry('float32', rssr.model_card(name).in_chans)
    inputs = [torch.rand(1, rssr.model_card(name).in_chans, TILE, TILE, generator=torch.Generator().manual_seed(s))
              for s in (1, 2)]
    assert parity(result.path, model, 'rssr', radiometry, inputs) <= 1e-4
    session = onnxruntime.InferenceSession(str(result.path), providers=['CPUExecutionProvider'])
    assert [i.shape for i in session.get_inputs()] == [[1, rssr.model_card(name).in_chans, TILE, TILE]]
    assert session.get_outputs()[0].shape[-2:] == [TILE * model.output_scale] * 2


@pytest.fixture(scope='module')
def shipped_exports(tmp_path_factory) -> Dict[Tuple[str, str], Path]:
    """Each shipped model exported by the CLI at tile 16 for Deepness, the first one also for rssr.infer --onnx."""
    folder = tmp_path_factory.mktemp('shipped')
    files = {}
    for name, convention in [(name, 'deepness') for name in SHIPPED] + [(SHIPPED[0], 'rssr')]:
        files[name, convention] = folder / f'{name}_{convention}.onnx'
        assert export_main(['--model', name, '--tile', str(TILE), '--output', str(files[name, convention]),
                            '--input-convention', convention]) == 0
    return files


@pytest.mark.parametrize('name', SHIPPED)
def test_shipped_models_match_torch_and_carry_the_deepness_metadata(shipped_exports, name):
    from rssr.basicsr.loading import load_model

    model = load_model(zoo_name=name)
    radiometry = resolve_radiometry('uint16', 4, preset='sentinel2')
    dn = [torch.from_numpy(smooth_dn(4, TILE, TILE, seed=s).astype(np.float32))[None] for s in (0, 1)]
    for convention, inputs in (('deepness', [x / 255 for x in dn]), ('rssr', [x * 1e-4 for x in dn])):
        if (name, convention) in shipped_exports:  # rssr: reflectance; deepness: DN / 255 (outputs ~0..16)
            assert parity(shipped_exports[name, convention], model, convention, radiometry, inputs) <= 1e-4
    path = shipped_exports[name, 'deepness']
    metadata = onnxruntime.InferenceSession(str(path)).get_modelmeta().custom_metadata_map
    assert json.loads(metadata['model_type']) == 'Superresolution'
    assert json.loads(metadata['resolution']) == 1000.0 and json.loads(metadata['tile_size']) == TILE
    assert json.loads(metadata['tiles_overlap']) == 0
    card = json.loads(metadata['rssr'])
    assert card['bands'] == ['B02', 'B03', 'B04', 'B08'] and card['scale'] == 4
    assert card['radiometry']['preset'] == 'sentinel2' and card['rssr_version'] == rssr.__version__
    assert card['band_normalization']['mode'] == 'image' and card['band_normalization']['residual'] == 'bicubic'
    assert card['input_convention'] == 'deepness'


def _infer(tmp: Path, scene: Path, name: str, *flags: str) -> np.ndarray:
    output = tmp / f'{name}.tif'
    assert infer_main(['--input', str(scene), '--output', str(output), '--radiometry', 'sentinel2', '--device', 'cpu',
                       *flags]) == 0
    with rasterio.open(output) as src:
        return src.read()


def test_infer_onnx_equals_the_torch_path_within_one_dn(shipped_exports, tmp_path, monkeypatch):
    """Tiling (several overlapping 16-pixel tiles), nodata and georeferencing as in the torch path. The
    torch path runs on the ONNX model's grid of square exported tiles (it would otherwise plan other tile
    shapes, whose seams differ by more than 1 DN)."""
    monkeypatch.setattr(scene_module, 'plan_tiles', lambda height, width, tile, overlap, align, multiple:
                        TileGrid(height, width, tile, tile, overlap, align))
    name = SHIPPED[0]
    dn = smooth_dn(4, 36, 28)
    dn[:, 5:9, 20:24] = 0  # nodata
    scene = write_geotiff(tmp_path / 'scene.tif', dn, nodata=0, descriptions=['B02', 'B03', 'B04', 'B08'])
    tiling = ('--overlap', '8', '--margin', '2')
    torch_dn = _infer(tmp_path, scene, 'torch', '--model', name, '--tile', str(TILE), *tiling)
    for convention in ('rssr', 'deepness'):
        onnx_dn = _infer(tmp_path, scene, convention, '--onnx', str(shipped_exports[name, convention]), *tiling)
        assert np.abs(onnx_dn.astype(np.int64) - torch_dn).max() <= 1
        assert (onnx_dn[:, 20:36, 80:96] == 0).all()  # the nodata footprint, x4
    with rasterio.open(tmp_path / 'torch.tif') as a, rasterio.open(tmp_path / 'rssr.tif') as b:
        assert (a.transform, a.crs, a.descriptions, a.nodata) == (b.transform, b.crs, b.descriptions, b.nodata)


def _deepness_replay(path: Path, dn: np.ndarray) -> np.ndarray:
    """Deepness's Superresolution processing of one tile (PUTvision/qgis-plugin-deepness, model_base.py and
    map_processor_superresolution.py): layer values (H, W, C) / 255 as float32, NCHW, one run, output[0],
    NaN -> 0, times the output scaling (default 255)."""
    session = onnxruntime.InferenceSession(str(path), providers=['CPUExecutionProvider'])
    assert len(session.get_inputs()) == 1  # Deepness refuses more
    tile = np.float32(dn.transpose(1, 2, 0)[None] * (1. / 255.)).transpose(0, 3, 1, 2)
    result = session.run(None, {session.get_inputs()[0].name: tile})[0][0]
    result[np.isnan(result)] = 0
    return result * 255.0


@pytest.mark.parametrize('name', SHIPPED)
def test_deepness_replay_on_real_sentinel2_equals_rssr_infer(shipped_exports, tmp_path, name):
    with rasterio.open(S2_VAL) as src:
        dn = src.read(window=((40, 40 + TILE), (60, 60 + TILE)))  # one Deepness tile of real uint16 DN
    crop = write_geotiff(tmp_path / 'crop.tif', dn, nodata=None, descriptions=['B02', 'B03', 'B04', 'B08'])
    replayed = _deepness_replay(shipped_exports[name, 'deepness'], dn)
    reference = _infer(tmp_path, crop, 'torch', '--model', name, '--tile', str(TILE), '--overlap', '8', '--margin', '2')
    assert replayed.shape == reference.shape == (4, 4 * TILE, 4 * TILE)
    assert np.abs(np.round(replayed) - reference).max() <= 1
    assert 200 < float(np.median(replayed)) < 4000  # reflectance DN, not DN / 255
