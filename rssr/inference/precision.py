"""Reduced-precision inference: autocast, and on the CPU only where it computes bfloat16 natively.

On a GPU ``amp='bf16'`` or ``'fp16'`` autocasts as in training. On the CPU only bfloat16 is offered,
and only where the CPU has bfloat16 instructions (x86: AVX512-BF16 or AMX-BF16; Arm: the BF16
extension): elsewhere oneDNN emulates it and the network runs slower than in float32, so rssr refuses
with a message rather than run slower and less precise. The selective scans stay float32 inside.
"""
from __future__ import annotations

import contextlib
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import ContextManager, Optional

import torch

from rssr.errors import InferenceError
from rssr.utils import AUTOCAST_DTYPES

NATIVE_BF16_FLAGS = frozenset({'avx512_bf16', 'amx_bf16', 'bf16'})  # /proc/cpuinfo: x86 flags, Arm features


@lru_cache(maxsize=None)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU has bfloat16 arithmetic instructions (Linux: /proc/cpuinfo; macOS: sysctl)."""
    cpuinfo = Path('/proc/cpuinfo')
    if cpuinfo.exists():
        words = set()
        for line in cpuinfo.read_text(errors='replace').splitlines():
            key, _, value = line.partition(':')
            if key.strip() in ('flags', 'Features'):
                words.update(value.split())
        return bool(words & NATIVE_BF16_FLAGS)
    if platform.system() == 'Darwin':
        answer = subprocess.run(['sysctl', '-n', 'hw.optional.arm.FEAT_BF16'], capture_output=True, text=True)
        return answer.stdout.strip() == '1'
    return False


def check_amp(device: torch.device, amp: Optional[str]) -> None:
    """Refuse an ``amp`` the device cannot run well: an unknown name, float16 on the CPU, or bfloat16 on a
    CPU without native bfloat16."""
    if amp is None:
        return
    if amp not in AUTOCAST_DTYPES:
        raise InferenceError(f"amp must be None, {' or '.join(map(repr, AUTOCAST_DTYPES))}; got {amp!r}.")
    if device.type != 'cpu':
        return
    if amp != 'bf16':
        raise InferenceError(f'--amp {amp} runs on GPUs only; on the CPU use --amp bf16 (where the CPU has native '
                             f'bfloat16) or float32 (no --amp).')
    if not cpu_has_native_bf16():
        raise InferenceError('--amp bf16 on this CPU: it has no native bfloat16 instructions (AVX512-BF16, AMX or '
                             'Arm BF16), so bfloat16 would be emulated, slower than float32 and less precise. Run '
                             'without --amp.')


def autocast(device: torch.device, amp: Optional[str]) -> ContextManager:
    """Autocast to ``amp`` on ``device`` (checked by :func:`check_amp`); no-op for None."""
    check_amp(device, amp)
    if amp is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[amp])


__all__ = ['NATIVE_BF16_FLAGS', 'autocast', 'check_amp', 'cpu_has_native_bf16']
