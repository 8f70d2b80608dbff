"""ONNX export with torch's dynamo exporter (the path that also carries pt2e
quantized models), dynamic batch (and sequence) axes, one self-contained file
when the model fits in 2 GB, and an onnx.checker pass. Stack traces and FX node
text are stripped from the nodes' metadata (they carry this machine's paths);
the module scopes that name each node's layer stay.

Token models: Hugging Face encoders mask padded positions by adding
``finfo(float32).min`` to the attention scores. onnxruntime's CPU Softmax takes a
slow path on inputs that far below the row maximum (exp underflow): on the MiniLM
student at batch 1, 20 real tokens padded to 128, Softmax took 2.6 ms instead of
0.2 ms, a quarter of the whole model. The fill constant is set to
:data:`MASK_FILL` (-50: a masked position keeps a weight below e^-50 relative to
the real ones; -70 is already slow again) and the count is recorded
(``mask_fill_replaced``)."""

from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter
from edgesmith.export.pt2 import dynamic_shapes_for
from edgesmith.numeric import first_line

_TWO_GB = 2 * 1024**3
MASK_FILL = -50.0


class OnnxExporter(Exporter):
    name = "onnx"

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
            replaced = finite_mask_fill(program.model) if getattr(task, "kind", None) == "embedding" else 0
            program.save(str(tmp), external_data=large)
            onnx.checker.check_model(str(tmp) if large else onnx.load(str(tmp)))
        except Exception as e:  # noqa: BLE001 - the exporter raises many error kinds
            tmp.unlink(missing_ok=True)
            raise ExportError(f"onnx: export of {type(model).__name__} failed: {first_line(e)}") from None
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
            {"opset": config.opset, "op_histogram": dict(sorted(ops.items(), key=lambda kv: -kv[1])),
             **({"mask_fill_replaced": replaced, "mask_fill": MASK_FILL} if replaced else {})},
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


def finite_mask_fill(model) -> int:
    """Set every float32 scalar initializer equal to ``finfo(float32).min`` that only
    ``Mul`` nodes read (the attention-mask fill) to :data:`MASK_FILL`, in place in an
    ``onnx_ir`` model; returns how many were set."""
    import numpy as np
    import onnx_ir as ir

    lowest, done = np.finfo(np.float32).min, 0
    for value in model.graph.initializers.values():
        const = value.const_value
        if const is None or value.dtype != ir.DataType.FLOAT or const.size != 1:
            continue
        users = [use.node.op_type for use in value.uses()]
        array = const.numpy()
        if users and set(users) == {"Mul"} and float(array.reshape(-1)[0]) == float(lowest):
            value.const_value = ir.tensor(np.full(array.shape, MASK_FILL, np.float32), name=value.name)
            done += 1
    return done

