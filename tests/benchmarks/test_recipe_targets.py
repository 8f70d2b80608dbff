"""A recipe's benchmark.targets names any registered target (validated at load), and the
pipeline's benchmark step measures through the registry (targets.measure_on)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from edgesmith.benchmarks.targets import measure_on
from edgesmith.cli import main
from edgesmith.conf.recipe import load_recipe
from edgesmith.errors import RecipeError


@pytest.mark.parametrize("target", ["cpu", "cuda", "ssh://pi@raspberrypi", "ssh://me@10.0.0.2:2222", "adb",
                                    "adb://emulator-5554"])
def test_registry_targets_load_from_a_recipe(target: str) -> None:
    r = load_recipe("digits-quick", [f"benchmark.targets=[cpu, '{target}']"])
    assert r.benchmark.targets == ["cpu", target]


@pytest.mark.parametrize("target,expected", [
    ("tpu", "targets[0]: unknown target; use cpu, cuda, ssh://user@host[:port], adb or adb://SERIAL"),
    ("ssh://host-without-user:99999", "targets[0]: bad port"),
    ("adb://bad serial!", "targets[0]: expected adb or adb://SERIAL"),
])
def test_bad_targets_are_refused_at_load(target: str, expected: str) -> None:
    with pytest.raises(RecipeError, match=expected.replace("[", r"\[").replace("]", r"\]").replace(".", r"\.")):
        load_recipe("digits-quick", [f"benchmark.targets=['{target}']"])
    res = CliRunner().invoke(main, ["validate", "digits-quick", "--set", f"benchmark.targets=['{target}']"])
    assert res.exit_code == 2 and "--set benchmark.targets=" in res.stderr and "targets[0]" in res.stderr


def test_measure_on_cpu_returns_eval_outputs_and_a_remote_failure_is_a_row(tmp_path: Path, monkeypatch) -> None:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    model = helper.make_model(helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "r", [x], [y]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    path = tmp_path / "relu.onnx"
    onnx.save(model, str(path))
    ev = np.linspace(-1, 1, 12, dtype=np.float32).reshape(4, 3)
    r = measure_on("cpu", path, None, {"x": ev[:1]}, iterations=10, min_seconds=0.01, eval_inputs={"x": ev})
    assert r["error"] is None and r["latency_ms"]["p50"] > 0
    np.testing.assert_array_equal(r["eval_outputs"], np.maximum(ev, 0))
    monkeypatch.setenv("PATH", str(tmp_path / "no-bin"))  # no adb: an error row, not an exception
    tfl = tmp_path / "m.tflite"
    tfl.write_bytes(b"TFL3" + bytes(60))
    r = measure_on("adb", tfl, None, {}, iterations=5)
    assert r.get("latency_ms") is None and "'adb' not on PATH" in r["error"] and r["eval_outputs"] is None
