"""bfloat16 CPU inference: close to float32 where the CPU has native bfloat16, refused (with the reason) where not."""
import numpy as np
import pytest
import rasterio

from rssr import infer
from rssr.inference import InferenceError, OutputOptions, TilingOptions, precision, super_resolve_scene
from testkit import SENTINEL2, LocalNet

SCENE = SENTINEL2 / 'val_B02_B03_B04_B08.tif'

TILING = TilingOptions(tile=48, overlap=16, margin=4)


def super_resolved(tmp_path, amp, name):
    out = super_resolve_scene(LocalNet(), SCENE, tmp_path / name, radiometry_preset='sentinel2', amp=amp,
                              device='cpu', tiling=TILING, output=OutputOptions(dtype='float32'), progress=False)
    with rasterio.open(out) as dst:
        return dst.read()


def test_bf16_on_a_cpu_with_native_bf16_is_close_to_float32(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: True)
    float32 = super_resolved(tmp_path, None, 'fp32.tif')
    bf16 = super_resolved(tmp_path, 'bf16', 'bf16.tif')
    difference = np.abs(bf16 - float32)
    assert 0 < difference.max() < 0.02 * np.abs(float32).max()  # bfloat16 keeps 8 bits of mantissa


@pytest.mark.parametrize('amp,native,message', [
    ('bf16', False, 'no native bfloat16 instructions'),
    ('fp16', True, '--amp fp16 runs on GPUs only'),
])
def test_amp_the_cpu_cannot_run_well_is_refused_before_any_output(tmp_path, monkeypatch, amp, native, message):
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: native)
    with pytest.raises(InferenceError, match=message):
        super_resolved(tmp_path, amp, 'sr.tif')
    assert not list(tmp_path.iterdir())


def test_cli_refuses_bf16_without_native_bf16(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(precision, 'cpu_has_native_bf16', lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        infer.main(['--model', 'convmambasr_s2_x4', '--input', str(SCENE), '--output', str(tmp_path / 'sr.tif'),
                    '--device', 'cpu', '--amp', 'bf16'])
    assert exit_info.value.code == 2
    assert 'Run without --amp' in capsys.readouterr().err
    assert not (tmp_path / 'sr.tif').exists()
