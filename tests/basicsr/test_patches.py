"""The patch table (rssr.basicsr.patches): every replacement rssr makes in BasicSR is an entry with its reason,
applying it is idempotent, and no other rssr module assigns into BasicSR."""
from __future__ import annotations

import ast

import pytest

import rssr  # noqa: F401  (first: the shims BasicSR needs)
from rssr.basicsr import distributed, guards, patches
from testkit import REPO

import basicsr.train
from basicsr.models.base_model import BaseModel
from basicsr.models.sr_model import SRModel
from basicsr.utils import matlab_functions, options
from basicsr.utils.registry import ARCH_REGISTRY


@pytest.fixture
def restored(monkeypatch):
    """Every target of the table is put back after the test (the suite shares one BasicSR)."""
    monkeypatch.setattr(patches, '_applied', dict(patches._applied))
    for patch in patches.PATCHES:
        for target in patch.targets:
            owner, attribute = patches._owner(target)
            monkeypatch.setattr(owner, attribute, getattr(owner, attribute))


def test_every_entry_has_a_stage_a_reason_and_targets_that_exist():
    assert [p.stage for p in patches.PATCHES] == sorted(p.stage for p in patches.PATCHES)[::-1]  # import first
    for patch in patches.PATCHES:
        assert patch.stage in (patches.IMPORT, patches.CLI) and len(patch.reason) > 40
        for target in patch.targets:
            owner, attribute = patches._owner(target)
            assert hasattr(owner, attribute), target
    targets = [t for p in patches.PATCHES for t in p.targets]
    assert len(targets) == len(set(targets)), 'each BasicSR attribute is replaced by one entry'


def test_import_entries_are_in_place_after_import_rssr():
    assert isinstance(vars(ARCH_REGISTRY)['get'], patches.registration.GetWithAliases)
    assert matlab_functions.rgb2ycbcr is not None
    assert options.osp.expanduser(['~/a', '~/b']) == [options.osp.expanduser('~/a'), options.osp.expanduser('~/b')]


def test_cli_entries_apply_in_order_and_once(restored):
    patches.apply_patches(patches.CLI)
    first = {target: patches._owner(target) for p in patches.PATCHES for target in p.targets}
    values = {target: getattr(owner, attribute) for target, (owner, attribute) in first.items()}
    patches.apply_patches(patches.CLI)
    assert {target: getattr(owner, attribute) for target, (owner, attribute) in first.items()} == values
    assert basicsr.train.EnlargedSampler is distributed.resumable_sampler
    assert BaseModel.save_network is guards.save_network
    assert SRModel.dist_validation is distributed.validate_on_rank_zero
    assert basicsr.train.build_dataset is basicsr.data.build_dataset  # one guard, in each module that imported it
    assert basicsr.train.load_resume_state.__wrapped__ is distributed.load_resume_state  # replaced and checked once
    assert basicsr.train.build_dataloader.lowers_worker_priority


def _assignments_into_basicsr(path, base=REPO):
    """'line: target' of every assignment (or setattr) to an attribute of a name bound by a basicsr import."""
    tree = ast.parse(path.read_text(encoding='utf-8'))
    bound = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            bound |= {(a.asname or a.name).split('.')[0] for a in node.names if a.name.split('.')[0] == 'basicsr'}
        elif isinstance(node, ast.ImportFrom) and (node.module or '').split('.')[0] == 'basicsr':
            bound |= {a.asname or a.name for a in node.names}

    def root(node):
        while isinstance(node, ast.Attribute):
            node = node.value
        return node.id if isinstance(node, ast.Name) else None

    found = []
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, ast.AugAssign) else [node.args[0]] if isinstance(node, ast.Call) and getattr(
            node.func, 'id', None) == 'setattr' and node.args else []
        found += [f'{path.relative_to(base)}:{node.lineno}' for target in targets
                  if (isinstance(target, ast.Attribute) or isinstance(node, ast.Call)) and root(target) in bound]
    return found


def test_no_module_but_the_table_assigns_into_basicsr():
    sources = [path for path in (REPO / 'rssr').rglob('*.py') if path.name != 'patches.py']
    assert [hit for path in sources for hit in _assignments_into_basicsr(path)] == []


def test_the_check_finds_an_assignment(tmp_path):
    source = tmp_path / 'x.py'
    source.write_text('import basicsr.train\nfrom basicsr.models import sr_model\nlocal = object()\n'
                      'basicsr.train.f = 1\nsetattr(sr_model.SRModel, "g", 2)\nlocal.h = 3\n')
    assert _assignments_into_basicsr(source, tmp_path) == ['x.py:4', 'x.py:5']
