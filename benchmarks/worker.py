"""Measure one model in one runtime, in this (fresh) process.

Run by :func:`edgesmith.benchmarks.latency.measure`, one process per
measurement so memory numbers and thread pools start clean::

    python -m edgesmith.benchmarks.worker SPEC.json OUT.json

SPEC keys: ``model``, ``runtime`` (``None``: by suffix), ``threads``, ``device``,
``inputs`` (an ``.npz`` holding the benchmark batch, keys = input names),
``warmup``, ``iterations``, ``min_seconds`` (both honoured), ``overhead`` (default
true: also time a no-op model on the same inputs, :func:`harness_overhead`), ``batch``
(the batch the caller asked for: refused when the inputs hold another), and optionally ``eval_inputs`` (an
``.npz`` of N samples per input), ``eval_batch`` and ``eval_outputs`` (where the
first output over all N samples is saved, key ``output``).

OUT is the result (see :func:`measure_spec`) or ``{"error": "<one line>", ...}``
with exit status 1.
"""

from __future__ import annotations

import gc
import io
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.atomic import write_bytes, write_json
from edgesmith.benchmarks.fingerprint import fingerprint
from edgesmith.benchmarks.stats import summarize
from edgesmith.errors import EdgesmithError, UserError
from edgesmith.numeric import first_line
from edgesmith.runtimes import RUNTIMES, Runtime, runtime_for

MAX_RUNS = 10_000_000  # a safety cap only: min_seconds is honoured up to it (and the cap is recorded)
OVERHEAD_RUNS, OVERHEAD_SECONDS = 200, 0.2  # the no-op model that measures the harness overhead


def current_rss_mb() -> float:
    """Resident set size of this process now, in MB (peak RSS where /proc is absent)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return peak_rss_mb()


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB.

    Linux's ``ru_maxrss`` carries the parent's peak across fork + exec, so a
    worker started by a 2 GB pipeline would report 2 GB; ``VmHWM`` belongs to
    this process image alone.
    """
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10  # KiB
    except (OSError, ValueError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def time_runs(
    rt: Runtime,
    inputs: dict[str, np.ndarray],
    iterations: int,
    min_seconds: float,
    max_runs: int = MAX_RUNS,
) -> tuple[np.ndarray, float]:
    """Time ``rt.run`` at least ``iterations`` times and for at least ``min_seconds``
    (both are honoured; ``max_runs`` is a cap the caller chooses, by default only a
    safety net). The garbage collector is paused while timing.

    Returns:
        Per-run latencies in ms, and the seconds the loop took.
    """
    cap = max(iterations, max_runs)
    samples: list[int] = []
    clock = time.perf_counter_ns
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        start = clock()
        deadline = start + int(min_seconds * 1e9)
        while len(samples) < iterations or (len(samples) < cap and clock() < deadline):
            t0 = clock()
            rt.run(inputs)
            samples.append(clock() - t0)
        seconds = (clock() - start) / 1e9
    finally:
        if gc_was_enabled:
            gc.enable()
    return np.asarray(samples, dtype=np.float64) / 1e6, seconds


def noop_onnx(inputs: dict[str, np.ndarray], path: str | os.PathLike) -> Path:
    """An ONNX model that passes each of ``inputs`` through (Identity), same names,
    dtypes and shapes: what the timing loop, the runtime call and the input and output
    copies cost with no model work."""
    import onnx
    from onnx import helper

    ins, outs, nodes = [], [], []
    for i, (name, a) in enumerate(inputs.items()):
        dtype = helper.np_dtype_to_tensor_dtype(a.dtype)
        ins.append(helper.make_tensor_value_info(name, dtype, list(a.shape)))
        outs.append(helper.make_tensor_value_info(f"out{i}", dtype, list(a.shape)))
        nodes.append(helper.make_node("Identity", [name], [f"out{i}"]))
    model = helper.make_model(helper.make_graph(nodes, "noop", ins, outs), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return Path(path)


def harness_overhead(inputs: dict[str, np.ndarray], threads: int = 1) -> dict[str, Any] | None:
    """The harness overhead on this machine: the p50 (and its 95% CI) of a no-op ONNX
    model (:func:`noop_onnx`) fed ``inputs`` in onnxruntime through :func:`time_runs`.
    None where onnxruntime or onnx is not installed. Differences between two
    measurements smaller than this are not told apart (see
    :func:`~edgesmith.benchmarks.stats.compare_latency`)."""
    import tempfile

    try:
        cls = RUNTIMES.get("onnxruntime")
        with tempfile.TemporaryDirectory(prefix="edgesmith-noop-") as tmp:
            rt = cls(noop_onnx(inputs, Path(tmp) / "noop.onnx"), threads=threads)
            rt.warmup(inputs, 10)
            samples, _ = time_runs(rt, inputs, OVERHEAD_RUNS, OVERHEAD_SECONDS)
            rt.close()
    except Exception:  # noqa: BLE001 - no onnx / onnxruntime, or an input dtype ONNX lacks
        return None
    lat = summarize(samples)
    return {"p50": lat["p50"], "p50_ci": lat["p50_ci"], "n": lat["n"], "runtime": "onnxruntime"}


def run_eval(rt: Runtime, eval_inputs: dict[str, np.ndarray], batch: int) -> np.ndarray:
    """Run N samples in batches of ``batch``; return the first output concatenated."""
    sizes = {len(v) for v in eval_inputs.values()}
    if len(sizes) != 1:
        raise EdgesmithError(f"eval_inputs: inputs hold different sample counts {sorted(sizes)}")
    (n,) = sizes
    outs = [
        rt.run({k: v[i : i + batch] for k, v in eval_inputs.items()})[0] for i in range(0, n, batch)
    ]
    return np.concatenate(outs, axis=0)


def _npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def measure_spec(spec: dict[str, Any]) -> dict[str, Any]:
    """Load, warm up, time and optionally evaluate the model a spec names.

    Returns:
        ``runtime, model, threads, device, batch, latency_ms`` (see
        :func:`~edgesmith.benchmarks.stats.summarize`), ``throughput_per_s``
        (samples per second at this batch), ``peak_rss_mb`` (process peak
        after timing, before any eval), ``load_rss_mb`` (RSS added by loading
        the model, after the runtime package was imported), ``import_rss_mb``,
        ``model_size_bytes`` (all of the model's files, e.g. ONNX external
        data), ``protocol``, ``fingerprint`` (the machine, taken before loading;
        see :func:`~edgesmith.benchmarks.fingerprint.fingerprint`) and ``error``
        (``None``).
    """
    env = fingerprint()
    model = str(spec["model"])
    runtime = spec.get("runtime") or runtime_for(model)
    threads, device = int(spec.get("threads", 1)), str(spec.get("device", "cpu"))
    warmup, iterations = int(spec.get("warmup", 10)), int(spec.get("iterations", 100))
    min_seconds = float(spec.get("min_seconds", 1.0))
    if iterations < 1:
        raise UserError(f"iterations must be at least 1, got {iterations}")
    if not Path(model).is_file():
        raise UserError(f"{model}: no such model file")
    inputs = _npz(spec["inputs"])
    first = next(iter(inputs.values()), np.zeros(()))
    batch = int(first.shape[0]) if first.ndim else 1  # the batch that runs, never a label
    if spec.get("batch") is not None and int(spec["batch"]) != batch:
        raise UserError(f"{model}: batch {spec['batch']} asked but the inputs hold batch {batch}")

    cls = RUNTIMES.get(runtime)
    rss_start = current_rss_mb()
    cls.import_backend()  # the engine's own import cost is not the model's
    rss_before = current_rss_mb()
    rt = cls(model, threads=threads, device=device)
    rss_after = current_rss_mb()
    rt.warmup(inputs, warmup)
    samples, seconds = time_runs(rt, inputs, iterations, min_seconds)
    peak = peak_rss_mb()
    latency = summarize(samples)
    overhead = harness_overhead(inputs, threads) if spec.get("overhead", True) else None
    result: dict[str, Any] = {
        "runtime": runtime,
        "model": model,
        "threads": threads,
        "device": device,
        "batch": batch,
        "latency_ms": latency,
        "throughput_per_s": 1000.0 * batch / latency["mean"] if latency["mean"] else None,
        "peak_rss_mb": peak,
        "load_rss_mb": max(0.0, rss_after - rss_before),
        "import_rss_mb": max(0.0, rss_before - rss_start),
        "model_size_bytes": sum(os.path.getsize(f) for f in rt.files if os.path.isfile(f)),
        "protocol": {
            "warmup": warmup,
            "iterations": iterations,
            "iterations_run": int(samples.size),
            "min_seconds": min_seconds,
            "seconds": seconds,
            "stopped_by": "max_runs" if samples.size >= MAX_RUNS else (
                "min_seconds" if samples.size > iterations else "iterations"),
            "overhead_ms": overhead["p50"] if overhead else None,
            "overhead": overhead,
        },
        "fingerprint": env,
        "error": None,
    }
    if spec.get("eval_inputs"):
        eval_batch = int(spec.get("eval_batch", 64))
        t0 = time.perf_counter()
        out = run_eval(rt, _npz(spec["eval_inputs"]), eval_batch)
        result["eval"] = {"n": len(out), "batch": eval_batch, "seconds": time.perf_counter() - t0}
        if spec.get("eval_outputs"):
            buf = io.BytesIO()
            np.savez(buf, output=out)
            write_bytes(spec["eval_outputs"], buf.getvalue())
    rt.close()
    return result


def one_line(exc: BaseException) -> str:
    """A failure as one line: an EdgesmithError's message, else ``Type: first line``."""
    if isinstance(exc, EdgesmithError):
        return first_line(exc)
    return f"{type(exc).__name__}: {first_line(exc)}"


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``worker SPEC.json OUT.json``; returns the exit status."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edgesmith.benchmarks.worker SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec_path, out_path = args
    spec: dict[str, Any] = {}
    try:
        from edgesmith.plugins import load_plugins

        load_plugins()  # a plugin's runtime is measured like a built-in one
        spec = json.loads(Path(spec_path).read_text())
        result = measure_spec(spec)
    except Exception as e:
        ident = {k: spec.get(k) for k in ("runtime", "model", "threads", "device")}
        write_json(out_path, {**ident, "error": one_line(e), "fingerprint": fingerprint()})
        print(f"benchmark failed: {one_line(e)}", file=sys.stderr)
        return 1
    write_json(out_path, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
