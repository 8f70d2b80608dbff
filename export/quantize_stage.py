"""The ``quantize`` recipe stage: post-training quantization of the incoming fp32
model's ONNX export (a named target preset of :mod:`edgesmith.export.quantize_presets`
plus overrides), calibrated on the recipe's calibration split and scored on its
eval split, optionally held to an accuracy budget.

The stage passes the fp32 PyTorch model on unchanged; its artifact is the
quantized ``.onnx`` file, which the run's export step ships as the ``onnx``
export (parity-checked against the fp32 PyTorch model with the quantized
tolerance) and the benchmark step measures.

With ``accuracy_budget`` the stage ranks the quantized nodes by the noise each
one adds (:func:`rank_by_added_noise`, from :func:`per_node_sqnr`) and keeps the
worst in float one by one until the drop vs fp32 fits the budget, measuring the
onnxruntime CPU p50 (batch 1, 1 thread) after each step: a fallback's latency cost.

``equalize``, ``bias_correction`` and ``smoothquant`` transform a copy of the fp32
model before the export that is quantized (:mod:`edgesmith.compress.ptq`); the
quantized file is still scored against the untransformed fp32 file.

Example (a recipe's ``stages:`` entry)::

    - kind: quantize
      preset: x86                # x86, x86-dynamic, tensorrt, fp16
      method: percentile         # override the preset's calibration observer
      exclude: ["node_linear_1"] # ONNX node names or fnmatch patterns kept in float
      accuracy_budget: 1.0       # at most 1 point of accuracy lost vs fp32
      equalize: true             # CNNs: cross-layer equalization (BatchNorm folded first)
      bias_correction: true      # subtract the mean output shift of weight quantization
      # smoothquant: 0.5         # transformers: SmoothQuant migration strength alpha
"""

from __future__ import annotations

import dataclasses
import glob
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from edgesmith.conf.base import RecipeError, at_least, between, field
from edgesmith.conf.stage import StageConfig
from edgesmith.export.quantize_onnx import (
    MIN_CALIBRATION_SAMPLES,
    OnnxQuantConfig,
    per_node_sqnr,
    quantize_onnx,
)
from edgesmith.export.quantize_presets import PRESETS, preset

__all__ = ["QuantizeConfig", "quantize_to_budget", "rank_by_added_noise"]

# OnnxQuantConfig field -> the stage's key, so that an error names what the recipe wrote.
_STAGE_KEY = {"calibration": "method", "symmetric_activations": "symmetric", "exclude_nodes": "exclude",
              "include_nodes": "include", "min_sqnr_db": "sqnr_floor"}
_STATIC_ONLY = ("method", "percentile", "symmetric", "float_op_outputs")
_INT8_ONLY = ("equalize", "bias_correction", "smoothquant")


@dataclasses.dataclass
class QuantizeConfig(StageConfig):
    """Quantize the model's ONNX export for a target.

    Attributes:
        preset: Target: ``x86`` (static QDQ int8), ``x86-dynamic`` (dynamic int8,
            for transformers), ``tensorrt`` (symmetric QDQ int8), ``fp16``.
        method: Calibration observer override (``minmax``, ``percentile``, ``entropy``),
            static int8 only; ``percentile`` sets the percentile kept.
        per_channel, symmetric, reduce_range: Overrides of the preset (``symmetric``:
            int8 activations with zero point 0, static int8 only; weights are always
            symmetric).
        include: ONNX node names or fnmatch patterns to quantize (others stay float).
        exclude: ONNX node names or patterns kept in float.
        op_types: ONNX op types to quantize (None: the preset's).
        float_outputs: Static int8: the op writing each graph output writes float (no
            output Q/DQ), so logits or embeddings beyond the calibration range are not
            clipped. None: on for static int8.
        calibration_samples: Samples of the calibration split used (None: all of it).
        sqnr_floor: Output SQNR (dB) vs fp32 on the calibration batch below which the
            stage fails.
        accuracy_budget: Most the quantized model may lose vs its fp32 parent on the
            eval split, in points (hundredths) of ``budget_metric``; None: no budget.
        budget_metric: ``accuracy`` or ``cosine_to_teacher``; None picks accuracy for
            classifiers and cosine to the teacher for embedding models.
        float_op_outputs: Static int8: op types whose outputs get no Q/DQ (transformers:
            ``[MatMul]``, whose outputs feed a float bias Add).
        equalize: Cross-layer equalization of Conv/Linear pairs (CNNs; int8 only).
        bias_correction: Empirical bias correction of the weight quantization error,
            on the calibration split (int8 only).
        smoothquant: SmoothQuant migration strength alpha in [0, 1] (transformers;
            static or dynamic int8); None: off. It adds Mul nodes, so ``include`` /
            ``exclude`` then name nodes of the stage's ``prepared/model.onnx``.
    """

    kind = "quantize"
    preset: str = "x86"
    method: Literal["minmax", "percentile", "entropy"] | None = None
    percentile: float | None = field(default=None, metadata=between(90, 100, hi_open=True))
    per_channel: bool | None = None
    symmetric: bool | None = None
    reduce_range: bool | None = None
    include: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] | None = None
    float_outputs: bool | None = None
    calibration_samples: int | None = field(default=None, metadata=at_least(MIN_CALIBRATION_SAMPLES))
    sqnr_floor: float = 10.0
    accuracy_budget: float | None = field(default=None, metadata=at_least(0))
    budget_metric: Literal["accuracy", "cosine_to_teacher"] | None = None
    float_op_outputs: list[str] | None = None
    equalize: bool = False
    bias_correction: bool = False
    smoothquant: float | None = field(default=None, metadata=between(0, 1))

    def validate(self) -> None:
        if self.preset not in PRESETS:
            raise RecipeError("preset", PRESETS.unknown_message(self.preset))
        config = self.onnx_config(MIN_CALIBRATION_SAMPLES)
        for key in _INT8_ONLY:
            if getattr(self, key) not in (None, False) and config.precision == "fp16":
                raise RecipeError(key, f"applies to int8 presets only; preset '{self.preset}' keeps float weights")

    @property
    def advanced(self) -> bool:
        """Whether a transform of :mod:`edgesmith.compress.ptq` runs before the export."""
        return self.equalize or self.bias_correction or self.smoothquant is not None

    def onnx_config(self, calibration_samples: int, exclude: list[str] | None = None) -> OnnxQuantConfig:
        """The preset's :class:`OnnxQuantConfig` with this stage's overrides applied."""
        base = PRESETS.get(self.preset)()
        for key in _STATIC_ONLY:
            if getattr(self, key) is not None and base.precision != "int8":
                raise RecipeError(key, f"applies to static int8 only; preset '{self.preset}' is {base.precision}")
        overrides: dict[str, Any] = {
            "calibration": self.method, "percentile": self.percentile, "per_channel": self.per_channel,
            "symmetric_activations": self.symmetric, "reduce_range": self.reduce_range,
            "include_nodes": self.include, "op_types": self.op_types, "float_op_outputs": self.float_op_outputs,
            "float_outputs": base.precision == "int8" if self.float_outputs is None else self.float_outputs,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        overrides.update(exclude_nodes=[*self.exclude, *(exclude or [])], min_sqnr_db=self.sqnr_floor,
                         calibration_samples=calibration_samples)
        try:
            return preset(self.preset, **overrides)
        except RecipeError as e:
            raise RecipeError(_STAGE_KEY.get(e.key, e.key), e.message) from None


def stage_key(e: RecipeError) -> RecipeError:
    """Rename an :class:`OnnxQuantConfig` key in ``e`` (``exclude_nodes``) to the stage's (``exclude``)."""
    return RecipeError(_STAGE_KEY.get(e.key, e.key), e.message, e.file)


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
        ``quantization`` (:func:`quantize_onnx`'s info for the kept file), ``metrics``,
        ``drop_points`` and ``budget`` (None without one, else the metric, the
        budget, ``float_nodes`` kept in float, ``fp32_p50_ms`` and one entry per
        step, with ``p50_ms`` and ``p50_delta_ms`` vs the step before when ``latency``).

    Raises:
        RecipeError: (key ``accuracy_budget``) when even every ranked node kept in
            float does not meet the budget; names the best drop reached.
    """
    samples = sum(len(next(iter(b.values()))) for b in calibration)
    onnx_cfg = config.onnx_config(max(samples, MIN_CALIBRATION_SAMPLES))
    info = quantize_onnx(fp32_path, out_path, onnx_cfg, calibration)
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
            info = quantize_onnx(fp32_path, out_path, cfg, calibration)
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
