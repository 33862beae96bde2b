"""Make BasicSR's own components fail with one paragraph naming the culprit, and never leave partial files.

BasicSR 1.4.2 fails deep inside on data and checkpoint mistakes: an empty folder ends in a
ZeroDivisionError, a corrupt image in ``'NoneType' object has no attribute 'astype'``, LQ/GT sizes
off the scale in "Scale mismatches" (training) or a metric's shape assertion (testing), a
checkpoint of another network in ``load_state_dict``'s key dump; and it saves checkpoints in place
(a run killed while saving leaves a truncated file) and ignores a failed save. The guards
(entries of the patch table :mod:`rssr.basicsr.patches`, applied only inside rssr's CLIs) wrap, where they
fail:

* ``build_dataset``: unpaired GT/LQ folders, missing files (e.g. listed in a ``meta_info_file``), a
  folder that is not an LMDB and an empty dataset become a :class:`~rssr.errors.DataError` naming
  the folders and files; items of BasicSR's
  datasets are checked before they are read (LQ/GT sizes against ``scale``, from the headers) and a
  failed read names the file that cannot be decoded;
* ``SRModel.feed_data``: the batch's band count against the network's, and the batch noted for
  out-of-memory messages (:func:`rssr.errors.note_batch`);
* ``BaseModel.load_network``: an unreadable checkpoint or one of another network names the option
  key, the file and the differing keys (:mod:`rssr.checkpoint`);
* ``BaseModel.save_network`` / ``save_training_state``: written through a temporary file, a failed
  save stops the run naming the file;
* ``load_resume_state``: a ``resume_state`` of another run (whose network weights are not in this
  run's models folder).

Errors BasicSR raises for other reasons keep their traceback.
"""
from __future__ import annotations

import functools
import os
from collections import OrderedDict
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch

from rssr.basicsr.band_count import check_batch_band_count, network_type
from rssr.checkpoint import (
    BANDS_KEY,
    NORMALIZATION_KEY,
    CheckpointError,
    checkpoint_suffix,
    describe_mismatch,
    extract_state_dict,
    read_checkpoint,
    save_atomically,
    save_networks,
)
from rssr.data.transforms import check_pair_sizes, check_patch_fits
from rssr.errors import DataError, DataNotFoundError, UserError, note_batch
from rssr.io import RasterError, read_raster_info

GUARD_MARK = '_rssr_guarded'


def _guarded(function: Callable) -> Callable:
    setattr(function, GUARD_MARK, True)
    return function


def _is_guarded(function: Any) -> bool:
    return getattr(function, GUARD_MARK, False)


# ---- datasets -----------------------------------------------------------------------------------
def _dataset_name(opt: Dict[str, Any]) -> str:
    phase = f'{opt["phase"]} ' if opt.get('phase') else ''
    return f'dataset {phase}({opt.get("name", opt.get("type"))})'


def _folders(opt: Dict[str, Any]) -> List[Tuple[str, str]]:
    """(option key, folder) of the dataset's data roots."""
    return [(key, str(value)) for key, value in opt.items() if key.startswith('dataroot_') and value]


def _unpaired_files_message(opt: Dict[str, Any]) -> Optional[str]:
    """Which GT files have no LQ partner (and the reverse), as BasicSR's ``paired_paths_from_folder`` pairs
    them (same folder level, LQ name ``filename_tmpl.format(GT stem)`` + GT extension)."""
    gt_folder, lq_folder = opt.get('dataroot_gt'), opt.get('dataroot_lq')
    if not (gt_folder and lq_folder and os.path.isdir(gt_folder) and os.path.isdir(lq_folder)):
        return None
    template = opt.get('filename_tmpl', '{}')
    gt_names = sorted(entry.name for entry in os.scandir(gt_folder) if entry.is_file())
    lq_names = {entry.name for entry in os.scandir(lq_folder) if entry.is_file()}
    expected = {name: template.format(os.path.splitext(name)[0]) + os.path.splitext(name)[1] for name in gt_names}
    no_lq = [name for name in gt_names if expected[name] not in lq_names]
    no_gt = sorted(lq_names - set(expected.values()))
    if not no_lq and not no_gt:
        return None
    parts = [f'GT folder {gt_folder} and LQ folder {lq_folder} of {_dataset_name(opt)} do not pair up']
    if no_lq:
        parts.append(f'no LQ image for GT {", ".join(_first(no_lq))} (expected '
                     f'{", ".join(_first([expected[n] for n in no_lq]))} '
                     f"in the LQ folder, filename_tmpl '{template}')")
    if no_gt:
        parts.append(f'no GT image for LQ {", ".join(_first(no_gt))}')
    return '; '.join(parts) + '. Remove the unpaired files or fix filename_tmpl.'


def _first(names: List[str], limit: int = 5) -> List[str]:
    return names[:limit] + ([f'... ({len(names) - limit} more)'] if len(names) > limit else [])


def _lmdb_message(opt: Dict[str, Any], err: BaseException) -> str:
    folders = ', '.join(f'{key} {folder}' for key, folder in _folders(opt))
    return (f'{_dataset_name(opt)} reads io_backend lmdb from {folders}, which is not a readable LMDB ({err}). '
            f'An LMDB is a folder named *.lmdb holding data.mdb, lock.mdb and meta_info.txt, made by BasicSR\'s '
            f'scripts/data_preparation/create_lmdb.py; or read the image folders with io_backend: {{type: disk}}.')


def _is_lmdb_error(err: BaseException) -> bool:
    return type(err).__module__.split('.')[0] == 'lmdb'


def guard_build_dataset(build: Callable) -> Callable:
    """``build_dataset`` whose failures for unpaired folders, LMDBs and empty datasets name the folders."""
    if _is_guarded(build):
        return build

    @functools.wraps(build)
    def build_dataset(dataset_opt: Dict[str, Any]) -> Any:
        try:
            dataset = build(dataset_opt)
        except UserError:
            raise
        except Exception as err:
            unpaired = _unpaired_files_message(dataset_opt) if isinstance(err, AssertionError) else None
            if unpaired is not None:
                raise DataError(unpaired) from err
            reads_lmdb = (dataset_opt.get('io_backend') or {}).get('type') == 'lmdb'
            if reads_lmdb and (isinstance(err, (ValueError, OSError)) or _is_lmdb_error(err)):
                raise DataError(_lmdb_message(dataset_opt, err)) from err
            raise
        if len(dataset) == 0:
            folders = ', '.join(f'{key} {folder}' for key, folder in _folders(dataset_opt)) or 'its data roots'
            raise DataNotFoundError(f'{_dataset_name(dataset_opt)} is empty: no images in {folders}. Point the '
                                    f'dataroot options at folders holding the images (or fix meta_info_file).')
        _check_files_exist(dataset)
        return dataset if type(dataset).__module__.startswith('rssr.') else GuardedItems(dataset)

    return _guarded(build_dataset)


class GuardedItems(torch.utils.data.Dataset):
    """A dataset not from rssr (rssr's datasets check their files themselves) whose item reads are checked and
    explained: LQ/GT sizes against ``scale`` from the headers before an item is first read, and the file that
    cannot be decoded. It wraps the instance (every other attribute is the dataset's own), so BasicSR's classes
    stay as they are; it pickles with the dataset, so DataLoader workers run the checks too."""

    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset
        self.checked: set = set()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getattr__(self, name: str) -> Any:
        if name in ('dataset', 'checked'):  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.dataset, name)

    def __getitem__(self, index: int) -> Any:
        pair = _disk_pair(self.dataset, index)
        if pair is not None and index not in self.checked:
            _check_pair_headers(self.dataset.opt, *pair)
            self.checked.add(index)
        try:
            return self.dataset[index]
        except UserError:
            raise
        except Exception as err:
            if _is_lmdb_error(err):
                raise DataError(_lmdb_message(self.dataset.opt, err)) from err
            message = _unreadable_file_message(self.dataset, index)
            if message is None:
                raise
            raise DataError(message) from err


def _check_files_exist(dataset: Any) -> None:
    """Every file a BasicSR dataset on disk will read exists (its paths may come from a meta_info_file)."""
    if type(dataset).__module__.startswith('rssr.'):
        return
    missing = [path for index in range(len(dataset)) for path in _item_files(dataset, index)
               if not os.path.isfile(path)]
    if missing:
        meta_info_file = dataset.opt.get('meta_info_file')
        listed = f' (listed in meta_info_file {meta_info_file})' if meta_info_file else ''
        raise DataNotFoundError(f'{len(missing)} image files of {_dataset_name(dataset.opt)} do not exist{listed}: '
                                f'{", ".join(_first(missing))}. Fix the paths or the list, or restore the files.')


def _reads_disk(dataset: Any) -> bool:
    backend = getattr(dataset, 'io_backend_opt', None) or dataset.opt.get('io_backend') or {}
    return backend.get('type', 'disk') == 'disk'


def _item_files(dataset: Any, index: int) -> List[str]:
    """The files item ``index`` of a BasicSR dataset reads (``paths[index]``: a dict of ``*_path`` or a path)."""
    paths = getattr(dataset, 'paths', None)
    if not _reads_disk(dataset) or not isinstance(paths, list) or not 0 <= index < len(paths):
        return []
    entry = paths[index]
    if isinstance(entry, dict):
        return [str(value) for key, value in entry.items() if key.endswith('_path')]
    return [str(entry)] if isinstance(entry, (str, os.PathLike)) else []


def _disk_pair(dataset: Any, index: int) -> Optional[Tuple[str, str]]:
    paths = getattr(dataset, 'paths', None)
    if not _item_files(dataset, index) or 'scale' not in dataset.opt or not isinstance(paths[index], dict):
        return None
    entry = paths[index]
    return (entry['gt_path'], entry['lq_path']) if 'gt_path' in entry and 'lq_path' in entry else None


def _check_pair_headers(opt: Dict[str, Any], gt_path: str, lq_path: str) -> None:
    """LQ/GT sizes against ``scale`` and the training patch ``gt_size``, from the file headers (skipped when a
    header cannot be read: the read that follows then explains the file)."""
    try:
        gt, lq = read_raster_info(gt_path), read_raster_info(lq_path)
    except RasterError:
        return
    scale = int(opt['scale'])
    check_pair_sizes((gt.height, gt.width), (lq.height, lq.width), scale, gt_path, lq_path)
    check_patch_fits((lq.height, lq.width), opt.get('gt_size') if opt.get('phase') == 'train' else None, scale,
                     lq_path)


def _unreadable_file_message(dataset: Any, index: int) -> Optional[str]:
    """Which file of item ``index`` is missing or cannot be decoded by OpenCV (as BasicSR reads it)."""
    import cv2

    for path in _item_files(dataset, index):
        if not os.path.isfile(path):
            return f'{path} of {_dataset_name(dataset.opt)} does not exist (deleted while the run started?).'
        if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
            return (f'Cannot decode image {path} of {_dataset_name(dataset.opt)}: the file is damaged, truncated or '
                    f'not an image OpenCV reads (PNG, JPEG, TIFF, BMP, WebP). Replace or remove it (with its '
                    f'LQ/GT partner); multiband GeoTIFFs are read by type: MultibandPairedDataset.')
    return None


# ---- models -------------------------------------------------------------------------------------
def feed_data_checked(feed_data: Callable) -> Callable:
    """``SRModel.feed_data`` that refuses a batch with another band count than ``network_g`` takes
    (:func:`rssr.basicsr.band_count.check_batch_band_count`) and notes the batch for out-of-memory messages."""
    if _is_guarded(feed_data):
        return feed_data

    @functools.wraps(feed_data)
    def checked(self: Any, data: Dict[str, Any]) -> None:
        check_batch_band_count(self, data)
        note_batch(list(data.get('lq_path') or []), tuple(data['lq'].shape), network_type(self))
        feed_data(self, data)

    return _guarded(checked)


def _option_key(model: Any, path: str) -> str:
    key = next((k for k, v in (model.opt.get('path') or {}).items() if v == path), None)
    return f'path.{key}' if key else 'the checkpoint'


def load_network_explained(load_network: Callable) -> Callable:
    """``BaseModel.load_network`` whose failures name the option key, the file and how it differs."""
    if _is_guarded(load_network):
        return load_network

    @functools.wraps(load_network)
    def explained(self: Any, net: Any, load_path: str, strict: bool = True, param_key: Optional[str] = 'params'):
        try:
            return load_network(self, net, load_path, strict, param_key)
        except CheckpointError:
            raise
        except Exception as err:
            where = _option_key(self, load_path)
            try:
                checkpoint = read_checkpoint(load_path)
                key = param_key if param_key in checkpoint else ('params' if 'params' in checkpoint else None)
                state = extract_state_dict(checkpoint, key)
            except CheckpointError as unreadable:
                raise CheckpointError(f'{where}: {unreadable}') from err
            bare = self.get_bare_model(net)
            if dict(bare.state_dict()).keys() == state.keys() and all(
                    bare.state_dict()[k].shape == v.shape for k, v in state.items()):
                raise
            raise CheckpointError(f'{where}: ' + describe_mismatch(bare, state, f'{type(bare).__name__} <- '
                                                                   f'{load_path}')) from err

    return _guarded(explained)


@_guarded
def save_network(self: Any, net: Any, net_label: str, current_iter: int, param_key: Any = 'params') -> None:
    """``BaseModel.save_network`` of every model, rssr's and BasicSR's: ``{param_key: state_dict}`` (BasicSR's
    contents) in ``logger.checkpoint_format`` (.pth, or one .safetensors holding every param key), with the band
    normalisation and band names the model knows, through :func:`rssr.checkpoint.save_networks` (atomic). Rank
    0 writes (BasicSR writes the same file from every rank); a failed save stops the run instead of being
    logged and ignored."""
    from basicsr.utils.dist_util import get_dist_info

    if get_dist_info()[0] != 0:
        return
    nets = net if isinstance(net, list) else [net]
    keys = param_key if isinstance(param_key, list) else [param_key]
    if len(nets) != len(keys):
        raise ValueError('save_network needs one param_key per network.')
    groups = {key: OrderedDict((name[len('module.'):] if name.startswith('module.') else name, tensor.detach().cpu())
                               for name, tensor in self.get_bare_model(n).state_dict().items())
              for n, key in zip(nets, keys)}
    normalization = getattr(self, 'band_normalization', None)
    entries: Dict[str, Any] = {}
    if normalization is not None and not normalization.is_identity:
        entries[NORMALIZATION_KEY] = normalization.to_metadata()
    if getattr(self, 'band_names', ()):
        entries[BANDS_KEY] = list(self.band_names)
    label = 'latest' if current_iter == -1 else current_iter
    save_networks(groups, os.path.join(self.opt['path']['models'], f'{net_label}_{label}{checkpoint_suffix(self.opt)}'),
                  entries)


@_guarded
def save_training_state(self: Any, epoch: int, current_iter: int) -> None:
    """BasicSR's ``BaseModel.save_training_state`` (rank 0, same contents), written through a temporary file."""
    if current_iter == -1 or self.opt.get('rank', 0) != 0:
        return
    state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
             'schedulers': [s.state_dict() for s in self.schedulers]}
    save_atomically(state, os.path.join(self.opt['path']['training_states'], f'{current_iter}.state'))


def load_resume_state_checked(load_resume_state: Callable) -> Callable:
    """``load_resume_state`` that names an unreadable ``path.resume_state`` and one of another run."""
    if _is_guarded(load_resume_state):
        return load_resume_state

    @functools.wraps(load_resume_state)
    def checked(opt: Dict[str, Any]) -> Optional[Dict[str, Any]]:
        try:
            state = load_resume_state(opt)
        except Exception as err:
            path = opt['path'].get('resume_state')
            if not path:
                raise
            try:
                read_checkpoint(path)
            except CheckpointError as unreadable:
                newest = ' (the newest state: delete it and --auto_resume continues from the one before)'
                raise CheckpointError(f'path.resume_state{newest if opt.get("auto_resume") else ""}: '
                                      f'{unreadable}') from err
            raise
        if state is None:
            return None
        missing = [(key, value) for key, value in opt['path'].items()
                   if key.startswith('pretrain_network') and value and not os.path.isfile(value)]
        if missing:
            key, weights = missing[0]
            raise CheckpointError(
                f'path.resume_state {opt["path"]["resume_state"]} (iteration {state["iter"]}) needs the network '
                f'weights {weights} ({key}) saved with it, which do not exist: the state belongs to another run '
                f'(a different name:) or its models folder was deleted. Set name: to the run that saved the '
                f'state, or start from its weights with path.pretrain_network_g and no resume_state.')
        return state

    return _guarded(checked)
