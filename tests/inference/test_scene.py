"""Scene inference: tiled == whole image for local nets, no seams, georeference kept, clean failures."""
import math
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine
from rasterio.windows import Window
from torch import nn

from rssr import infer
from rssr.inference import InferenceError, OutputOptions, TilingOptions, super_resolve_scene
from rssr.inference.scene import scene_tile_grid
from rssr.inference.tiling import TileGrid, blend_weights, plan_tiles, tile_count, tile_starts
from rssr.io import RasterError, read_raster
from rssr.layers.padding import SizeRequirements
from testkit import REPO, LocalNet

SENTINEL2_VAL = REPO / 'datasets' / 'sentinel2_demo' / 'val_B02_B03_B04_B08.tif'
FLOAT_OUT = OutputOptions(dtype='float32')


def sentinel2_crop(path: Path, height: int = 70, width: int = 90, nodata=None) -> Path:
    """A georeferenced crop of the bundled Sentinel-2 val GeoTIFF."""
    with rasterio.open(SENTINEL2_VAL) as src:
        window = Window(17, 23, width, height)
        dn = src.read(window=window)
        profile = dict(src.profile, height=height, width=width, transform=src.window_transform(window), nodata=nodata,
                       tiled=False)
        descriptions = src.descriptions
    if nodata is not None:
        dn[:, 5:15, 10:30] = nodata
    with rasterio.open(path, 'w', **profile) as dst:
        dst.write(dn)
        for band, text in enumerate(descriptions, start=1):
            dst.set_band_description(band, text)
    return path


def whole_image(model: nn.Module, path: Path) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(read_raster(path).values)[None])[0].numpy()


def test_blend_weights_cover_every_pixel_and_vanish_in_margins():
    grid = TileGrid(70, 90, tile_height=32, tile_width=32, overlap=16)
    total = np.zeros((140, 180))
    for tile in grid:
        weights = blend_weights(tile, grid, scale=2, margin=4)
        total[tile.top * 2:(tile.top + tile.height) * 2, tile.left * 2:(tile.left + tile.width) * 2] += weights
        if tile.left > 0:
            assert np.all(weights[:, :8] == 0)
    assert total.min() > 0


def fewest_tiles(length: int, tile: int, overlap: int, align: int) -> int:
    """Brute force: the fewest tiles covering ``length`` with overlaps >= ``overlap``, starts but the last aligned."""
    last, reached, count = length - tile, {0}, 1
    while last not in reached:
        reached = {start for first in reached for start in range(first + 1, first + tile - overlap + 1)
                   if start == last or (start % align == 0 and start < last)}
        count += 1
    return count


@pytest.mark.parametrize('length,tile,overlap,align', [(4096, 256, 32, 32), (1000, 256, 32, 32), (70, 32, 16, 1),
                                                       (300, 256, 32, 32), (333, 64, 8, 16), (10980, 256, 32, 32),
                                                       (5490, 256, 32, 32), (512, 272, 32, 32), (1000, 100, 20, 32),
                                                       (700, 77, 13, 8)])
def test_tile_starts_cover_with_overlap_align_to_output_blocks_and_are_fewest(length, tile, overlap, align):
    starts = tile_starts(length, tile, overlap, align)
    assert starts[0] == 0 and starts[-1] == length - tile
    assert all(0 < b - a <= tile - overlap for a, b in zip(starts, starts[1:]))
    assert all(start % align == 0 for start in starts[:-1])
    assert len(starts) == tile_count(length, tile, overlap, align)
    if length <= 1000:
        assert len(starts) == fewest_tiles(length, tile, overlap, align)
    if (tile - overlap) % align == 0:  # 49 tiles across a Sentinel-2 tile
        assert len(starts) == math.ceil((length - tile) / (tile - overlap)) + 1


@pytest.mark.parametrize('height,width,tile,overlap,align,multiple',
                         [(512, 512, 256, 32, 32, 1), (300, 700, 128, 32, 32, 2), (70, 90, 32, 16, 1, 1),
                          (90, 333, 48, 8, 16, 4), (100, 60, 256, 32, 32, 1)])
def test_planned_tiles_cover_the_scene_within_the_budget_with_the_fewest_pixels(height, width, tile, overlap, align,
                                                                                 multiple):
    grid = plan_tiles(height, width, tile, overlap, align, multiple)
    covered = np.zeros((height, width), int)
    for t in grid:
        assert t.height * t.width <= tile * tile
        covered[t.top:t.top + t.height, t.left:t.left + t.width] += 1
    assert covered.min() >= 1
    for starts, size, length in ((grid.row_starts, grid.tile_height, height),
                                 (grid.col_starts, grid.tile_width, width)):
        assert size == length or (size % multiple == 0 and all(0 < b - a <= size - overlap
                                                               for a, b in zip(starts, starts[1:])))
    assert grid.forwarded_pixels == sum(t.height * t.width for t in grid)

    def pixels(length: int, size: int) -> int:
        return tile_count(length, size, overlap, align) * min(size, length)

    shapes = [(h, w) for h in range(min(overlap + align, height), height + 1)
              for w in range(min(overlap + align, width), width + 1)
              if min(h, height) * min(w, width) <= tile * tile
              and (h == height or h % multiple == 0) and (w == width or w % multiple == 0)]
    assert grid.forwarded_pixels == min(pixels(height, h) * pixels(width, w) for h, w in shapes)


def test_archs_that_need_square_inputs_get_square_tiles_of_the_budget():
    tiling = TilingOptions(tile=64, overlap=16, margin=4)
    grid = scene_tile_grid(100, 300, tiling, SizeRequirements(multiple_of=2, square=True, power_of_two=True))
    assert (grid.tile_height, grid.tile_width) == (64, 64)
    assert scene_tile_grid(100, 300, tiling, SizeRequirements(multiple_of=8)).tile_width % 8 == 0


def test_a_512_scene_takes_six_tiles_and_a_sentinel2_tile_49_by_49():
    grid = plan_tiles(512, 512, 256, 32, 32)
    assert len(grid) == 6 and grid.forwarded_pixels / 512 ** 2 < 1.2  # 3 x 3 tiles of 256 sent 2.25x
    grid = plan_tiles(10980, 10980, 256, 32, 32)
    assert (grid.tile_height, grid.tile_width, len(grid)) == (256, 256, 49 * 49)


def test_tiled_equals_whole_image_without_seams(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif')
    model = LocalNet()
    tiling = TilingOptions(tile=32, overlap=16, margin=4, batch_size=3)
    out = super_resolve_scene(model, source, tmp_path / 'sr.tif', tiling=tiling, output=FLOAT_OUT, progress=False)
    with rasterio.open(out) as dst:
        tiled = dst.read()
    whole = whole_image(model, source)
    assert tiled.shape == whole.shape == (4, 140, 180)
    assert np.abs(tiled - whole).max() < 1e-5
    # Seams: the jump across each inner tile border equals the whole image's jump there.
    grid = scene_tile_grid(70, 90, tiling, SizeRequirements())
    assert len(grid) > 1 and grid.tile_height != grid.tile_width  # a planned, non-square layout
    for start in grid.col_starts[1:]:
        for col in (start * 2, (start + 16) * 2):
            assert np.abs(np.diff(tiled[..., col - 1:col + 1]) - np.diff(whole[..., col - 1:col + 1])).max() < 1e-5


def test_geotiff_round_trip_keeps_georeference_bands_and_nodata(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif', nodata=0)
    out = super_resolve_scene(LocalNet(), source, tmp_path / 'sr.tif', radiometry_preset='sentinel2',
                              tiling=TilingOptions(tile=48, overlap=16, margin=4), progress=False)
    with rasterio.open(source) as src, rasterio.open(out) as dst:
        assert dst.crs == src.crs
        assert dst.transform == src.transform @ Affine.scale(0.5)
        assert (dst.height, dst.width, dst.count) == (140, 180, 4)
        assert dst.descriptions == ('B02', 'B03', 'B04', 'B08') and dst.nodata == 0 and dst.dtypes[0] == 'uint16'
        sr, lr = dst.read(), src.read()
        assert dst.profile['compress'] == 'deflate' and dst.profile['tiled']
    nodata_lr = np.all(lr == 0, axis=0)
    nodata_sr = np.all(sr == 0, axis=0)
    assert np.array_equal(nodata_sr, np.repeat(np.repeat(nodata_lr, 2, 0), 2, 1))
    # Away from nodata (LocalNet sees 2 LR pixels around each, and nodata is filled before it runs) the output
    # DN are the network's output on the reflectance (DN / 10000), scaled back and rounded: to 1 DN.
    with torch.no_grad():
        expected = LocalNet()(torch.from_numpy(lr.astype(np.float32) / 10000)[None])[0].double().numpy() * 10000
    near_nodata = torch.nn.functional.max_pool2d(torch.from_numpy(nodata_lr).float()[None, None], 5, 1, 2)[0, 0] > 0
    far = np.repeat(np.repeat(~near_nodata.numpy(), 2, 0), 2, 1)
    assert far.sum() > 0.8 * far.size
    assert np.abs(sr[:, far].astype(np.float64) - np.clip(np.round(expected[:, far]), 0, 65535)).max() <= 1


def test_cloud_optimised_output(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif')
    out = super_resolve_scene(LocalNet(), source, tmp_path / 'sr.tif', tiling=TilingOptions(64, 16, 4),
                              output=OutputOptions(cog=True), progress=False)
    with rasterio.open(out) as dst:
        assert dst.tags(ns='IMAGE_STRUCTURE').get('LAYOUT') == 'COG'


def test_scene_smaller_than_tile_runs_as_one_tile(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif', height=20, width=30)
    model = LocalNet()
    out = super_resolve_scene(model, source, tmp_path / 'sr.tif', tiling=TilingOptions(256, 32, 8), output=FLOAT_OUT,
                              progress=False)
    with rasterio.open(out) as dst:
        assert np.abs(dst.read() - whole_image(model, source)).max() < 1e-5


def test_existing_output_is_refused_unless_overwrite(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif', height=20, width=20)
    (tmp_path / 'sr.tif').write_bytes(b'keep me')
    with pytest.raises(InferenceError, match='already exists.*overwrite'):
        super_resolve_scene(LocalNet(), source, tmp_path / 'sr.tif', progress=False)
    assert (tmp_path / 'sr.tif').read_bytes() == b'keep me'
    super_resolve_scene(LocalNet(), source, tmp_path / 'sr.tif', output=OutputOptions(overwrite=True), progress=False)
    assert rasterio.open(tmp_path / 'sr.tif').count == 4


def test_band_count_mismatch_names_both_counts(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif', height=20, width=20)
    with pytest.raises(InferenceError, match='takes 3 bands but 4 bands'):
        super_resolve_scene(LocalNet(bands=3), source, tmp_path / 'sr.tif', progress=False)


def test_unreadable_raster_is_named(tmp_path):
    (tmp_path / 'broken.tif').write_bytes(b'not a tiff at all')
    with pytest.raises(RasterError, match='broken.tif'):
        super_resolve_scene(LocalNet(), tmp_path / 'broken.tif', tmp_path / 'sr.tif', progress=False)


@pytest.mark.parametrize('threads, device, workers, tile', [(1, 'cpu', 1, 256), (2, 'cpu', 1, 256), (4, 'cpu', 2, 181),
                                                           (16, 'cpu', 4, 128), (8, 'cuda', 1, 256)])
def test_default_tiles_share_one_budget_among_the_workers(monkeypatch, threads, device, workers, tile):
    """By default the tiles in flight hold about 256 x 256 LR pixels at any thread count (one worker per two
    threads, at most 4), one worker on a GPU; explicit values are kept."""
    monkeypatch.setattr(torch, 'get_num_threads', lambda: threads)
    resolved = TilingOptions().for_device(torch.device(device))
    assert (resolved.workers, resolved.tile) == (workers, tile)
    assert resolved.workers * resolved.tile ** 2 <= 256 ** 2
    explicit = TilingOptions(tile=100, workers=3).for_device(torch.device('cpu'))
    assert (explicit.workers, explicit.tile) == (3, 100)


def test_tiles_on_worker_threads_give_the_sequential_output(tmp_path):
    source = sentinel2_crop(tmp_path / 'lr.tif')
    model = LocalNet()
    outputs = []
    threads = torch.get_num_threads()
    for workers in (1, 3):
        out = super_resolve_scene(model, source, tmp_path / f'sr_{workers}.tif', output=FLOAT_OUT, progress=False,
                                  tiling=TilingOptions(tile=32, overlap=16, margin=4, workers=workers))
        with rasterio.open(out) as dst:
            outputs.append(dst.read())
        assert torch.get_num_threads() == threads
    assert np.array_equal(outputs[0], outputs[1])


@pytest.mark.parametrize('workers', [1, 2])
def test_failure_midway_leaves_no_partial_output(tmp_path, workers):
    source = sentinel2_crop(tmp_path / 'lr.tif')

    class FailsOnThirdBatch(LocalNet):
        calls = 0

        def forward(self, x):
            type(self).calls += 1
            if self.calls > 3:
                raise RuntimeError('out of memory (simulated)')
            return super().forward(x)

    with pytest.raises(RuntimeError, match='simulated'):
        super_resolve_scene(FailsOnThirdBatch(), source, tmp_path / 'sr.tif', progress=False,
                            tiling=TilingOptions(32, 16, 4, batch_size=1, workers=workers))
    assert sorted(p.name for p in tmp_path.iterdir()) == ['lr.tif']


def test_cli_with_basicsr_arch_and_checkpoint(tmp_path, capsys):
    from basicsr.archs.edsr_arch import EDSR

    kwargs = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2, img_range=1.0,
                  rgb_mean=[0.1, 0.1, 0.1])
    model = EDSR(**kwargs)
    torch.save({'params_ema': model.state_dict()}, tmp_path / 'net_g.pth')
    source = sentinel2_crop(tmp_path / 'lr.tif')
    argv = ['--arch', 'EDSR', '--arch-kwargs', str(kwargs), '--weights', str(tmp_path / 'net_g.pth'),
            '--input', str(source), '--output', str(tmp_path / 'sr.tif'), '--tile', '40', '--overlap', '24',
            '--margin', '8', '--out-dtype', 'float32', '--device', 'cpu', '--bands', 'B04,B03,1']
    assert infer.main(argv) == 0
    with rasterio.open(tmp_path / 'sr.tif') as dst:
        assert dst.descriptions == ('B04', 'B03', 'B02')
        rgb = torch.from_numpy(read_raster(source, bands=[3, 2, 1]).values)[None]
        with torch.no_grad():
            assert np.abs(dst.read() - model.eval()(rgb)[0].numpy()).max() < 1e-4
    with pytest.raises(SystemExit) as exit_info:
        infer.main(argv)
    assert exit_info.value.code == 2 and 'already exists' in capsys.readouterr().err


def test_cli_folder_without_rasters(tmp_path, capsys):
    """A folder holding no raster is refused by name (with a network that loads, so the check is reached),
    and no output folder is left behind."""
    kwargs = {'num_in_ch': 4, 'num_out_ch': 4, 'num_feat': 4, 'num_block': 1, 'upscale': 2}
    from basicsr.archs.srresnet_arch import MSRResNet
    torch.save(MSRResNet(**kwargs).state_dict(), tmp_path / 'w.pth')
    (tmp_path / 'in').mkdir()
    (tmp_path / 'in' / 'notes.txt').write_text('not a raster')
    with pytest.raises(SystemExit) as exit_info:
        infer.main(['--arch', 'MSRResNet', '--arch-kwargs', str(kwargs), '--weights', str(tmp_path / 'w.pth'),
                    '--input', str(tmp_path / 'in'), '--output', str(tmp_path / 'out'), '--device', 'cpu'])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert 'No rasters (.tif, ' in err and f'in folder {tmp_path / "in"}' in err
    assert not (tmp_path / 'out').exists()
