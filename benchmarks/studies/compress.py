"""What each compression technique buys, on a recipe's full real data, in one table:
teacher, distilled student, + structured prune, + lowrank, each with its
parameters, ONNX size on disk and gzip size, FLOPs (Conv2d / Linear, batch 1),
onnxruntime CPU latency p50 (batch 1, 1 thread, each model in a fresh process via
:func:`edgesmith.benchmarks.measure`) and quality on the eval split::

    python -m edgesmith.benchmarks.studies.compress --recipe digits-quick [--quick]

The steps are the recipe's own ``distill``, ``prune`` and ``lowrank`` stages
where it has them, else defaults (structured pruning of half the channels; the
hidden Linear ``classifier.2`` factorized to half its weights), each with KD
recovery. They run through the pipeline into ``runs/<recipe>-compress/`` (resumable);
the step folders of a finished ``runs/<recipe>/`` are copied in
first, and reused when their content keys match (same recipe, same data).
``--quick``: one recovery epoch for prune and lowrank, shorter latency runs.
``--unstructured 0.8``: also prune the distilled student to 80% unstructured
sparsity (global L1 magnitude, gradual cubic schedule in 4 steps with KD
recovery), in a branch from the distill step (``runs/<recipe>-compress-unstructured/``),
and add it as a row; dense runtimes gain no speed from it, the gzip column shows the win.
Results are written to ``runs/<recipe>-compress/compress-bench.json``.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

DEFAULT_PRUNE = {"kind": "prune", "method": "structured", "sparsity": 0.5, "epochs": 2, "lr": 1e-3,
                 "batch_size": 128, "alpha": 0.5}
DEFAULT_LOWRANK = {"kind": "lowrank", "ratio": 0.5, "include": ["classifier.2"], "epochs": 2, "lr": 1e-3,
                   "batch_size": 128, "alpha": 0.5}
REUSED_STEPS = ("00-teacher", "01-distill", "02-prune", "03-lowrank")
UNSTRUCTURED = {"kind": "prune", "name": "unstructured", "method": "unstructured", "scope": "global",
                "schedule_steps": 4, "epochs": 1, "lr": 1e-3, "batch_size": 128, "alpha": 0.5}


def chain(raw: dict[str, Any], quick: bool = False) -> dict[str, Any]:
    """The recipe cut to distill -> structured prune -> lowrank, no export step."""
    stages = {s["kind"]: s for s in reversed(raw.get("stages", []))}  # the first of each kind
    if "distill" not in stages:
        raise SystemExit(f"recipe '{raw['name']}' has no distill stage to start from")
    prune = dict(stages.get("prune") or DEFAULT_PRUNE)
    if prune.get("method") != "structured" or prune.get("auto"):
        prune = dict(DEFAULT_PRUNE)
    lowrank = dict(stages.get("lowrank") or DEFAULT_LOWRANK)
    if quick:
        prune["epochs"] = lowrank["epochs"] = 1
    out = copy.deepcopy(raw)
    out["stages"] = [dict(stages["distill"]), prune, lowrank]
    out["export"] = {**out.get("export", {}), "formats": []}
    return out


def unstructured_chain(raw: dict[str, Any], sparsity: float, quick: bool = False) -> dict[str, Any]:
    """distill -> unstructured magnitude pruning to ``sparsity`` (the branch row)."""
    out = chain(raw, quick)
    prune = {**UNSTRUCTURED, "sparsity": sparsity, **({"schedule_steps": 2} if quick else {})}
    out["stages"] = [out["stages"][0], prune]
    return out


def _reuse(src: Path, dst: Path, names: tuple[str, ...] = REUSED_STEPS) -> list[str]:
    copied = []
    for name in names:
        if (src / name / "stage.json").exists() and not (dst / name).exists():
            dst.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src / name, dst / name)
            copied.append(name)
    return copied


def run(recipe: str, quick: bool = False, runs_dir: Path = Path("runs"),
        unstructured: float | None = None) -> dict[str, Any]:
    """Run (or resume) the chain and measure every step's model; returns the results."""
    import torch
    import yaml

    from edgesmith.benchmarks.fingerprint import fingerprint
    from edgesmith.benchmarks.latency import measure
    from edgesmith.conf.recipe import load_recipe, resolve_recipe_path
    from edgesmith.export import get_exporter
    from edgesmith.models import count_params
    from edgesmith.models.flops import count_flops
    from edgesmith.pipeline.runner import Runner

    recipe_raw = yaml.safe_load(resolve_recipe_path(recipe).read_text())
    raw = chain(recipe_raw, quick)
    out = runs_dir / f"{raw['name']}-compress"
    reused = _reuse(runs_dir / raw["name"], out)
    runner = Runner(load_recipe(raw), out, "cpu")
    summary = runner.run()
    metrics = {s["name"]: s["metrics"] for s in [summary["teacher"], *summary["stages"]]}
    branch = None
    if unstructured is not None:  # a branch from the distilled student, measured as one more row
        branch_out = runs_dir / f"{raw['name']}-compress-unstructured"
        _reuse(out, branch_out, REUSED_STEPS[:2])
        branch = Runner(load_recipe(unstructured_chain(recipe_raw, unstructured, quick)), branch_out, "cpu")
        metrics["unstructured"] = branch.run()["stages"][-1]["metrics"]
    ctx, rows = runner.ctx, []
    eval_set = ctx.tensors["eval"]
    eval_inputs = {n: t.numpy() for n, t in zip(ctx.task.input_names, ctx.task.prepare(eval_set.inputs), strict=True)}
    bench_inputs = {n: t.numpy() for n, t in zip(ctx.task.input_names, ctx.example_inputs(1), strict=True)}
    iterations, min_seconds, repeats = (100, 0.5, 1) if quick else (300, 1.0, 3)
    paths = []
    for is_branch, step, model in _measured(runner, branch):
        m = copy.deepcopy(model).cpu().eval()
        art = get_exporter("onnx")().export(m, ctx.example_inputs(), ctx.task, out / "onnx" / step.name,
                                            runner.recipe.export)
        data = art.path.read_bytes()
        r = measure(art.path, "onnxruntime", bench_inputs, threads=1, warmup=20, iterations=iterations,
                    min_seconds=min_seconds, eval_inputs=eval_inputs, eval_batch=64)
        outputs = r.pop("eval_outputs", None)
        p50s = [r["latency_ms"]["p50"]] if r.get("latency_ms") else []
        paths.append(art.path)
        ort_acc = None
        if outputs is not None and eval_set.labels is not None:
            ort_acc = float((outputs.argmax(-1) == eval_set.labels.numpy()).mean())
        nonzero = sum(int(torch.count_nonzero(p)) for p in m.parameters())
        rows.append({"step": step.name, "params": count_params(m), "nonzero_params": nonzero,
                     "branch": is_branch, "onnx_bytes": art.size_bytes,
                     "gzip_bytes": len(gzip.compress(data, compresslevel=6, mtime=0)),
                     "flops": count_flops(m, tuple(t[:1] for t in ctx.example_inputs(1))),
                     "p50_ms": statistics.median(p50s) if p50s else None, "p50_runs_ms": p50s,
                     "metrics": metrics.get(step.name),
                     "onnxruntime_accuracy": ort_acc, "error": r.get("error")})
        print(f"[compress-bench] {step['name']}: measured", file=sys.stderr)
    for _ in range(repeats - 1):  # more rounds, interleaved: the run-to-run spread, not one run's CI
        for row, path in zip(rows, paths, strict=True):
            again = measure(path, "onnxruntime", bench_inputs, threads=1, warmup=20, iterations=iterations,
                            min_seconds=min_seconds)
            if again.get("latency_ms") and row["p50_runs_ms"]:
                row["p50_runs_ms"].append(again["latency_ms"]["p50"])
                row["p50_ms"] = statistics.median(row["p50_runs_ms"])
    result = {"recipe": raw["name"], "quick": quick, "unstructured": unstructured, "out": str(out), "reused": reused,
              "protocol": "onnxruntime CPU, fp32 ONNX, batch 1, 1 thread, fresh process per model",
              "eval_samples": len(eval_set), "rows": rows, "notes": regressions(rows), "fingerprint": fingerprint()}
    (out / "compress-bench.json").write_text(json.dumps(result, indent=1))
    return result


def _chain_models(runner):
    """``(step, model)`` along a finished run, each model rebuilt on the one before."""
    yield from runner.models()


def _measured(runner, branch):
    """``(is_branch, step, model)`` of every step of ``runner``, then the last step of
    ``branch`` (rebuilt on its own teacher and distill steps), if any."""
    yield from ((False, step, model) for step, model in _chain_models(runner))
    if branch is not None:
        yield from ((True, step, model) for step, model in _chain_models(branch) if step is branch.steps[-1])


def regressions(rows: list[dict[str, Any]]) -> list[str]:
    """A step that made the model slower (its fastest p50 over the fresh-process runs
    above the previous step's slowest) or its ONNX file bigger than the step before,
    said in one line each."""
    notes = []
    rows = [r for r in rows if not r.get("branch")]
    for prev, row in zip(rows, rows[1:], strict=False):
        if row.get("p50_runs_ms") and prev.get("p50_runs_ms") and min(row["p50_runs_ms"]) > max(prev["p50_runs_ms"]):
            notes.append(f"{row['step']} is slower than {prev['step']}: p50 {row['p50_ms']:.3f} vs {prev['p50_ms']:.3f} ms")
        if row["onnx_bytes"] > prev["onnx_bytes"]:
            notes.append(f"{row['step']} has a bigger ONNX file than {prev['step']}: {row['onnx_bytes']} vs "
                         f"{prev['onnx_bytes']} bytes")
    return notes


def table(result: dict[str, Any]):
    from rich.table import Table

    t = Table(title=f"compression steps · {result['recipe']} · {result['protocol']}", title_justify="left")
    for c in ("step", "params", "nonzero", "ONNX size", "gzip", "FLOPs", "p50", "accuracy", "agreement", "ORT acc"):
        t.add_column(c, justify="left" if c == "step" else "right")
    base = result["rows"][0]
    for row in result["rows"]:
        m = row["metrics"] or {}
        runs = row.get("p50_runs_ms") or []
        spread = f" [{min(runs):.3f}-{max(runs):.3f}]" if len(runs) > 1 else ""
        p50 = "-" if row["p50_ms"] is None else f"{row['p50_ms']:.3f} ms{spread}"
        ratio = "" if row is base else f" ({row['params'] / base['params']:.2f}x)"
        nonzero = row.get("nonzero_params")
        name = f"{row['step']} (from distill)" if row.get("branch") else row["step"]
        t.add_row(name, f"{row['params']:,}{ratio}",
                  "-" if nonzero is None else f"{nonzero:,} ({1 - nonzero / row['params']:.0%} zero)",
                  f"{row['onnx_bytes'] / 1e3:.1f} kB",
                  f"{row['gzip_bytes'] / 1e3:.1f} kB", f"{row['flops'] / 1e6:.3f} M", p50,
                  "-" if m.get("accuracy") is None else f"{100 * m['accuracy']:.2f}%",
                  "-" if m.get("teacher_agreement") is None else f"{100 * m['teacher_agreement']:.2f}%",
                  "-" if row["onnxruntime_accuracy"] is None else f"{100 * row['onnxruntime_accuracy']:.2f}%")
    t.caption = ("p50: median over fresh-process runs (runs in brackets); "
                 f"quality on the eval split ({result['eval_samples']} samples; accuracy and teacher agreement in "
                 "PyTorch, ORT acc from the ONNX file); FLOPs = 2 x MACs of Conv2d / Linear; each step builds on "
                 "the one above" + "".join(f"\n[yellow]{n}[/yellow]" for n in regressions(result["rows"])))
    t.caption_justify = "left"
    return t


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m edgesmith.benchmarks.studies.compress", description=__doc__.split("\n\n")[0])
    p.add_argument("--recipe", default="digits-quick", help="digits-quick or fashion-mnist (or any CNN recipe)")
    p.add_argument("--quick", action="store_true", help="one recovery epoch for prune / lowrank, shorter timing")
    p.add_argument("--runs-dir", type=Path, default=Path("runs"))
    p.add_argument("--unstructured", type=float, metavar="SPARSITY",
                   help="also prune the distilled student to this unstructured sparsity (e.g. 0.8), as a branch row")
    p.add_argument("--plan", action="store_true", help="print the recipes it would run, as JSON, and exit")
    args = p.parse_args(argv)
    if args.plan:
        import yaml

        from edgesmith.conf.recipe import load_recipe, resolve_recipe_path

        raw = yaml.safe_load(resolve_recipe_path(args.recipe).read_text())
        plan = {"chain": chain(raw, args.quick)}
        if args.unstructured is not None:
            plan["unstructured"] = unstructured_chain(raw, args.unstructured, args.quick)
        for r in plan.values():
            load_recipe(r)  # every planned recipe is valid
        print(json.dumps(plan, indent=1))
        return 0
    from rich.console import Console

    from edgesmith.errors import EdgesmithError

    try:
        result = run(args.recipe, args.quick, args.runs_dir, args.unstructured)
    except EdgesmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return getattr(e, "exit_code", 1)
    Console(width=160).print(table(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
