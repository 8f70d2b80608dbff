"""TorchScript for the lite interpreter (``.ptl``, classic PyTorch Mobile).

The model is traced (``torch.jit.trace``, which follows dynamic batch and
sequence sizes through ``aten::size``) and saved with
``_save_for_lite_interpreter``. A trace freezes Python branches on tensor
values; when tracing warns about one, the model is scripted
(``torch.jit.script``) instead, which keeps the branch, or the export fails
with the line of the branch.

``torch.utils.mobile_optimizer.optimize_for_mobile`` is tried first; these
torch wheels are built without XNNPACK, where it raises, so it is skipped and
the artifact info says ``"optimize_for_mobile": "unavailable: <reason>"``.
The file carries ``extra/edgesmith_io.json`` with the input/output names,
shapes and dtypes.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter, precision_of
from edgesmith.export.failures import export_error
from edgesmith.export.signature import IO_KEY, example_spec, flat_outputs, plain_inputs
from edgesmith.numeric import first_line

_BRANCH = "Converting a tensor to a Python boolean"


def capture(model: nn.Module, example: tuple[torch.Tensor, ...]) -> tuple[torch.jit.ScriptModule, str]:
    """Trace ``model``, or script it when the trace froze a data-dependent branch.

    Returns:
        The TorchScript module and how it was made (``"trace"`` or ``"script"``).

    Raises:
        ExportError: The model branches on tensor values and cannot be scripted.
    """
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False, strict=False, _store_inputs=False)
    branches = [w for w in caught if issubclass(w.category, torch.jit.TracerWarning) and _BRANCH in str(w.message)]
    if not branches:
        return traced, "trace"
    w = branches[0]
    where = f"{Path(w.filename).name}:{w.lineno}"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.jit.script(model), "script"
    except Exception as e:  # noqa: BLE001 - the TorchScript compiler raises many error kinds
        raise ExportError(
            f"torchscript-lite: {type(model).__name__} branches on a tensor value at {where}, which a "
            f"trace would freeze, and torch.jit.script cannot compile it ({first_line(e)}); "
            "rewrite the branch with torch.where / torch.cond"
        ) from None


def optimize(module: torch.jit.ScriptModule) -> tuple[torch.jit.ScriptModule, str]:
    """``optimize_for_mobile`` when this torch has it, else the module and why not."""
    try:
        from torch.utils.mobile_optimizer import optimize_for_mobile

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return optimize_for_mobile(module), "applied"
    except Exception as e:  # noqa: BLE001 - an INTERNAL ASSERT RuntimeError without XNNPACK
        text = " ".join(str(e).split())
        reason = text[text.index("Mobile optimization"):] if "Mobile optimization" in text else first_line(e)
        return module, f"unavailable: {reason}"


class TorchScriptLiteExporter(Exporter):
    """``model.ptl`` for the ``torchscript-lite`` runtime (``_load_for_lite_interpreter``)."""

    name = "torchscript-lite"

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        """Trace (or script), try ``optimize_for_mobile``, save ``out_dir/model.ptl`` atomically.

        Raises:
            ExportError: An unknown precision, or the model could not be captured
                (one line naming the model line and what to do).
        """
        precision = precision_of(config, self.name)
        if precision not in self.tolerances:
            raise ExportError(f"torchscript-lite: precision '{precision}' is not supported yet; "
                              f"choose one of: {', '.join(self.tolerances)}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path, tmp = out_dir / "model.ptl", out_dir / ".model.ptl.tmp"
        model = model.eval().cpu()
        example = plain_inputs(example_inputs)
        start = time.perf_counter()
        try:
            module, method = capture(model, example)
            module, optimized = optimize(module)
            with torch.no_grad():
                outputs = flat_outputs(module(*example))
            io = example_spec(task, example, outputs, bool(getattr(config, "dynamic_batch", True)))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module._save_for_lite_interpreter(str(tmp), _extra_files={f"{IO_KEY}.json": json.dumps(io)})
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            raise export_error("torchscript-lite", model, e) from None
        tmp.replace(path)
        info: dict[str, Any] = {
            "method": method,
            "optimize_for_mobile": optimized,
            "io": io,
            "export_seconds": round(time.perf_counter() - start, 2),
        }
        atomic.write_json(out_dir / "export.json", {"format": "torchscript-lite", "precision": precision, **info})
        return ExportArtifact("torchscript-lite", precision, path, self.runtime, self.tolerances[precision],
                              [path], info)
