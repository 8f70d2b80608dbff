"""CLI behaviour that needs no training: listing, errors as one line."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner

from edgesmith.cli import main


def test_recipes_lists_the_shipped_three_with_the_default():
    res = CliRunner().invoke(main, ["recipes"])
    assert res.exit_code == 0
    lines = res.output.splitlines()
    assert any(line.startswith("minilm-sentiment (default):") for line in lines)
    assert {"digits-quick", "fashion-mnist"} <= {line.split(":")[0].split(" ")[0] for line in lines}


def test_validate_prints_the_resolved_recipe():
    res = CliRunner().invoke(main, ["validate", "digits-quick", "--set", "stages.distill.epochs=2"])
    assert res.exit_code == 0
    assert "epochs: 2" in res.output and "temperature: 4.0" in res.output


def test_show_missing_run_dir(tmp_path):
    res = CliRunner().invoke(main, ["show", str(tmp_path)])
    assert res.exit_code == 2
    assert res.stderr.strip() == f"error: {tmp_path}/summary.json: no summary.json here; run `edgesmith run` first"


def test_from_unknown_stage(tmp_path):
    res = CliRunner().invoke(main, ["run", "digits-quick", "--out", str(tmp_path), "--from", "nosuch"])
    assert res.exit_code == 2
    assert "--from nosuch: no such stage; stages are: teacher, distill" in res.stderr
    assert "Traceback" not in res.output


def test_cuda_device_without_gpu(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present: the no-GPU error cannot be shown")
    res = CliRunner().invoke(main, ["run", "digits-quick", "--out", str(tmp_path), "--device", "cuda"])
    assert res.exit_code == 2
    assert "no CUDA device is available here; use --device cpu" in res.stderr
