"""Adding a technique and an export format is registration only: a toy plugin
(tests/toy_plugin.py: weights rounded to a few decimals, and full TorchScript ``.ts``
files with their own runtime) registers on import, with no edit anywhere else, and
runs through a recipe: parsed, resumable, exported, parity-checked, benchmarked (in
the fresh-process worker, which imports it through EDGESMITH_PLUGINS) and bundled."""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import numpy as np
import pytest

import edgesmith
from edgesmith.bundle import load_bundle
from edgesmith.compress.stage import STAGES, stages
from edgesmith.conf.base import RecipeError
from edgesmith.conf.recipe import load_recipe
from edgesmith.export import FORMATS
from edgesmith.runtimes import RUNTIMES


@pytest.fixture
def registered(monkeypatch):
    """The toy plugin (tests/toy_plugin.py) registered for this test only, in this process
    and, through EDGESMITH_PLUGINS, in the fresh-process benchmark workers."""
    stages()  # the built-ins first
    items = {STAGES: dict(STAGES._items), FORMATS: dict(FORMATS._items), RUNTIMES: dict(RUNTIMES._items)}
    sys.modules.pop("toy_plugin", None)
    importlib.import_module("toy_plugin")  # registers on import
    here = str(Path(__file__).parent)
    monkeypatch.setenv("EDGESMITH_PLUGINS", "toy_plugin")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH")) if p))
    yield
    for registry, before in items.items():
        registry._items = before  # not monkeypatch: its undo would put the mutated dict back
    sys.modules.pop("toy_plugin", None)


FAST = ["teacher.train.epochs=3", "stages=[{kind: distill, epochs: 3}, {kind: round-weights, decimals: 3}]",
        "export.formats=[toy-ts, onnx]", "benchmark.runtimes=[toy-jit]", "benchmark.iterations=20",
        "benchmark.min_seconds=0.05"]


def test_a_toy_technique_and_format_run_through_a_recipe(registered, tmp_path, edgesmith_cache):
    recipe = load_recipe("digits-quick", FAST)
    assert [c.kind for c in recipe.stage_configs] == ["distill", "round-weights"]
    with pytest.raises(RecipeError, match=r"stages\[1\]\.decimals"):
        load_recipe("digits-quick", [*FAST[:1], "stages=[{kind: distill}, {kind: round-weights, decimals: 9}]"])

    summary = edgesmith.run(recipe, tmp_path / "run")
    rounded = next(s for s in summary["stages"] if s["kind"] == "round-weights")
    distilled = next(s for s in summary["stages"] if s["kind"] == "distill")
    assert rounded["params"] == distilled["params"]
    assert abs(rounded["metrics"]["accuracy"] - distilled["metrics"]["accuracy"]) <= 0.02  # 3 decimals barely matter
    toy = next(e for e in summary["exports"] if e["format"] == "toy-ts")
    assert toy["path"].endswith("model.ts") and toy["runtime"] == "toy-jit"
    assert toy["parity"]["passed"] and toy["parity"]["max_abs_diff"] <= 1e-4
    rows = [b for b in summary["benchmarks"] if b["runtime"] == "toy-jit" and b["model"] == "round-weights"]
    assert rows and rows[0]["latency_ms"]["p50"] > 0 and rows[0]["accuracy"] == pytest.approx(
        rounded["metrics"]["accuracy"], abs=0.01)

    with load_bundle(tmp_path / "run" / "bundle", runtime="toy-jit") as bundle:
        images = np.zeros((2, 8, 8), np.float32)
        assert bundle.predict(images).shape == (2, 10)

    again = edgesmith.run(recipe, tmp_path / "run")  # resumes: every step reused
    assert again["stages"] == summary["stages"]
