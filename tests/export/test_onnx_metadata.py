"""What a shipped ONNX file carries: layer scopes yes, this machine's stack traces no."""

from __future__ import annotations

import sys

import onnx
import torch
from torch import nn

from edgesmith.conf.recipe import ExportConfig
from edgesmith.export import get_exporter
from edgesmith.export.divergence import module_outputs
from edgesmith.models.tasks import ClassificationTask


def test_onnx_export_drops_stack_traces_keeps_layer_scopes(tmp_path) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 6 * 6, 10)).eval()
    task = ClassificationTask(mean=[0.5], std=[0.5])
    art = get_exporter("onnx")().export(model, (torch.randn(2, 1, 8, 8),), task, tmp_path, ExportConfig())
    data = art.path.read_bytes()
    assert b"pkg.torch.onnx.stack_trace" not in data and b"pkg.torch.onnx.fx_node" not in data
    assert sys.prefix.encode() not in data, "no path of this machine in a file that ships"
    assert list(module_outputs(onnx.load(str(art.path)))) == ["0", "1", "2", "3"]
    exported = torch.onnx.export(model, (torch.randn(2, 1, 8, 8),), dynamo=True, verbose=False)
    full = tmp_path / "with-traces.onnx"
    exported.save(str(full))
    assert full.stat().st_size - len(data) > 1500, (len(data), full.stat().st_size)  # ~400 B of traces a node
