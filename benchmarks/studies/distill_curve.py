"""How faithful can the MiniLM student get, and what does each lever buy? The curve #14 asks
for: which teacher layers the student keeps, data size, epochs and objective against held-out
cosine to the teacher, the sentiment probe and WordNet retrieval.

    python -m edgesmith.benchmarks.studies.distill_curve [--recipe minilm-sentiment-full]
        [--points keep-024,keep-035,...] [--out runs/distill-curve] [--set KEY=VALUE ...]
    python -m edgesmith.benchmarks.studies.distill_curve --stage lowrank --recipe minilm-sentiment
        [--points b64-5ep,b64-5ep-dropout,...]

Every point is a real ``edgesmith run`` in a fresh process of the recipe cut after its
``distill`` stage (no export, no benchmark), with the point's ``--set`` overrides. The points
share one run folder and re-run ``--from distill``, so the teacher's probe and retrieval
scores are computed once and the teacher targets come from the target cache
(``EDGESMITH_CACHE/targets``) whenever a point's texts were seen before.

``--stage lowrank`` measures the shipped MiniLM recipes as they now train: they cut the
student first and distil once, in the lowrank stage's KD recovery. There the recipe keeps
every stage (no export, no benchmark), the points re-run ``--from lowrank`` on the same pruned
student, and each row is the final (int8) model's, with the distillation's seconds and texts/s
(speed rows need a quiet machine: run nothing beside it). Each point is scored
by the pipeline's own metrics on the recipe's held-out eval texts (never distilled on): mean
and 5th-percentile cosine to the teacher, probe accuracy (2,000 / 2,000 movie snippets: one
point of accuracy is about one standard error, so read probe differences under 1.5 points as
noise) and recall@1 / @10 of held-out WordNet example sentences retrieving their own gloss.

Prints one row per point and writes ``OUT/distill_curve.json`` (host, recipe, overrides, the
metrics and the wall time per point).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from edgesmith.benchmarks.fingerprint import cpu_info

# name -> overrides; every point uses 4,000 training texts and 1 epoch unless it says otherwise
# (the committed curve: minilm-sentiment-full with data.splits.eval=500, whose distill stage then
# had these settings; both shipped recipes now distil in their lowrank stage instead)
OPT = ["stages.distill.lr=5e-4", "stages.distill.batch_size=64", "stages.distill.schedule=onecycle"]
TRAIN = ["data.splits.train=4000", "stages.distill.epochs=1"]
KEEP = {k: ["student.rule=keep-layers", f"student.keep_layers=[{','.join(k)}]"] for k in ("024", "135", "025", "035")}
POINTS: dict[str, list[str]] = {
    # which three of the teacher's six layers initialise the student
    "keep-024": TRAIN + KEEP["024"],
    "keep-135": TRAIN + KEEP["135"],
    "keep-025": TRAIN + KEEP["025"],
    "keep-035": TRAIN + KEEP["035"],
    # objectives and learning rate, on the layers the recipe keeps
    "035-lr1e-3": TRAIN + KEEP["035"] + ["stages.distill.lr=1e-3"],
    "035-hidden": TRAIN + KEEP["035"] + ["stages.distill.loss=hidden"],
    "035-attention": TRAIN + KEEP["035"] + ["stages.distill.attention_weight=1.0"],
    "035-contrastive": TRAIN + KEEP["035"] + ["stages.distill.contrastive_weight=0.1"],
    # data size and epochs
    "035-4k-3ep": ["data.splits.train=4000", "stages.distill.epochs=3"] + KEEP["035"],
    "035-16k": ["data.splits.train=16000", "stages.distill.epochs=1"] + KEEP["035"],
    "035-48k": ["data.splits.train=48000", "stages.distill.epochs=1"] + KEEP["035"],
}
POINTS = {name: OPT + overrides for name, overrides in POINTS.items()}
# --stage lowrank: the default recipe's distillation (its lowrank stage) by batch size, lr and epochs;
# each point's distillation took 6-8 min on 2 Xeon cores with AMX (365-403, 404, 487, 446 s)
LOWRANK = "stages.lowrank"
LOWRANK_POINTS: dict[str, list[str]] = {
    f"b{b}-{e}ep": [f"{LOWRANK}.batch_size={b}", f"{LOWRANK}.lr={lr}", f"{LOWRANK}.epochs={e}"]
    for b, lr, e in ((32, "5e-4", 3), (64, "7e-4", 4), (32, "5e-4", 4), (128, "1e-3", 5), (64, "7e-4", 5))
}
# the shipped distillation with the student's own dropout (0.1) instead of none
LOWRANK_POINTS["b64-5ep-dropout"] = [*LOWRANK_POINTS["b64-5ep"], f"{LOWRANK}.dropout=null"]
STAGE_POINTS = {"distill": POINTS, "lowrank": LOWRANK_POINTS}


def distill_only(recipe: str, out: Path, stage: str = "distill") -> Path:
    """The recipe's YAML with no export and no benchmark; for ``stage`` ``distill`` also cut
    after its distill stage."""
    from edgesmith.conf import yaml_safe
    from edgesmith.conf.recipe import resolve_recipe_path

    raw = yaml_safe.load_file(resolve_recipe_path(recipe))
    stages = raw["stages"]
    at = [i for i, s in enumerate(stages) if s.get("kind") == stage]
    if not at:
        raise SystemExit(f"{recipe}: has no {stage} stage to measure")
    if stage == "distill":
        raw["stages"] = stages[: at[0] + 1]
    raw["name"] = f"{raw.get('name', recipe)}-distill-curve"
    raw["export"] = {"formats": []}
    raw["benchmark"] = {"runtimes": []}
    out.mkdir(parents=True, exist_ok=True)
    path = out / "recipe.yaml"
    import yaml

    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_point(recipe_path: Path, run_dir: Path, overrides: list[str], first: bool,
              stage: str = "distill") -> tuple[dict, float]:
    cmd = [sys.executable, "-m", "edgesmith", "-q", "run", str(recipe_path), "--out", str(run_dir)]
    if not first:
        cmd += ["--from", stage]
    for o in overrides:
        cmd += ["--set", o]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True)
    return json.loads((run_dir / "summary.json").read_text()), time.perf_counter() - t0


def _lowrank_fit(run_dir: Path) -> dict:
    """The lowrank stage's distillation record: seconds, texts/s and the precision it ran in."""
    rec = json.loads(next(run_dir.glob("*-lowrank/stage.json")).read_text()).get("recovery") or {}
    return {"kd_seconds": rec.get("seconds"), "texts_per_s": rec.get("samples_per_s"), "precision": rec.get("precision")}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--recipe", default="minilm-sentiment-full")
    ap.add_argument("--stage", choices=sorted(STAGE_POINTS), default="distill",
                    help="the stage that distils: distill (the curve's points) or lowrank (the shipped recipes)")
    ap.add_argument("--points", default=None, help="comma-separated; distill: "
                    f"{', '.join(POINTS)}; lowrank: {', '.join(LOWRANK_POINTS)} (default: all of the stage's)")
    ap.add_argument("--out", type=Path, default=Path("runs/distill-curve"))
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="applied to every point, before the point's own overrides")
    ap.add_argument("--plan", action="store_true",
                    help="print each point's resolved recipe as JSON ({point: recipe}) and exit; runs nothing")
    args = ap.parse_args(argv)
    points = STAGE_POINTS[args.stage]
    names = [p for p in (args.points or ",".join(points)).split(",") if p]
    unknown = [p for p in names if p not in points]
    if unknown:
        ap.error(f"unknown {args.stage} point(s) {', '.join(unknown)}; choose from {', '.join(points)}")
    recipe_path = distill_only(args.recipe, args.out, args.stage)
    if args.plan:
        from edgesmith.conf.recipe import load_recipe

        print(json.dumps({name: load_recipe(recipe_path, args.overrides + points[name]).to_dict() for name in names}))
        return 0
    run_dir = args.out / "run"
    rows, teacher = [], None
    for i, name in enumerate(names):
        overrides = args.overrides + points[name]
        s, wall = run_point(recipe_path, run_dir, overrides,
                            first=i == 0 or not (run_dir / "summary.json").is_file(), stage=args.stage)
        teacher = s["teacher"]["metrics"]
        # distill: the distilled student; lowrank: the final (int8) model, after vocab and quantize
        scored = s["stages"][-1] if args.stage == "lowrank" else next(st for st in s["stages"] if st["kind"] == "distill")
        m = scored["metrics"]
        row = {"point": name, "overrides": overrides, "wall_s": round(wall, 1), "scored_stage": scored["name"],
               **{k: m.get(k) for k in ("accuracy", "cosine_to_teacher", "cosine_to_teacher_p05",
                                        "retrieval_r1", "retrieval_r10")}}
        if args.stage == "lowrank":
            row.update(_lowrank_fit(run_dir))
        rows.append(row)
        print(f"{name:<18} cosine {row['cosine_to_teacher']:.4f} (p05 {row['cosine_to_teacher_p05']:.4f})  "
              f"probe {100 * row['accuracy']:.2f}% (teacher {100 * teacher['accuracy']:.2f}%)  "
              f"R@1 {100 * row['retrieval_r1']:.2f}% (teacher {100 * teacher['retrieval_r1']:.2f}%)  "
              f"wall {wall:.0f} s", flush=True)
    cpu = cpu_info()
    result = {"recipe": args.recipe, "stage": args.stage, "host": {k: cpu.get(k) for k in ("model", "arch", "flags", "logical_cores")},
              "teacher": {k: teacher.get(k) for k in ("accuracy", "retrieval_r1", "retrieval_r10")} if teacher else None,
              "rows": rows}
    (args.out / "distill_curve.json").write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
