"""The accuracy budget of the ``quantize`` stage: quantize an fp32 ONNX file and,
with ``accuracy_budget``, rank the quantized nodes by the noise each one adds
(:func:`rank_by_added_noise`, from :func:`~edgesmith.compress.quantize.ort.per_node_sqnr`)
and keep the worst in float one by one until the drop vs fp32 fits the budget,
measuring the onnxruntime CPU p50 (batch 1, 1 thread) after each step: a fallback's
latency cost."""

from __future__ import annotations

import glob
import math
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesmith.compress.quantize.backend import quantize
from edgesmith.compress.quantize.config import MIN_CALIBRATION_SAMPLES
from edgesmith.compress.quantize.ort import per_node_sqnr
from edgesmith.conf.base import RecipeError

if TYPE_CHECKING:
    from edgesmith.compress.quantize.stage import QuantizeConfig

__all__ = ["quantize_to_budget", "rank_by_added_noise"]

def rank_by_added_noise(fp32_path: str | Path, q_path: str | Path, feed: dict[str, np.ndarray]) -> list[dict]:
    """The quantized compute nodes, the one adding the most quantization noise first.

    :func:`per_node_sqnr` gives each node's output SQNR, which includes the noise
    of every node upstream (later layers always look worse). A node's own share
    is its output noise-to-signal ratio less the largest of its nearest compute
    ancestors'; that is what keeping it in float would remove.

    Returns:
        ``[{"node", "op_type", "sqnr_db", "added_noise"}]``, most noise first.
    """
    import onnx

    report = per_node_sqnr(fp32_path, q_path, feed)
    graph = onnx.load(str(fp32_path), load_external_data=False).graph
    producer = {o: n for n in graph.node for o in n.output}
    nsr = {r["node"]: 10 ** (-r["sqnr_db"] / 10) if math.isfinite(r["sqnr_db"]) else 0.0 for r in report}

    def upstream(node: Any) -> float:
        worst, seen, stack = 0.0, set(), list(node.input)
        while stack:
            p = producer.get(stack.pop())
            if p is None or p.name in seen:
                continue
            seen.add(p.name)
            if p.name in nsr:
                worst = max(worst, nsr[p.name])
            else:
                stack.extend(p.input)
        return worst

    by_name = {n.name: n for n in graph.node}
    ranked = [{**r, "added_noise": nsr[r["node"]] - upstream(by_name[r["node"]])} for r in report]
    return sorted(ranked, key=lambda r: -r["added_noise"])


def quantize_to_budget(
    fp32_path: str | Path,
    out_path: str | Path,
    config: QuantizeConfig,
    calibration: list[dict[str, np.ndarray]],
    evaluate: Callable[[Path], dict[str, float]],
    reference: dict[str, float],
    metric: str,
    log: Callable[[str], None] = lambda _: None,
    latency: Callable[[Path], float | None] | None = None,
) -> dict[str, Any]:
    """Quantize ``fp32_path`` into ``out_path``; with ``config.accuracy_budget``, keep
    the noisiest nodes in float one at a time until the drop fits.

    Args:
        fp32_path: The fp32 ONNX file.
        out_path: Where the quantized file goes (rewritten at each budget step).
        config: The stage's config.
        calibration: Batches ``{input_name: array}`` from the calibration split.
        evaluate: Scores a quantized file on held-out data: ``{metric: value, ...}``.
        reference: The fp32 file's scores (same keys).
        metric: The key of ``reference`` the budget applies to.
        log: Progress lines.
        latency: With a budget: a file's p50 in ms (onnxruntime CPU, batch 1); each
            step's file is measured, so each fallback's latency cost is reported.

    Returns:
        ``quantization`` (the backend's report for the kept file), ``metrics``,
        ``drop_points`` and ``budget`` (None without one, else the metric, the
        budget, ``float_nodes`` kept in float, ``fp32_p50_ms`` and one entry per
        step, with ``p50_ms`` and ``p50_delta_ms`` vs the step before when ``latency``).

    Raises:
        RecipeError: (key ``accuracy_budget``) when even every ranked node kept in
            float does not meet the budget; names the best drop reached.
    """
    samples = sum(len(next(iter(b.values()))) for b in calibration)
    onnx_cfg = config.onnx_config(max(samples, MIN_CALIBRATION_SAMPLES))
    info = quantize(fp32_path, onnx_cfg, calibration, out=out_path)
    metrics = evaluate(Path(out_path))
    drop = _points(reference[metric] - metrics[metric])
    budget = config.accuracy_budget
    log(f"  {onnx_cfg.precision}: {metric} {metrics[metric]:.4f} (fp32 {reference[metric]:.4f}, "
        f"drop {drop:.2f} points)")
    if budget is None:
        return {"quantization": info, "metrics": metrics, "drop_points": drop, "budget": None}
    steps = [{"float_node": None, "drop_points": drop, metric: metrics[metric], "sqnr_db": metrics.get("sqnr_db")}]
    fp32_p50 = None
    if latency is not None:
        fp32_p50, steps[0]["p50_ms"] = latency(Path(fp32_path)), latency(Path(out_path))
        log(f"  p50 (onnxruntime, batch 1, 1 thread): fp32 {_ms(fp32_p50)}, all quantized {_ms(steps[0]['p50_ms'])}")
    kept: list[str] = []
    if drop > budget + 1e-9:
        import onnx

        floats = set(info["float_nodes"])
        names = {n.name for n in onnx.load(str(out_path), load_external_data=False).graph.node}
        ranking = [r for r in rank_by_added_noise(fp32_path, out_path, calibration[0])
                   if r["node"] not in floats and f"{r['node']}_MatMul" not in floats  # not float already
                   and (r["node"] in names or f"{r['node']}_MatMul" in names)]  # and excludable by name
        best = drop
        for r in ranking:
            kept.append(r["node"])
            cfg = config.onnx_config(onnx_cfg.calibration_samples, [glob.escape(n) for n in kept])
            info = quantize(fp32_path, cfg, calibration, out=out_path)
            metrics = evaluate(Path(out_path))
            drop = _points(reference[metric] - metrics[metric])
            best = min(best, drop)
            step = {"float_node": r["node"], "op_type": r["op_type"], "node_sqnr_db": r["sqnr_db"],
                    "drop_points": drop, metric: metrics[metric], "sqnr_db": metrics.get("sqnr_db")}
            cost = ""
            if latency is not None:
                step["p50_ms"] = latency(Path(out_path))
                before = steps[-1].get("p50_ms")
                step["p50_delta_ms"] = None if None in (before, step["p50_ms"]) else round(step["p50_ms"] - before, 4)
                cost = f", p50 {_ms(step['p50_ms'])}" + (
                    f" ({step['p50_delta_ms']:+.4f} ms)" if step["p50_delta_ms"] is not None else "")
            steps.append(step)
            log(f"  kept {r['node']} ({r['op_type']}) in float: drop {drop:.2f} points{cost}")
            if drop <= budget + 1e-9:
                break
        else:
            raise RecipeError("accuracy_budget", f"{budget:g} points of {metric} not met: the best drop reached is "
                              f"{best:.2f} points, with all {len(ranking)} quantized compute nodes tried in "
                              "float one by one; raise the budget or try another preset or method")
    return {"quantization": info, "metrics": metrics, "drop_points": drop,
            "budget": {"metric": metric, "points": budget, "float_nodes": kept, "fp32_p50_ms": fp32_p50,
                       "steps": steps}}


def _points(delta: float) -> float:
    return round(100.0 * delta, 4)


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f} ms"
