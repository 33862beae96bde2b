"""``python -m rssr.info``: what this machine gives rssr (versions, kernels, scan backends, names).

Paste its output into bug reports. ``python -m rssr.info --weights net_g.pth`` describes a checkpoint
instead (parameter groups and the band normalisation stored with it); ``--model NAME`` a zoo model card.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import platform
import sys
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch

import rssr
from rssr.ops.mlstm import PARALLEL_MAX_LENGTH
from rssr.ops.selective_scan import (
    FUSED_BACKENDS,
    ScanBackendUnavailable,
    ScanBackendWarning,
    backend_status,
    resolve_backend,
)
from rssr.registry import ARCHS, DATASETS, LOSSES, METRICS, MODELS


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return 'not installed'


def _importable(module: str) -> str:
    try:
        importlib.import_module(module)
        return 'yes'
    except Exception as error:  # a CUDA extension built for another torch raises OSError/RuntimeError
        return f'no ({type(error).__name__}: {str(error).splitlines()[0][:90]})'


def _devices() -> List[str]:
    return ['cpu'] + (['cuda'] if torch.cuda.is_available() else [])


def scan_backends() -> List[Tuple[str, str]]:
    """(device, backend the Mamba archs use there) for the CPU and, if present, CUDA."""
    rows = []
    for device in _devices():
        try:
            with warnings.catch_warnings():  # scan_backend_usability() says why a backend is skipped
                warnings.simplefilter('ignore', ScanBackendWarning)
                backend, _ = resolve_backend(torch.empty(1, 1, 1, device=device))
        except (ScanBackendUnavailable, ValueError) as error:
            backend = f'error: {error}'
        rows.append((device, backend))
    return rows


def scan_backend_usability() -> str:
    """One line per device and fused backend: usable, or why not (never a traceback)."""
    lines = []
    for device in _devices():
        for backend in FUSED_BACKENDS:
            status = backend_status(backend, device)
            lines.append(f'{device} {backend}: {"usable" if status.usable else "not usable"} ({status.reason})')
    return '\n    ' + '\n    '.join(lines + ['torch, reference: usable on every device'])


def kernels_per_model() -> str:
    """One line per zoo model: the sequence kernels it runs and which implementation runs them here."""
    scan = ', '.join(f'{device}: {backend}' for device, backend in scan_backends())
    implementations = {'selective_scan': f'selective_scan ({scan})',
                       'mlstm': f'mlstm (parallel up to {PARALLEL_MAX_LENGTH} tokens, chunkwise above)'}
    lines = []
    for name in rssr.list_models():
        kernels = '; '.join(implementations.get(kernel, kernel) for kernel in rssr.model_card(name).kernels)
        lines.append(f'{name}: {kernels or "convolutions/attention only"}')
    return '\n    ' + '\n    '.join(lines)


def report() -> Dict[str, object]:
    """Everything ``python -m rssr.info`` prints, as a dict."""
    return {
        'rssr': rssr.__version__,
        'python': platform.python_version(),
        'platform': platform.platform(),
        'torch': torch.__version__,
        'torch CUDA build': torch.version.cuda or 'none',
        'CUDA available': f'{torch.cuda.is_available()}' + (
            f' ({torch.cuda.get_device_name(0)})' if torch.cuda.is_available() else ''),
        'torchvision': _version('torchvision'),
        'basicsr': _version('basicsr'),
        'basicsr importable': _importable('basicsr'),  # imports it: rssr's model classes join the registry
        'triton': _version('triton'),
        'mamba_ssm importable': _importable('mamba_ssm.ops.selective_scan_interface'),
        'causal_conv1d importable': _importable('causal_conv1d'),
        'selective-scan backends': scan_backend_usability(),
        'sequence kernels per zoo model': kernels_per_model(),
        'zoo models': ', '.join(rssr.list_models()),
        'archs': ', '.join(ARCHS.names()),
        'losses': ', '.join(LOSSES.names()),
        'metrics': ', '.join(METRICS.names()),
        'datasets': ', '.join(DATASETS.names()),
        'models': ', '.join(MODELS.names()),
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='python -m rssr.info', description=__doc__.splitlines()[0])
    parser.add_argument('--weights', help='describe this checkpoint (.pth/.safetensors) instead')
    parser.add_argument('--model', help='print the card of this zoo model instead')
    args = parser.parse_args(argv)
    if args.weights or args.model:
        from rssr.checkpoint import CheckpointError, describe_checkpoint
        from rssr.zoo import describe_card
        try:
            print(describe_checkpoint(args.weights) if args.weights else describe_card(args.model))
        except (CheckpointError, KeyError) as err:
            print(f'rssr.info: error: {err.args[0] if err.args else err}', file=sys.stderr)
            return 2
        return 0
    entries = report()
    width = max(map(len, entries))
    for key, value in entries.items():
        print(f'{key:<{width}}  {value}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
