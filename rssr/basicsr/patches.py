"""Every replacement rssr makes inside BasicSR 1.4.2: one ordered table, each entry with its reason.

Entries apply at one of two moments:

* ``IMPORT``: when the bridge connects rssr to BasicSR (:func:`rssr.basicsr.import_hook.activate_bridge`), in
  any process that imports both: what code written against BasicSR needs from rssr (aliases, lists of paths).
* ``CLI``: once at the start of ``python -m rssr.train`` / ``rssr.test`` (:func:`rssr.basicsr.startup.run`),
  so that importing rssr never changes how another project's BasicSR pipeline runs.

Nothing else in rssr assigns into BasicSR (``tests/basicsr/test_patches.py`` holds this). Applying is
idempotent: an attribute that already holds the replacement this table put there is left alone, so a
wrapper is never wrapped twice. The ``build_dataset`` guard wraps each dataset it builds that is not rssr's in
:class:`guards.GuardedItems` (an instance wrapper, not a change to its class) to explain failed item reads.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Tuple

from rssr.basicsr import compat, distributed, guards, registration

IMPORT, CLI = 'import', 'cli'


@dataclass(frozen=True)
class Patch:
    """``targets`` (``'module:attribute'`` or ``'module:Object.attribute'``) get ``replace(owner, original)``
    (``original`` None where BasicSR lacks the attribute) at ``stage``, for ``reason``."""

    stage: str
    targets: Tuple[str, ...]
    replace: Callable[[Any, Any], Any]
    reason: str


def _registry_targets(attribute: str) -> Tuple[str, ...]:
    names = ('ARCH', 'LOSS', 'METRIC', 'DATASET', 'MODEL')
    return tuple(f'basicsr.utils.registry:{name}_REGISTRY.{attribute}' for name in names)


PATCHES: Tuple[Patch, ...] = (
    Patch(IMPORT, _registry_targets('get'), lambda owner, _: registration.GetWithAliases(owner),
          "rssr's aliases (official class names such as SMSR) resolve in BasicSR's registries without taking a name "
          'another package may register'),
    *(Patch(IMPORT, (f'basicsr.utils.matlab_functions:{name}',), functools.partial(compat.color_function_of_1_3, name),
            'BasicSR 1.4 moved the colour conversions to color_util; projects written for 1.3 (HAT) import them '
            'from matlab_functions') for name in compat.COLOR_FUNCTIONS_MOVED_IN_1_4),
    Patch(IMPORT, ('basicsr.utils.options:osp',), lambda owner, _: compat.ListAwarePath(),
          "BasicSR's option parser expands ~ in dataroot_* with os.path.expanduser, a TypeError on the list of "
          'scenes SceneDegradationDataset takes'),
    Patch(CLI, ('basicsr.utils.dist_util:init_dist', 'basicsr.utils.options:init_dist'),
          lambda owner, _: distributed.init_dist,
          'init_dist sets a CUDA device (ZeroDivisionError on the CPU) and always uses NCCL: gloo without CUDA'),
    Patch(CLI, ('basicsr.train:load_resume_state',),
          lambda owner, _: guards.load_resume_state_checked(distributed.load_resume_state),
          'the resume state maps to the device this rank trains on (not cuda.current_device), hands its data '
          'position to the sampler, and an unreadable state or one of another run is named'),
    Patch(CLI, ('basicsr.train:EnlargedSampler',), lambda owner, _: distributed.resumable_sampler,
          'a resumed run continues its epoch at the batch it stopped at, with the random state saved there'),
    Patch(CLI, ('basicsr.train:build_dataloader',), lambda owner, original: distributed.with_low_priority_workers(
          original), 'DataLoader workers start at a lower priority so they do not starve the training process'),
    Patch(CLI, ('basicsr.models.base_model:BaseModel.model_to_device',), lambda owner, _: distributed.model_to_device,
          'DDP gets device_ids only on CUDA, so net_g and net_d train under gloo on the CPU too'),
    Patch(CLI, ('basicsr.models.sr_model:SRModel.dist_validation',), lambda owner, _: distributed.validate_on_rank_zero,
          'validation on rank 0 through the DDP-wrapped network broadcasts on one rank alone (gloo fails, NCCL '
          'hangs): rank 0 validates the unwrapped networks while the others wait'),
    Patch(CLI, ('basicsr.data:build_dataset', 'basicsr.train:build_dataset', 'basicsr.test:build_dataset'),
          lambda owner, original: guards.guard_build_dataset(original),
          'unpaired folders, missing files, LMDB mistakes and empty datasets are named, not a ZeroDivisionError, '
          'and a failed item read names its file (GuardedItems); the pipelines imported build_dataset by name, so '
          'each module holds it'),
    Patch(CLI, ('basicsr.models.sr_model:SRModel.feed_data',), lambda owner, original: guards.feed_data_checked(
          original), "a batch with another band count than network_g's is refused naming both; the batch is noted "
          'for out-of-memory messages'),
    Patch(CLI, ('basicsr.models.base_model:BaseModel.load_network',),
          lambda owner, original: guards.load_network_explained(original),
          "a checkpoint that cannot be read or is another network's names the option key, the file and the keys"),
    Patch(CLI, ('basicsr.models.base_model:BaseModel.save_network',), lambda owner, _: guards.save_network,
          "checkpoints are written through rssr's one save path (atomic, rank 0, a failed save stops the run)"),
    Patch(CLI, ('basicsr.models.base_model:BaseModel.save_training_state',),
          lambda owner, _: guards.save_training_state,
          'training states are written atomically on rank 0; a failed save stops the run'),
)

_applied: Dict[str, Any] = {}  # target -> the replacement this table put there


def _owner(target: str) -> Tuple[Any, str]:
    module, _, path = target.partition(':')
    owner: Any = importlib.import_module(module)
    *objects, attribute = path.split('.')
    for name in objects:
        owner = getattr(owner, name)
    return owner, attribute


def apply_patches(stage: str) -> None:
    """Apply the entries of ``stage`` in table order (idempotent)."""
    for patch in PATCHES:
        if patch.stage != stage:
            continue
        made: List[Tuple[Any, Any]] = []  # (original, replacement): a function imported into several modules
        for target in patch.targets:  # gets one replacement, not one wrapper each
            owner, attribute = _owner(target)
            original = getattr(owner, attribute, None)
            if target in _applied and original is _applied[target]:
                continue
            replacement = next((new for old, new in made if old is original and old is not None), None)
            if replacement is None:
                replacement = patch.replace(owner, original)
                made.append((original, replacement))
            _applied[target] = replacement
            setattr(owner, attribute, replacement)
