"""scripts/prepare_*.py recipes on synthetic class folders and the bundled Sentinel-2 crops."""
import importlib.util
import sys

import cv2
import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

import rssr  # noqa: F401
from testkit import REPO, SENTINEL2

from basicsr.utils.matlab_functions import imresize


def recipe(name):
    spec = importlib.util.spec_from_file_location(name, REPO / 'scripts' / f'{name}.py')
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module.main


def class_folders(root, classes, per_class, size):
    """Class folders of small JPEG crops of the Sentinel-2 RGB PNG (real texture)."""
    source = cv2.imread(str(SENTINEL2 / 'train_rgb.png'))
    for c in range(classes):
        (root / f'class{c}').mkdir(parents=True)
        for i in range(per_class):
            offset = 37 * (c * per_class + i)
            cv2.imwrite(str(root / f'class{c}' / f'img{i:02d}.jpg'), source[offset:offset + size, offset:offset + size])
    return root


def names(folder):
    return sorted(p.name for p in folder.iterdir())


def test_aid_recipe_centre_crops_and_splits_per_class_reproducibly(tmp_path):
    src = class_folders(tmp_path / 'AID', classes=2, per_class=5, size=60)
    args = ['--input', str(src), '--scales', '2', '3', '--crop', '48', '--train-per-class', '3',
            '--test-per-class', '1', '--seed', '7']
    prepare_aid = recipe('prepare_aid')
    prepare_aid(args + ['--output', str(tmp_path / 'a')])
    prepare_aid(args + ['--output', str(tmp_path / 'b')])
    out = tmp_path / 'a'
    assert len(names(out / 'train' / 'HR')) == 6 and len(names(out / 'test' / 'HR')) == 2
    assert names(out / 'test' / 'HR') == names(tmp_path / 'b' / 'test' / 'HR')
    assert {n.split('_')[0] for n in names(out / 'test' / 'HR')} == {'class0', 'class1'}
    name = names(out / 'test' / 'HR')[0]
    hr = cv2.imread(str(out / 'test' / 'HR' / name))
    stem = name[len('class0_'):-4]
    original = cv2.imread(str(src / name.split('_')[0] / f'{stem}.jpg'))
    np.testing.assert_array_equal(hr, original[6:54, 6:54])  # the 48 x 48 centre of 60 x 60
    lr = cv2.imread(str(out / 'test' / 'LR_bicubic' / 'X2' / name))
    expected = imresize(torch.from_numpy(hr[..., ::-1].transpose(2, 0, 1).astype(np.float32)), 0.5)
    np.testing.assert_array_equal(lr[..., ::-1].transpose(2, 0, 1), expected.numpy().round().clip(0, 255))
    assert cv2.imread(str(out / 'test' / 'LR_bicubic' / 'X3' / name)).shape == (16, 16, 3)
    assert not (out / 'test' / 'HR_X3').exists()


def test_rsscn7_recipe_keeps_val_per_class_and_mod_crops_for_odd_scales(tmp_path):
    src = class_folders(tmp_path / 'RSSCN7', classes=2, per_class=4, size=40)
    recipe('prepare_rsscn7')(['--input', str(src), '--output', str(tmp_path / 'out'), '--scales', '3',
                              '--val-per-class', '1'])
    out = tmp_path / 'out'
    assert len(names(out / 'val' / 'HR')) == 2 and len(names(out / 'train' / 'HR')) == 6
    name = names(out / 'val' / 'HR')[0]
    assert cv2.imread(str(out / 'val' / 'HR_X3' / name)).shape == (39, 39, 3)
    assert cv2.imread(str(out / 'val' / 'LR_bicubic' / 'X3' / name)).shape == (13, 13, 3)


def test_test_set_recipe_draws_a_seeded_subset(tmp_path):
    src = class_folders(tmp_path / 'NWPU', classes=3, per_class=2, size=40)
    recipe('prepare_test_sets')(['--dataset', 'nwpu', '--input', str(src), '--output', str(tmp_path / 'out'),
                                 '--scales', '4', '--count', '4', '--crop', '32'])
    hr = names(tmp_path / 'out' / 'test' / 'HR')
    assert len(hr) == 4 and all(cv2.imread(str(tmp_path / 'out' / 'test' / 'HR' / n)).shape == (32, 32, 3) for n in hr)


def test_tiling_recipe_keeps_georeference_bands_and_splits_by_source(tmp_path):
    src = tmp_path / 'scenes'
    src.mkdir()
    (src / 'val_B02_B03_B04_B08.tif').symlink_to(SENTINEL2 / 'val_B02_B03_B04_B08.tif')
    (src / 'train_B02_B03_B04_B08.tif').symlink_to(SENTINEL2 / 'train_B02_B03_B04_B08.tif')
    recipe('prepare_tiles')(['--dataset', 'potsdam', '--input', str(src), '--output', str(tmp_path / 'out'),
                             '--scales', '4', '--tile', '128', '--val-names', 'val_B02_B03_B04_B08',
                             '--bands', '3', '2', '1', '4'])
    out = tmp_path / 'out'
    assert len(names(out / 'train' / 'HR')) == 16 and len(names(out / 'val' / 'HR')) == 4
    with rasterio.open(SENTINEL2 / 'val_B02_B03_B04_B08.tif') as source:
        transform, expected = source.transform, source.read([3, 2, 1, 4], window=((128, 256), (0, 128)))
    with rasterio.open(out / 'val' / 'HR' / 'val_B02_B03_B04_B08_s003.tif') as tile:
        assert tile.descriptions == ('B04', 'B03', 'B02', 'B08') and tile.dtypes[0] == 'uint16'
        assert tile.transform == transform @ Affine.translation(0, 128)
        np.testing.assert_array_equal(tile.read(), expected)
    with rasterio.open(out / 'val' / 'LR_bicubic' / 'X4' / 'val_B02_B03_B04_B08_s003.tif') as lr:
        assert lr.shape == (32, 32) and lr.transform == transform @ Affine.translation(0, 128) @ Affine.scale(4)


def test_df2k_recipe_aligns_lr_sub_images_with_hr_sub_images(tmp_path):
    src = tmp_path / 'DF2K_HR'
    src.mkdir()
    cv2.imwrite(str(src / '0001.png'), cv2.imread(str(SENTINEL2 / 'val_rgb.png'))[:150, :130])
    recipe('prepare_df2k')(['--input', str(src), '--output', str(tmp_path / 'out'), '--crop', '64', '--step', '32',
                            '--qualities', '10'])
    out = tmp_path / 'out' / 'train'
    hr_names = names(out / 'HR')
    assert hr_names == names(out / 'LR_bicubic' / 'X4') == names(out / 'LR_q10')
    assert len(hr_names) == 4 * 3  # rows 0, 32, 64, 84; cols 0, 32, 64 (148 x 128 after mod-crop)
    full_lr = imresize(torch.from_numpy(cv2.imread(str(src / '0001.png'))[:148, :128].astype(np.float32)
                                        .transpose(2, 0, 1)), 0.25).numpy().round().clip(0, 255)
    last = cv2.imread(str(out / 'LR_bicubic' / 'X4' / hr_names[-1]))
    np.testing.assert_array_equal(last.transpose(2, 0, 1), full_lr[:, 21:37, 16:32])
    with pytest.raises(ValueError, match='must be multiples of scale 4'):
        recipe('prepare_df2k')(['--input', str(src), '--output', str(tmp_path / 'x'), '--crop', '66'])


@pytest.mark.parametrize('dtype,nodata', [('uint16', 65535), ('float32', None)])
def test_tiling_recipe_keeps_nodata_and_nan_as_nodata_in_hr_and_lr(tmp_path, dtype, nodata):
    from testkit import smooth_dn, write_geotiff
    dn = smooth_dn(4, 64, 64).astype(dtype)
    dn[1, 10:14, 20:26] = np.nan if nodata is None else nodata  # one band only
    write_geotiff(tmp_path / 'scenes' / 'scene.tif', dn, nodata=nodata)
    recipe('prepare_tiles')(['--dataset', 'other', '--input', str(tmp_path / 'scenes'), '--output',
                             str(tmp_path / 'out'), '--scales', '4', '--tile', '64'])
    hole = np.zeros((64, 64), bool)
    hole[10:14, 20:26] = True
    with rasterio.open(tmp_path / 'out' / 'train' / 'HR' / 'scene_s001.tif') as hr:
        written, tag = hr.read(), hr.nodata
    same = np.isnan if nodata is None else (lambda a: a == nodata)
    assert (np.isnan(tag) if nodata is None else tag == nodata)
    assert same(written[:, hole]).all() and not same(written[:, ~hole]).any()
    np.testing.assert_array_equal(written[:, ~hole], dn[:, ~hole])
    with rasterio.open(tmp_path / 'out' / 'train' / 'LR_bicubic' / 'X4' / 'scene_s001.tif') as lr:
        lr_nodata = same(lr.read())
    assert lr_nodata[:, 2:4, 5:7].all()  # LR pixels over the hole, and every band of them
    assert (lr_nodata.all(axis=0) == lr_nodata.any(axis=0)).all() and 6 <= lr_nodata[0].sum() < 16 * 16 / 2
