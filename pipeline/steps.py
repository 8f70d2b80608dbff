"""The built-in steps of a run: teacher, technique stages, export, benchmark.
Each ``run_*`` gets the runner, the :class:`~edgesmith.pipeline.plan.Step`, the
incoming model and the temporary folder that becomes ``DIR/NN-<step>/``; it returns
``(model, info)``. What an earlier step produced comes from ``runner.results`` (in
memory), never from its ``stage.json``."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from edgesmith.compress.stage import stages
from edgesmith.errors import ExportError, ParityError
from edgesmith.export import format_for_runtime
from edgesmith.models.io import load_weights, save_weights
from edgesmith.progress import log

if TYPE_CHECKING:
    from collections.abc import Iterator

    from edgesmith.conf.recipe import BenchmarkConfig
    from edgesmith.export.base import ExportArtifact
    from edgesmith.models.tasks import Task
    from edgesmith.pipeline.context import RunContext
    from edgesmith.pipeline.plan import Step, StepResult
    from edgesmith.pipeline.runner import Runner


# ------------------------------------------------------------------ teacher
def _cache_dir() -> Path:
    from edgesmith.cache import cache_root

    return cache_root()


def _build_teacher(runner: Runner) -> nn.Module:
    from edgesmith.models import build_arch, load_teacher

    ctx, cfg = runner.ctx, runner.recipe.teacher
    if cfg.source == "train":
        c, s = ctx.image_shape
        torch.manual_seed(runner.recipe.seed)
        return build_arch(cfg.arch, cfg.kwargs, ctx.num_classes, c, s)
    c, s = (None, None) if ctx.is_text else ctx.image_shape
    model, tokenizer, _ = load_teacher(cfg, cfg.num_classes or ctx.num_classes, cfg.in_channels or c, s)
    ctx.tokenizer = tokenizer
    return model.eval()


def run_teacher(runner: Runner, step: Step, model: nn.Module | None, out: Path) -> tuple[nn.Module, dict]:
    ctx, cfg = runner.ctx, runner.recipe.teacher
    teacher = _build_teacher(runner)
    extra: dict = {"source": cfg.source}
    if cfg.source == "train":
        from edgesmith.compress.train import train_classifier

        cached = _cache_dir() / "teachers" / f"{runner.recipe.name}-{runner._key(step, None)}.safetensors"
        if cached.exists():
            log(f"  teacher: trained weights from cache {cached}")
            load_weights(teacher, cached)
            extra["cache"] = str(cached)
        else:
            fit = train_classifier(teacher, ctx, cfg.train, checkpoint_dir=out)
            (out / "best.safetensors").unlink(missing_ok=True)
            save_weights(teacher, cached)
            extra.update(cache=str(cached), fit={"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                                                 "best_val": fit.best_score, "seconds": round(fit.seconds, 1)})
    ctx.teacher = teacher.to(ctx.device).eval()
    size = runner.save_model(teacher, out)
    from safetensors.torch import save_file

    save_file({"outputs": ctx.teacher_eval_outputs().contiguous()}, str(out / "eval_outputs.safetensors"))
    metrics = ctx.evaluate(ctx.teacher, "teacher", is_teacher=True)
    return ctx.teacher, {**extra, "task": ctx.task.kind, "metrics": metrics, "size_bytes": size,
                         "path": f"{step.dir.name}/model.safetensors"}


def load_teacher(runner: Runner, info: dict, stage_dir: Path) -> nn.Module:
    ctx = runner.ctx
    teacher = load_weights(_build_teacher(runner), stage_dir / "model.safetensors")
    ctx.teacher = teacher.to(ctx.device).eval()
    from safetensors.torch import load_file

    ctx._teacher_eval = load_file(str(stage_dir / "eval_outputs.safetensors"))["outputs"]
    return ctx.teacher


# ------------------------------------------------------------------- stages
def run_stage(runner: Runner, step: Step, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    STAGES = stages()
    ctx, spec = runner.ctx, STAGES.get(step.kind)
    new_model, extra = spec.run(ctx, step.config, model, out)
    new_model.eval()
    if not spec.weights:  # the model passes through; the stage's artifact is its own file
        file = extra.pop("file")
        return new_model, {**extra, "path": f"{step.dir.name}/{file}", "config": step.config.to_dict()}
    size = runner.save_model(new_model, out)
    metrics = ctx.evaluate(new_model, step.name)
    return new_model, {**extra, "metrics": metrics, "size_bytes": size,
                       "path": f"{step.dir.name}/model.safetensors", "config": step.config.to_dict()}


# ------------------------------------------------------------------- export
def export_task(runner: Runner) -> Task:
    """The run's task as the exporters see it: for token models, ``max_length`` is the
    sequence length static-shape files are exported at (``export.seq_len``, else the
    longer of ``data.max_length`` and ``benchmark.seq_len``); inputs are truncated at
    ``data.max_length`` as before and padded to it."""
    import dataclasses

    task, recipe = runner.ctx.task, runner.recipe
    if getattr(task, "kind", None) != "embedding":
        return task
    length = recipe.export.seq_len or max(recipe.data.max_length, recipe.benchmark.seq_len or 0)
    return task if length == task.max_length else dataclasses.replace(task, max_length=length)


def export_model(runner: Runner, model: nn.Module, fmt: str, out: Path, rel: str, fp32: bool = False) -> dict:
    """Export ``model`` to ``fmt`` with the recipe's export settings (``fp32``: ignore
    ``export.precision``, as for the teacher and intermediate stages a benchmark measures)."""
    import dataclasses

    from edgesmith.export import get_exporter
    from edgesmith.export.base import CALIBRATION_SAMPLES, precision_of

    ctx, cfg = runner.ctx, runner.recipe.export
    if fp32:
        cfg = dataclasses.replace(cfg, precision={})
    # only an int8 export calibrates (and only int8 exporters take the keyword)
    extra = ({"calibration": ctx.calibration_inputs(CALIBRATION_SAMPLES)}
             if precision_of(cfg, fmt) == "int8" else {})
    try:
        art = get_exporter(fmt)().export(model.cpu(), ctx.example_inputs(), export_task(runner), out, cfg, **extra)
    except ExportError as e:
        log(f"  [red]{fmt}: {e}[/red]")
        return {"format": fmt, "precision": None, "path": None, "size_bytes": None, "parity": None, "error": str(e)}
    return _checked(runner, art, model, rel)


def _checked(runner: Runner, art: ExportArtifact, model: nn.Module, rel: str) -> dict:
    """Run the parity check of ``art`` against ``model`` and describe the export."""
    from edgesmith.export.parity import check_parity

    ctx = runner.ctx
    gate = runner.recipe.export.parity
    art.tolerance = gate.tolerance(art.precision, art.tolerance)
    parity = check_parity(art, model, ctx.task, ctx.tensors["eval"], gate.samples)
    status = "[green]ok[/green]" if parity["passed"] else f"[red]FAILED ({parity.get('reason')})[/red]"
    numbers = "" if parity["max_abs_diff"] is None else (  # None: the runtime refused the inputs
        f", parity max|diff| {parity['max_abs_diff']:.2e}, cosine {parity['cosine']:.6f}"
        + ("" if parity.get("top5_agreement") is None or ctx.task.kind != "classification" else
           f", top-1 / top-5 agreement {parity['agreement']:.2%} / {parity['top5_agreement']:.2%}"))
    log(f"  {art.format} {art.precision}: {art.size_bytes / 1e6:.2f} MB{numbers} {status}")
    return {"format": art.format, "precision": art.precision, "path": f"{rel}/{art.path.name}",
            "files": [f"{rel}/{f.name}" for f in art.files], "size_bytes": art.size_bytes,
            "runtime": art.runtime, "parity": parity, **art.info}


def quantized_onnx(runner: Runner) -> StepResult | None:
    """The in-memory result of the run's last ``quantize`` or ``qat`` stage (its file is
    the final model's ONNX), or None."""
    return next((r for r in reversed(runner.results.values())
                 if r.step.is_stage and not stages().get(r.step.kind).weights), None)


def export_quantized(runner: Runner, model: nn.Module, quantized: StepResult, out: Path, rel: str) -> dict:
    """Ship a quantize stage's file as the ``onnx`` export, parity-checked against the
    fp32 PyTorch model with the tolerance of its precision."""
    from edgesmith.export.base import TIERS, ExportArtifact

    step, info = quantized.step, quantized.info
    src = quantized.file
    out.mkdir(parents=True, exist_ok=True)
    path = out / src.name
    shutil.copyfile(src, path)
    q = info["quantization"]
    art = ExportArtifact("onnx", info["precision"], path, "onnxruntime", TIERS[info["scheme"]], [path], {
        "scheme": info["scheme"], "quantized_by": step.name, "fp32_size_bytes": info["fp32_size_bytes"],
        "fp32_path": f"{step.dir.name}/{info['fp32_file']}", "op_histogram": q["op_histogram"],
        "compute_precision": q["compute_precision"]})
    return _checked(runner, art, model, rel)


def run_export(runner: Runner, step: Step, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    quantized = quantized_onnx(runner)
    exports = [export_quantized(runner, model, quantized, out / fmt, f"{step.dir.name}/{fmt}")
               if fmt == "onnx" and quantized else export_model(runner, model, fmt, out / fmt, f"{step.dir.name}/{fmt}")
               for fmt in runner.recipe.export.formats]
    return model, {"exports": exports}


def raise_on_failed_parity(runner: Runner, info: dict) -> None:
    bad = [e for e in info["exports"] if e.get("parity") and not e["parity"]["passed"]]
    if bad and runner.parity_gate:
        e = bad[0]
        runner.write_partial_summary()
        raise ParityError(
            f"parity gate: {e['format']} {e['precision']} ({runner.out / e['path']}) disagrees with PyTorch: "
            f"{e['parity'].get('reason')}; artifacts kept; rerun with --no-parity-gate to continue anyway"
        )
    for e in bad:
        log(f"  [yellow]warning: {e['format']} failed parity ({e['parity'].get('reason')}), kept[/yellow]")


# ---------------------------------------------------------------- benchmark
def _bench_inputs(ctx: RunContext, batch: int, seq_len: int | None) -> dict[str, np.ndarray]:
    data = ctx.tensors["eval"]
    idx = torch.arange(batch) % len(data)
    inputs = ctx.task.prepare(data.take(idx).inputs)
    if ctx.task.kind == "embedding":
        seq = seq_len or ctx.recipe.data.max_length
        ids, mask = inputs
        pad = seq - ids.shape[1]
        pad_id = getattr(ctx.tokenizer, "pad_token_id", 0) or 0
        ids = torch.nn.functional.pad(ids, (0, pad), value=pad_id) if pad > 0 else ids[:, :seq]
        mask = torch.nn.functional.pad(mask, (0, pad), value=0) if pad > 0 else mask[:, :seq]
        inputs = (ids, mask)
    return _feed(ctx.task, inputs)


def _eval_inputs(ctx: RunContext, limit: int | None) -> tuple[tuple[torch.Tensor, ...], str]:
    """The eval (or probe) split's inputs, prepared; a static-shape file gets them
    padded to its shapes (:func:`~edgesmith.export.parity.fit_static`)."""
    data, on = (ctx.probe[1], "probe") if ctx.probe is not None else (ctx.tensors["eval"], "eval")
    if limit:
        data = data.take(slice(0, limit))
    return ctx.task.prepare(data.inputs), on


def _feed(task: Task, inputs: tuple[torch.Tensor, ...]) -> dict[str, np.ndarray]:
    return {n: t.numpy() for n, t in zip(task.input_names, inputs, strict=True)}




def run_benchmark(runner: Runner, step: Step, model: nn.Module, out: Path) -> tuple[nn.Module, dict]:
    from edgesmith.benchmarks.targets import measure_on
    from edgesmith.export.parity import fit_static

    ctx, cfg = runner.ctx, runner.recipe.benchmark
    final_name = runner.final.name
    export_info = {e["format"]: e for e in runner.result("export").info["exports"]}
    exported = {f: (runner.out / e["path"], e["precision"]) for f, e in export_info.items() if e.get("path")}
    # (name, model, files already made per format, only these formats (a set) or all, name its probe head is cached under)
    candidates = [("teacher", ctx.teacher, {}, False, "teacher")]
    if cfg.stages == "all":
        candidates += [(name, m, {}, False, name) for name, m in _intermediate_models(runner, final_name)]
    parents: dict[str, dict] = {}  # format -> the shipped file's fp32 parent (bundle: never ship a slower file)
    parent_files: dict[str, Path] = {}  # format -> that parent's file now (a kept one is in this step's folder)
    if final_name != "teacher":
        candidates.append((final_name, model, exported, False, final_name))
        # a quantized file: measure its fp32 parent on the same runtime too (the quantize stage's fp32 ONNX,
        # else an fp32 export kept in DIR/NN-benchmark/fp32/<format>/ that the bundle may ship instead)
        lowp = {f for f, e in export_info.items() if e.get("path") and e.get("precision") not in (None, "fp32")}
        fp32 = export_info.get("onnx", {}).get("fp32_path")
        if fp32 and "onnx" in lowp and "onnxruntime" in cfg.runtimes:
            parents["onnx"] = _fp32_parent(runner, model, runner.out / fp32)
            parent_files["onnx"] = runner.out / fp32
        if lowp:
            files = {f: (runner.out / e["path"], "fp32") for f, e in parents.items()}
            candidates.append((f"{final_name}-fp32", model, files, lowp, final_name))
    results = []
    for name, m, files, only_files, head in candidates:
        view = ctx.view(head)  # the teacher and the stages before a vocab stage read the original token ids
        inputs = _bench_inputs(view, cfg.batch, cfg.seq_len)
        eval_inputs, on = _eval_inputs(view, cfg.eval_samples)
        for runtime in cfg.runtimes:
            fmt = format_for_runtime(runtime)
            if only_files and fmt not in only_files:
                continue
            if fmt is None:
                results.append(_failed(name, runtime, cfg, f"no export format known for runtime '{runtime}'"))
                continue
            if fmt in files:
                (path, precision), tmp_dir = files[fmt], None
                static = export_info.get(fmt, {}).get("static_shapes") if files is exported else None
            else:
                keep = name == f"{final_name}-fp32"  # a parent the bundle may ship: kept, parity-checked
                tmp_dir = out / "fp32" / fmt if keep else out / "models" / f"{name}-{fmt}"
                # the final model's shipped files are measured as shipped; everything else in fp32
                entry = export_model(runner, m, fmt, tmp_dir, f"{step.dir.name}/fp32/{fmt}" if keep else "",
                                     fp32=name != final_name)
                if entry.get("error"):
                    results.append(_failed(name, runtime, cfg, entry["error"]))
                    continue
                path, precision = tmp_dir / Path(entry["path"]).name, entry["precision"]
                static = entry.get("static_shapes")
                if keep:
                    parents[fmt], parent_files[fmt], tmp_dir = entry, path, None
            for target in cfg.targets:
                log(f"  measuring {name} on {runtime} ({target}, {cfg.threads} thread(s), batch {cfg.batch})")
                r = measure_on(target, path, runtime, inputs, threads=cfg.threads, warmup=cfg.warmup,
                               iterations=cfg.iterations, min_seconds=cfg.min_seconds,
                               eval_inputs=_feed(view.task, fit_static(eval_inputs, view.task, static)),
                               eval_batch=64)
                outputs = r.pop("eval_outputs", None)
                acc = ctx.score_outputs(outputs, head, m, on) if outputs is not None else None
                results.append({"target": target, "runtime": runtime, "model": name, "precision": precision,
                                "threads": cfg.threads,
                                "batch": cfg.batch, "seq_len": inputs[ctx.task.input_names[0]].shape[1]
                                if ctx.task.kind == "embedding" else None,
                                "latency_ms": r.get("latency_ms"), "peak_rss_mb": r.get("peak_rss_mb"),
                                "load_rss_mb": r.get("load_rss_mb"), "model_size_bytes": r.get("model_size_bytes"),
                                "accuracy": acc, "accuracy_on": on, "protocol": r.get("protocol"),
                                "fingerprint": r.get("fingerprint"), "error": r.get("error")})
            if tmp_dir is not None:
                shutil.rmtree(tmp_dir, ignore_errors=True)
    shutil.rmtree(out / "models", ignore_errors=True)
    # the step order: a quantized final model comes after its fp32 parent
    order = [c[0] for c in candidates if c[0] != final_name] + [final_name]
    flag_slower_steps(results, order)
    _compare_with_fp32_parent(results, final_name)
    info = {"benchmarks": results, "fp32_parents": parents}
    if cfg.paired_rounds and parents:
        info["paired_rounds"] = _paired_rounds(runner, parents, parent_files, export_info, results, final_name)
    return model, info


def _paired_rounds(runner: Runner, parents: dict[str, dict], parent_files: dict[str, Path],
                   export_info: dict[str, dict], results: list[dict], final_name: str) -> dict[str, dict]:
    """Per format, the shipped quantized file timed against its fp32 parent once more, for
    the bundle's slower-file rule (:func:`edgesmith.bundle.choice.choose`): on this machine
    run for run in one process (:func:`~edgesmith.benchmarks.paired.compare_files`, the
    drift cancels), on a remote target in ``benchmark.paired_rounds`` interleaved rounds."""
    from edgesmith.benchmarks.paired import compare_files
    from edgesmith.benchmarks.targets import measure_interleaved

    cfg, out = runner.recipe.benchmark, {}
    target = cfg.targets[0]
    inputs = _bench_inputs(runner.ctx.view(final_name), cfg.batch, cfg.seq_len)
    for fmt, parent in parents.items():
        e = export_info.get(fmt) or {}
        measured = {r["model"] for r in results if r["runtime"] == e.get("runtime") and r.get("latency_ms")}
        if not e.get("path") or parent.get("error") or fmt not in parent_files \
                or not {final_name, f"{final_name}-fp32"} <= measured:
            continue
        files = [runner.out / e["path"], parent_files[fmt]]
        ident = {"target": target, "runtime": e["runtime"], "threads": cfg.threads, "batch": cfg.batch}
        if target == "cpu":
            pairs = max(cfg.iterations, 10 * cfg.paired_rounds)
            log(f"  timing {fmt} {e['precision']} against its fp32 parent run for run ({pairs} pairs, "
                f"{e['runtime']}, {target})")
            r = compare_files(*files, e["runtime"], inputs, threads=cfg.threads, warmup=cfg.warmup, pairs=pairs,
                              min_seconds=cfg.min_seconds)
            if not r.get("error"):
                out[fmt] = {**ident, "run_for_run": {"ratio": r["ratio"], "ratio_ci": r["ratio_ci"],
                                                     "verdict": r["verdict"], "pairs": r["pairs"],
                                                     "quantized_p50_ms": r["a_ms"]["p50"],
                                                     "fp32_p50_ms": r["b_ms"]["p50"]}}
                continue
            log(f"  [yellow]{fmt}: run for run failed ({r['error']}); interleaved rounds instead[/yellow]")
        log(f"  timing {fmt} {e['precision']} and its fp32 parent in {cfg.paired_rounds} interleaved rounds "
            f"on {e['runtime']} ({target})")
        q, f = measure_interleaved(target, files, e["runtime"], inputs, rounds=cfg.paired_rounds,
                                   threads=cfg.threads, warmup=cfg.warmup, iterations=cfg.iterations,
                                   min_seconds=cfg.min_seconds)
        out[fmt] = {**ident, "quantized_p50_ms": q, "fp32_p50_ms": f}
    return out


def _fp32_parent(runner, model, path: Path) -> dict:
    """The export entry (parity-checked) of a quantize stage's fp32 ONNX file."""
    from edgesmith.export import get_exporter
    from edgesmith.export.base import ExportArtifact

    tol = get_exporter("onnx").tolerances["fp32"]
    art = ExportArtifact("onnx", "fp32", path, "onnxruntime", tol, [path], {})
    return _checked(runner, art, model, path.parent.relative_to(runner.out).as_posix())


def _intermediate_models(runner: Runner, final_name: str) -> Iterator[tuple[str, nn.Module]]:
    """(name, model) of each stage before the final one that changed the weights,
    from the run's in-memory results (a stage that only reports passes its input on)."""
    for r in runner.results.values():
        if r.step.name == final_name:
            break
        if r.step.is_stage and not stages().get(r.step.kind).passes_model_on:
            yield r.step.name, r.model.eval()


def flag_slower_steps(results: list[dict], order: list[str]) -> None:
    """Compare each measured step with the nearest measured step before it in
    ``order`` (same runtime, target, threads and batch): ``speedup_vs_previous``
    (p50 before / p50 now) and ``previous``; ``slower_than_previous`` is set, and a
    warning printed, when the step got slower beyond noise and beyond the harness
    overhead (:func:`~edgesmith.benchmarks.stats.compare_latency`)."""
    from edgesmith.benchmarks.stats import compare_latency, harness_overhead_ms

    rank = {name: i for i, name in enumerate(order)}
    last: dict[tuple, dict] = {}
    for r in sorted((r for r in results if r.get("latency_ms") and r["model"] in rank), key=lambda r: rank[r["model"]]):
        key = (r["runtime"], r["target"], r["threads"], r["batch"])
        prev = last.get(key)
        last[key] = r
        if prev is None or not prev["latency_ms"].get("p50") or not r["latency_ms"].get("p50"):
            continue
        a, b = prev["latency_ms"], r["latency_ms"]
        r["previous"], r["speedup_vs_previous"] = prev["model"], round(a["p50"] / b["p50"], 3)
        r["slower_than_previous"] = compare_latency(a, b, harness_overhead_ms(prev, r)) == "slower"
        if r["slower_than_previous"]:
            log(f"  [yellow]{r['model']} runs {b['p50'] / a['p50']:.2f}x slower than {prev['model']} "
                f"on {r['runtime']} ({r['target']}): p50 {b['p50']:.3f} vs {a['p50']:.3f} ms[/yellow]")


def _compare_with_fp32_parent(results: list[dict], final_name: str) -> None:
    """``speedup_vs_fp32`` on a quantized final model's results: its comparison with
    the step before it (:func:`flag_slower_steps`), which is its fp32 parent; a
    warning where it is slower within noise too (beyond noise that one warned)."""
    for r in results:
        if r.get("previous") != f"{final_name}-fp32" or r["model"] != final_name:
            continue
        r["speedup_vs_fp32"] = r["speedup_vs_previous"]
        if r["speedup_vs_fp32"] < 1 and not r["slower_than_previous"]:
            log(f"  [yellow]{final_name} {r['precision']} runs {1 / r['speedup_vs_fp32']:.2f}x slower than its fp32 "
                f"parent on {r['runtime']} ({r['target']}), within run-to-run noise[/yellow]")


def _failed(name: str, runtime: str, cfg: BenchmarkConfig, reason: str) -> dict:
    return {"target": cfg.targets[0], "runtime": runtime, "model": name, "precision": None, "threads": cfg.threads,
            "batch": cfg.batch, "latency_ms": None, "peak_rss_mb": None, "accuracy": None, "error": reason}
