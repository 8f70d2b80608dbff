"""Stage kinds a recipe may list, registered by name. A stage spec pairs the
technique's config class with

- ``run(ctx, cfg, model, stage_dir) -> (new_model, info)``: runs the technique
  inside the pipeline (``ctx`` is the :class:`RunContext`; ``info`` is a JSON-able
  dict stored in the stage's ``stage.json``), and
- ``skeleton(ctx, prev_model, cfg, info) -> model``: rebuilds the output model's
  *structure* (weights are loaded afterwards from ``model.safetensors``) when a
  finished stage is reused on resume. A structural technique replays its
  structural change from ``info`` (e.g. kept channels, ranks).

A stage with ``weights=False`` (``quantize``, ``qat``) passes the incoming model on
unchanged: it saves no ``model.safetensors``, its ``info`` carries its own
``metrics``, ``size_bytes`` and ``file`` (its artifact in the stage folder), its
skeleton is the identity, and it must come after every stage that does change
weights.

A stage with ``feeds_teacher`` runs the teacher on the run's tokenized data (KD,
agreement with the teacher); the ``vocab`` stage (``switches_tokenizer``) changes
that data's token ids, so every such stage must come before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgesmith.compress.distill import DistillConfig
from edgesmith.compress.lowrank import LowRankConfig
from edgesmith.compress.prune import PruneConfig
from edgesmith.compress.qat import QatConfig
from edgesmith.compress.sensitivity import SensitivityConfig
from edgesmith.compress.vocab import VocabConfig
from edgesmith.export.quantize_stage import QuantizeConfig
from edgesmith.registry import Registry


@dataclass(frozen=True)
class StageSpec:
    config: type
    run: Callable[..., Any]
    skeleton: Callable[..., Any]
    weights: bool = True
    # the stage reports on (or converts a file of) the model it gets and hands that same model on
    passes_model_on: bool = False
    # the stage runs the teacher on ctx.tensors (KD, teacher agreement): it cannot follow a vocab stage
    feeds_teacher: bool = True
    # from this stage on ctx.tokenizer / task / tensors use a pruned vocabulary (the vocab stage)
    switches_tokenizer: bool = False


STAGES: Registry[StageSpec] = Registry("stage kind")


def _run_distill(ctx, cfg: DistillConfig, model, stage_dir):
    from edgesmith.compress.distill import distill

    student = ctx.new_student()
    train, val = ctx.train_val(cfg.val_fraction)
    student, fit = _in_stage(ctx, cfg, distill, student, ctx.teacher, cfg, ctx.task, train, val,
                             device=ctx.device, checkpoint_dir=stage_dir, seed=ctx.recipe.seed,
                             targets_cache=ctx.targets_cache)
    (stage_dir / "best.safetensors").unlink(missing_ok=True)
    return student, {"fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                             "best_val": fit.best_score, "history": fit.history,
                             "samples_per_s": round(fit.samples_per_s, 1)}}


def _distill_skeleton(ctx, prev_model, cfg, info):
    return ctx.new_student()


STAGES.register("distill")(StageSpec(DistillConfig, _run_distill, _distill_skeleton))


# ----------------------------------------------------------- prune / lowrank

def _in_stage(ctx, cfg, fn, *args, **kwargs):
    """Run ``fn``; a RecipeError it raises names the stage's key path (``stages[2].include``)."""
    from edgesmith.errors import RecipeError

    try:
        return fn(*args, **kwargs)
    except RecipeError as e:
        index = next((i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg), None)
        raise RecipeError(f"stages[{index}].{e.key}" if index is not None else e.key, e.message) from None


def _run_prune(ctx, cfg: PruneConfig, model, stage_dir):
    from edgesmith.compress.prune import prune

    train, val = ctx.train_val(cfg.val_fraction)
    return _in_stage(ctx, cfg, prune, model, cfg, ctx.task, train, val, ctx.teacher,
                     device=ctx.device, seed=ctx.recipe.seed, cache_dir=ctx.targets_cache)


def _prune_skeleton(ctx, prev_model, cfg, info):
    from edgesmith.compress.prune import rebuild_pruned

    return rebuild_pruned(prev_model, info)


def _run_lowrank(ctx, cfg: LowRankConfig, model, stage_dir):
    from edgesmith.compress.lowrank import factorize

    train, val = ctx.train_val(cfg.val_fraction)
    return _in_stage(ctx, cfg, factorize, model, cfg, ctx.task, train, val, ctx.teacher,
                     device=ctx.device, seed=ctx.recipe.seed, cache_dir=ctx.targets_cache)


def _lowrank_skeleton(ctx, prev_model, cfg, info):
    from edgesmith.compress.lowrank import rebuild_factorized

    return rebuild_factorized(prev_model, info)


STAGES.register("prune")(StageSpec(PruneConfig, _run_prune, _prune_skeleton))
STAGES.register("lowrank")(StageSpec(LowRankConfig, _run_lowrank, _lowrank_skeleton))


# -------------------------------------------------------------- sensitivity

def _run_sensitivity(ctx, cfg: SensitivityConfig, model, stage_dir):
    """Per-layer sensitivity table (``sensitivity.json`` + a rich table); the model passes through."""
    from edgesmith import atomic
    from edgesmith.compress.sensitivity import sensitivity, sensitivity_table
    from edgesmith.progress import console, quiet

    _, val = ctx.train_val(cfg.val_fraction)
    report = _in_stage(ctx, cfg, sensitivity, model, cfg, ctx.task, val, ctx.teacher, device=ctx.device)
    atomic.write_json(stage_dir / "sensitivity.json", report)
    if not quiet():
        console.print(sensitivity_table(report, cfg.name or cfg.kind))
    return model, {"report": "sensitivity.json", "metric": report["metric"], "baseline": report["baseline"],
                   "columns": report["columns"], "layers": [r["name"] for r in report["layers"]]}


STAGES.register("sensitivity")(StageSpec(SensitivityConfig, _run_sensitivity, lambda ctx, prev, cfg, info: prev,
                                         passes_model_on=True))


# ----------------------------------------------------------------- quantize

def _file_stage(impl: Callable[..., dict]) -> Callable[..., Any]:
    """The ``run`` of a stage that passes its model on and writes a file (``impl``
    returns the info); its StageErrors name the stage's place in the recipe."""

    def run(ctx, cfg, model, stage_dir):
        from edgesmith.errors import StageError

        index = next((i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg), None)
        try:
            return model, _in_stage(ctx, cfg, impl, ctx, cfg, model, stage_dir)
        except StageError as e:
            raise StageError(f"stages[{index}] ({cfg.name or cfg.kind}): "
                             f"{str(e).removeprefix(f'{cfg.kind}: ')}") from None

    return run


def _quantize(ctx, cfg: QuantizeConfig, model, stage_dir) -> dict:
    """Export ``model`` to fp32 ONNX, quantize it and score both files in onnxruntime
    on the eval split (and the probe) with the pipeline's own metrics. With advanced
    PTQ a transformed copy of ``model`` is exported (``prepared/``) and quantized,
    and plain PTQ of the fp32 file is scored too, for comparison."""
    import copy
    import dataclasses

    from edgesmith.benchmarks.latency import quick_p50
    from edgesmith.errors import RecipeError
    from edgesmith.export import get_exporter
    from edgesmith.export.quantize_onnx import MIN_CALIBRATION_SAMPLES, sqnr_db
    from edgesmith.export.quantize_stage import quantize_to_budget, stage_key
    from edgesmith.pipeline.steps import example_inputs
    from edgesmith.progress import log

    task, name = ctx.task, cfg.name or cfg.kind
    calib = ctx.tensors["calibration"]
    n = cfg.calibration_samples or len(calib)
    if n > len(calib) or len(calib) < MIN_CALIBRATION_SAMPLES:
        raise RecipeError("calibration_samples", f"needs {max(n, MIN_CALIBRATION_SAMPLES)} calibration samples "
                          f"but the calibration split holds {len(calib)}; enlarge data.splits.calibration")
    art = get_exporter("onnx")().export(copy.deepcopy(model).cpu(), example_inputs(ctx), task, stage_dir / "fp32",
                                        ctx.recipe.export)
    calibration = _feeds(task, calib.take(slice(0, n)), ordered=False)
    metric = cfg.budget_metric or ("cosine_to_teacher" if task.kind == "embedding" else "accuracy")
    # a TensorRT-style file is judged by its Q/DQ math in float (onnxruntime's CPU s8 x s8 kernels saturate)
    on = cfg.onnx_config(MIN_CALIBRATION_SAMPLES).check_on
    scorer = _onnx_scorer(ctx, name, model, "quantize", "keep the offending nodes in float (exclude) or use the "
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
        sqnr = {o: _finite(sqnr_db(r, q)) for o, r, q in zip(task.output_names, ref_outs, outs, strict=False)}
        last["sqnr_per_output"] = sqnr
        return {**m, "sqnr_db": next(iter(sqnr.values())), "cosine_to_fp32": _cosine(ref_outs[0], outs[0])}

    out = stage_dir / f"model.{cfg.onnx_config(MIN_CALIBRATION_SAMPLES).precision}.onnx"
    src, advanced = art.path, None
    if cfg.advanced:  # the calibration samples, untrimmed: equal shapes, so bias correction runs in one pass
        batches = [tuple(t.clone() for t in b.inputs) for b in calib.take(slice(0, n)).batches(64)]
        prepared, advanced = _advanced_ptq(cfg, model, batches, log)
        src = get_exporter("onnx")().export(prepared, example_inputs(ctx), task, stage_dir / "prepared",
                                            ctx.recipe.export).path
        advanced["prepared_file"] = f"prepared/{src.name}"
        advanced["without"] = _plain_ptq(dataclasses.replace(cfg, accuracy_budget=None), art.path,
                                         stage_dir / ".plain.onnx", calibration, evaluate, reference, metric)
    latency = None
    if cfg.accuracy_budget is not None:  # batch 1: the first eval sample
        one = _feeds(task, ctx.tensors["eval"].take(slice(0, 1)))[0]
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
    log(f"  {q['precision']}: {q['size_bytes'] / 1e6:.3f} MB, {ratio if ratio >= 1 else 1 / ratio:.2f}x "
        f"{'smaller' if ratio >= 1 else '[yellow]larger[/yellow]'} than fp32; output SQNR {metrics['sqnr_db']} dB "
        "on the eval split")
    return {
        "file": out.name, "fp32_file": f"fp32/{art.path.name}", "metrics": metrics, "size_bytes": q["size_bytes"],
        "precision": "fp16" if q["precision"] == "fp16" else "int8", "scheme": q["precision"],
        "fp32_size_bytes": q["fp32_size_bytes"], "size_ratio": q["size_ratio"], "fp32_metrics": reference,
        "sqnr_per_output": last["sqnr_per_output"], "budget_metric": metric, "budget": result["budget"],
        "evaluated_on": on, "quantization": q, "advanced_ptq": advanced,
    }


def _advanced_ptq(cfg: QuantizeConfig, model, batches: list, log) -> tuple[Any, dict]:
    """The stage's :mod:`edgesmith.compress.ptq` transforms of a copy of ``model``, in
    order (CLE, SmoothQuant, bias correction last), with the weight quantization of
    the stage's preset; returns the new model and each transform's report."""
    import dataclasses

    from edgesmith.compress.ptq import WeightQuant, correct_bias, equalize, smooth
    from edgesmith.export.quantize_onnx import MIN_CALIBRATION_SAMPLES

    onnx_cfg = cfg.onnx_config(MIN_CALIBRATION_SAMPLES)
    weights = WeightQuant(per_channel=onnx_cfg.per_channel, symmetric=onnx_cfg.symmetric_weights,
                          reduce_range=onnx_cfg.reduce_range)
    report: dict[str, Any] = {"applied": [], "weights": dataclasses.asdict(weights)}
    if cfg.equalize:
        model, r = equalize(model, example_inputs=batches[0])
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
    import math

    from edgesmith.errors import EdgesmithError
    from edgesmith.export.quantize_onnx import quantize_onnx

    samples = sum(len(next(iter(b.values()))) for b in calibration)
    try:  # no SQNR floor: the comparison wants plain PTQ's number even where it fails
        info = quantize_onnx(fp32_path, out, dataclasses.replace(cfg.onnx_config(samples), min_sqnr_db=-math.inf),
                             calibration)
        m = evaluate(out)
    except EdgesmithError as e:
        return {"error": str(e)}
    finally:
        out.unlink(missing_ok=True)
    return {metric: m[metric], "drop_points": round(100.0 * (reference[metric] - m[metric]), 4),
            "sqnr_db": m.get("sqnr_db"), "cosine_to_fp32": m.get("cosine_to_fp32"),
            "output_sqnr_db_calibration": (info["check"] or {}).get("sqnr_db")}


def _feeds(task, data, ordered: bool = True) -> list[dict]:
    """Batches of 64 ``{input_name: array}``, length-ordered like ``task.predict`` when ``ordered``."""
    order = task.length_order(data) if ordered else None
    data = data if order is None else data.take(order)
    return [{k: t.numpy() for k, t in zip(task.input_names, task.prepare(b.inputs), strict=True)}
            for b in data.batches(64)]


def _onnx_scorer(ctx, name: str, model, kind: str, fix: str):
    """``score(path, optimize=True) -> (metrics, outputs)``: an ONNX file's outputs on
    the eval split scored with the pipeline's own metrics (encoders: the probe's
    accuracy from its outputs on the probe texts); NaN/inf stops the stage, naming ``fix``."""
    import torch

    from edgesmith.errors import StageError

    task, threads = ctx.task, max(1, torch.get_num_threads())
    evals = (_feeds(task, ctx.tensors["eval"]), task.length_order(ctx.tensors["eval"]))
    probe = (_feeds(task, ctx.probe[1]), task.length_order(ctx.probe[1])) if ctx.probe is not None else None
    retrieval = [(_feeds(task, t), task.length_order(t)) for t in ctx.retrieval] if ctx.retrieval is not None else None

    def score(path, optimize: bool = True) -> tuple[dict, list]:
        outs = _onnx_outputs(path, *evals, threads, optimize)
        if not all(np.isfinite(o).all() for o in outs):
            raise StageError(f"{kind}: {path.name} outputs NaN/inf on the eval split; {fix}")
        m = task.metrics(torch.from_numpy(outs[0]), ctx.teacher_eval_outputs(), ctx.tensors["eval"].labels)
        if probe is not None:
            m["accuracy"] = ctx.score_outputs(_onnx_outputs(path, *probe, threads, optimize)[0], name, model, "probe")
        if retrieval is not None:  # the held-out retrieval check, on the file itself
            from edgesmith.models.fidelity import retrieval_recall

            q, d = (torch.from_numpy(_onnx_outputs(path, *r, threads, optimize)[0]) for r in retrieval)
            m.update(retrieval_recall(q, d))
        return m, outs

    return score


def _onnx_outputs(path, feeds: list[dict], order, threads: int, optimize: bool = True) -> list[np.ndarray]:
    """Every output of ``path`` over ``feeds``, concatenated, back in data order;
    ``optimize=False`` evaluates Q/DQ in float (no fused int8 kernels)."""
    if optimize:
        from edgesmith.runtimes import load

        with load(path, "onnxruntime", threads=threads) as rt:
            chunks = [rt.run(f) for f in feeds]
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        chunks = [sess.run(None, f) for f in feeds]
    outs = [np.concatenate([np.asarray(c[i], np.float32) for c in chunks]) for i in range(len(chunks[0]))]
    if order is not None:
        inverse = np.argsort(order.numpy())
        outs = [o[inverse] for o in outs]
    return outs


def _finite(x: float) -> float | None:
    return round(x, 2) if np.isfinite(x) else None


def _cosine(ref: np.ndarray, out: np.ndarray) -> float:
    r, o = ref.reshape(len(ref), -1).astype(np.float64), out.reshape(len(out), -1).astype(np.float64)
    return float(np.mean(np.sum(r * o, 1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-12)))


STAGES.register("quantize")(StageSpec(QuantizeConfig, _file_stage(_quantize), lambda ctx, prev, cfg, info: prev,
                                      weights=False, passes_model_on=True, feeds_teacher=False))


# ---------------------------------------------------------------------- qat

def _qat(ctx, cfg: QatConfig, model, stage_dir) -> dict:
    """Export ``model`` to fp32 ONNX, fine-tune a fake-quantized copy with KD, export
    the converted int8 model to ONNX QDQ and score both files in onnxruntime on the
    eval split (and the probe) like the ``quantize`` stage."""
    import copy
    import shutil

    import onnx

    from edgesmith.compress.qat import qat
    from edgesmith.errors import ExportError, StageError
    from edgesmith.export import get_exporter
    from edgesmith.export.pt2 import dynamic_shapes_for
    from edgesmith.export.quantize_onnx import describe, sqnr_db
    from edgesmith.pipeline.steps import example_inputs
    from edgesmith.progress import log

    task, name = ctx.task, cfg.name or cfg.kind
    exporter = get_exporter("onnx")()
    example = example_inputs(ctx)
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

    score = _onnx_scorer(ctx, name, model, "qat", "lower lr or exclude the offending layers")
    reference, ref_outs = score(fp32.path)
    metrics, outs = score(out)
    sqnr = {o: _finite(sqnr_db(r, q)) for o, r, q in zip(task.output_names, ref_outs, outs, strict=False)}
    metric = "cosine_to_teacher" if task.kind == "embedding" else "accuracy"
    drop = round(100.0 * (reference[metric] - metrics[metric]), 4)
    metrics = {**metrics, "sqnr_db": next(iter(sqnr.values())), "cosine_to_fp32": _cosine(ref_outs[0], outs[0]),
               f"fp32_{metric}": reference[metric], "drop_points": drop}
    if metrics["sqnr_db"] is not None and metrics["sqnr_db"] < cfg.sqnr_floor:
        raise StageError(f"qat: output SQNR {metrics['sqnr_db']} dB vs fp32 is below sqnr_floor "
                         f"({cfg.sqnr_floor} dB); lower lr, exclude sensitive layers or lower sqnr_floor")
    q = {**describe(onnx.load(str(out))), "precision": "int8", "per_channel": cfg.per_channel,
         "size_bytes": out.stat().st_size, "fp32_size_bytes": fp32.size_bytes}
    q["size_ratio"] = round(q["fp32_size_bytes"] / q["size_bytes"], 3)
    log(f"  qat int8: {metric} {metrics[metric]:.4f} (fp32 {reference[metric]:.4f}, drop {drop:.2f} points), "
        f"{q['size_bytes'] / 1e6:.3f} MB ({q['size_ratio']:.2f}x smaller), output SQNR {metrics['sqnr_db']} dB")
    return {
        "file": out.name, "fp32_file": f"fp32/{fp32.path.name}", "metrics": metrics, "size_bytes": q["size_bytes"],
        "precision": "int8", "scheme": "int8", "fp32_size_bytes": q["fp32_size_bytes"],
        "size_ratio": q["size_ratio"], "fp32_metrics": reference, "sqnr_per_output": sqnr, "budget_metric": metric,
        "evaluated_on": "onnxruntime", "quantization": q,
        "fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch, "best_val": fit.best_score,
                "history": fit.history, "seconds": round(fit.seconds, 2)},
    }


STAGES.register("qat")(StageSpec(QatConfig, _file_stage(_qat), lambda ctx, prev, cfg, info: prev,
                                 weights=False, passes_model_on=True))


# -------------------------------------------------------------------- vocab

def _run_vocab(ctx, cfg: VocabConfig, model, stage_dir):
    """Prune the token table and the tokenizer to the corpus's tokens; save the tokenizer
    (``tokenizer/``, what the bundle ships) and switch the run to it."""
    from edgesmith.compress.vocab import covered_texts, oov_rates, prune_vocab
    from edgesmith.errors import StageError
    from edgesmith.progress import log

    name = cfg.name or cfg.kind
    index = next(i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg)
    if ctx.tokenizer is None:
        raise StageError(f"stages[{index}] ({name}): the model takes no text (no tokenizer); "
                         "vocabulary pruning is for text encoders")
    texts = _vocab_corpus(ctx, cfg)
    try:
        small, tokenizer, report = _in_stage(ctx, cfg, prune_vocab, model, ctx.tokenizer, texts, cfg)
    except StageError as e:
        raise StageError(f"stages[{index}] ({name}): {str(e).removeprefix('vocab: ')}") from None
    # the pruned model on the new ids vs the model it came from on the original ids, on corpus texts
    original, sample = ctx.tokenizer, _Texts(covered_texts(ctx.tokenizer, tokenizer, texts)[:256])
    before = ctx.task.predict(model, ctx.task.tensors(sample), device=ctx.device) if sample.x else None
    tokenizer.save_pretrained(str(stage_dir / "tokenizer"))
    ctx.use_tokenizer(tokenizer, name)
    if before is not None:
        after = ctx.task.predict(small, ctx.task.tensors(sample), device=ctx.device)
        report["corpus_max_abs_diff"] = float((before - after).abs().max())
    texts_of = {"eval": list(ctx.raw["eval"].x)}
    if ctx.probe is not None:
        texts_of["probe"] = [t for part in ctx.probe for t in part.texts]
    report["oov"] = {k: oov_rates(original, tokenizer, v) for k, v in texts_of.items()}
    report["oov"]["eval"]["in_corpus"] = cfg.corpus == "all"
    log(f"  vocabulary {report['vocab_before']} -> {report['vocab_after']} tokens ({cfg.corpus}: "
        f"{len(texts)} texts), params {report['params_before'] / 1e6:.2f} M -> {report['params_after'] / 1e6:.2f} M; "
        + ", ".join(f"{k}: {v['dropped_token_rate']:.2%} of tokens dropped, {v['texts_changed']:.1%} of texts "
                    f"tokenized differently" for k, v in report["oov"].items()))
    return small, {**report, "corpus": cfg.corpus, "tokenizer": "tokenizer"}


class _Texts:
    """Raw text data as ``task.tensors`` reads it."""

    def __init__(self, texts: list[str]):
        self.x, self.y = texts, None


def _vocab_corpus(ctx, cfg: VocabConfig) -> list[str]:
    """The texts that define the vocabulary (never the probe's; ``sources`` holds the eval split out)."""
    from pathlib import Path

    raw = ctx.raw
    if cfg.corpus == "sources":
        from edgesmith.data.sources import load_source

        held_out = set(raw["eval"].x)
        texts = [t for s in ctx.recipe.data.sources for part in load_source(s).values() for t in part.x
                 if t not in held_out]
    else:
        splits = ["train"] if cfg.corpus == "train" else ["train", "calibration", "eval"]
        texts = [t for k in splits for t in raw[k].x]
    if cfg.path is not None:
        texts += [t for t in Path(cfg.path).expanduser().read_text(encoding="utf-8").splitlines() if t.strip()]
    return texts


def _vocab_skeleton(ctx, prev_model, cfg: VocabConfig, info):
    """The pruned table's shape from ``info``; the run switches to the stage's saved tokenizer."""
    from pathlib import Path

    from transformers import AutoTokenizer

    from edgesmith.compress.vocab import vocab_shell

    folder = ctx.out / Path(info["path"]).parent / info["tokenizer"]
    ctx.use_tokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True), cfg.name or cfg.kind)
    return vocab_shell(prev_model, info["vocab_after"], info["embeddings"], info["padding_idx"])


STAGES.register("vocab")(StageSpec(VocabConfig, _run_vocab, _vocab_skeleton, feeds_teacher=False,
                                   switches_tokenizer=True))
