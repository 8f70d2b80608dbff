"""Two files timed run for run in one process: a file against itself reads the same
(its ratio's whole CI inside the 5% margin), a file with 24x the work reads slower, and the reverse faster."""

from __future__ import annotations

import numpy as np
import pytest

from edgesmith.benchmarks.paired import compare_files, verdict


def _chain(path, n: int, width: int = 256):
    """An ONNX model of ``n`` chained MatMuls (``width`` x ``width``), seeded weights."""
    import onnx
    from onnx import helper, numpy_helper

    rng = np.random.default_rng(0)
    inits, nodes, prev = [], [], "x"
    for i in range(n):
        w = (rng.standard_normal((width, width)) / np.sqrt(width)).astype(np.float32)
        inits.append(numpy_helper.from_array(w, f"w{i}"))
        nodes.append(helper.make_node("MatMul", [prev, f"w{i}"], [f"h{i}"]))
        prev = f"h{i}"
    nodes.append(helper.make_node("Identity", [prev], ["y"]))
    graph = helper.make_graph(nodes, "chain", [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, width])],
                              [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, width])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("paired")
    return _chain(d / "small.onnx", 1), _chain(d / "big.onnx", 24)


def test_a_file_against_itself_is_the_same_and_more_work_is_slower(files):
    small, big = files
    x = {"x": np.ones((1, 256), np.float32)}
    same = compare_files(small, small, "onnxruntime", x, pairs=300, min_seconds=0.3)
    assert same["error"] is None, same["error"]
    assert same["verdict"] == "same" and 0.95 < same["ratio_ci"][0] <= same["ratio_ci"][1] < 1.05, same["ratio_ci"]
    assert same["pairs"] >= 300 and same["a_ms"]["n"] == same["b_ms"]["n"] == same["pairs"]
    slow = compare_files(big, small, "onnxruntime", x, pairs=300, min_seconds=0.3)
    fast = compare_files(small, big, "onnxruntime", x, pairs=300, min_seconds=0.3)
    assert slow["verdict"] == "slower" and slow["ratio"] > 2, slow["ratio"]
    assert fast["verdict"] == "faster" and fast["ratio"] < 0.5, fast["ratio"]
    # the two orders agree: a/b is about the inverse of b/a
    assert abs(np.log(slow["ratio"] * fast["ratio"])) < 0.5, (slow["ratio"], fast["ratio"])


def test_a_file_that_does_not_run_is_one_error_line(files, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    r = compare_files(bad, files[0], "onnxruntime", {"x": np.ones((1, 256), np.float32)}, pairs=5, min_seconds=0)
    assert r["error"] and "\n" not in r["error"]


def test_verdict_needs_the_whole_interval_beyond_the_margin():
    assert verdict(0.90, [0.88, 0.94]) == "faster"
    assert verdict(0.90, [0.80, 0.96]) == "same"  # the CI reaches inside 5%
    assert verdict(1.06, [1.051, 1.07]) == "slower"
