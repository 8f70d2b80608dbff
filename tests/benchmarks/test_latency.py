"""edgesmith.benchmarks: summary statistics, the timing loop and measure() end to end."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgesmith.benchmarks import measure, summarize
from edgesmith.benchmarks.latency import _read_result
from edgesmith.benchmarks.worker import time_runs
from edgesmith.runtimes import load


@pytest.fixture(scope="module")
def add_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A near no-op model: y = x + 1 on a [batch, 1] float tensor."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])
    one = numpy_helper.from_array(np.ones(1, np.float32), "one")
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "one"], ["y"])], "add", [x], [y], [one]
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10  # onnx 1.23 writes 14 by default; onnxruntime 1.31 reads at most 13
    onnx.checker.check_model(model)
    path = tmp_path_factory.mktemp("bench") / "add.onnx"
    onnx.save(model, str(path))
    return path


def test_import_is_lean() -> None:
    code = (
        "import sys, edgesmith.benchmarks, edgesmith.benchmarks.worker\n"
        "loaded = [m for m in ('onnxruntime', 'torch', 'onnx') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_summarize_arange() -> None:
    s = summarize(np.arange(1, 101))
    assert s["n"] == 100
    assert (s["min"], s["max"], s["mean"]) == (1.0, 100.0, 50.5)
    assert s["p50"] == pytest.approx(50.5) and s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)  # numpy's default linear interpolation
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101)))  # population std, 28.866
    assert s["throughput_per_s"] == pytest.approx(1000 / 50.5)


def test_summarize_constant_and_bad_samples() -> None:
    s = summarize(np.full(7, 2.0))
    assert (s["p50"], s["p99"], s["std"], s["throughput_per_s"]) == (2.0, 2.0, 0.0, 500.0)
    with pytest.raises(ValueError, match="at least one sample"):
        summarize(np.array([]))
    with pytest.raises(ValueError, match="NaN"):
        summarize(np.array([1.0, np.nan]))


class _Sleeper:
    """A stand-in runtime whose run takes about 1 ms."""

    def run(self, inputs: dict) -> list:
        time.sleep(0.001)
        return []


def test_time_runs_honours_min_seconds_and_cap() -> None:
    samples, seconds = time_runs(_Sleeper(), {}, iterations=3, min_seconds=0.05)  # type: ignore[arg-type]
    assert 3 <= samples.size <= 60 and seconds >= 0.05 and samples.min() >= 1.0
    samples, seconds = time_runs(_Sleeper(), {}, iterations=2, min_seconds=0.3)  # type: ignore[arg-type]
    assert samples.size > 100 and seconds >= 0.3  # min_seconds wins over a small iteration count
    samples, seconds = time_runs(_Sleeper(), {}, iterations=2, min_seconds=5.0, max_runs=40)  # type: ignore[arg-type]
    assert samples.size == 40 and seconds < 5.0  # an explicit cap (quick_p50's) still stops it
    samples, _ = time_runs(_Sleeper(), {}, iterations=5, min_seconds=0.0)  # type: ignore[arg-type]
    assert samples.size == 5


def test_measure_end_to_end(add_onnx: Path) -> None:
    eval_x = np.arange(100, dtype=np.float32).reshape(100, 1)
    r = measure(
        add_onnx,
        "onnxruntime",
        {"x": np.ones((1, 1), np.float32)},
        threads=1,
        warmup=5,
        iterations=50,
        min_seconds=0.1,
        eval_inputs={"x": eval_x},
        eval_batch=32,
    )
    assert r["error"] is None, r["error"]
    lat = r["latency_ms"]
    assert 0 < lat["min"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
    assert lat["p50_ci"][0] <= lat["p50"] <= lat["p50_ci"][1]
    assert lat["p99_ci"][0] <= lat["p99"] <= lat["p99_ci"][1]
    fp = r["fingerprint"]
    assert fp["cpu"]["logical_cores"] == os.cpu_count() and "numpy" in fp["libraries"]
    assert r["peak_rss_mb"] > r["load_rss_mb"] >= 0
    assert (r["runtime"], r["threads"], r["device"], r["batch"]) == ("onnxruntime", 1, "cpu", 1)
    assert r["model_size_bytes"] == add_onnx.stat().st_size
    p = r["protocol"]
    assert lat["n"] == p["iterations_run"] >= 50 and p["seconds"] >= 0.1  # both minimums honoured
    with load(add_onnx) as rt:
        direct = np.concatenate([rt.run({"x": eval_x[i : i + 32]})[0] for i in range(0, 100, 32)])
    np.testing.assert_array_equal(r["eval_outputs"], direct)
    np.testing.assert_array_equal(r["eval_outputs"], eval_x + 1)


def test_model_size_counts_external_data(add_onnx: Path, tmp_path: Path) -> None:
    path = tmp_path / "add.onnx"
    onnx.save(
        onnx.load(str(add_onnx)),
        str(path),
        save_as_external_data=True,
        location="add.onnx.data",
        size_threshold=0,
    )
    r = measure(
        path, None, {"x": np.ones((1, 1), np.float32)}, warmup=1, iterations=5, min_seconds=0
    )
    assert r["error"] is None, r["error"]
    assert (
        r["model_size_bytes"] == path.stat().st_size + (tmp_path / "add.onnx.data").stat().st_size
    )


def test_measure_torch_runtime(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")

    class AddOne(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x + 1

    x = torch.ones(2, 1)
    dyn = {"x": {0: torch.export.Dim("batch", min=1, max=1024)}}
    path = tmp_path / "add.pt2"
    torch.export.save(torch.export.export(AddOne(), (x,), dynamic_shapes=dyn), str(path))
    eval_x = np.arange(10, dtype=np.float32).reshape(10, 1)
    r = measure(
        path,
        None,
        {"x": np.ones((4, 1), np.float32)},
        threads=2,
        warmup=2,
        iterations=10,
        min_seconds=0.0,
        eval_inputs={"x": eval_x},
        eval_batch=4,
    )
    assert r["error"] is None, r["error"]
    assert (r["runtime"], r["threads"], r["batch"], r["protocol"]["iterations_run"]) == (
        "torch",
        2,
        4,
        10,
    )
    assert r["throughput_per_s"] == pytest.approx(4 * r["latency_ms"]["throughput_per_s"])
    np.testing.assert_array_equal(r["eval_outputs"], eval_x + 1)


def test_measure_failures_return_an_error(add_onnx: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.onnx"
    r = measure(missing, "onnxruntime", {"x": np.ones((1, 1), np.float32)})
    assert r["error"] == f"{missing}: no such model file" and r["eval_outputs"] is None
    assert r["fingerprint"]["python"] == platform.python_version()  # failed rows say where too
    r = measure(add_onnx, "tflite", {"x": np.ones((1, 1), np.float32)})
    assert r["error"].startswith("unknown runtime 'tflite'") and r["runtime"] == "tflite"
    r = measure(add_onnx, "onnxruntime", {"wrong": np.ones((1, 1), np.float32)}, min_seconds=0)
    assert "missing input(s) x" in r["error"] and "\n" not in r["error"]


def test_a_crashed_worker_is_reported(tmp_path: Path) -> None:
    proc = subprocess.CompletedProcess([], -9, "", "")
    assert _read_result(tmp_path / "none.json", proc) == {
        "error": "benchmark worker killed by signal 9"
    }
    proc = subprocess.CompletedProcess([], 1, "", "Traceback ...\nMemoryError\n")
    assert _read_result(tmp_path / "none.json", proc)["error"].endswith("status 1: MemoryError")
