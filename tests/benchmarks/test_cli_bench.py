"""`edgesmith bench`, `results` and `dashboard` from the shell: a real fresh-process
measurement of a token model, appended to a store, exported, re-imported, rendered."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgesmith.benchmarks.store import ResultsStore
from edgesmith.benchmarks.sweep import synth_inputs
from edgesmith.cli import main
from edgesmith.runtimes import load

DATA = Path(__file__).with_name("data")


@pytest.fixture(scope="module")
def token_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Embedding lookup masked by attention_mask: ids [batch, seq] int64 -> [batch, seq, 4]."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", "seq", 4])
    table = numpy_helper.from_array(np.arange(8000, dtype=np.float32).reshape(2000, 4), "table")
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["e"]),
        helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
        helper.make_node("Mul", ["e", "m3"], ["y"]),
    ]
    axis = numpy_helper.from_array(np.array([-1], np.int64), "axis")
    model = helper.make_model(helper.make_graph(nodes, "tok", [ids, mask], [y], [table, axis]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path = tmp_path_factory.mktemp("cli") / "tok.onnx"
    onnx.save(model, str(path))
    return path


def test_synth_inputs_follow_the_spec(token_onnx: Path) -> None:
    with load(token_onnx) as rt:
        x = synth_inputs(rt.inputs, batch=3, seq_len=16)
        (y,) = rt.run(x)
    assert x["input_ids"].shape == (3, 16) and x["input_ids"].dtype == np.int64
    assert x["input_ids"].min() >= 1000 and x["input_ids"].max() < 2000
    assert (x["attention_mask"] == 1).all()
    assert y.shape == (3, 16, 4) and y[0, 0, 0] == 4 * x["input_ids"][0, 0]


def test_bench_store_export_import_dashboard(token_onnx: Path, tmp_path: Path) -> None:
    db, cli = tmp_path / "results.db", CliRunner()
    res = cli.invoke(main, ["bench", str(token_onnx), "--threads", "1,2", "--seq-len", "8,32",
                            "--iterations", "20", "--min-seconds", "0.05", "--db", str(db),
                            "--recipe", "tok"])
    assert res.exit_code == 0, res.output
    with ResultsStore(db) as store:
        rows = store.rows()
    assert len(rows) == 4 and not any(r["error"] for r in rows)
    assert {(r["threads"], r["seq_len"]) for r in rows} == {(1, 8), (1, 32), (2, 8), (2, 32)}
    for r in rows:
        assert 0 < r["p50_ci_lo"] <= r["p50"] <= r["p50_ci_hi"] and r["n"] >= 20
        assert r["recipe"] == "tok" and r["cpu_model"] and r["model_size_bytes"] > 30_000

    res = cli.invoke(main, ["bench", str(DATA), "--db", str(db)])  # a dir without summary.json
    assert res.exit_code == 2 and "neither a bundle (no edgesmith.json) nor a run directory" in res.stderr

    exported = tmp_path / "all.json"
    assert cli.invoke(main, ["results", str(db), "--export", str(exported)]).exit_code == 0
    assert len(json.loads(exported.read_text())["benchmarks"]) == 4
    db2 = tmp_path / "other.db"
    res = cli.invoke(main, ["results", str(db2), "--import", str(exported)])
    assert res.exit_code == 0 and "4 row(s) imported" in res.output
    html = tmp_path / "report.html"
    res = cli.invoke(main, ["dashboard", str(db2), "-o", str(html)])
    assert res.exit_code == 0 and html.stat().st_size > 5_000
    assert "edgesmith-data" in html.read_text()


def test_bench_bad_input_is_one_line(token_onnx: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    res = cli.invoke(main, ["bench", str(tmp_path / "nope.onnx")])
    assert res.exit_code == 2 and res.stderr.strip() == f"error: {tmp_path}/nope.onnx: no such model file, bundle or run directory"
    res = cli.invoke(main, ["bench", str(token_onnx), "--threads", "0"])
    assert res.exit_code == 2 and "--threads 0: expected positive integers" in res.stderr
    res = cli.invoke(main, ["bench", str(token_onnx), "--target", "tpu"])
    assert res.exit_code == 2 and "--target tpu: unknown target" in res.stderr
    res = cli.invoke(main, ["bench", str(token_onnx), "--target", "adb"])  # a device target, wrong file
    assert res.exit_code == 2 and "benchmark_model runs .tflite files only" in res.stderr
    res = cli.invoke(main, ["bench", str(token_onnx), "--remote-python", "python3"])
    assert res.exit_code == 2 and "--remote-python: not an option of cpu targets" in res.stderr
    res = cli.invoke(main, ["dashboard", str(tmp_path / "none.db")])
    assert res.exit_code == 2 and "no such results store" in res.stderr
    junk = tmp_path / "junk.db"
    junk.write_text("not sqlite")
    res = cli.invoke(main, ["results", str(junk), "--export", str(tmp_path / "x.json")])
    assert res.exit_code == 2 and "Traceback" not in res.output and junk.read_text() == "not sqlite"
