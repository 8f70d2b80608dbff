"""Measurements a user can trust: a point the file cannot run is an error row (never
relabelled), --min-seconds is honoured and what ran is stored, the harness overhead is
measured, stored and shown, and "slower"/"faster" needs disjoint CIs and a gap above it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgesmith.benchmarks.stats import compare_latency, harness_overhead_ms
from edgesmith.benchmarks.store import ResultsStore
from edgesmith.benchmarks.worker import harness_overhead
from edgesmith.cli import main


@pytest.fixture(scope="module")
def static_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """x [1, 8] float -> x @ W [1, 4]: a file with a static batch of 1."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    w = numpy_helper.from_array(np.ones((8, 4), np.float32), "w")
    model = helper.make_model(helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "s", [x], [y], [w]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path = tmp_path_factory.mktemp("static") / "static.onnx"
    onnx.save(model, str(path))
    return path


def test_static_batch_point_is_an_error_row_not_relabelled(static_onnx: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    res = CliRunner().invoke(main, ["bench", str(static_onnx), "--batch", "1,8", "--iterations", "20",
                                    "--min-seconds", "0.05", "--db", str(db), "--json"])
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        rows = {r["batch"]: r for r in store.rows()}
    assert set(rows) == {1, 8}
    assert rows[1]["error"] is None and rows[1]["p50"] > 0
    assert rows[8]["p50"] is None and rows[8]["throughput_per_s"] is None
    assert "static batch of 1, so batch 8 cannot run" in rows[8]["error"]


def test_min_seconds_is_honoured_and_what_ran_is_stored(static_onnx: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    res = CliRunner().invoke(main, ["bench", str(static_onnx), "--iterations", "5", "--min-seconds", "0.4",
                                    "--db", str(db)])
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        (row,) = store.rows()
    p = row["protocol"]
    assert p["min_seconds"] == 0.4 and p["seconds"] >= 0.4, p  # the old 20x cap stopped at ~100 runs
    assert p["iterations"] == 5 and p["iterations_run"] == row["n"] > 1000 and p["stopped_by"] == "min_seconds"
    # the harness overhead is measured on the same inputs, stored with the row and shown
    assert 0 < p["overhead_ms"] < 1 and p["overhead"]["runtime"] == "onnxruntime"
    assert "overhead" in res.output


def test_harness_overhead_of_a_noop_model() -> None:
    o = harness_overhead({"x": np.zeros((1, 8), np.float32), "ids": np.ones((1, 4), np.int64)})
    assert o is not None and 0 < o["p50_ci"][0] <= o["p50"] <= o["p50_ci"][1] < 1.0 and o["n"] >= 200


def test_compare_needs_disjoint_cis_and_a_gap_above_the_overhead() -> None:
    fast, slow = {"p50": 0.020, "p50_ci": [0.019, 0.021]}, {"p50": 0.030, "p50_ci": [0.029, 0.031]}
    assert compare_latency(fast, slow) == "slower" and compare_latency(slow, fast) == "faster"
    assert compare_latency(fast, slow, overhead_ms=0.012) == "same"  # a 10 us gap under a 12 us harness floor
    overlapping = {"p50": 0.030, "p50_ci": [0.018, 0.040]}
    assert compare_latency(fast, overlapping) == "same"
    assert compare_latency({"p50": 1.0}, {"p50": 1.04}) == "same"  # under the 5% margin
    assert compare_latency({"p50": 1.0}, {"p50": 1.10}) == "slower"  # no CIs (a device tool): margin decides
    rows = [{"protocol": {"overhead_ms": 0.01}}, {"protocol": {"overhead_ms": 0.015}}, {"protocol": None}]
    assert harness_overhead_ms(*rows) == 0.015 and harness_overhead_ms({}, None) is None


def test_pipeline_flags_use_the_overhead() -> None:
    from edgesmith.pipeline.steps import flag_slower_steps

    def r(model, p50, ci, overhead):
        return {"model": model, "runtime": "onnxruntime", "target": "cpu", "threads": 1, "batch": 1,
                "latency_ms": {"p50": p50, "p50_ci": ci}, "protocol": {"overhead_ms": overhead}}

    tiny = [r("teacher", 0.017, [0.0168, 0.0172], 0.012), r("distill", 0.029, [0.0288, 0.0292], 0.012)]
    flag_slower_steps(tiny, ["teacher", "distill"])
    assert tiny[1]["slower_than_previous"] is False  # 12 us apart at a 12 us floor: not told apart
    big = [r("teacher", 0.017, [0.0168, 0.0172], 0.005), r("distill", 0.029, [0.0288, 0.0292], 0.005)]
    flag_slower_steps(big, ["teacher", "distill"])
    assert big[1]["slower_than_previous"] is True


def _bundle(root: Path, files: dict[str, tuple[Path, str]]) -> Path:
    """A bundle folder: the given model files with a manifest holding their sha256."""
    import json
    import shutil

    from edgesmith.atomic import sha256_file

    formats, checksums = {}, []
    for fmt, (src, runtime) in files.items():
        rel = f"{fmt}/model{src.suffix}"
        (root / fmt).mkdir(parents=True, exist_ok=True)
        shutil.copy(src, root / rel)
        formats[fmt] = {"path": rel, "runtime": runtime, "precision": "fp32"}
        checksums.append({"path": rel, "size": (root / rel).stat().st_size, "sha256": sha256_file(root / rel)})
    manifest = {"schema_version": 1, "source": {"recipe": "tiny"}, "task": "classification",
                "inputs": [{"name": "x", "shape": [1, 8], "dtype": "float32"}],
                "outputs": [{"name": "y", "shape": [1, 4], "dtype": "float32", "meaning": "logits"}],
                "preprocessing": {"kind": "image", "channels": 1, "size": [1, 8], "mean": [0.0], "std": [1.0]},
                "labels": None, "formats": formats, "checksums": checksums}
    (root / "edgesmith.json").write_text(json.dumps(manifest))
    return root


def test_bench_takes_a_bundle_every_format_into_the_store(static_onnx: Path, tmp_path: Path) -> None:
    bundle = _bundle(tmp_path / "bundle", {"onnx": (static_onnx, "onnxruntime")})
    db = tmp_path / "r.db"
    res = CliRunner().invoke(main, ["bench", str(bundle), "--target", "cpu", "--db", str(db), "--iterations", "20",
                                    "--min-seconds", "0.05"])
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        (row,) = store.rows()
    assert row["model"] == "tiny-bundle" and row["runtime"] == "onnxruntime" and row["p50"] > 0
    assert row["extra"]["format"] == "onnx" and row["target"] == "cpu"
    # a run directory without --db, and a folder that is neither: one line naming what was given and expected
    run = tmp_path / "run"
    run.mkdir()
    (run / "summary.json").write_text("{}")
    res = CliRunner().invoke(main, ["bench", str(run)])
    assert res.exit_code == 2 and "a run directory: add --db FILE" in res.stderr
    res = CliRunner().invoke(main, ["bench", str(tmp_path / "run" / ".."), "--db", str(db)])
    assert res.exit_code == 2 and "neither a bundle (no edgesmith.json) nor a run directory" in res.stderr
    res = CliRunner().invoke(main, ["bench", str(bundle), "--runtime", "tflite"])
    assert res.exit_code == 2 and "no model file for runtime litert in this bundle; it has: onnxruntime" in res.stderr
