"""The parity gate stops a run whose export disagrees with PyTorch, keeps every
finished artifact and the summary, and turns into a warning on request."""

from __future__ import annotations

import json

import pytest

import edgesmith
from edgesmith.errors import ParityError
from edgesmith.export import get_exporter
from edgesmith.export.base import TIERS, Tolerance

FAST = ["teacher.train.epochs=2", "stages.distill.epochs=2", "stages.prune.epochs=1", "stages.lowrank.epochs=1",
        "benchmark.iterations=5",
        "benchmark.min_seconds=0", "benchmark.warmup=1", "benchmark.runtimes=[onnxruntime]"]


def test_gate_stops_then_warns(tmp_path, monkeypatch, edgesmith_cache):
    # an impossible tolerance: any float difference at all fails
    impossible = Tolerance(atol=0.0, min_cosine=1.0 + 1e-9)
    monkeypatch.setitem(get_exporter("onnx").tolerances, "fp32", impossible)
    monkeypatch.setitem(TIERS, "int8", impossible)  # digits-quick's onnx export is its quantize stage's file
    out = tmp_path / "run"
    with pytest.raises(ParityError) as e:
        edgesmith.run("digits-quick", out, overrides=FAST)
    msg = str(e.value)
    assert "onnx int8" in msg and "--no-parity-gate" in msg and "\n" not in msg
    assert list(out.glob("*-export/onnx/model.int8.onnx")), "the failing export is kept for inspection"
    assert (out / "01-distill" / "model.safetensors").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["exports"][0]["parity"]["passed"] is False
    assert summary["benchmarks"] == []

    s = edgesmith.run("digits-quick", out, overrides=FAST, parity_gate=False)
    assert s["exports"][0]["parity"]["passed"] is False
    assert s["benchmarks"] and all(b["error"] is None for b in s["benchmarks"])


def test_recipe_floors_reach_the_gate(tmp_path, edgesmith_cache):
    """``export.parity`` floors judge the quantized file: an impossible cosine floor stops the
    run naming it; agreement floors are stored with the tolerance and met by digits' int8."""
    out = tmp_path / "run"
    floors = ["export.parity.min_agreement=0.9", "export.parity.min_top5=0.95"]
    s = edgesmith.run("digits-quick", out, overrides=FAST + floors)
    parity = s["exports"][0]["parity"]
    assert s["exports"][0]["precision"] == "int8" and parity["passed"]
    assert parity["tolerance"] == {**TIERS["int8"].to_dict(), "min_agreement": 0.9, "min_top5": 0.95}
    assert parity["agreement"] >= 0.9 and parity["top5_agreement"] >= 0.95
    with pytest.raises(ParityError, match=r"onnx int8 .* cosine 0\.\d+ < 1\.0"):
        edgesmith.run("digits-quick", out, overrides=FAST + ["export.parity.min_cosine=1.0"])
