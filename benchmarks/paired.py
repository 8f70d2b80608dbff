"""Two model files timed against each other in one process, run for run (A, B, B, A, ...).

On a shared host the speed of the machine drifts within seconds (here the same file read
6.2 and 9.4 ms in two runs of one search, and a file's p50 moved 30% between rounds a few
seconds apart), so two files timed one after the other, even in interleaved rounds, can
swap places. Timed run for run in one process, both see the same machine: each pair's
ratio cancels the drift, and the median ratio with its bootstrap CI says which file is
faster and by how much::

    from edgesmith.benchmarks.paired import compare_files

    r = compare_files("student.int8.onnx", "teacher.int8.onnx", "onnxruntime", inputs)
    r["ratio"], r["ratio_ci"]   # median of a/b over the pairs: 0.85 [0.84, 0.86]
    r["verdict"]                # "faster", "slower" or "same" (a beyond b by the one rule)

Both models stay loaded, so each run finds the caches as the other left them: the
absolute p50s can read higher than one model timed alone (``a``/``b`` give them), the
ratio is what this measures. Run the worker as ``python -m edgesmith.benchmarks.paired
SPEC.json OUT.json``; :func:`compare_files` does that in a fresh process.
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.atomic import write_json
from edgesmith.benchmarks.stats import CHANGE_MARGIN, bootstrap_ci, summarize

__all__ = ["compare_files", "pair_times", "verdict"]


def pair_times(run_a, run_b, pairs: int, min_seconds: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-run ms of ``run_a`` and ``run_b`` (callables), alternating A B, B A, ... so
    neither always runs first; at least ``pairs`` pairs and ``min_seconds``. The garbage
    collector is paused while timing."""
    a, b = [], []
    clock = time.perf_counter_ns
    was = gc.isenabled()
    gc.disable()
    try:
        deadline = clock() + int(min_seconds * 1e9)
        i = 0
        while i < pairs or clock() < deadline:
            for which in ((0, 1) if i % 2 == 0 else (1, 0)):
                t0 = clock()
                (run_a if which == 0 else run_b)()
                (a if which == 0 else b).append(clock() - t0)
            i += 1
    finally:
        if was:
            gc.enable()
    return np.asarray(a, np.float64) / 1e6, np.asarray(b, np.float64) / 1e6


def verdict(ratio: float, ci: list[float], margin: float = CHANGE_MARGIN) -> str:
    """``a`` vs ``b`` from the median ratio a/b and its CI: ``faster`` when the whole CI is
    below ``1 - margin``, ``slower`` when it is above ``1 + margin``, else ``same``.

    Example:
        >>> verdict(0.85, [0.84, 0.86]), verdict(0.97, [0.93, 1.01]), verdict(1.2, [1.1, 1.3])
        ('faster', 'same', 'slower')
    """
    if ci[1] < 1 - margin:
        return "faster"
    if ci[0] > 1 + margin:
        return "slower"
    return "same"


def measure_pair(spec: dict[str, Any]) -> dict[str, Any]:
    """The worker: load both files in ``spec["runtime"]``, warm both, time them run for run."""
    from edgesmith.benchmarks.fingerprint import fingerprint
    from edgesmith.runtimes import load

    inputs = dict(np.load(spec["inputs"], allow_pickle=False))
    threads, warmup = int(spec.get("threads", 1)), int(spec.get("warmup", 10))
    env = fingerprint()
    with load(spec["a"], spec.get("runtime"), threads=threads) as ra, \
            load(spec["b"], spec.get("runtime"), threads=threads) as rb:
        ra.warmup(inputs, warmup)
        rb.warmup(inputs, warmup)
        ta, tb = pair_times(lambda: ra.run(inputs), lambda: rb.run(inputs), int(spec.get("pairs", 200)),
                            float(spec.get("min_seconds", 2.0)))
    ratios = ta / tb
    med = float(np.median(ratios))
    ci = [float(x) for x in bootstrap_ci(ratios, 50)]
    return {"a": spec["a"], "b": spec["b"], "runtime": spec.get("runtime"), "threads": threads,
            "pairs": int(ratios.size), "a_ms": summarize(ta), "b_ms": summarize(tb),
            "ratio": med, "ratio_ci": ci, "verdict": verdict(med, ci), "fingerprint": env, "error": None}


def compare_files(a: str | os.PathLike, b: str | os.PathLike, runtime: str | None, inputs: dict[str, np.ndarray],
                  threads: int = 1, warmup: int = 10, pairs: int = 200, min_seconds: float = 2.0,
                  timeout_s: float = 600) -> dict[str, Any]:
    """Time ``a`` against ``b`` run for run in a fresh process (see the module docstring).

    Returns:
        ``ratio`` (median of per-pair a/b), ``ratio_ci`` (95% bootstrap), ``verdict``
        (``faster`` / ``slower`` / ``same``: the CI beyond the 5% margin), ``pairs``,
        ``a_ms`` and ``b_ms`` (:func:`~edgesmith.benchmarks.stats.summarize`), the
        machine's ``fingerprint``; or ``error`` (one line) when either file does not run.
    """
    from edgesmith.benchmarks.latency import THREAD_ENV, _read_result

    with tempfile.TemporaryDirectory(prefix="edgesmith-pair-") as tmp:
        d = Path(tmp)
        np.savez(d / "inputs.npz", **inputs)
        write_json(d / "spec.json", {"a": str(Path(a).absolute()), "b": str(Path(b).absolute()), "runtime": runtime,
                                     "inputs": str(d / "inputs.npz"), "threads": threads, "warmup": warmup,
                                     "pairs": pairs, "min_seconds": min_seconds})
        env = {**os.environ, **dict.fromkeys(THREAD_ENV, str(threads))}
        cmd = [sys.executable, "-m", "edgesmith.benchmarks.paired", str(d / "spec.json"), str(d / "out.json")]
        try:
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"a": str(a), "b": str(b), "error": f"paired benchmark timed out after {timeout_s:g} s"}
        return _read_result(d / "out.json", proc)


def main(argv: list[str] | None = None) -> int:
    """``python -m edgesmith.benchmarks.paired SPEC.json OUT.json``."""
    from edgesmith.benchmarks.worker import one_line

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        print("usage: python -m edgesmith.benchmarks.paired SPEC.json OUT.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text())
    try:
        result = measure_pair(spec)
    except Exception as e:  # noqa: BLE001 - any runtime's error becomes the result's one line
        write_json(args[1], {"a": spec.get("a"), "b": spec.get("b"), "error": one_line(e)})
        print(f"paired benchmark failed: {one_line(e)}", file=sys.stderr)
        return 1
    write_json(args[1], result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
