"""The flagship comparison's pieces that need no model download or long run: ratios and
the best peer, the table, the store rows, run-directory files and the variance figure."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from rich.console import Console

from edgesmith.benchmarks.compare import add_ratios, best_peer, run_files, store_rows, table
from edgesmith.benchmarks.store import ResultsStore
from edgesmith.benchmarks.variance import variance
from edgesmith.errors import EdgesmithError


def _row(name: str, role: str, p50: float | None, size: int, acc: float) -> dict:
    lat = None if p50 is None else {"p50": p50, "p50_ci": [0.9 * p50, 1.1 * p50], "n": 50, "mean": p50}
    return {"name": name, "role": role, "latency_ms": lat, "size_bytes": size, "accuracy": acc,
            "cosine_to_teacher": None if role != "ours" else 0.71, "runtime": "onnxruntime", "path": name,
            "error": None if lat else "worker exited with status 1: boom"}  # fmt: skip


def test_ratios_and_best_peer() -> None:
    rows = [_row("teacher", "teacher", 40.0, 90_000_000, 0.750), _row("fast-bad", "peer", 5.0, 60_000_000, 0.700),
            _row("int8", "peer", 15.0, 23_000_000, 0.745), _row("slow", "peer", 30.0, 23_000_000, 0.760),
            _row("broken", "peer", None, 1, 0.9), _row("ours", "ours", 10.0, 17_000_000, 0.74)]  # fmt: skip
    peer = add_ratios(rows)
    assert peer is rows[2]  # fastest within 1 point of the teacher; fast-bad loses 5 points
    ours = rows[5]
    assert ours["vs_teacher"] == pytest.approx({"p50": 0.25, "size": 17 / 90, "accuracy_points": -1.0})
    assert ours["vs_best_peer"] == pytest.approx({"p50": 10 / 15, "size": 17 / 23, "accuracy_points": -0.5})
    assert rows[4]["vs_teacher"] is None and rows[0]["vs_teacher"]["p50"] == 1.0
    assert best_peer([_row("t", "teacher", 1.0, 1, 0.9), _row("p", "peer", 2.0, 1, 0.5)])["name"] == "p"
    assert best_peer([_row("t", "teacher", 1.0, 1, 0.9)]) is None
    console = Console(width=220, record=True)
    console.print(table("t", rows, peer, "Protocol: test.", accuracy="sentiment acc"))
    text = console.export_text()
    assert "int8 *" in text and "0.25x" in text and "worker exited with status 1" in text and "Protocol: test." in text


def test_store_rows(tmp_path: Path) -> None:
    rows = [_row("teacher", "teacher", 40.0, 90_000_000, 0.75), _row("broken", "peer", None, 1, 0.5)]
    n = store_rows(tmp_path / "r.db", rows, "flagships-minilm", {"target": "cpu", "threads": 1, "batch": 1,
                                                                 "seq_len": 128, "fingerprint": {"hostname": "h"}})
    with ResultsStore(tmp_path / "r.db") as store:
        got = store.rows(recipe="flagships-minilm")
    assert n == 2 and [r["model"] for r in got] == ["teacher", "broken"]
    assert got[0]["p50"] == 40.0 and got[0]["accuracy"] == 0.75 and got[0]["seq_len"] == 128 and got[0]["host"] == "h"
    assert got[1]["error"].startswith("worker exited")


def test_run_files_bundle_then_exports(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "02-export" / "onnx").mkdir(parents=True)
    (run / "02-export" / "onnx" / "model.onnx").write_bytes(b"x")
    exports = [{"format": "onnx", "precision": "fp32", "runtime": "onnxruntime", "path": "02-export/onnx/model.onnx"},
               {"format": "tflite", "precision": "fp32", "runtime": "litert", "path": "02-export/tflite/m.tflite"}]
    (run / "summary.json").write_text(json.dumps({"recipe": "r", "exports": exports}))
    summary, files = run_files(run)
    assert summary["recipe"] == "r" and files == [("export fp32", run / "02-export/onnx/model.onnx")]
    (run / "bundle" / "onnx").mkdir(parents=True)
    (run / "bundle" / "onnx" / "model.onnx").write_bytes(b"y")
    manifest = {"formats": {"onnx": {"path": "onnx/model.onnx", "runtime": "onnxruntime", "precision": "int8"}}}
    (run / "bundle" / "edgesmith.json").write_text(json.dumps(manifest))
    assert run_files(run)[1] == [("bundle int8", run / "bundle/onnx/model.onnx")]
    with pytest.raises(EdgesmithError, match="no summary.json"):
        run_files(tmp_path)


def test_variance_of_repeated_runs(tmp_path: Path) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 64])
    w = numpy_helper.from_array(np.eye(64, dtype=np.float32), "w")
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "mm", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])  # fmt: skip
    model.ir_version = 10
    path = tmp_path / "mm.onnx"
    onnx.save(model, str(path))
    v = variance(path, repeats=3, iterations=20, min_seconds=0.05)
    assert len(v["p50_ms"]) == 3 and all(p > 0 for p in v["p50_ms"]) and len(v["runs"]) == 3
    assert v["p50_cv"] == pytest.approx(np.std(v["p50_ms"], ddof=1) / np.mean(v["p50_ms"]))
    assert v["p50_range_ms"] == [min(v["p50_ms"]), max(v["p50_ms"])]
    with pytest.raises(EdgesmithError, match="at least 2 runs"):
        variance(path, repeats=1)
