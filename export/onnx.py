"""ONNX export with torch's dynamo exporter (the path that also carries pt2e
quantized models), dynamic batch (and sequence) axes, one self-contained file
when the model fits in 2 GB, and an onnx.checker pass. Stack traces and FX node
text are stripped from the nodes' metadata (they carry this machine's paths);
the module scopes that name each node's layer stay."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter, Tolerance
from edgesmith.export.pt2 import dynamic_shapes_for

_TWO_GB = 2 * 1024**3


class OnnxExporter(Exporter):
    name = "onnx"
    suffix = ".onnx"
    runtime = "onnxruntime"
    tolerances = {"fp32": Tolerance(atol=1e-4, min_cosine=0.99999)}

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        import onnx

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.onnx"
        model = model.eval().cpu()
        dynamic_shapes = dynamic_shapes_for(task, config.dynamic_batch)
        large = sum(p.numel() * p.element_size() for p in model.state_dict().values()) > _TWO_GB
        tmp = out_dir / ".model.export.onnx"
        log = io.StringIO()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(log):
                warnings.simplefilter("ignore")
                program = torch.onnx.export(
                    model, tuple(example_inputs), dynamo=True, input_names=task.input_names,
                    output_names=task.output_names, dynamic_shapes=dynamic_shapes,
                    opset_version=config.opset, external_data=large,
                )
            strip_debug_metadata(program.model)
            program.save(str(tmp), external_data=large)
            onnx.checker.check_model(str(tmp) if large else onnx.load(str(tmp)))
        except Exception as e:  # noqa: BLE001 - the exporter raises many error kinds
            tmp.unlink(missing_ok=True)
            raise ExportError(f"onnx: export of {type(model).__name__} failed: {_first_line(e)}") from None
        tmp.replace(path)
        files = [path]
        data = out_dir / ".model.export.onnx.data"
        if data.exists():
            data.replace(out_dir / "model.onnx.data")
            files.append(out_dir / "model.onnx.data")
        m = onnx.load(str(path), load_external_data=False)
        ops: dict[str, int] = {}
        for node in m.graph.node:
            ops[node.op_type] = ops.get(node.op_type, 0) + 1
        atomic.write_json(out_dir / "export.json", {"format": "onnx", "opset": config.opset, "ops": ops})
        return ExportArtifact(
            "onnx", "fp32", path, self.runtime, self.tolerances["fp32"], files,
            {"opset": config.opset, "op_histogram": dict(sorted(ops.items(), key=lambda kv: -kv[1]))},
        )


# Per-node metadata the dynamo exporter writes that a shipped file should not carry:
# Python stack traces (this machine's paths; most of a small model's file) and FX
# node text. The module scopes stay: they name layers (export/divergence.py).
DEBUG_METADATA = ("pkg.torch.onnx.stack_trace", "pkg.torch.onnx.fx_node")


def strip_debug_metadata(model) -> int:
    """Drop :data:`DEBUG_METADATA` from every node of an ``onnx_ir`` model, in
    place (subgraphs included); returns how many entries went."""
    import onnx_ir as ir

    dropped = 0
    for node in ir.traversal.RecursiveGraphIterator(model.graph):
        for key in DEBUG_METADATA:
            if node.metadata_props.pop(key, None) is not None:
                dropped += 1
    return dropped


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__
