"""The option files rssr ships (options/**/*.yml) pass the option checker, and a typo put into any of
their keys, at any level, is refused with the typo named (issue 24).

Problems are read from ``OptionsError.problems`` (dotted key, kind, sentence), never parsed back out of
the paragraph the user reads."""
from __future__ import annotations

import copy
import re
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Tuple

import pytest
import yaml

import rssr  # noqa: F401  (registries filled)
from rssr.basicsr.options import OptionProblem, OptionsError, ProblemKind, check_options
from testkit import REPO

BUNDLED = sorted(str(p.relative_to(REPO)) for p in (REPO / 'options').rglob('*.yml'))
CONVMAMBASR_X2 = 'options/train/ConvMambaSR/train_ConvMambaSR_x2_RSSCN7_bic.yml'
EXAMPLE_4BAND = 'options/train/examples/sentinel2_4band_x4_convformersr.yml'
NOT_SHIPPED = re.compile(r'datasets\.\w+\.(dataroot_\w+|meta_info_file)|path\.pretrain_network_\w+')
USER_NAMED = (('datasets',), ('val', 'metrics'))  # phase and metric names are the user's, not option keys


def is_train(path: str) -> bool:
    return '/test/' not in path


def problems_of(path: str) -> Tuple[OptionProblem, ...]:
    """The problems ``check_options`` reports for ``path`` (none when it passes); warnings are ignored."""
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try:
            check_options(path, is_train=is_train(path))
        except OptionsError as err:
            assert all(f'({i}) {p.message}' in str(err) for i, p in enumerate(err.problems, 1)), str(err)
            return err.problems
    return ()


def with_typo(source: str, section: Tuple[str, ...], key: str, typo: str, folder: Path) -> str:
    """A copy of the bundled file ``source`` (in ``folder``) whose ``key`` under ``section`` is renamed ``typo``,
    in place, so the file keeps its order; returns its path."""
    opt = yaml.safe_load((REPO / source).read_text(encoding='utf-8'))
    mapping = opt
    for part in section:
        mapping = mapping[part]
    renamed = {(typo if name == key else name): value for name, value in mapping.items()}
    assert typo in renamed, f'{source} has no {".".join(section + (key,))}'
    mapping.clear()
    mapping.update(renamed)
    path = folder / Path(source).name
    path.write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    return str(path)


@pytest.mark.parametrize('path', BUNDLED)
def test_every_bundled_option_file_passes_the_checks(path, monkeypatch):
    """Only what is not shipped may be reported (datasets scripts/prepare_*.py makes, weights a recipe trains),
    and no key warns."""
    monkeypatch.chdir(REPO)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        problems = problems_of(path)
        check_warnings = [str(w.message) for w in caught if str(w.message).startswith('rssr:')]
    assert all(p.kind is ProblemKind.MISSING_PATH and NOT_SHIPPED.fullmatch(p.key) for p in problems), \
        [p.message for p in problems]
    assert not check_warnings


@pytest.mark.parametrize('source, section, key, typo', [
    (CONVMAMBASR_X2, '', 'manual_seed', 'manul_seed'),
    (CONVMAMBASR_X2, '', 'model_type', 'model_typ'),  # a required key
    (CONVMAMBASR_X2, 'datasets.train', 'gt_size', 'gt_szie'),
    (CONVMAMBASR_X2, 'datasets.val', 'name', 'nmae'),
    (CONVMAMBASR_X2, 'datasets.train.io_backend', 'type', 'typ'),
    (CONVMAMBASR_X2, 'network_g', 'embed_dim', 'embed_dimm'),  # ConvMambaSR takes **kwargs
    (CONVMAMBASR_X2, 'network_g', 'type', 'tpye'),
    (CONVMAMBASR_X2, 'path', 'strict_load_g', 'strict_lod_g'),
    (CONVMAMBASR_X2, 'path', 'pretrain_network_g', 'pretrain_network_gg'),  # read as pretrain_<network>
    (CONVMAMBASR_X2, 'train', 'total_iter', 'total_iters'),
    (CONVMAMBASR_X2, 'train', 'ema_decay', 'ema_decy'),
    (CONVMAMBASR_X2, 'train.optim_g', 'weight_decay', 'weight_decy'),
    (CONVMAMBASR_X2, 'train.scheduler', 'milestones', 'milestone'),
    (CONVMAMBASR_X2, 'train.pixel_opt', 'reduction', 'reducton'),
    (CONVMAMBASR_X2, 'val', 'val_freq', 'val_frq'),
    (CONVMAMBASR_X2, 'val.metrics.psnr', 'test_y_channel', 'test_y_chanel'),  # calculate_psnr takes **kwargs
    (CONVMAMBASR_X2, 'logger', 'save_checkpoint_freq', 'save_checkpoint_frq'),
    (CONVMAMBASR_X2, 'dist_params', 'backend', 'bakend'),
    (EXAMPLE_4BAND, 'band_normalization', 'residual', 'residul'),
])
def test_typo_of_each_kind_of_key_is_refused_naming_it(source, section, key, typo, tmp_path, monkeypatch):
    monkeypatch.chdir(REPO)
    sections = tuple(section.split('.')) if section else ()
    path = with_typo(source, sections, key, typo, tmp_path)
    dotted = '.'.join(sections + (typo,))
    named = [p for p in problems_of(path) if p.key == dotted]
    assert named and named[0].kind is ProblemKind.UNKNOWN_KEY, problems_of(path)
    assert typo in named[0].message and f'did you mean {key!r}' in named[0].message, named[0].message


def _keys(mapping: Any, section: Tuple[str, ...] = ()) -> Iterator[Tuple[Tuple[str, ...], str]]:
    if isinstance(mapping, dict):
        for key, value in mapping.items():
            yield section, key
            yield from _keys(value, section + (key,))


def _kind_of(section: Tuple[str, ...]) -> Tuple[str, ...]:
    """``datasets.train`` and ``datasets.val`` are one kind of section, as are the metrics."""
    for user_named in USER_NAMED:
        if section[:len(user_named)] == user_named and len(section) > len(user_named):
            return user_named + ('*',) + section[len(user_named) + 1:]
    return section


def test_a_typo_of_every_key_the_bundled_files_use_is_refused(tmp_path, monkeypatch):
    """Each (section kind, key) of every bundled file, once, with its last letter doubled."""
    monkeypatch.chdir(REPO)
    seen, missed = set(), []
    for source in BUNDLED:
        opt: Dict[str, Any] = yaml.safe_load((REPO / source).read_text(encoding='utf-8'))
        for section, key in _keys(copy.deepcopy(opt)):
            if section in USER_NAMED or (_kind_of(section), key) in seen:
                continue
            seen.add((_kind_of(section), key))
            typo = key + key[-1]
            path = with_typo(source, section, key, typo, tmp_path)
            dotted = '.'.join(section + (typo,))
            if not any(p.key == dotted and p.kind is ProblemKind.UNKNOWN_KEY and repr(key) in p.message
                       for p in problems_of(path)):
                missed.append(f'{source}: {dotted}')
    assert len(seen) > 100 and not missed, missed


def test_problems_ending_in_a_question_stay_apart_in_the_message(tmp_path, monkeypatch):
    """Two typos: each is its own numbered sentence, the '?' of the first ends it."""
    monkeypatch.chdir(REPO)
    path = with_typo(CONVMAMBASR_X2, ('logger',), 'print_freq', 'print_frq', tmp_path)
    opt = yaml.safe_load(Path(path).read_text(encoding='utf-8'))
    opt['datasets']['train']['gt_szie'] = opt['datasets']['train'].pop('gt_size')
    Path(path).write_text(yaml.safe_dump(opt, sort_keys=False), encoding='utf-8')
    with pytest.raises(OptionsError) as raised:
        check_options(path)
    typos: List[OptionProblem] = [p for p in raised.value.problems if p.kind is ProblemKind.UNKNOWN_KEY]
    assert [p.key for p in typos] == ['datasets.train.gt_szie', 'logger.print_frq']
    message = str(raised.value)
    numbers = {p.key: raised.value.problems.index(p) + 1 for p in typos}
    assert (f"({numbers['datasets.train.gt_szie']}) datasets.train.gt_szie is not an option of dataset type "
            f"PairedImageDataset; did you mean 'gt_size'? ({numbers['datasets.train.gt_szie'] + 1}) ") in message
    assert f"({numbers['logger.print_frq']}) logger.print_frq is not an option" in message
