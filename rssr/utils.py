"""Small helpers used across rssr, written once: name suggestions, YAML files, autocast dtypes,
qualified names and size pairs. Plain Python/torch: importing this module never imports BasicSR."""
from __future__ import annotations

import difflib
import os
from typing import TYPE_CHECKING, Any, Callable, Iterable, List, Sequence, Tuple, Union

import torch

if TYPE_CHECKING:
    import yaml

AUTOCAST_DTYPES = {'bf16': torch.bfloat16, 'fp16': torch.float16}
"""The ``amp`` spellings rssr accepts (train options, ``rssr.infer --amp``) and their dtypes."""


def closest_names(name: str, candidates: Iterable[str], n: int = 3) -> List[str]:
    """The candidates closest to ``name`` (case-insensitive), best first; empty when none is close."""
    lowered = {candidate.lower(): candidate for candidate in sorted(set(map(str, candidates)))}
    return [lowered[match] for match in difflib.get_close_matches(str(name).lower(), list(lowered), n=n, cutoff=0.6)]


def did_you_mean(name: str, candidates: Iterable[str]) -> str:
    """``"; did you mean 'a' or 'b'?"`` for the names closest to ``name``, or ``''`` when none is close;
    meant to be appended to an error message."""
    close = closest_names(name, candidates)
    return f'; did you mean {" or ".join(repr(c) for c in close)}?' if close else ''


def as_sentence(text: str) -> str:
    """``text`` ended by a full stop, unless it already ends a sentence (``did you mean 'x'?``), so that
    messages listed one after the other stay apart."""
    return text if text.endswith(('.', '?', '!')) else f'{text}.'


def qualified_name(obj: Any) -> str:
    """``module.QualName`` of a class or function (what an error should name when two objects collide)."""
    return f'{getattr(obj, "__module__", "?")}.{getattr(obj, "__qualname__", repr(obj))}'


def to_2tuple(value: Union[int, Sequence[int]]) -> Tuple[int, int]:
    """``(value, value)`` for an int, the (height, width) pair itself otherwise."""
    if isinstance(value, int):
        return value, value
    height, width = value
    return int(height), int(width)


def read_yaml_file(path: str, what: str, error: Callable[[str], Exception]) -> Any:
    """Parse the YAML file ``path`` (``what`` names it in messages, e.g. ``'option file'``); a missing,
    unreadable or malformed file raises ``error(message)`` with the line and column of a syntax error."""
    import yaml  # here, not at the top: the archs import this module and need only torch

    if not os.path.isfile(path):
        raise error(f'{what} {path} does not exist (looked in {os.getcwd()})')
    try:
        with open(path, encoding='utf-8') as handle:
            return yaml.safe_load(handle)
    except yaml.YAMLError as err:
        raise error(f'{what} {path} is not valid YAML{yaml_error_location(err)}: {yaml_problem(err)}. Check the '
                    f'indentation (spaces only) and the `key: value` syntax there') from None
    except (OSError, UnicodeDecodeError) as err:
        raise error(f'cannot read {what} {path}: {err}') from None


def yaml_error_location(err: yaml.YAMLError) -> str:
    """``' at line L, column C'`` of a YAML syntax error, or ``''`` when PyYAML gives no position."""
    mark = getattr(err, 'problem_mark', None)
    return f' at line {mark.line + 1}, column {mark.column + 1}' if mark else ''


def yaml_problem(err: yaml.YAMLError) -> str:
    """The one-line description of a YAML syntax error."""
    return getattr(err, 'problem', None) or ' '.join(str(err).split())
