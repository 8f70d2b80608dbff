"""TFLite (``.tflite``) with litert-torch: PyTorch to a LiteRT flatbuffer, no TensorFlow.

litert-torch 0.10 converts static shapes only: its JAX lowering fails on a
dynamic dimension (``aten.mul`` after a ``Linear``, ``reshape`` after a
``Flatten``; google-ai-edge/litert-torch#870). So the model is exported with a
batch of 1 and, on the task's ``"sequence"`` axes, ``task.max_length``; the
artifact records these ``static_shapes``. The LiteRT runtime runs a larger batch
one exported batch at a time; token inputs must be padded to the exported length.

Inputs keep PyTorch's NCHW layout (``layout: "NCHW"``); an NHWC input
(``litert_torch.to_channel_last_io``) is a planned option. The signature's inputs
and outputs carry the task's names. Precisions plug into ``_CONVERTERS``; fp32
now, fp16 and int8 (pt2e) come with the quantization work.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter, Tolerance
from edgesmith.export.failures import export_error
from edgesmith.export.pt2 import with_input_names
from edgesmith.export.signature import NamedOutputs, plain_inputs, static_example
from edgesmith.runtimes.base import require


def _convert_fp32(litert_torch: ModuleType, model: nn.Module, sample: dict[str, torch.Tensor]) -> Any:
    # Keyword samples make the signature's input names the task's input names; enable_x64
    # keeps int64 token ids int64 (the default downcasts model I/O to int32).
    return litert_torch.convert(model, sample_kwargs=sample, enable_x64=True)


# precision -> converter; fp16 / int8 register here with their tolerances below.
_CONVERTERS: dict[str, Callable[[ModuleType, nn.Module, dict[str, torch.Tensor]], Any]] = {
    "fp32": _convert_fp32,
}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars, root-logger notes or warnings from the converter."""
    old = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.disable(disabled)
        if old is None:
            os.environ.pop("LITERT_TORCH_SHOW_PROGRESS", None)
        else:
            os.environ["LITERT_TORCH_SHOW_PROGRESS"] = old


class TfliteExporter(Exporter):
    """``model.tflite`` for the ``litert`` runtime (ai-edge-litert's Interpreter).

    Attributes:
        static_batch: The batch size the static-shape model is exported with.
    """

    name = "tflite"
    suffix = ".tflite"
    runtime = "litert"
    tolerances = {"fp32": Tolerance(atol=1e-4, min_cosine=0.99999)}
    static_batch = 1

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        """Convert ``model`` at static shapes and write ``out_dir/model.tflite`` atomically.

        Raises:
            ExportError: An unknown precision, or the conversion failed (one line
                naming the op or model line and a format to try instead).
            MissingExtraError: litert-torch is not installed.
        """
        litert_torch = require("litert_torch", "tflite", "the tflite exporter")
        precision = getattr(config, "precision", "fp32")
        convert = _CONVERTERS.get(precision)
        if convert is None or precision not in self.tolerances:
            raise ExportError(f"tflite: precision '{precision}' is not supported yet; "
                              f"choose one of: {', '.join(_CONVERTERS)}")
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path, tmp = out_dir / "model.tflite", out_dir / ".model.tflite.tmp"
        model = model.eval().cpu()
        sample = plain_inputs(static_example(task, tuple(example_inputs), self.static_batch))
        wrapped = with_input_names(NamedOutputs(model, task.output_names), task.input_names)
        start = time.perf_counter()
        try:
            with _quiet(), torch.no_grad():
                edge_model = convert(litert_torch, wrapped, dict(zip(task.input_names, sample, strict=True)))
                edge_model.export(str(tmp))
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - the converter raises many error kinds
            tmp.unlink(missing_ok=True)
            raise export_error("tflite", model, e) from None
        tmp.replace(path)
        seconds = time.perf_counter() - start
        static = {n: list(t.shape) for n, t in zip(task.input_names, sample, strict=True)}
        info = {
            "static_shapes": static,
            "layout": "NCHW" if getattr(task, "kind", "") == "classification" else None,
            "export_seconds": round(seconds, 2),
            "converter": f"litert-torch {getattr(litert_torch, '__version__', '?')}",
        }
        atomic.write_json(out_dir / "export.json", {"format": "tflite", "precision": precision, **info})
        return ExportArtifact("tflite", precision, path, self.runtime, self.tolerances[precision],
                              [path], info)
