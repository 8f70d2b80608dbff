"""ExecuTorch (``.pte``), the successor of PyTorch Mobile, with the XNNPACK delegate.

``torch.export`` (bounded dynamic batch and sequence) -> ``to_edge_transform_and_lower``
with ``XnnpackPartitioner`` -> ``to_executorch``. ExecuTorch plans memory for the
upper bounds, so the batch is bounded by ``max_batch`` (config ``max_batch``,
default 64) and a sequence by ``task.max_length``: a bigger bound costs memory on
the device, not speed.

Lowering runs with the mkldnn and nnpack conv backends switched off: in torch
2.14 the fake-tensor conv kernel asks them ``batch >= 16`` while XNNPACK re-traces
the graph, which pins a dynamic batch to at most 15. They are not used at
runtime either way (XNNPACK runs the convolutions).

Precisions: ``fp32``, and each other precision resolves to a quantization preset
(the format descriptor's ``quant_presets``) run by the ``pt2e`` backend of
:mod:`edgesmith.compress.quantize.backend`. ``int8`` (preset ``xnnpack``): PT2E
post-training quantization with ExecuTorch's ``XNNPACKQuantizer`` (symmetric,
per-channel int8 weights, int8 activations calibrated on real inputs passed as
``calibration=``), lowered to XNNPACK's quantized kernels; inputs and outputs stay
float32. ``int8-dynamic`` (preset ``xnnpack-dynamic``): int8 per-channel Linear
weights with activations quantized per batch at run time (XNNPACK's dynamically
quantized fully-connected kernels), no calibration; the choice for transformer
encoders, whose activation outliers a static scale clips
(MiniLM student: cosine 0.82 static).

The artifact info reports delegation coverage: how many ops run inside XNNPACK
and which are left to ExecuTorch's portable kernels. The file carries an
``edgesmith_io`` constant method with the input/output names, shapes and dtypes.
"""

from __future__ import annotations

import contextlib
import io
import json
import operator
import re
import time
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import torch

from edgesmith import atomic
from edgesmith.compress.quantize.backend import get_backend
from edgesmith.compress.quantize.pt2e import calibration_batches
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter, precision_of
from edgesmith.export.failures import export_error
from edgesmith.export.formats import quant_config
from edgesmith.export.pt2 import with_input_names
from edgesmith.export.signature import IO_KEY, output_names, plain_inputs, tensor_entry
from edgesmith.runtimes.base import require

_EDGE_OP = re.compile(r"<EdgeOpOverload: ([\w.]+)>")


def bounded_dynamic_shapes(task: Any, dynamic: bool, max_batch: int, max_seq: int) -> tuple | None:
    """``torch.export`` dynamic shapes for the task's axes, bounded for memory planning."""
    if not dynamic:
        return None
    dims: dict[str, torch.export.Dim] = {}
    bounds = {"batch": (1, max_batch), "sequence": (2, max_seq)}
    out = []
    for name in task.input_names:
        spec = {}
        for ax, label in task.dynamic_axes().get(name, {}).items():
            if label not in dims:
                low, high = bounds.get(label, (2, max_seq))
                dims[label] = torch.export.Dim(label, min=low, max=high)
            spec[ax] = dims[label]
        out.append(spec)
    return tuple(out)


def _bounds(task: Any, max_batch: int, max_seq: int) -> dict[str, int]:
    """Upper bound of each dynamic axis label the task's inputs use."""
    labels = [lab for n in task.input_names for lab in task.dynamic_axes().get(n, {}).values()]
    return {lab: max_batch if lab == "batch" else max_seq for lab in dict.fromkeys(labels)}


@contextlib.contextmanager
def _xnnpack_conv_tracing() -> Iterator[None]:
    """Keep a dynamic batch dynamic through XNNPACK's re-trace (module docstring)."""
    with torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False):
        yield


def _op_name(target: Any) -> str:
    m = _EDGE_OP.match(str(target))
    return m.group(1) if m else getattr(target, "__name__", str(target))


def _bookkeeping(node: Any) -> bool:
    """getitem and symbolic-size arithmetic: no kernel runs for these."""
    name = _op_name(node.target)
    return getattr(node.target, "__module__", "") in (operator.__name__, "_operator") or name in (
        "getitem", "mul", "add", "sub", "floordiv") or "sym_size" in name


def delegation(program: Any) -> dict[str, Any]:
    """Ops inside XNNPACK delegates vs ops left to portable kernels in a lowered program."""
    gm = program.graph_module
    calls = [n for n in gm.graph.nodes if n.op == "call_function" and not _bookkeeping(n)]
    delegates = [n for n in calls if _op_name(n.target) == "executorch_call_delegate"]
    inside: Counter[str] = Counter()
    for node in delegates:
        lowered = getattr(gm, node.args[0].target)
        inside.update(_op_name(n.target) for n in lowered.original_module.graph.nodes
                      if n.op == "call_function" and not _bookkeeping(n))
    delegated = sum(inside.values())
    portable = Counter(_op_name(n.target) for n in calls if n not in delegates)
    total = delegated + sum(portable.values())
    return {"backend": "XnnpackBackend", "delegate_calls": len(delegates), "delegated_ops": delegated,
            "portable_ops": sum(portable.values()), "coverage": round(delegated / total, 4) if total else None,
            "portable_op_histogram": dict(portable.most_common()),
            "delegated_op_histogram": dict(inside.most_common())}


def io_spec(program: torch.export.ExportedProgram, task: Any) -> dict[str, list[dict]]:
    """Names, shapes (dynamic dims labelled with the task's axis names) and dtypes."""
    nodes = {n.name: n for n in program.graph.nodes}
    sig = program.graph_signature
    axes = task.dynamic_axes()
    user_in = [s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT"]
    symbols: dict[str, str] = {}  # "s77" -> "batch", from the inputs' labelled axes
    inputs = []
    for name in user_in:
        val = nodes[name].meta["val"]
        for ax, label in axes.get(name, {}).items():
            symbols.setdefault(str(val.shape[ax]), label)
        inputs.append(tensor_entry(name, val.shape, val.dtype, axes.get(name, {})))
    outs = [nodes[s.arg.name].meta["val"] for s in sig.output_specs if s.kind.name == "USER_OUTPUT"]
    names = output_names(task, len(outs))
    outputs = [tensor_entry(n, v.shape, v.dtype, symbols) for n, v in zip(names, outs, strict=True)]
    return {"inputs": inputs, "outputs": outputs}


class ExecuTorchExporter(Exporter):
    """``model.pte`` for the ``executorch`` runtime, XNNPACK-delegated.

    Attributes:
        max_batch: Default upper bound of the dynamic batch (config ``max_batch`` overrides).
    """

    name = "executorch"
    max_batch = 64

    def export(self, model, example_inputs, task, out_dir: Path, config,
               calibration: Iterable[tuple[torch.Tensor, ...]] | None = None) -> ExportArtifact:
        """Export (int8: quantize), lower to XNNPACK and write ``out_dir/model.pte`` atomically.

        Args:
            calibration: int8 only: input tuples to calibrate activation ranges on.

        Raises:
            ExportError: An unknown precision, int8 without calibration inputs, or
                export / lowering failed (one line naming the op or model line and a
                format to try instead).
            MissingExtraError: executorch is not installed.
        """
        require("executorch", "mobile", "the executorch exporter")
        from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
        from executorch.exir import to_edge_transform_and_lower

        precision = precision_of(config, self.name)
        if precision not in self.tolerances:
            raise ExportError(f"executorch: precision '{precision}' is not supported yet; "
                              f"choose one of: {', '.join(self.tolerances)}")
        qconfig = quant_config(self.name, precision)  # the xnnpack / xnnpack-dynamic preset (pt2e)
        if precision == "int8":
            batches = calibration_batches(calibration, self.name)
        elif precision == "int8-dynamic":  # nothing to calibrate: one pass traces the observers
            batches = [plain_inputs(example_inputs)]
        else:
            batches = None
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.pte"
        model = model.eval().cpu()
        max_batch = int(getattr(config, "max_batch", self.max_batch))
        max_seq = int(getattr(task, "max_length", 512))
        dynamic = bool(getattr(config, "dynamic_batch", True))
        shapes = bounded_dynamic_shapes(task, dynamic, max_batch, max_seq)
        start = time.perf_counter()
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore")  # also the TF32 notice the mkldnn flags print
                with _xnnpack_conv_tracing():  # (and no graph dumps on stdout on failure)
                    named, example = with_input_names(model, task.input_names), plain_inputs(example_inputs)
                    ep = torch.export.export(named, example, dynamic_shapes=shapes)
                    if qconfig is not None:
                        quantized = get_backend(qconfig.backend).quantize(ep.module(), qconfig, batches)
                        ep = torch.export.export(quantized, example, dynamic_shapes=shapes)
                    spec = io_spec(ep, task)
                    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                                       constant_methods={IO_KEY: json.dumps(spec)})
                    coverage = delegation(edge.exported_program())
                    program = edge.to_executorch()
                    buffer = program.buffer
        except Exception as e:  # noqa: BLE001 - export and lowering raise many error kinds
            raise export_error("executorch", model, e) from None
        atomic.write_bytes(path, buffer)
        seconds = time.perf_counter() - start
        plan = program.executorch_program.execution_plan[0]
        info = {
            "delegation": coverage,
            "io": spec,
            "dynamic_bounds": _bounds(task, max_batch, max_seq) if dynamic else None,
            "planned_memory_bytes": int(sum(plan.non_const_buffer_sizes)),
            "export_seconds": round(seconds, 2),
        }
        if qconfig is not None:
            info["quantization"] = {"preset": self.spec.quant_presets[precision],
                                    **get_backend(qconfig.backend).describe(qconfig),
                                    "calibration_samples": sum(len(b[0]) for b in batches) if precision == "int8"
                                    else 0}
        atomic.write_json(out_dir / "export.json", {"format": "executorch", "precision": precision, **info})
        return ExportArtifact("executorch", precision, path, self.runtime, self.tolerances[precision],
                              [path], info)
