"""Output a person can read: plain line-per-event progress without a TTY, tables that
fit 80 columns without cutting cells, --quiet / --json, native library noise dropped."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console

from edgesmith.pipeline.report import benchmarks_table, exports_table, summary_table
from edgesmith.progress import PlainProgress

DATA = Path(__file__).parent / "benchmarks" / "data"
SUMMARIES = sorted(DATA.glob("*.summary.json"))


def test_plain_progress_prints_start_progress_and_end_lines(monkeypatch):
    buf = io.StringIO()
    p = PlainProgress(Console(file=buf, width=200), every_s=0.0)
    task = p.add_task("distill", total=3)
    p.update(task, advance=1, description="distill ep 1/3 loss 0.5")
    p.advance(task, 2)
    p.close()
    lines = buf.getvalue().splitlines()
    assert lines[0] == "distill: started (3 steps)"
    assert lines[1].startswith("distill ep 1/3 loss 0.5: 1/3 after")
    assert lines[2].startswith("distill ep 1/3 loss 0.5: done, 3/3 in ") and len(lines) == 3


@pytest.mark.parametrize("path", SUMMARIES, ids=[p.name for p in SUMMARIES])
def test_tables_fit_80_columns_without_cut_cells(path: Path):
    summary = json.loads(path.read_text())
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(summary, width=80))
    console.print(exports_table(summary, width=80))
    console.print(benchmarks_table(summary, width=80))
    text = console.export_text()
    assert max(len(ln.rstrip()) for ln in text.splitlines()) <= 80
    assert "…" not in text  # folded, never ellipsised
    for b in summary["benchmarks"]:
        if b.get("latency_ms"):
            assert f"{b['latency_ms']['p50']:.3f}" in text.replace("\n", "")


def _tiny_onnx(tmp_path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "t", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(tmp_path / "tiny.onnx"))
    return tmp_path / "tiny.onnx"


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "EDGESMITH_QUIET"}
    return subprocess.run([sys.executable, "-m", "edgesmith.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**env, "COLUMNS": "80"})


def test_cli_without_tty_logs_lines_and_quiet_and_json(tmp_path: Path):
    model = _tiny_onnx(tmp_path)
    common = ["bench", str(model), "--iterations", "10", "--min-seconds", "0.02"]
    plain = _cli(*common)
    assert plain.returncode == 0, plain.stderr
    assert "benchmark tiny.onnx on cpu: started (1 steps)" in plain.stderr
    assert "benchmark tiny.onnx on cpu: done, 1/1 in" in plain.stderr
    assert max(len(ln) for ln in plain.stdout.rstrip().splitlines()) <= 80 and "tiny" in plain.stdout
    quiet = _cli("--quiet", *common)
    assert quiet.returncode == 0 and quiet.stderr.strip() == "" and "p50 ms" in quiet.stdout
    js = _cli("-q", *common, "--json")
    rows = json.loads(js.stdout)["benchmarks"]
    assert len(rows) == 1 and rows[0]["latency_ms"]["p50"] > 0


def test_native_noise_is_dropped_unless_verbose():
    code = ("import os, sys\nfrom edgesmith.progress import filter_native_noise\n"
            "print(filter_native_noise(), file=sys.stdout, flush=True)\n"
            "os.write(2, b'INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n')\n"
            "os.write(2, b'[cpuinfo_utils.cpp:71] Reading file /sys/devices/soc0/image_version\\n')\n"
            "os.write(2, b'[threadpool.cpp:66] Resetting threadpool to 1 threads.\\n')\n"
            "os.write(2, b'error: a real problem\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.stdout.strip() == "True" and proc.stderr == "error: a real problem\n", proc.stderr


def test_each_finished_stage_prints_a_result_line():
    from edgesmith.pipeline.report import stage_result_line

    assert stage_result_line({"name": "distill", "seconds": 397.1, "params": 3712,
                              "metrics": {"accuracy": 0.9889, "teacher_agreement": 0.9889}}) == (
        "  distill: done in 397 s; 3.7 k params, accuracy 98.89%, teacher agreement 98.89%")
    export = {"name": "export", "seconds": 87, "exports": [{"parity": {"passed": True}}, {"error": "no litert"}]}
    assert stage_result_line(export) == "  export: done in 87 s; 1/2 exports passed parity"
    import inspect

    from edgesmith.pipeline import runner

    assert "log(stage_result_line(info))" in inspect.getsource(runner.Runner._run)


def test_summary_caption_gives_the_r1_share_with_its_interval():
    """An encoder's summary says its last stage's R@1 as a share of the teacher's, with the paired
    interval (a few hundred queries leave several points of doubt), and still fits 80 columns."""
    summary = {"recipe": "r", "out": "runs/r", "task": "embedding", "benchmarks": [],
               "teacher": {"name": "teacher", "metrics": {"retrieval_r1": 0.3146, "retrieval_r10": 0.6}},
               "stages": [{"name": "quantize", "metrics": {
                   "retrieval_r1": 0.2886, "retrieval_r10": 0.58, "retrieval_r1_vs_teacher": 0.9172,
                   "retrieval_r1_vs_teacher_lo": 0.8321, "retrieval_r1_vs_teacher_hi": 1.0066}}]}
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(summary, width=80))
    text = console.export_text()
    assert max(len(ln.rstrip()) for ln in text.splitlines()) <= 80
    flat = " ".join(text.split())
    assert "R@1: 91.7% of the teacher's on the same queries (95% paired bootstrap interval 83.2% - 100.7%)" in flat
    summary["stages"][0]["metrics"] = {"retrieval_r1": 0.2886}  # a stage measured before the share existed
    console = Console(width=80, record=True, color_system=None)
    console.print(summary_table(summary, width=80))
    assert "of the teacher's" not in console.export_text()
