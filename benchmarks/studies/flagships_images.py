"""The image part of the flagship comparison (:mod:`edgesmith.benchmarks.studies.flagships`):
a finished classification run (``runs/fashion-mnist``) -- its bundle (or exported
ONNX files) vs its own teacher in ONNX fp32 and in onnxruntime static int8 (the
``x86`` preset of :mod:`edgesmith.compress.quantize.ort`, calibrated on the run's
calibration split). Accuracy is on the run's eval split; latency at batch 1, 1 thread,
each file in a fresh process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.benchmarks.compare import run_files
from edgesmith.benchmarks.studies.flagships import file_size, measure_rows


def _teacher_files(work: Path, run_dir: Path, recipe: str) -> tuple[Any, Path, Path, dict | None]:
    """The run's eval split, and its teacher as ONNX fp32 and static int8 (cached in ``work``)."""
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.conf.recipe import ExportConfig, load_recipe
    from edgesmith.export import get_exporter
    from edgesmith.pipeline import steps
    from edgesmith.pipeline.runner import Runner

    # the one upward import: a run directory is read back by the pipeline that wrote it
    runner = Runner(load_recipe(run_dir / "recipe.resolved.yaml"), run_dir, "cpu")
    ctx = runner.ctx
    out = work / f"{recipe}-teacher"
    fp32, int8, info = (
        out / "onnx" / "model.onnx",
        out / "int8" / "model.onnx",
        out / "int8" / "quantize.json",
    )
    if not fp32.exists() or not int8.exists():
        teacher = steps.load_teacher(runner, {}, runner.steps[0].dir).cpu().eval()
        if not fp32.exists():
            example = tuple(t[:2].clone() for t in ctx.tensors["eval"].inputs)
            get_exporter("onnx")().export(teacher, example, ctx.task, fp32.parent, ExportConfig())
        if not int8.exists():
            name = ctx.task.input_names[0]
            batches = [{name: b.inputs[0].numpy()} for b in ctx.tensors["calibration"].batches(32)]
            q = quantize_onnx(fp32, int8, preset("x86"), batches)
            info.write_text(
                json.dumps(
                    {"sqnr_db": (q.get("check") or {}).get("sqnr_db"), "config": q["config"]}
                )
            )
    quant = json.loads(info.read_text()) if info.is_file() else None
    return ctx.tensors["eval"], fp32, int8, quant


def images(
    work: Path, run_dir: Path, iterations: int, min_seconds: float, rounds: int = 1
) -> list[dict[str, Any]]:
    """Rows (see :mod:`edgesmith.benchmarks.compare`) for the run's teacher fp32, the
    teacher's static int8 and the run's own ONNX files."""
    from edgesmith.runtimes import load

    summary, files = run_files(run_dir)
    evalset, fp32, int8, quant = _teacher_files(work, run_dir, summary.get("recipe", run_dir.name))
    int8_note = (
        []
        if quant is None
        else [
            f"static QDQ int8, x86 preset (per-channel, reduce_range); "
            f"output SQNR {quant['sqnr_db']:.1f} dB on the calibration batch"
        ]
    )
    cands = [
        ("teacher ONNX fp32", "teacher", fp32, []),
        ("teacher ONNX static int8", "peer", int8, int8_note),
    ]
    cands += [(f"ours: student {label}", "ours", path, []) for label, path in files]
    x, y = evalset.inputs[0].numpy(), evalset.labels.numpy()
    rows = []
    for name, role, path, notes in cands:
        with load(path, "onnxruntime", threads=2) as rt:
            feed, dim0 = rt.inputs[0].name, rt.inputs[0].shape[0]
            step = (
                dim0 if isinstance(dim0, int) and dim0 > 0 else 256
            )  # a static-batch file runs its own batch
            pred = np.concatenate(
                [rt.run({feed: x[i : i + step]})[0].argmax(-1) for i in range(0, len(x), step)]
            )
        rows.append({"name": name, "role": role, "path": str(path), "runtime": "onnxruntime", "source": str(run_dir),
                     "size_bytes": file_size(path), "accuracy": float((pred == y).mean()), "cosine_to_teacher": None,
                     "notes": [f"accuracy on the run's {len(y)} eval images", *notes]})  # fmt: skip
    measure_rows(rows, iterations, min_seconds, rounds)
    return rows
