"""The ``quantize`` and ``qat`` recipe stages: post-training quantization of the
incoming fp32 model's ONNX export (a named target preset of
:mod:`edgesmith.compress.quantize.presets` plus overrides), calibrated on the
recipe's calibration split and scored on its eval split, optionally held to an
accuracy budget (:mod:`edgesmith.compress.quantize.budget`); and quantization-aware
training (:mod:`edgesmith.compress.quantize.qat`) scored the same way.

Both pass the fp32 PyTorch model on unchanged; the artifact is the quantized
``.onnx`` file, which the run's export step ships as the ``onnx`` export
(parity-checked against the fp32 PyTorch model with the quantized tolerance) and
the benchmark step measures beside its fp32 parent.

``equalize``, ``bias_correction`` and ``smoothquant`` transform a copy of the fp32
model before the export that is quantized (:mod:`edgesmith.compress.quantize.transforms`);
the quantized file is still scored against the untransformed fp32 file.

Example (a recipe's ``stages:`` entry)::

    - kind: quantize
      preset: x86                # x86, x86-vnni, x86-dynamic, tensorrt, fp16
      method: percentile         # override the preset's calibration observer
      exclude: ["node_linear_1"] # ONNX node names or fnmatch patterns kept in float
      accuracy_budget: 1.0       # at most 1 point of accuracy lost vs fp32
      equalize: true             # CNNs: cross-layer equalization (BatchNorm folded first)
      bias_correction: true      # subtract the mean output shift of weight quantization
      # smoothquant: 0.5         # transformers: SmoothQuant migration strength alpha
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Literal

from edgesmith.compress.quantize.config import MIN_CALIBRATION_SAMPLES, QuantConfig
from edgesmith.compress.quantize.presets import PRESETS, preset, presets_taking
from edgesmith.compress.quantize.qat import QatConfig
from edgesmith.compress.quantize.scoring import feeds, onnx_scorer
from edgesmith.compress.stage import file_stage, register_stage
from edgesmith.conf.base import RecipeError, at_least, between, field
from edgesmith.conf.stage import StageConfig
from edgesmith.numeric import finite_or_none, mean_cosine, quality_metric, sqnr_db

__all__ = ["QuantizeConfig", "QatConfig", "stage_key"]

# QuantConfig field -> the stage's key, so that an error names what the recipe wrote.
_STAGE_KEY = {"calibration": "method", "symmetric_activations": "symmetric", "exclude_nodes": "exclude",
              "include_nodes": "include", "min_sqnr_db": "sqnr_floor"}
_STATIC_ONLY = ("method", "percentile", "symmetric", "float_op_outputs")
_INT8_ONLY = ("equalize", "bias_correction", "smoothquant")


@dataclasses.dataclass
class QuantizeConfig(StageConfig):
    """Quantize the model's ONNX export for a target.

    Attributes:
        preset: Target: ``x86`` (static QDQ int8, 7-bit weights), ``x86-vnni`` (static QDQ
            int8, 8-bit weights, percentile ranges: VNNI / ARM CPUs, MobileNet-class CNNs),
            ``x86-dynamic`` (dynamic int8, for transformers), ``tensorrt`` (symmetric QDQ
            int8), ``fp16``.
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
        table_bits: 8, or 4 to store embedding tables in 4-bit blocks (onnxruntime's
            GatherBlockQuantized; int8 presets on onnxruntime; the ONNX file only, the mobile
            formats keep their own precision); None: the preset's (8).
        table_block: Values per 4-bit table block (a power of two, at least 16).
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
    table_bits: Literal[8, 4] | None = None
    table_block: int | None = field(default=None, metadata=at_least(16))

    def validate(self) -> None:
        names = presets_taking("onnx")
        if self.preset in PRESETS and self.preset not in names:
            raise RecipeError("preset", f"'{self.preset}' quantizes a model for a mobile format (set it through "
                                        f"export.precision); this stage takes {', '.join(names)}")
        if self.preset not in names:
            close = difflib.get_close_matches(self.preset, names, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise RecipeError("preset", f"unknown onnx quantization preset '{self.preset}'{hint}; "
                                        f"choose one of: {', '.join(names)}")
        config = self.onnx_config(MIN_CALIBRATION_SAMPLES)
        for key in _INT8_ONLY:
            if getattr(self, key) not in (None, False) and config.precision == "fp16":
                raise RecipeError(key, f"applies to int8 presets only; preset '{self.preset}' keeps float weights")

    @property
    def advanced(self) -> bool:
        """Whether a transform of :mod:`edgesmith.compress.quantize.transforms` runs before the export."""
        return self.equalize or self.bias_correction or self.smoothquant is not None

    def onnx_config(self, calibration_samples: int, exclude: list[str] | None = None) -> QuantConfig:
        """The preset's :class:`QuantConfig` with this stage's overrides applied."""
        base = PRESETS.get(self.preset)()
        for key in _STATIC_ONLY:
            if getattr(self, key) is not None and base.precision != "int8":
                raise RecipeError(key, f"applies to static int8 only; preset '{self.preset}' is {base.precision}")
        overrides: dict[str, Any] = {
            "calibration": self.method, "percentile": self.percentile, "per_channel": self.per_channel,
            "symmetric_activations": self.symmetric, "reduce_range": self.reduce_range,
            "include_nodes": self.include, "op_types": self.op_types, "float_op_outputs": self.float_op_outputs,
            "float_outputs": base.precision == "int8" if self.float_outputs is None else self.float_outputs,
            "table_bits": self.table_bits, "table_block": self.table_block,
        }
        overrides = {k: v for k, v in overrides.items() if v is not None}
        overrides.update(exclude_nodes=[*self.exclude, *(exclude or [])], min_sqnr_db=self.sqnr_floor,
                         calibration_samples=calibration_samples)
        try:
            return preset(self.preset, **overrides)
        except RecipeError as e:
            raise RecipeError(_STAGE_KEY.get(e.key, e.key), e.message) from None


def stage_key(e: RecipeError) -> RecipeError:
    """Rename a :class:`QuantConfig` key in ``e`` (``exclude_nodes``) to the stage's (``exclude``)."""
    return RecipeError(_STAGE_KEY.get(e.key, e.key), e.message, e.file)


@register_stage(QuantizeConfig, weights=False, passes_model_on=True, feeds_teacher=False)
@file_stage
def run_quantize_stage(ctx, cfg: QuantizeConfig, model, stage_dir) -> dict:
    """Export ``model`` to fp32 ONNX, quantize it and score both files in onnxruntime
    on the eval split (and the probe) with the pipeline's own metrics. With advanced
    PTQ a transformed copy of ``model`` is exported (``prepared/``) and quantized,
    and plain PTQ of the fp32 file is scored too, for comparison."""
    import copy
    import dataclasses

    from edgesmith.benchmarks.latency import quick_p50
    from edgesmith.compress.quantize.budget import quantize_to_budget
    from edgesmith.errors import RecipeError
    from edgesmith.export import get_exporter
    from edgesmith.progress import log, size_change

    task, name = ctx.task, cfg.name or cfg.kind
    calib = ctx.tensors["calibration"]
    n = cfg.calibration_samples or len(calib)
    if n > len(calib) or len(calib) < MIN_CALIBRATION_SAMPLES:
        raise RecipeError("calibration_samples", f"needs {max(n, MIN_CALIBRATION_SAMPLES)} calibration samples "
                          f"but the calibration split holds {len(calib)}; enlarge data.splits.calibration")
    art = get_exporter("onnx")().export(copy.deepcopy(model).cpu(), ctx.example_inputs(), task, stage_dir / "fp32",
                                        ctx.recipe.export)
    calibration = feeds(task, calib.take(slice(0, n)), ordered=False)
    metric = cfg.budget_metric or quality_metric(task.kind)
    # a TensorRT-style file is judged by its Q/DQ math in float (onnxruntime's CPU s8 x s8 kernels saturate)
    on = cfg.onnx_config(MIN_CALIBRATION_SAMPLES).check_on
    scorer = onnx_scorer(ctx, name, model, "quantize", "keep the offending nodes in float (exclude) or use the "
                          "fp16 preset")

    def score(path, optimize: bool = True) -> tuple[dict, list]:
        m, outs = scorer(path, optimize)
        if metric not in m:
            raise RecipeError("budget_metric", f"'{metric}' is not measured for this task; it measures "
                              f"{', '.join(sorted(m))}")
        return m, outs

    reference, ref_outs = score(art.path)
    last: dict = {}

    def evaluate(path) -> dict:
        m, outs = score(path, optimize=on == "onnxruntime")
        sqnr = {o: finite_or_none(sqnr_db(r, q)) for o, r, q in zip(task.output_names, ref_outs, outs, strict=False)}
        last["sqnr_per_output"] = sqnr
        return {**m, "sqnr_db": next(iter(sqnr.values())), "cosine_to_fp32": mean_cosine(ref_outs[0], outs[0])}

    out = stage_dir / f"model.{cfg.onnx_config(MIN_CALIBRATION_SAMPLES).precision}.onnx"
    src, advanced = art.path, None
    if cfg.advanced:  # the calibration samples, untrimmed: equal shapes, so bias correction runs in one pass
        batches = [tuple(t.clone() for t in b.inputs) for b in calib.take(slice(0, n)).batches(64)]
        prepared, advanced = _advanced_ptq(cfg, model, batches, log)
        src = get_exporter("onnx")().export(prepared, ctx.example_inputs(), task, stage_dir / "prepared",
                                            ctx.recipe.export).path
        advanced["prepared_file"] = f"prepared/{src.name}"
        advanced["without"] = _plain_ptq(dataclasses.replace(cfg, accuracy_budget=None), art.path,
                                         stage_dir / ".plain.onnx", calibration, evaluate, reference, metric)
    latency = None
    if cfg.accuracy_budget is not None:  # batch 1: the first eval sample
        one = feeds(task, ctx.tensors["eval"].take(slice(0, 1)))[0]
        latency = lambda path: quick_p50(path, one, "onnxruntime")  # noqa: E731
    try:
        result = quantize_to_budget(src, out, cfg, calibration, evaluate, reference, metric, log, latency)
    except RecipeError as e:
        raise stage_key(e) from None
    if advanced is not None:
        plain = advanced["without"]
        if "error" not in plain:
            log(f"  plain PTQ (no {', '.join(advanced['applied'])}): {metric} {plain[metric]:.4f}, drop "
                f"{plain['drop_points']:.2f} points, output SQNR {plain['sqnr_db']} dB; with: drop "
                f"{result['drop_points']:.2f} points")
    q = result["quantization"]
    metrics = {**result["metrics"], f"fp32_{metric}": reference[metric], "drop_points": result["drop_points"]}
    ratio = q["size_ratio"]
    log(f"  {q['precision']}: {q['size_bytes'] / 1e6:.3f} MB, {size_change(ratio)} than fp32; "
        f"output SQNR {metrics['sqnr_db']} dB on the eval split")
    return {
        "file": out.name, "fp32_file": f"fp32/{art.path.name}", "metrics": metrics, "size_bytes": q["size_bytes"],
        "precision": "fp16" if q["precision"] == "fp16" else "int8", "scheme": q["precision"],
        "fp32_size_bytes": q["fp32_size_bytes"], "size_ratio": q["size_ratio"], "fp32_metrics": reference,
        "sqnr_per_output": last["sqnr_per_output"], "budget_metric": metric, "budget": result["budget"],
        "evaluated_on": on, "quantization": q, "advanced_ptq": advanced,
    }


def _advanced_ptq(cfg: QuantizeConfig, model, batches: list, log) -> tuple[Any, dict]:
    """The stage's :mod:`edgesmith.compress.quantize.transforms` transforms of a copy of ``model``, in
    order (CLE, SmoothQuant, bias correction last), with the weight quantization of
    the stage's preset; returns the new model and each transform's report."""
    import dataclasses

    from edgesmith.compress.quantize.transforms import WeightQuant, correct_bias, equalize, smooth

    onnx_cfg = cfg.onnx_config(MIN_CALIBRATION_SAMPLES)
    weights = WeightQuant(per_channel=onnx_cfg.per_channel, symmetric=onnx_cfg.symmetric_weights,
                          reduce_range=onnx_cfg.reduce_range)
    report: dict[str, Any] = {"applied": [], "weights": dataclasses.asdict(weights)}
    if cfg.equalize:
        model, r = equalize(model, example_inputs=batches[0], calibration=batches)
        report["applied"].append("equalize")
        report["equalize"] = r
        log(f"  CLE: {len(r['pairs'])} layer pairs equalized in {r['sweeps']} sweeps, {len(r['skipped'])} skipped, "
            f"{len(r['folded_batchnorms'])} BatchNorms folded; fp32 max |diff| {r['fp32_max_abs_diff']:.1e}")
    if cfg.smoothquant is not None:
        model, r = smooth(model, batches, cfg.smoothquant, weights=weights,
                          symmetric_activations=onnx_cfg.symmetric_activations)
        report["applied"].append("smoothquant")
        report["smoothquant"] = r
        n = sum(g["smoothed"] for g in r["groups"])
        log(f"  SmoothQuant (alpha {cfg.smoothquant:g}): {n} of {len(r['groups'])} Linear input groups smoothed "
            f"({len(r['smoothed_layers'])} Linears); fp32 max |diff| {r['fp32_max_abs_diff']:.1e}")
    if cfg.bias_correction:
        model, r = correct_bias(model, batches, weights)
        report["applied"].append("bias_correction")
        report["bias_correction"] = r
        worst = max((x["max_abs_shift"] for x in r["layers"]), default=0.0)
        log(f"  bias correction: {len(r['layers'])} layers ({r['passes']} pass{'es' if r['passes'] > 1 else ''}), "
            f"largest mean output shift removed {worst:.2e}")
    return model, report


def _plain_ptq(cfg: QuantizeConfig, fp32_path, out, calibration, evaluate, reference, metric) -> dict:
    """Plain PTQ of ``fp32_path`` scored like the stage's file (for the advanced-PTQ
    comparison); ``{"error"}`` when its settings do not fit the plain graph."""
    import dataclasses

    from edgesmith.compress.quantize.backend import quantize
    from edgesmith.errors import EdgesmithError

    samples = sum(len(next(iter(b.values()))) for b in calibration)
    try:  # no SQNR floor: the comparison wants plain PTQ's number even where it fails
        info = quantize(fp32_path, dataclasses.replace(cfg.onnx_config(samples), min_sqnr_db=None), calibration,
                        out=out)
        m = evaluate(out)
    except EdgesmithError as e:
        return {"error": str(e)}
    finally:
        out.unlink(missing_ok=True)
    return {metric: m[metric], "drop_points": round(100.0 * (reference[metric] - m[metric]), 4),
            "sqnr_db": m.get("sqnr_db"), "cosine_to_fp32": m.get("cosine_to_fp32"),
            "output_sqnr_db_calibration": (info["check"] or {}).get("sqnr_db")}


@register_stage(QatConfig, weights=False, passes_model_on=True)
@file_stage
def run_qat_stage(ctx, cfg: QatConfig, model, stage_dir) -> dict:
    """Export ``model`` to fp32 ONNX, fine-tune a fake-quantized copy with KD, export
    the converted int8 model to ONNX QDQ and score both files in onnxruntime on the
    eval split (and the probe) like the ``quantize`` stage."""
    import copy
    import shutil

    import onnx

    from edgesmith.compress.quantize.ort import describe
    from edgesmith.compress.quantize.qat import qat
    from edgesmith.errors import ExportError, StageError
    from edgesmith.export import get_exporter
    from edgesmith.export.pt2 import dynamic_shapes_for
    from edgesmith.progress import log, size_change

    task, name = ctx.task, cfg.name or cfg.kind
    exporter = get_exporter("onnx")()
    example = ctx.example_inputs()
    fp32 = exporter.export(copy.deepcopy(model).cpu(), example, task, stage_dir / "fp32", ctx.recipe.export)
    train, val = ctx.train_val(cfg.val_fraction)
    converted, fit = qat(model, ctx.teacher, cfg, task, train, val, example,
                         dynamic_shapes=dynamic_shapes_for(task, True), seed=ctx.recipe.seed)
    try:
        art = exporter.export(converted, example, task, stage_dir / "int8", ctx.recipe.export)
    except ExportError as e:
        raise StageError(f"qat: the int8 model did not export to ONNX: {e}") from None
    out = stage_dir / "model.int8.onnx"
    art.path.replace(out)
    shutil.rmtree(stage_dir / "int8")

    score = onnx_scorer(ctx, name, model, "qat", "lower lr or exclude the offending layers")
    reference, ref_outs = score(fp32.path)
    metrics, outs = score(out)
    sqnr = {o: finite_or_none(sqnr_db(r, q)) for o, r, q in zip(task.output_names, ref_outs, outs, strict=False)}
    metric = quality_metric(task.kind)
    drop = round(100.0 * (reference[metric] - metrics[metric]), 4)
    metrics = {**metrics, "sqnr_db": next(iter(sqnr.values())), "cosine_to_fp32": mean_cosine(ref_outs[0], outs[0]),
               f"fp32_{metric}": reference[metric], "drop_points": drop}
    if metrics["sqnr_db"] is not None and metrics["sqnr_db"] < cfg.sqnr_floor:
        raise StageError(f"qat: output SQNR {metrics['sqnr_db']} dB vs fp32 is below sqnr_floor "
                         f"({cfg.sqnr_floor} dB); lower lr, exclude sensitive layers or lower sqnr_floor")
    q = {**describe(onnx.load(str(out))), "precision": "int8", "per_channel": cfg.per_channel,
         "size_bytes": out.stat().st_size, "fp32_size_bytes": fp32.size_bytes}
    q["size_ratio"] = round(q["fp32_size_bytes"] / q["size_bytes"], 3)
    log(f"  qat int8: {metric} {metrics[metric]:.4f} (fp32 {reference[metric]:.4f}, drop {drop:.2f} points), "
        f"{q['size_bytes'] / 1e6:.3f} MB ({size_change(q['size_ratio'])} than fp32), output SQNR {metrics['sqnr_db']} dB")
    return {
        "file": out.name, "fp32_file": f"fp32/{fp32.path.name}", "metrics": metrics, "size_bytes": q["size_bytes"],
        "precision": "int8", "scheme": "int8", "fp32_size_bytes": q["fp32_size_bytes"],
        "size_ratio": q["size_ratio"], "fp32_metrics": reference, "sqnr_per_output": sqnr, "budget_metric": metric,
        "evaluated_on": "onnxruntime", "quantization": q,
        "fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch, "best_val": fit.best_score,
                "history": fit.history, "seconds": round(fit.seconds, 2)},
    }
