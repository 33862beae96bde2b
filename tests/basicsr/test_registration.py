"""rssr enters BasicSR's registries whenever BasicSR is imported (before or after rssr), idempotently, never
shadowing BasicSR's names; its plain-torch packages import without BasicSR."""
import importlib
import os
import subprocess
import sys
import textwrap

import pytest

from testkit import REPO

REGISTRIES_FILLED = '''
from basicsr.utils import registry as theirs
from rssr import registry as ours
pairs = [(ours.ARCHS, theirs.ARCH_REGISTRY), (ours.LOSSES, theirs.LOSS_REGISTRY),
         (ours.METRICS, theirs.METRIC_REGISTRY), (ours.DATASETS, theirs.DATASET_REGISTRY),
         (ours.MODELS, theirs.MODEL_REGISTRY)]
for rssr_registry, basicsr_registry in pairs:
    missing = [name for name, obj in rssr_registry if basicsr_registry._obj_map.get(name) is not obj]
    assert not missing and rssr_registry.names(), (rssr_registry.kind, missing)
assert theirs.MODEL_REGISTRY.get('RSSRModel') and theirs.ARCH_REGISTRY.get('SMSR').__name__ == 'RepMamba'
from basicsr.utils.matlab_functions import rgb2ycbcr
'''
COMPAT_WITHOUT_RSSR = f'''
import importlib.util
spec = importlib.util.spec_from_file_location('compat', {str(REPO / 'rssr' / 'basicsr' / 'compat.py')!r})
compat = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compat)
compat.install()
'''


def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter (import order matters); fail with its output if it fails."""
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    done = subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_import_basicsr_then_rssr_fills_the_registries():
    run_python(COMPAT_WITHOUT_RSSR + '''
import sys
import basicsr
assert 'rssr' not in sys.modules
import rssr
''' + REGISTRIES_FILLED)


def test_rssr_without_basicsr_then_hat_style_import_fills_the_registries_parses_scene_lists_imports_twice(tmp_path):
    """One fresh interpreter, checks in order: rssr's plain-torch packages and ``import rssr`` (twice) import no
    BasicSR and install one import hook; then, HAT-style, ``from basicsr.train import train_pipeline`` as the
    first BasicSR import fills the registries; BasicSR's option parser takes a list of scenes as dataroot_gt;
    importing rssr again, re-registering and re-activating the bridge is harmless."""
    options = tmp_path / 'list.yml'
    options.write_text("name: lists\nmodel_type: RSSRModel\nscale: 4\nnum_gpu: 0\npath: {}\nnetwork_g: {type: EDSR}\n"
                       "datasets:\n  test:\n    name: s\n    type: SceneDegradationDataset\n"
                       "    dataroot_gt: [~/a.tif, b.tif]\n")
    run_python('''
import sys
import rssr.archs, rssr.layers, rssr.ops, rssr.utils, rssr.zoo
assert 'basicsr' not in sys.modules, 'importing rssr.archs imported basicsr'
import importlib, rssr
importlib.reload(rssr)  # twice before BasicSR: one import hook, not two
assert 'basicsr' not in sys.modules and rssr.list_models()
assert 'rssr.preparation' not in sys.modules, 'import rssr loads the scripts-only preparation helpers'
assert sum(type(finder).__name__ == 'BasicSRImportHook' for finder in sys.meta_path) == 1
from basicsr.train import train_pipeline
assert rssr.registry.MODELS.get('RSSRModel') is rssr.basicsr.models.sr_model.RSSRModel
''' + REGISTRIES_FILLED + f'''
import importlib, os, sys
from basicsr.utils.options import parse_options
sys.argv = ['test.py', '-opt', {str(options)!r}]
opt, _ = parse_options({str(tmp_path)!r}, is_train=False)
assert opt['datasets']['test']['dataroot_gt'] == [os.path.expanduser('~/a.tif'), 'b.tif'], opt['datasets']
import rssr.basicsr.registration as registration
importlib.reload(rssr)
registration.register_all()
rssr.basicsr.import_hook.activate_bridge()
assert not any(type(finder).__name__ == 'BasicSRImportHook' for finder in sys.meta_path)
''' + REGISTRIES_FILLED)


def basicsr_registry(name: str):
    """One of BasicSR's registries, imported after rssr (whose import hook installs BasicSR's shims)."""
    import rssr  # noqa: F401

    return getattr(importlib.import_module('basicsr.utils.registry'), name)


def test_later_registrations_reach_basicsr():
    from rssr.registry import MODELS

    model_registry = basicsr_registry('MODEL_REGISTRY')

    class LateModel:
        pass

    MODELS.register(LateModel)
    try:
        assert model_registry.get('LateModel') is LateModel
    finally:
        del MODELS._objects['LateModel'], model_registry._obj_map['LateModel']


def test_conflict_names_both_objects():
    from rssr.basicsr.registration import RegistryConflictError, register_all
    from rssr.registry import LOSSES

    loss_registry = basicsr_registry('LOSS_REGISTRY')

    class L1Loss:  # a different object under BasicSR's own name
        pass

    LOSSES._objects['L1Loss'] = L1Loss
    try:
        with pytest.raises(RegistryConflictError, match=r"L1Loss.*basicsr\.losses.*test_registration"):
            register_all()
    finally:
        del LOSSES._objects['L1Loss']
    assert loss_registry.get('L1Loss').__module__.startswith('basicsr')
