"""Adding a technique and an export format is registration only: this test
declares a toy technique (weights rounded to a few decimals) and a toy format
(full TorchScript, ``.ts``, with its own runtime) from inside the test, with no
edit anywhere else, and runs both through a recipe: parsed, resumable, exported,
parity-checked, benchmarked and bundled."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

import edgesmith
from edgesmith.bundle import load_bundle
from edgesmith.compress.stage import STAGES, register_stage, stages
from edgesmith.conf.base import RecipeError, between, field
from edgesmith.conf.recipe import load_recipe
from edgesmith.conf.stage import StageConfig
from edgesmith.export import FORMATS, FormatSpec, register_format
from edgesmith.export.base import ExportArtifact, Exporter
from edgesmith.runtimes import RUNTIMES, Runtime, TensorSpec


@dataclass
class RoundConfig(StageConfig):
    """Round every weight to ``decimals`` decimals (a toy technique)."""

    kind = "round-weights"
    decimals: int = field(default=2, metadata=between(0, 8))


def round_weights(model: torch.nn.Module, config: RoundConfig) -> torch.nn.Module:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.copy_(torch.round(p, decimals=config.decimals))
    return out


class TorchScriptExporter(Exporter):
    name = "toy-ts"

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.ts"
        traced = torch.jit.trace(model.eval().cpu(), tuple(example_inputs))
        torch.jit.save(traced, str(path), _extra_files={"io.json": json.dumps(list(task.input_names))})
        return ExportArtifact(self.name, "fp32", path, self.runtime, self.tolerances["fp32"], [path], {})


class TorchScriptRuntime(Runtime):
    name = "toy-jit"
    suffixes = (".ts",)
    extra = "core"
    backend = "torch"

    def _load(self) -> None:
        torch_ = self.import_backend()
        files = {"io.json": ""}
        self.module = torch_.jit.load(str(self.path), _extra_files=files)
        self._inputs = [TensorSpec(n, ["batch"], "float32") for n in json.loads(files["io.json"])]
        self._outputs = [TensorSpec("logits", ["batch"], "float32")]

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        with torch.no_grad():
            return [self.module(*(torch.from_numpy(inputs[s.name]) for s in self._inputs)).numpy()]


@pytest.fixture
def registered(monkeypatch):
    """The toy technique, format and runtime, registered for this test only."""
    stages()  # the built-ins first
    items = {STAGES: dict(STAGES._items), FORMATS: dict(FORMATS._items), RUNTIMES: dict(RUNTIMES._items)}

    @register_stage(RoundConfig)
    def run_round(ctx, cfg, model, stage_dir):
        return round_weights(model, cfg), {"decimals": cfg.decimals}

    register_format(FormatSpec("toy-ts", ".ts", "toy-jit", TorchScriptExporter, nearest="onnx"))
    RUNTIMES.register("toy-jit")(TorchScriptRuntime)
    yield
    for registry, before in items.items():
        monkeypatch.setattr(registry, "_items", before)


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
