"""onnxruntime against torch on the CPU for the shipped models, one tile at a time, interleaved in one process.

    OMP_NUM_THREADS=1 python scripts/benchmark_onnx.py [--tile 64] [--rounds 7] [--threads 1]

Each model is exported (``rssr.export``, input convention rssr) to a temporary file; then, per round, one
tile through torch (the model as ``rssr.infer`` runs it: band normalisation, network, bicubic residual) and
the same tile through onnxruntime, alternating, so both see the same machine load. Prints a markdown table
(medians, ratio, max |difference|) for docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import rssr
from rssr.basicsr.loading import load_model
from rssr.inference.onnx_runtime import session
from rssr.io import resolve_radiometry
from rssr.onnx_export import ExportGraph, export_onnx


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--tile', type=int, default=64)
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--threads', type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in (n for n in rssr.list_models() if rssr.model_card(n).weights):
            model = load_model(zoo_name=name).eval()
            radiometry = resolve_radiometry('uint16', 4, preset='sentinel2')
            result = export_onnx(model, Path(folder) / f'{name}.onnx', tile=args.tile, radiometry=radiometry,
                                 card_fields=dict(bands=(), radiometry='sentinel2', band_normalization={},
                                                  model=name))
            graph, run = ExportGraph(model, 'rssr', radiometry).eval(), session(result.path)
            tile = torch.rand(1, 4, args.tile, args.tile) * 0.4
            nan = (torch.full((1, 4, 1, 1), float('nan')),) * 2 if graph.takes_scene_statistics else ()
            times = {'torch': [], 'onnxruntime': []}
            for _ in range(args.rounds + 1):  # the first round warms both up and is dropped
                start = time.perf_counter()
                with torch.no_grad():
                    want = graph(tile, *nan).numpy()
                times['torch'].append(time.perf_counter() - start)
                start = time.perf_counter()
                got = run.run(['sr'], {'lr': tile.numpy()})[0]
                times['onnxruntime'].append(time.perf_counter() - start)
            torch_s, ort_s = (statistics.median(times[k][1:]) for k in ('torch', 'onnxruntime'))
            rows.append((name, result.exporter, result.seconds, result.megabytes, torch_s, ort_s,
                         float(np.abs(got - want).max())))
    print(f'tile {args.tile} LR, {args.threads} thread(s), median of {args.rounds} interleaved rounds\n')
    print('| model | exporter | export s | file MiB | torch s/tile | onnxruntime s/tile | torch / ort | max abs diff |')
    print('|---|---|---|---|---|---|---|---|')
    for name, exporter, export_s, size, torch_s, ort_s, diff in rows:
        print(f'| {name} | {exporter} | {export_s:.1f} | {size:.2f} | {torch_s:.3f} | {ort_s:.3f} | '
              f'{torch_s / ort_s:.2f}x | {diff:.1e} |')


if __name__ == '__main__':
    main()
