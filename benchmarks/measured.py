"""Your own "Measured" table: the ratios that matter (final model vs teacher: p50 and
its interval, file size, accuracy), from finished runs on the machine at hand, as
Markdown with the host it was measured on::

    edgesmith run digits-quick && edgesmith run fashion-mnist
    python -m edgesmith.benchmarks.measured runs/digits-quick runs/fashion-mnist -o measured.md

Absolute latencies differ up to 2x between x86 machines; the ratios are what carries
over, so they are what the README reports and what this script regenerates. A p50
ratio is called faster or slower only by the overhead-aware rule of
:func:`edgesmith.benchmarks.stats.compare_latency`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edgesmith.atomic import write_text
from edgesmith.benchmarks.stats import compare_latency, harness_overhead_ms
from edgesmith.errors import EdgesmithError, UserError


def final_name(summary: dict[str, Any]) -> str | None:
    """The model the run ships: the benchmarked model that is neither the teacher nor
    an fp32 parent (``<stage>-fp32``)."""
    names = [b["model"] for b in summary.get("benchmarks", []) if b.get("latency_ms")]
    finals = [n for n in names if n != "teacher" and not n.endswith("-fp32")]
    return finals[-1] if finals else None


def ratio_rows(summary: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per runtime measured for both the teacher and the final model."""
    final = final_name(summary)
    rows = []
    bench = [b for b in summary.get("benchmarks", []) if b.get("latency_ms") and b["latency_ms"].get("p50")]
    for t in (b for b in bench if b["model"] == "teacher"):
        f = next((b for b in bench if b["model"] == final and b["runtime"] == t["runtime"]
                  and b.get("target") == t.get("target") and b.get("batch") == t.get("batch")), None)
        if f is None:
            continue
        lt, lf = t["latency_ms"], f["latency_ms"]
        lo = hi = None
        if lt.get("p50_ci") and lf.get("p50_ci"):
            lo, hi = lf["p50_ci"][0] / lt["p50_ci"][1], lf["p50_ci"][1] / lt["p50_ci"][0]
        size = (f["model_size_bytes"] / t["model_size_bytes"]) if f.get("model_size_bytes") and t.get(
            "model_size_bytes") else None
        rows.append({"recipe": summary.get("recipe"), "runtime": t["runtime"], "target": t.get("target"),
                     "final": final, "precision": f.get("precision"), "teacher_p50": lt["p50"], "final_p50": lf["p50"],
                     "p50_ratio": lf["p50"] / lt["p50"], "p50_interval": [lo, hi],
                     "verdict": compare_latency(lt, lf, harness_overhead_ms(t, f)),
                     "size_ratio": size, "teacher_accuracy": t.get("accuracy"), "final_accuracy": f.get("accuracy"),
                     "fingerprint": f.get("fingerprint") or t.get("fingerprint")})
    return rows


def host_line(fp: dict[str, Any] | None) -> str:
    """The machine a table was measured on, in one line."""
    if not fp:
        return "host: not recorded"
    cpu = fp.get("cpu") or {}
    libs = fp.get("libraries") or {}
    flags = " ".join(f for f in cpu.get("flags") or [] if "avx512" in f or "amx" in f or f in ("avx2", "neon"))
    versions = ", ".join(f"{k} {v}" for k, v in sorted(libs.items()))
    return (f"host: {cpu.get('model') or '?'}, {cpu.get('logical_cores') or '?'} logical cores"
            + (f", {flags}" if flags else "") + (f"; {versions}" if versions else ""))


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def markdown(rows: list[dict[str, Any]]) -> str:
    """The ratio table as Markdown, headed by the host it was measured on."""
    hosts = sorted({host_line(r["fingerprint"]) for r in rows})
    lines = [*(f"_{h}_  " for h in hosts), "",
             "| recipe | runtime | final model | p50 teacher → final (ms) | p50 ratio [interval] | "
             "final is | size ratio | accuracy teacher → final |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in rows:
        lo, hi = r["p50_interval"]
        interval = f" [{lo:.2f}-{hi:.2f}]" if lo is not None else ""
        size = "-" if r["size_ratio"] is None else f"{r['size_ratio']:.2f}x"
        lines.append(f"| {r['recipe']} | {r['runtime']} | {r['final']} {r['precision'] or ''} | "
                     f"{r['teacher_p50']:.3f} → {r['final_p50']:.3f} | {r['p50_ratio']:.2f}x{interval} | "
                     f"{r['verdict'] if r['verdict'] != 'same' else 'not told apart'} | {size} | "
                     f"{_pct(r['teacher_accuracy'])} → {_pct(r['final_accuracy'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m edgesmith.benchmarks.measured RUN_DIR...``; returns the exit status."""
    p = argparse.ArgumentParser(prog="python -m edgesmith.benchmarks.measured", description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="finished run directories (each holding summary.json)")
    p.add_argument("-o", "--out", type=Path, help="also write the Markdown table to this file")
    p.add_argument("--json", action="store_true", help="print the rows as JSON instead")
    args = p.parse_args(argv)
    try:
        rows = []
        for run in args.runs:
            path = run / "summary.json" if run.is_dir() else run
            if not path.is_file():
                raise UserError(f"{run}: no summary.json; finish `edgesmith run` first")
            rows += ratio_rows(json.loads(path.read_text()))
        if not rows:
            raise UserError("no run holds a benchmark of both the teacher and its final model")
    except EdgesmithError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    text = markdown(rows)
    print(text, end="")
    if args.out:
        write_text(args.out, text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
