"""TensorRT: the TensorRT-ready ONNX and trtexec line everywhere; the engine and its
runtime where TensorRT and a CUDA device exist (skipped here with the reason)."""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgesmith.cli import main
from edgesmith.errors import MissingExtraError
from edgesmith.export import get_exporter
from edgesmith.export.tensorrt import engine_unavailable_reason, shape_profile, trtexec_command
from edgesmith.runtimes import load

NO_ENGINE = engine_unavailable_reason()


@dataclass
class _Task:
    input_names: list[str]
    output_names: list[str]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        axes = {"image": {0: "batch"}, "input_ids": {0: "batch", 1: "sequence"}}
        return {n: axes[n] for n in self.input_names}


@pytest.fixture(scope="module")
def cnn() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32, 10),
    ).eval()


def _export(model, tmp_path, precision="fp16"):
    config = SimpleNamespace(dynamic_batch=True, opset=18, tensorrt_precision=precision)
    x = torch.randn(4, 1, 8, 8)
    return get_exporter("tensorrt")().export(model, (x,), _Task(["image"], ["logits"]), tmp_path, config), x


def test_profile_and_trtexec_line() -> None:
    task = _Task(["input_ids"], ["embedding"])
    profile = shape_profile((torch.zeros(2, 64, dtype=torch.long),), task, dynamic_batch=True)
    assert profile == {"input_ids": {"min": [1, 1], "opt": [2, 64], "max": [32, 512]}}
    from pathlib import Path

    cmd = trtexec_command(Path("d/model.onnx"), Path("d/model.engine"), "int8", profile)
    assert cmd == ("trtexec --onnx=model.onnx --saveEngine=model.engine --int8 --fp16 "
                   "--minShapes=input_ids:1x1 --optShapes=input_ids:2x64 --maxShapes=input_ids:32x512")
    static = shape_profile((torch.zeros(1, 3, 8, 8),), _Task(["image"], ["y"]), dynamic_batch=False)
    assert "--minShapes" not in trtexec_command(Path("m.onnx"), Path("m.engine"), "fp32", static)


@pytest.mark.skipif(NO_ENGINE is None, reason="TensorRT and CUDA are present: the engine path is tested below")
def test_without_tensorrt_the_ready_onnx_and_command_are_written(cnn, tmp_path) -> None:
    art, x = _export(cnn, tmp_path)
    assert art.info["engine_built"] is False and "engine not built" in art.info["reason"]
    assert "tensorrt" in art.info["reason"] and not (tmp_path / "model.engine").exists()
    assert art.path == tmp_path / "model.onnx" and art.runtime == "onnxruntime"
    script = (tmp_path / "trtexec.sh").read_text()
    assert "trtexec --onnx=model.onnx --saveEngine=model.engine --fp16" in script
    assert "--maxShapes=image:32x1x8x8" in script and (tmp_path / "trtexec.sh").stat().st_mode & 0o111
    with load(art.path, art.runtime) as rt, torch.inference_mode():
        (out,) = rt.run({"image": x.numpy()})
        ref = cnn(x).numpy()
    assert np.abs(out - ref).max() <= art.tolerance.atol  # the TensorRT-ready ONNX is the model


@pytest.mark.skipif(NO_ENGINE is None, reason="TensorRT is present")
def test_engine_runtime_names_the_extra_when_missing(tmp_path) -> None:
    engine = tmp_path / "m.engine"
    engine.write_bytes(b"\0" * 16)
    with pytest.raises(MissingExtraError if "not installed" in NO_ENGINE else Exception) as err:
        load(engine)
    assert "tensorrt" in str(err.value) and "\n" not in str(err.value)


def test_bad_precision_is_a_one_line_recipe_error() -> None:
    res = CliRunner().invoke(main, ["validate", "digits-quick", "--set", "export.tensorrt_precision=int4"])
    assert res.exit_code == 2 and "export.tensorrt_precision" in res.stderr and "Traceback" not in res.output


@pytest.mark.skipif(NO_ENGINE is not None, reason=f"no TensorRT engine can be built here: {NO_ENGINE}")
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_engine_built_and_run_on_the_gpu(cnn, tmp_path, precision) -> None:
    art, x = _export(cnn, tmp_path, precision)
    assert art.info["engine_built"] and art.path.suffix == ".engine" and art.runtime == "tensorrt"
    with load(art.path, "tensorrt", device="cuda") as rt, torch.inference_mode():
        for batch in (1, 4, 32):
            xb = torch.randn(batch, 1, 8, 8)
            (out,) = rt.run({"image": xb.numpy()})
            ref = cnn(xb).numpy()
            assert out.shape == ref.shape and np.abs(out - ref).max() <= art.tolerance.atol
