"""The network checkpoint formats a run can save (``logger.checkpoint_format``), read by the model that saves
them, the resume logic that finds them and the option checker that validates the key."""
from __future__ import annotations

from typing import Any, Dict

CHECKPOINT_FORMATS = {'pth': '.pth', 'safetensors': '.safetensors'}
"""``logger.checkpoint_format`` value -> file suffix of the saved networks."""
DEFAULT_CHECKPOINT_FORMAT = 'pth'


def checkpoint_format(opt: Dict[str, Any]) -> Any:
    """The ``logger.checkpoint_format`` of the options (``pth`` when not set), as written."""
    return (opt.get('logger') or {}).get('checkpoint_format', DEFAULT_CHECKPOINT_FORMAT)


def checkpoint_suffix(opt: Dict[str, Any]) -> str:
    """File suffix of the network checkpoints a run saves."""
    return CHECKPOINT_FORMATS[checkpoint_format(opt)]
