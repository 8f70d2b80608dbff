"""Sweep one model file over thread counts, batch sizes and sequence lengths.

Each point is measured by :func:`edgesmith.benchmarks.latency.measure` in its
own fresh process. Inputs are synthesised from the model's input spec: float
inputs are seeded standard-normal, integer inputs named like a mask are ones,
other integer inputs (token ids) are seeded ids in ``[1000, 2000)``::

    from edgesmith.benchmarks.sweep import sweep

    rows = sweep("student.onnx", threads=[1, 2], batches=[1, 8])

``target`` is ``cpu``, ``cuda``, ``ssh://user@host[:port]`` or ``adb[://SERIAL]``
(:mod:`edgesmith.benchmarks.targets`); ``target_options`` go to that target
(e.g. ``{"remote_python": "/opt/venv/bin/python"}``).

A failed point is a row with ``error`` set; the sweep goes on. A point a static-shape
file cannot run (``--batch 8`` on a batch-1 file) is such a row: it is never measured
at the file's own shape and labelled with the asked one.
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.benchmarks.targets import get_target
from edgesmith.errors import UserError
from edgesmith.progress import progress_bar

# Input names whose integer values are segment ids (0 for a single sentence), not token ids.
SEGMENT_NAMES = ("token_type", "segment")


def synth_inputs(specs: list[Any], batch: int, seq_len: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs for ``specs`` (runtime :class:`TensorSpec` list): dynamic dim 0 -> ``batch``,
    other dynamic dims -> ``seq_len``."""
    rng = np.random.default_rng(seed)
    out = {}
    for s in specs:
        shape = [
            d if isinstance(d, int) and d > 0 else (batch if i == 0 else seq_len)
            for i, d in enumerate(s.shape)
        ]
        dtype = np.dtype(s.dtype)
        if dtype.kind == "f":
            out[s.name] = rng.standard_normal(shape).astype(dtype)
        elif "mask" in s.name.lower():
            out[s.name] = np.ones(shape, dtype)
        elif any(n in s.name.lower() for n in SEGMENT_NAMES):
            out[s.name] = np.zeros(shape, dtype)
        elif dtype.kind in "iu":
            out[s.name] = rng.integers(1000, 2000, shape).astype(dtype)
        else:
            out[s.name] = np.zeros(shape, dtype)
    return out


def static_mismatch(specs: list[Any], batch: int | None, seq_len: int | None) -> str | None:
    """Why a file whose inputs have static dims cannot run at ``batch`` / ``seq_len``
    (one line), or None when it can (or the point does not set them)."""
    for sp in specs:
        dims = list(sp.shape)
        if batch is not None and dims and isinstance(dims[0], int) and dims[0] > 0 and dims[0] != batch:
            return f"input '{sp.name}' has a static batch of {dims[0]}, so batch {batch} cannot run"
        static_seq = [d for d in dims[1:2] if isinstance(d, int) and d > 0]
        if seq_len is not None and len(dims) == 2 and static_seq and static_seq[0] != seq_len:
            return f"input '{sp.name}' has a static sequence length of {static_seq[0]}, so seq_len {seq_len} cannot run"
    return None


def input_specs(model: str | os.PathLike, runtime: str | None) -> list[Any]:
    """The model's input spec, read by loading it once in this process."""
    from edgesmith.runtimes import load

    with load(model, runtime) as rt:
        return rt.inputs


def sweep(
    model: str | os.PathLike,
    runtime: str | None = None,
    target: str = "cpu",
    threads: list[int] | tuple[int, ...] = (1,),
    batches: list[int] | tuple[int, ...] = (1,),
    seq_lens: list[int] | tuple[int, ...] = (128,),
    warmup: int = 10,
    iterations: int = 100,
    min_seconds: float = 1.0,
    target_options: dict[str, Any] | None = None,
) -> list[dict[str, Any]]:
    """Measure ``model`` at every (threads, batch, seq_len) point on ``target``; returns
    one row each, in the ``summary.json`` benchmark shape (see the README).

    A target whose tool makes its own inputs (``adb``) is swept over ``threads`` only,
    at the file's own input shapes.
    """
    path = Path(model)
    if not path.exists():
        raise UserError(f"{path}: no such model file")
    tgt = get_target(target, **(target_options or {}))
    if tgt.suffixes is not None and path.suffix.lower() not in tgt.suffixes:
        raise UserError(f"{path}: the {target} target runs {', '.join(tgt.suffixes)} files only "
                        f"(benchmark_model runs .tflite files only); give one of those")
    specs = input_specs(path, runtime) if tgt.takes_inputs else []
    has_seq = any(sum(not isinstance(d, int) for d in s.shape) > 1 for s in specs)
    points = list(itertools.product(threads, batches if tgt.takes_inputs else [None],
                                    seq_lens if has_seq else [None]))
    rows = []
    with tgt, progress_bar() as bar:
        task = bar.add_task(f"benchmark {path.name} on {target}", total=len(points))
        for t, b, s in points:
            inputs = synth_inputs(specs, b, s or 1) if tgt.takes_inputs else {}
            why = static_mismatch(specs, b, s)
            if why:  # a point the file cannot run is an error row, never another point relabelled
                r = {"runtime": runtime, "error": f"{path.name}: {why}; export it with dynamic axes to sweep them"}
            else:
                r = tgt.measure(path, runtime, inputs, threads=t, warmup=warmup, iterations=iterations,
                                min_seconds=min_seconds)
            rows.append(bench_row(r, target, runtime, path.stem, t, b, s))
            bar.advance(task)
    return rows


def bench_row(r: dict[str, Any], target: str, runtime: str | None, model: str, threads: int,
              batch: int | None, seq_len: int | None) -> dict[str, Any]:
    """A measurement as a ``summary.json`` benchmark row; target-specific extras
    (``latency_note``, ``memory_mb``, ...) are kept."""
    row = {
        "target": target, "runtime": r.get("runtime") or runtime, "model": model,
        "threads": threads, "batch": r.get("batch") if r.get("batch") is not None else batch, "seq_len": seq_len,
        "latency_ms": r.get("latency_ms"), "peak_rss_mb": r.get("peak_rss_mb"),
        "load_rss_mb": r.get("load_rss_mb"), "model_size_bytes": r.get("model_size_bytes"),
        "accuracy": None, "protocol": r.get("protocol"), "fingerprint": r.get("fingerprint"),
        "error": r.get("error"),
    }  # fmt: skip
    for k in ("latency_note", "memory_mb", "init_ms", "warmup_avg_ms"):
        if r.get(k) is not None:
            row[k] = r[k]
    return row


def sweep_bundle(bundle: str | os.PathLike, target: str = "cpu", runtimes: list[str] | None = None,
                 **kwargs: Any) -> list[dict[str, Any]]:
    """:func:`sweep` every model file of a deployment bundle (each format in the runtime
    its manifest names, after the manifest's checksums are verified); each row carries
    the bundle's ``format`` and ``precision``, and ``model`` is the bundle's recipe name.

    Args:
        bundle: The bundle folder (holding ``edgesmith.json``).
        target: Where to measure (see :func:`sweep`).
        runtimes: Only the formats in these runtimes (default: every format).
        **kwargs: Passed to :func:`sweep` (threads, batches, seq_lens, iterations, ...).
    """
    from edgesmith.bundle.manifest import read_manifest

    root = Path(bundle)
    manifest = read_manifest(root)
    name = (manifest.get("source") or {}).get("recipe") or root.resolve().name
    formats = {f: e for f, e in (manifest.get("formats") or {}).items()
               if runtimes is None or e.get("runtime") in runtimes}
    if not formats:
        have = ", ".join(sorted({e.get("runtime", "?") for e in (manifest.get("formats") or {}).values()}))
        raise UserError(f"{root}: no model file for runtime {', '.join(runtimes or [])} in this bundle; it has: {have}")
    rows = []
    for fmt, entry in formats.items():
        for row in sweep(root / entry["path"], entry.get("runtime"), target, **kwargs):
            rows.append({**row, "model": f"{name}-bundle", "format": fmt, "precision": entry.get("precision")})
    return rows
