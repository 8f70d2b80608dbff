"""Single-step commands on real files: quantize an ONNX file with a preset, export a
.pt2 program to ONNX (and TFLite), parity-check one file against another."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from edgesmith.cli import main
from edgesmith.export import get_exporter
from edgesmith.models.cnn import ConvNet
from edgesmith.models.tasks import ClassificationTask


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A small digits-shaped ConvNet as .pt2 and ONNX (through the recipe exporters), and calibration inputs."""
    from edgesmith.conf.recipe import ExportConfig

    torch.manual_seed(0)
    model = ConvNet(num_classes=10, in_channels=1, image_size=8, widths=[8, 16], pools=[True, True], hidden=32).eval()
    task, d = ClassificationTask(mean=[0.0], std=[1.0]), tmp_path_factory.mktemp("single")
    example = (torch.randn(2, 1, 8, 8),)
    out = {fmt: get_exporter(fmt)().export(model, example, task, d / fmt, ExportConfig()).path for fmt in ("pt2", "onnx")}
    np.savez(d / "calib.npz", pixel_values=np.random.default_rng(0).standard_normal((64, 1, 8, 8)).astype(np.float32))
    return {**out, "calib": d / "calib.npz", "dir": d}


def _ok(args: list[str]):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output + str(res.exception)
    return res


def test_quantize_dynamic_and_static_with_calibration(files):
    res = _ok(["quantize", str(files["onnx"]), "--preset", "x86", "--calibration", str(files["calib"]), "--json"])
    r = json.loads(res.stdout)
    assert r["precision"] == "int8" and Path(r["out"]).is_file() and r["out"].endswith("model.int8.onnx")
    assert r["sqnr_db"] > 15 and "64 inputs from calib.npz" in r["inputs"]
    res = CliRunner().invoke(main, ["quantize", str(files["onnx"]), "--preset", "x86"])
    assert res.exit_code == 2 and "static int8 needs --calibration" in res.stderr
    res = CliRunner().invoke(main, ["quantize", str(files["onnx"]), "--preset", "nosuch"])
    assert res.exit_code == 2 and "nosuch" in res.stderr
    out = files["dir"] / "m.fp16.onnx"
    res = _ok(["quantize", str(files["onnx"]), "--preset", "fp16", "-o", str(out)])
    assert out.is_file() and "fp16 (fp16)" in res.stdout and "smaller" in res.stdout


def test_export_pt2_to_onnx_with_parity(files, tmp_path):
    res = _ok(["export", str(files["pt2"]), "--to", "onnx", "-o", str(tmp_path), "--json"])
    (r,) = json.loads(res.stdout)["exports"]
    assert r["parity"]["passed"] and r["parity"]["max_abs_diff"] < 1e-4 and Path(r["path"]).suffix == ".onnx"
    res = CliRunner().invoke(main, ["export", str(files["onnx"]), "--to", "onnx"])
    assert res.exit_code == 2 and "takes a torch.export program (.pt2)" in res.stderr


def test_check_passes_within_tolerance_and_fails_beyond(files):
    int8 = files["dir"] / "c.int8.onnx"
    _ok(["quantize", str(files["onnx"]), "--preset", "x86", "--calibration", str(files["calib"]), "-o", str(int8)])
    same = _ok(["check", str(files["onnx"]), str(files["pt2"]), "--json"])
    r = json.loads(same.stdout)
    assert r["passed"] and r["max_abs_diff"] < 1e-4 and r["runtimes"] == ["onnxruntime", "torch"]
    res = CliRunner().invoke(main, ["check", str(files["onnx"]), str(int8), "--inputs", str(files["calib"])])
    assert res.exit_code == 1 and "FAILED (max_abs_diff" in res.stdout and "error: " in res.stderr
    loose = _ok(["check", str(files["onnx"]), str(int8), "--inputs", str(files["calib"]), "--atol", "10",
                 "--min-cosine", "0.9"])
    assert "passed" in loose.stdout and "top-1 agreement" in loose.stdout
    res = CliRunner().invoke(main, ["check", str(files["onnx"]), str(files["dir"] / "missing.onnx")])
    assert res.exit_code == 2 and "no such model file or bundle" in res.stderr
