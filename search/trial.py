"""One trial: a recipe with the sampled values set, run through the pipeline with its
finished stages shared (:mod:`~edgesmith.search.cache`), then its final file
measured through the target's timing queue; and the reference points (the fp32
teacher, its plain dynamic int8, files the user names) measured the same way.

A trial runs the public pipeline (:class:`edgesmith.pipeline.runner.Runner`) with
``benchmark.runtimes`` emptied: latency is measured here, through the queue, never
inside a trial that may run beside another one's training."""

from __future__ import annotations

import contextlib
import copy
import json
import time
from pathlib import Path
from typing import Any

from edgesmith.errors import EdgesmithError

QUALITY = ("accuracy", "cosine")


def trial_recipe(base: dict, params: dict[str, Any]) -> dict:
    """The plain recipe (no ``search:`` block) of ``base`` with ``params`` (key path -> value) set."""
    from edgesmith.conf.recipe import apply_override

    raw = copy.deepcopy(base)
    raw.pop("search", None)
    for path, value in params.items():
        apply_override(raw, f"{path}={json.dumps(value)}")
    return raw


def run_pipeline(raw: dict, out: Path, cache, queues: dict, label: str, train_threads: int):
    """Run ``raw`` in ``out`` under a training lease of every local queue; returns
    ``(runner, summary, reused step names, executed step names)``."""
    import torch

    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner

    raw = copy.deepcopy(raw)
    raw.setdefault("benchmark", {})["runtimes"] = []  # measured through the timing queue instead
    runner = Runner(load_recipe(raw), out)
    reused = cache.seed(runner)
    threads = torch.get_num_threads()
    torch.set_num_threads(train_threads)  # the same arithmetic on every backend and worker
    try:
        with contextlib.ExitStack() as stack:
            for q in queues.values():
                stack.enter_context(q.training(label))
            summary = runner.run()
    finally:
        torch.set_num_threads(threads)
    return runner, summary, reused, cache.harvest(runner, reused)


def _final_metrics(summary: dict) -> dict:
    for s in reversed(summary.get("stages") or []):
        if s.get("metrics"):
            return s["metrics"]
    return (summary.get("teacher") or {}).get("metrics") or {}


def measure_file(runner, path: Path, runtime: str | None, queue, cfg, label: str, *, static: dict | None = None,
                 head: str = "teacher", model=None, fallback: dict | None = None) -> dict[str, Any]:
    """Measure ``path`` through ``queue`` on the inputs of ``runner``'s data; quality
    from the runtime's own outputs where the target returns them (else ``fallback``)."""
    import torch

    from edgesmith.export.parity import fit_static
    from edgesmith.pipeline.steps import _bench_inputs, _eval_inputs, _feed

    ctx = runner.ctx
    inputs = _bench_inputs(ctx, cfg.batch, runner.recipe.benchmark.seq_len)  # token models: the recipe's length
    ev, on = _eval_inputs(ctx, None)
    r = queue.measure(str(path), runtime, inputs, _feed(ctx.task, fit_static(ev, ctx.task, static)),
                      threads=cfg.threads, iterations=cfg.iterations, min_seconds=cfg.min_seconds, label=label)
    outputs = r.pop("eval_outputs", None)
    fallback = fallback or {}
    quality = {"accuracy": fallback.get("accuracy"), "cosine": fallback.get("cosine_to_teacher")}
    if outputs is not None:
        if on == "probe":
            quality["accuracy"] = ctx.score_outputs(outputs, head, model, on)
        elif ctx.task.kind == "embedding":
            teacher = ctx.teacher_eval_outputs()
            n = min(len(teacher), len(outputs))
            quality["cosine"] = ctx.task.metrics(torch.from_numpy(outputs[:n]), teacher[:n], None)["cosine_to_teacher"]
        else:
            quality["accuracy"] = ctx.score_outputs(outputs, head, model, on)
    lat = r.get("latency_ms") or {}
    return {"target": queue.target, "runtime": runtime or r.get("runtime"), "file": str(path), "label": label,
            "p50": lat.get("p50"), "p50_ci": lat.get("p50_ci"), "peak_rss_mb": r.get("peak_rss_mb"),
            "size_bytes": r.get("model_size_bytes") or _size(path), **quality, "error": r.get("error"),
            "result": r}


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in [path, path.with_name(path.name + ".data")] if p.is_file())


def objective_value(obj, m: dict) -> float | None:
    """The number an objective reads from a measurement."""
    return {"accuracy": m.get("accuracy"), "cosine": m.get("cosine"), "latency": m.get("p50"),
            "size": m.get("size_bytes"), "memory": m.get("peak_rss_mb")}[obj.metric]


def evaluate(runner, summary: dict, cfg, queues: dict, label: str) -> tuple[dict, list[dict]]:
    """Measure the run's final file once per (target, runtime) the objectives name."""
    from edgesmith.export import format_for_runtime

    exports = {e["format"]: e for e in summary.get("exports") or []}
    model = None
    measured: dict[tuple, dict] = {}
    values = {}
    for obj in cfg.objectives:
        where = (obj.target, obj.runtime)
        if where not in measured:
            e = exports.get(format_for_runtime(obj.runtime))
            if not e or not e.get("path"):
                raise EdgesmithError(f"{label}: no {obj.runtime} file was exported"
                                     f"{': ' + e['error'] if e and e.get('error') else ''}")
            if model is None and runner.recipe.probe is not None:
                model = runner.reload()
            final = summary["stages"][-1]["name"] if summary.get("stages") else "teacher"
            measured[where] = measure_file(runner, runner.out / e["path"], obj.runtime, queues[obj.target], cfg,
                                           label, static=e.get("static_shapes"), head=final, model=model,
                                           fallback=_final_metrics(summary))
        m = measured[where]
        if m["error"]:
            raise EdgesmithError(f"{label}: measuring on {obj.target} with {obj.runtime} failed: {m['error']}")
        values[obj.label()] = objective_value(obj, m)
        if values[obj.label()] is None:
            raise EdgesmithError(f"{label}: {obj.label()} could not be measured")
    return values, list(measured.values())


def run_trial(run_dir: Path, number: int, base: dict, params: dict, cfg, queues: dict, cache,
              name: str | None = None, out: Path | None = None) -> dict[str, Any]:
    """Run and measure one trial; returns its row (``values`` per objective label)."""
    label = name or f"trial-{number}"
    out = out or run_dir / "trials" / f"{number:04d}"
    raw = trial_recipe(base, params)
    t0 = time.perf_counter()
    row: dict[str, Any] = {"number": number, "name": label, "params": params, "out": str(out), "recipe": raw}
    runner, summary, reused, ran = run_pipeline(raw, out, cache, queues, label, cfg.train_threads)
    row.update(reused=reused, executed=ran)
    values, measurements = evaluate(runner, summary, cfg, queues, label)
    from edgesmith.search.study import export_key

    row.update(values=values, measurements=measurements, seconds=round(time.perf_counter() - t0, 2),
               export_key=export_key(out))
    return row


def references(run_dir: Path, base: dict, cfg, queues: dict, cache, files: list[str] = ()) -> list[dict]:
    """The points a user would pick instead, measured on the search's targets: the fp32
    teacher and its plain dynamic int8 (onnxruntime objectives), every ``files``, and with
    ``shipped``, the recipe as written (its own values, no search)."""
    from edgesmith.export import format_for_runtime

    raw = trial_recipe(base, {})
    raw["stages"] = []  # the teacher is the final model: its export is the fp32 teacher file
    pairs = sorted({(o.target, o.runtime) for o in cfg.objectives})
    raw.setdefault("export", {})["formats"] = sorted({format_for_runtime(r) for _, r in pairs})
    raw["export"]["precision"] = {}
    out = run_dir / "references"
    runner, summary, _, _ = run_pipeline(raw, out, cache, queues, "references", cfg.train_threads)
    exports = {e["format"]: e for e in summary.get("exports") or []}
    fallback = (summary.get("teacher") or {}).get("metrics") or {}
    rows = []

    def point(name: str, path: Path | None, runtime: str | None, target: str, static=None, error=None) -> None:
        if path is None:
            rows.append({"name": name, "reference": True, "values": {}, "error": error, "measurements": []})
            return
        m = measure_file(runner, path, runtime, queues[target], cfg, name, static=static, head="teacher",
                         model=runner.ctx.teacher, fallback=fallback)
        values = {o.label(): objective_value(o, m) for o in cfg.objectives
                  if o.target == target and (runtime is None or o.runtime == runtime)}
        rows.append({"name": name, "reference": True, "values": values, "measurements": [m], "error": m["error"]})

    for target, runtime in pairs:
        e = exports.get(format_for_runtime(runtime)) or {}
        fp32 = runner.out / e["path"] if e.get("path") else None
        point(f"teacher-fp32 [{target}/{runtime}]", fp32, runtime, target, e.get("static_shapes"), e.get("error"))
        if runtime == "onnxruntime" and fp32 is not None:
            q, err = _dynamic_int8(fp32, out / "teacher-int8-dynamic.onnx")
            point(f"teacher-int8-dynamic [{target}/{runtime}]", q, runtime, target, error=err)
    for target in sorted({t for t, _ in pairs}):
        for f in files:  # its runtime goes by its suffix
            point(f"{Path(f).name} [{target}]", Path(f), None, target)
    if cfg.shipped:
        row = run_trial(run_dir, -1, base, {}, cfg, queues, cache, name="shipped recipe", out=out / "shipped")
        rows.append({**row, "reference": True, "error": None})
    return rows


def _dynamic_int8(fp32: Path, dest: Path) -> tuple[Path | None, str | None]:
    """onnxruntime's plain dynamic int8 of ``fp32`` (weights int8, activations at run time)."""
    from edgesmith.compress.quantize.backend import quantize
    from edgesmith.compress.quantize.config import QuantConfig

    if dest.is_file():
        return dest, None
    try:
        quantize(fp32, QuantConfig(precision="int8-dynamic", min_sqnr_db=-1e9), out=dest)
    except EdgesmithError as e:
        return None, str(e)
    return dest, None
