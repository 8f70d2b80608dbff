"""Run-to-run variance of a latency figure: the same model measured ``repeats`` times
in a row, each in a fresh process, and the coefficient of variation of the p50s
(:func:`edgesmith.benchmarks.stats.cv`)::

    python -m edgesmith.benchmarks.variance model.onnx --repeats 5 --seq-len 128
    python -m edgesmith.benchmarks.studies.flagships --variance   # the MiniLM teacher ONNX fp32 figure

A CV of a few percent says a 10% speed-up is real; a CV of 10% says it is not.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.stats import cv
from edgesmith.benchmarks.sweep import input_specs, synth_inputs
from edgesmith.errors import EdgesmithError


def variance(
    model: str | Path,
    runtime: str | None = None,
    repeats: int = 5,
    threads: int = 1,
    batch: int = 1,
    seq_len: int = 128,
    iterations: int = 100,
    min_seconds: float = 2.0,
) -> dict[str, Any]:
    """Measure ``model`` ``repeats`` times in a row (same inputs, fresh process each).

    Returns:
        ``p50_ms`` (one per run), ``p50_cv``, ``p50_range_ms`` and per-run ``runs``
        (``p50``, ``p50_ci``, ``n``, ``load_avg``).

    Raises:
        EdgesmithError: A run failed (its error line).
    """
    if repeats < 2:
        raise EdgesmithError(f"--repeats {repeats}: a variance needs at least 2 runs")
    inputs = synth_inputs(input_specs(model, runtime), batch, seq_len)
    runs = []
    for i in range(repeats):
        r = measure(model, runtime, inputs, threads=threads, iterations=iterations, min_seconds=min_seconds)
        if r.get("error"):
            raise EdgesmithError(f"variance run {i + 1}: {r['error']}")
        lat = r["latency_ms"]
        runs.append({"p50": lat["p50"], "p50_ci": lat["p50_ci"], "n": lat["n"],
                     "load_avg": (r.get("fingerprint") or {}).get("load_avg")})  # fmt: skip
        print(f"[variance] run {i + 1}/{repeats}: p50 {lat['p50']:.3f} ms", file=sys.stderr)
    p50s = [r["p50"] for r in runs]
    return {
        "model": str(model), "runtime": runtime, "threads": threads, "batch": batch, "seq_len": seq_len,
        "repeats": repeats, "p50_ms": p50s, "p50_cv": cv(p50s), "p50_range_ms": [min(p50s), max(p50s)],
        "runs": runs,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgesmith.benchmarks.variance", description=__doc__.split("\n\n")[0])
    p.add_argument("model", type=Path)
    p.add_argument("--runtime")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq-len", type=int, default=128)
    args = p.parse_args(argv)
    try:
        v = variance(args.model, args.runtime, args.repeats, args.threads, args.batch, args.seq_len)
    except EdgesmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(f"{args.model}: p50 {', '.join(f'{x:.3f}' for x in v['p50_ms'])} ms; CV {100 * v['p50_cv']:.2f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main())
