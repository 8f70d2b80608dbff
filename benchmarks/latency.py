"""Latency and memory of one model in one runtime, measured in a fresh process.

Every measurement runs :mod:`edgesmith.benchmarks.worker` in its own Python
process, so peak memory, load memory and thread pools are not polluted by the
caller (which has usually trained or exported the model a moment before)::

    from edgesmith.benchmarks import measure

    r = measure("model.onnx", "onnxruntime", {"image": batch}, threads=1)
    print(r["latency_ms"]["p50"], r["peak_rss_mb"])
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.atomic import write_json

# Thread-pool variables that OpenMP, MKL, OpenBLAS, numexpr and Accelerate read.
THREAD_ENV = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS",
)


def measure(
    model_path: str | os.PathLike,
    runtime: str | None,
    inputs: dict[str, np.ndarray],
    threads: int = 1,
    device: str = "cpu",
    warmup: int = 10,
    iterations: int = 100,
    min_seconds: float = 1.0,
    eval_inputs: dict[str, np.ndarray] | None = None,
    eval_batch: int = 64,
    timeout_s: float = 600,
) -> dict[str, Any]:
    """Benchmark a model file in a fresh worker process.

    Never raises for a failed measurement: the result then has ``error`` set
    to one line, so a sweep over models and runtimes can go on.

    Args:
        model_path: Model file.
        runtime: Registered runtime name; ``None`` picks one by the file suffix.
        inputs: The benchmark batch, one array per input name.
        threads: Intra-op threads (also set as OMP/MKL/... thread variables).
        device: ``"cpu"`` or ``"cuda"``.
        warmup: Untimed runs before timing.
        iterations: Minimum timed runs.
        min_seconds: Minimum timing duration (honoured; what ran is in ``protocol``).
        eval_inputs: Optional N samples per input (first dim N) to run after timing.
        eval_batch: Batch size for ``eval_inputs``.
        timeout_s: Wall-clock limit for the worker.

    Returns:
        The worker's result (``latency_ms``, ``peak_rss_mb``, ``load_rss_mb``,
        ``model_size_bytes``, ``protocol``, ``error``, ...; see
        :func:`edgesmith.benchmarks.worker.measure_spec`) plus ``eval_outputs``:
        the first output over all eval samples, or ``None``.
    """
    ident = {"runtime": runtime, "model": str(model_path), "threads": threads, "device": device}
    with tempfile.TemporaryDirectory(prefix="edgesmith-bench-") as tmp:
        d = Path(tmp)
        np.savez(d / "inputs.npz", **inputs)
        spec: dict[str, Any] = {
            **ident,
            "model": str(Path(model_path).absolute()),
            "inputs": str(d / "inputs.npz"),
            "warmup": warmup,
            "iterations": iterations,
            "min_seconds": min_seconds,
            "eval_batch": eval_batch,
        }
        if eval_inputs is not None:
            np.savez(d / "eval_inputs.npz", **eval_inputs)
            spec["eval_inputs"] = str(d / "eval_inputs.npz")
            spec["eval_outputs"] = str(d / "eval_outputs.npz")
        write_json(d / "spec.json", spec)
        out = d / "out.json"
        env = {**os.environ, **dict.fromkeys(THREAD_ENV, str(threads))}
        cmd = [sys.executable, "-m", "edgesmith.benchmarks.worker", str(d / "spec.json"), str(out)]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {
                **ident,
                "error": f"benchmark worker timed out after {timeout_s:g} s",
                "eval_outputs": None,
            }
        result = _read_result(out, proc)
        result.setdefault("error", None)
        for k, v in ident.items():
            if result.get(k) is None:
                result[k] = v
        result["eval_outputs"] = None
        if result["error"] is None and eval_inputs is not None:
            with np.load(d / "eval_outputs.npz", allow_pickle=False) as z:
                result["eval_outputs"] = z["output"]
    return result


def _read_result(out: Path, proc: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    """The worker's JSON, or an error naming how the process died."""
    try:
        result = json.loads(out.read_text())
    except (OSError, ValueError):
        result = None
    if isinstance(result, dict) and (proc.returncode == 0 or result.get("error")):
        return result
    tail = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    how = (
        f"killed by signal {-proc.returncode}"
        if proc.returncode < 0
        else f"exited with status {proc.returncode}"
    )
    return {"error": f"benchmark worker {how}" + (f": {tail[-1].strip()}" if tail else "")}


def quick_p50(
    model_path: str | os.PathLike,
    inputs: dict[str, np.ndarray],
    runtime: str | None = None,
    threads: int = 1,
    seconds: float = 0.3,
    warmup: int = 5,
) -> float | None:
    """A short in-process p50 in ms: for comparing closely related files one after
    another (the ``quantize`` stage's fallback steps), not for reported benchmarks,
    which :func:`measure` runs in a fresh process. None when the file does not run.

    Times at least 20 runs and about ``seconds`` (at most 400 runs) after ``warmup``,
    with the worker's timing loop (:func:`edgesmith.benchmarks.worker.time_runs`).
    """
    from edgesmith.benchmarks.worker import time_runs
    from edgesmith.runtimes import load

    try:
        with load(model_path, runtime, threads=threads) as rt:
            rt.warmup(inputs, warmup)
            times, _ = time_runs(rt, inputs, iterations=20, min_seconds=seconds, max_runs=400)
    except Exception:  # noqa: BLE001 - each runtime raises its own error kinds
        return None
    return round(float(np.median(times)), 4)
