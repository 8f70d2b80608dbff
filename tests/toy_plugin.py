"""A plugin for tests/test_extending.py: a toy technique (weights rounded to a few
decimals) and a toy export format (full TorchScript, ``.ts``) with its runtime,
registered on import as any plugin named in ``EDGESMITH_PLUGINS`` is."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgesmith.compress.stage import register_stage
from edgesmith.conf.base import between, field
from edgesmith.conf.stage import StageConfig
from edgesmith.export import FormatSpec, register_format
from edgesmith.export.base import ExportArtifact, Exporter
from edgesmith.runtimes import RUNTIMES, Runtime, TensorSpec


@dataclass
class RoundConfig(StageConfig):
    """Round every weight to ``decimals`` decimals."""

    kind = "round-weights"
    decimals: int = field(default=2, metadata=between(0, 8))


def round_weights(model: torch.nn.Module, config: RoundConfig) -> torch.nn.Module:
    out = copy.deepcopy(model)
    with torch.no_grad():
        for p in out.parameters():
            p.copy_(torch.round(p, decimals=config.decimals))
    return out


@register_stage(RoundConfig)
def run_round(ctx, cfg, model, stage_dir):
    return round_weights(model, cfg), {"decimals": cfg.decimals}


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


register_format(FormatSpec("toy-ts", ".ts", "toy-jit", TorchScriptExporter, nearest="onnx"))
RUNTIMES.register("toy-jit")(TorchScriptRuntime)
