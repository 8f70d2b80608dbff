"""Is the ``digits-quick`` demo stable? Run the real command once per training seed and
compare each run's final model with its own teacher.

    python -m edgesmith.benchmarks.studies.digits_demo [--seeds 0,1,2,3,4] [--out DIR]
        [--set KEY=VALUE ...]

Each seed is one ``edgesmith run digits-quick --set seed=N`` in a fresh process (so the
wall time is what a user waits, imports and exports included; the teacher cache is
shared, so the first seed also trains the teachers of later seeds only if their key
matches). The data split stays the recipe's (``data.seed``), so every run is scored on
the same 360 held-out digits: one digit is 0.28 points.

Prints, per seed: teacher and final accuracy (the last stage, the file the ONNX export
ships), the gap in points, parameters and the wall time; then the mean, the range and how
many seeds end within 1 point. Writes ``DIR/digits_demo.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from edgesmith.benchmarks.fingerprint import cpu_info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4", help="comma-separated training seeds")
    ap.add_argument("--out", type=Path, default=Path("runs/digits-demo-study"))
    ap.add_argument("--recipe", default="digits-quick")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = ap.parse_args(argv)
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        out = args.out / f"seed-{seed}"
        cmd = [sys.executable, "-m", "edgesmith", "-q", "run", args.recipe, "--out", str(out), "--set", f"seed={seed}"]
        for o in args.overrides:
            cmd += ["--set", o]
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - t0
        s = json.loads((out / "summary.json").read_text())
        teacher, final = s["teacher"], s["stages"][-1]
        row = {"seed": seed, "teacher_accuracy": teacher["metrics"]["accuracy"],
               "final_stage": final["name"], "final_accuracy": final["metrics"]["accuracy"],
               "teacher_params": teacher["params"], "final_params": final["params"], "wall_s": round(wall, 1)}
        row["gap_points"] = round(100 * (row["final_accuracy"] - row["teacher_accuracy"]), 2)
        rows.append(row)
        print(f"seed {seed}: teacher {100 * row['teacher_accuracy']:.2f}%  {final['name']} "
              f"{100 * row['final_accuracy']:.2f}%  gap {row['gap_points']:+.2f} points  "
              f"params {row['teacher_params']:,} -> {row['final_params']:,}  wall {wall:.0f} s", flush=True)
    gaps = [r["gap_points"] for r in rows]
    cpu = cpu_info()
    summary = {"recipe": args.recipe, "overrides": args.overrides,
               "host": {k: cpu.get(k) for k in ("model", "arch", "flags", "logical_cores")},
               "rows": rows, "mean_gap_points": round(sum(gaps) / len(gaps), 2),
               "min_gap_points": min(gaps), "max_gap_points": max(gaps),
               "within_1_point": sum(g >= -1.0 for g in gaps), "seeds": len(gaps),
               "wall_s": {"min": min(r["wall_s"] for r in rows), "max": max(r["wall_s"] for r in rows)}}
    print(f"gap mean {summary['mean_gap_points']:+.2f} points (range {summary['min_gap_points']:+.2f} to "
          f"{summary['max_gap_points']:+.2f}); within 1 point on {summary['within_1_point']}/{len(gaps)} seeds; "
          f"wall {summary['wall_s']['min']:.0f}-{summary['wall_s']['max']:.0f} s")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "digits_demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
