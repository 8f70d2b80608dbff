"""Never ship a slower file: for each runtime, a quantized file that measured
slower than its fp32 parent beyond the confidence intervals of both p50s is
replaced in the bundle by that parent, unless the recipe forces the quantized one
(``export.force_quantized``). The decision and its numbers go in the manifest.

On a shared host two files timed one after the other can drift apart by more than their
CIs (the rule flipped between two runs of one recipe here), so the benchmark step times the
pair against each other once more (``benchmark.paired_rounds``; 0: off) and "slower" reads,
in this order:

- run for run in one process on this machine (:func:`edgesmith.benchmarks.paired.compare_files`):
  the whole 95% CI of the median per-pair time ratio quantized/fp32 above 1.05, and the gap
  (the parent's own p50 times the ratio - 1) above the harness overhead;
- interleaved rounds on a remote target (:func:`edgesmith.benchmarks.targets.measure_interleaved`:
  int8, fp32, int8, ...): more than 5% above in every round, the median gap above the overhead;
- else the benchmarks' one rule (:func:`edgesmith.benchmarks.stats.compare_latency`): p50s
  more than 5% apart, disjoint 95% CIs and a gap above the harness overhead.

Example:
    >>> q = {"latency_ms": {"p50": 0.060, "p50_ci": [0.058, 0.062]}, "precision": "int8"}
    >>> f = {"latency_ms": {"p50": 0.040, "p50_ci": [0.039, 0.041]}}
    >>> choose(q, f)["shipped"]
    'fp32'
    >>> choose(q, f, force=True)["shipped"]
    'int8'
    >>> choose(q, f, rounds=([0.060, 0.041, 0.061], [0.040, 0.040, 0.040]))["shipped"]  # not in every round
    'int8'
    >>> choose(q, f, pair={"ratio": 1.02, "ratio_ci": [0.99, 1.04], "pairs": 300,
    ...                     "quantized_p50_ms": 0.041, "fp32_p50_ms": 0.040})["shipped"]  # run for run: the same
    'int8'
"""

from __future__ import annotations

import numpy as np


def choose(quantized: dict, fp32: dict, force: bool = False,
           rounds: tuple[list[float | None], list[float | None]] | None = None, pair: dict | None = None) -> dict:
    """Which of two benchmark results to ship and why.

    Args:
        quantized: The shipped quantized file's benchmark result (``latency_ms``, ``precision``).
        fp32: Its fp32 parent's result on the same runtime, target, threads and batch.
        force: Ship the quantized file whatever the measurement (the recipe says so).
        rounds: The quantized file's and the parent's p50 (ms) in interleaved rounds; used
            when at least two rounds measured both.
        pair: The two files timed run for run (``ratio`` quantized/fp32, ``ratio_ci``,
            ``pairs``, ``quantized_p50_ms``, ``fp32_p50_ms``); read before ``rounds``.

    Returns:
        ``shipped`` (``"fp32"`` or the quantized precision), ``reason`` (one sentence),
        both p50s with their CIs, and ``forced``.
    """
    q, f = quantized["latency_ms"], fp32["latency_ms"]
    prec = quantized.get("precision") or "quantized"
    from edgesmith.benchmarks.stats import CHANGE_MARGIN, compare_latency, harness_overhead_ms

    overhead = harness_overhead_ms(fp32, quantized)
    pairs = [(a, b) for a, b in zip(*rounds, strict=True) if a and b] if rounds and not pair else []
    if len(pairs) < 2:
        pairs = []
    if pair:
        from edgesmith.benchmarks.paired import verdict

        lo, hi = pair["ratio_ci"]
        said = verdict(pair["ratio"], pair["ratio_ci"])
        gap = f["p50"] * (pair["ratio"] - 1)  # in the parent's own p50 (timed alone), as the overhead was
        slower = said == "slower" and gap > (overhead or 0.0)
        numbers = (f"{pair['pairs']} pairs: time ratio {prec}/fp32 {pair['ratio']:.3f}, 95% CI {lo:.3f}-{hi:.3f}; "
                   f"p50 {pair['quantized_p50_ms']:.4f} vs {pair['fp32_p50_ms']:.4f} ms")
        rule = ("timed run for run" if slower or said != "slower" else
                f"timed run for run, but by {gap * 1000:.1f} us, under the {overhead * 1000:.1f} us harness overhead")
    elif pairs:
        above = sum(a > b * (1 + CHANGE_MARGIN) for a, b in pairs)
        gap = float(np.median([a - b for a, b in pairs]))
        slower = above == len(pairs) and gap > (overhead or 0.0)
        by = f"in {above} of {len(pairs)} interleaved rounds by more than {CHANGE_MARGIN:.0%}"
        numbers = (f"{prec} p50 {_ms(a for a, _ in pairs)} vs fp32 {_ms(b for _, b in pairs)} ms, round by round")
        rule = by if slower or above < len(pairs) else f"{by}, but by less than the harness overhead"
    else:
        slower = compare_latency(f, q, overhead) == "slower"
        numbers = (f"{prec} p50 {q['p50']:.4f} ms {_ci(q)} vs fp32 p50 {f['p50']:.4f} ms {_ci(f)}")
        rule = "beyond the 95% CIs and the harness overhead"
    if slower and force:
        shipped, reason = prec, f"{prec} is slower than its fp32 parent ({numbers}) but export.force_quantized is set"
    elif slower:
        shipped, reason = "fp32", f"{prec} is slower than its fp32 parent {rule} ({numbers}): fp32 shipped"
    elif pair and said == "slower":
        shipped, reason = prec, f"{prec} is slower than its fp32 parent {rule}, so it is kept ({numbers})"
    elif pair and said == "faster":
        shipped, reason = prec, f"{prec} is {1 / pair['ratio']:.2f}x faster than its fp32 parent, {rule} ({numbers})"
    elif pair:
        shipped, reason = prec, f"{prec} is not slower than its fp32 parent beyond 5%, {rule} ({numbers})"
    elif pairs:
        shipped, reason = prec, f"{prec} is not slower than its fp32 parent: slower {rule} ({numbers})"
    else:
        shipped, reason = prec, f"{prec} is not slower than its fp32 parent {rule} ({numbers})"
    out = {"shipped": shipped, "reason": reason, "forced": bool(force and slower),
           "quantized_p50_ms": q["p50"], "quantized_p50_ci": q.get("p50_ci"),
           "fp32_p50_ms": f["p50"], "fp32_p50_ci": f.get("p50_ci")}
    if pair:
        out["run_for_run"] = {k: pair[k] for k in ("ratio", "ratio_ci", "pairs", "quantized_p50_ms", "fp32_p50_ms")}
    if pairs:
        out |= {"quantized_p50_rounds_ms": [a for a, _ in pairs], "fp32_p50_rounds_ms": [b for _, b in pairs]}
    return out


def _ms(values) -> str:
    return "/".join(f"{v:.4f}" for v in values)


def _ci(lat: dict) -> str:
    ci = lat.get("p50_ci")
    return f"[{ci[0]:.4f}, {ci[1]:.4f}]" if ci else "[no CI]"


def speed_choices(exports: list[dict], bench: dict, force: bool = False) -> tuple[list[dict], dict[str, dict]]:
    """Apply :func:`choose` to every quantized export that has a measured fp32 parent.

    Args:
        exports: The export step's entries (format, precision, runtime, path, parity...).
        bench: The benchmark step's info: ``benchmarks`` (results), ``fp32_parents``
            (format -> the parent's export entry) and ``paired_rounds`` (format -> the
            quantized file and its parent timed against each other: ``run_for_run``, or
            both p50s in interleaved rounds).
        force: ``export.force_quantized``.

    Returns:
        The exports to ship (a slower quantized entry replaced by its parent's) and,
        per format decided, the decision (:func:`choose`).
    """
    results = bench.get("benchmarks") or []
    parents = bench.get("fp32_parents") or {}
    shipped, choices = [], {}
    for e in exports:
        parent = parents.get(e["format"])
        q = _result(results, e["runtime"], e["precision"], lambda m: not m.endswith("-fp32"))
        f = _result(results, e["runtime"], "fp32", lambda m: m.endswith("-fp32"))
        if parent is None or q is None or f is None or parent.get("error"):
            shipped.append(e)
            continue
        paired = (bench.get("paired_rounds") or {}).get(e["format"]) or {}
        rounds = (paired["quantized_p50_ms"], paired["fp32_p50_ms"]) if "quantized_p50_ms" in paired else None
        c = choices[e["format"]] = choose(q, f, force, rounds, paired.get("run_for_run"))
        shipped.append(parent if c["shipped"] == "fp32" else e)
    return shipped, choices


def _result(results: list[dict], runtime: str, precision: str, which) -> dict | None:
    return next((r for r in results if r["runtime"] == runtime and r.get("precision") == precision
                 and which(r["model"]) and (r.get("latency_ms") or {}).get("p50") is not None), None)
