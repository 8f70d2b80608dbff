"""TFLite (``.tflite``) with litert-torch: PyTorch to a LiteRT flatbuffer, no TensorFlow.

litert-torch 0.10 converts static shapes only: its JAX lowering fails on a
dynamic dimension (``aten.mul`` after a ``Linear``, ``reshape`` after a
``Flatten``; google-ai-edge/litert-torch#870). So the model is exported with a
batch of 1 and, on the task's ``"sequence"`` axes, ``task.max_length``; the
artifact records these ``static_shapes``. The LiteRT runtime runs a larger batch
one exported batch at a time; token inputs must be padded to the exported length.

Inputs keep PyTorch's NCHW layout (``layout: "NCHW"``); an NHWC input
(``litert_torch.to_channel_last_io``) is a planned option. The signature's inputs
and outputs carry the task's names.

Each precision other than fp32 resolves to a quantization preset (the format
descriptor's ``quant_presets``, a :class:`~edgesmith.compress.quantize.config.QuantConfig`)
whose backend (:mod:`edgesmith.compress.quantize.backend`) picks the converter in
``_CONVERTERS``:

- ``fp32``.
- ``fp16`` (preset ``litert-fp16``, backend ``litert``): fp16 weights
  (litert-torch's ``full_fp16_recipe``, run by ai-edge-quantizer); the weights are dequantized to float32 at load and
  computed in float32 (XNNPACK may compute in fp16 on devices that support it).
- ``int8`` (preset ``xnnpack``, backend ``pt2e``): PT2E post-training
  quantization with litert-torch's ``PT2EQuantizer`` (symmetric, per-channel int8 weights, int8 activations
  calibrated on real inputs passed as ``calibration=``), converted in static
  mode to a fully int8 flatbuffer. Its inputs and outputs are int8 with a scale
  and zero point (``info["quantized_io"]``); the LiteRT runtime quantizes and
  dequantizes them, an app must do the same.
- ``int8-dynamic`` (preset ``litert-dynamic``, backend ``litert``): dynamic-range
  int8 (litert-torch's ``full_dynamic_recipe``):
  per-channel int8 weights, activations quantized per batch at run time, float
  inputs and outputs; no calibration. The choice for transformer encoders, whose
  activation outliers a static per-tensor scale clips (MiniLM: cosine 0.98 static).

The artifact info reports delegation: how many of the file's ops the XNNPACK
delegate takes over in the LiteRT runtime (:meth:`LiteRTRuntime.delegation`).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import torch
from torch import nn

from edgesmith import atomic
from edgesmith.compress.quantize.backend import get_backend
from edgesmith.compress.quantize.config import QuantConfig
from edgesmith.compress.quantize.pt2e import calibration_batches
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter, precision_of
from edgesmith.export.failures import export_error
from edgesmith.export.formats import quant_config
from edgesmith.export.pt2 import with_input_names
from edgesmith.export.signature import NamedOutputs, plain_inputs, static_example
from edgesmith.runtimes.base import require

Sample = dict[str, torch.Tensor]


def _convert_fp32(litert_torch: ModuleType, model: nn.Module, sample: Sample, batches: list | None,
                  config: QuantConfig | None) -> Any:
    # Keyword samples make the signature's input names the task's input names; enable_x64
    # keeps int64 token ids int64 (the default downcasts model I/O to int32).
    return litert_torch.convert(model, sample_kwargs=sample, enable_x64=True)


def _convert_litert(litert_torch: ModuleType, model: nn.Module, sample: Sample, batches: list | None,
                    config: QuantConfig) -> Any:
    # fp16 / dynamic int8: a litert-torch recipe applied while converting
    return get_backend(config.backend).quantize(model, config, sample=sample)


def _static_rows(sample: Sample) -> Callable[[tuple[torch.Tensor, ...]], list[Sample]]:
    """Split a calibration batch into keyword inputs at ``sample``'s static shapes
    (the exported batch; token inputs padded with 0 to the exported length)."""
    names, n = list(sample), next(iter(sample.values())).shape[0]

    def fit(batch: tuple[torch.Tensor, ...]) -> list[Sample]:
        rows = []
        for i in range(0, len(batch[0]) - n + 1, n):
            row = {}
            for name, t in zip(names, batch, strict=True):
                t, want = t[i : i + n], sample[name].shape
                if t.dim() == 2 and len(want) == 2 and t.shape[1] < want[1]:
                    t = nn.functional.pad(t, (0, want[1] - t.shape[1]), value=0)
                if t.shape != want:
                    raise ExportError(f"tflite: calibration input '{name}' has shape {list(t.shape)} per row, "
                                      f"the model is exported at {list(want)}; prepare it like example_inputs")
                row[name] = t
            rows.append(row)
        return rows

    return fit


def _convert_pt2e(litert_torch: ModuleType, model: nn.Module, sample: Sample, batches: list | None,
                  config: QuantConfig) -> Any:
    from litert_torch.quantize.quant_config import QuantConfig as LitertQuantConfig

    backend = get_backend(config.backend)
    quantizer = backend.quantizer(config, "litert")  # litert-torch's own copy of XNNPACK's quantizer
    graph = torch.export.export(model, (), sample).module()
    # Q/DQ pairs left unfolded: litert-torch's static mode fuses them into int8 kernels
    graph = backend.quantize(graph, config, batches, quantizer=quantizer, fit=_static_rows(sample),
                             fold_quantize=False)
    return litert_torch.convert(graph, sample_kwargs=sample, enable_x64=True,
                                quant_config=LitertQuantConfig(pt2e_quantizer=quantizer))


# the precision's quantization backend (None: fp32) -> converter(litert_torch, model, keyword
# sample, calibration batches or None, the precision's QuantConfig or None)
_CONVERTERS: dict[str | None, Callable[..., Any]] = {
    None: _convert_fp32,
    "litert": _convert_litert,
    "pt2e": _convert_pt2e,
}


def _delegation(path: Path) -> tuple[dict[str, Any] | None, dict[str, Any]]:
    """XNNPACK delegation and quantized I/O of the file in the LiteRT runtime."""
    from edgesmith.runtimes.litert import LiteRTRuntime

    try:
        with LiteRTRuntime(path) as rt:
            return rt.delegation(), rt.quantized_io
    except Exception as e:  # noqa: BLE001 - a report: ai-edge-litert missing or the file refused
        return {"error": f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"}, {}


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars, root-logger notes or warnings from the converter."""
    old = os.environ.get("LITERT_TORCH_SHOW_PROGRESS")
    os.environ["LITERT_TORCH_SHOW_PROGRESS"] = "n"
    disabled = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        # (stderr too: ai-edge-quantizer's progress bars)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()):
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
    static_batch = 1

    def export(self, model, example_inputs, task, out_dir: Path, config,
               calibration: Iterable[tuple[torch.Tensor, ...]] | None = None) -> ExportArtifact:
        """Convert ``model`` at static shapes and write ``out_dir/model.tflite`` atomically.

        Args:
            calibration: int8 only: input tuples to calibrate activation ranges on.

        Raises:
            ExportError: An unknown precision, int8 without calibration inputs, or
                the conversion failed (one line naming the op or model line and a
                format to try instead).
            MissingExtraError: litert-torch is not installed.
        """
        # TensorFlow's C++ start-up notes (oneDNN, absl) would land in the run's log
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        litert_torch = require("litert_torch", "tflite", "the tflite exporter")
        precision = precision_of(config, self.name)
        if precision not in self.tolerances:
            raise ExportError(f"tflite: precision '{precision}' is not supported yet; "
                              f"choose one of: {', '.join(self.tolerances)}")
        qconfig = quant_config(self.name, precision)
        convert = _CONVERTERS[qconfig.backend if qconfig else None]
        batches = calibration_batches(calibration, self.name) if precision == "int8" else None
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path, tmp = out_dir / "model.tflite", out_dir / ".model.tflite.tmp"
        model = model.eval().cpu()
        sample = plain_inputs(static_example(task, tuple(example_inputs), self.static_batch))
        wrapped = with_input_names(NamedOutputs(model, task.output_names), task.input_names)
        start = time.perf_counter()
        try:
            with _quiet(), torch.no_grad():
                edge_model = convert(litert_torch, wrapped, dict(zip(task.input_names, sample, strict=True)),
                                     batches, qconfig)
                edge_model.export(str(tmp))
        except ExportError:
            raise
        except Exception as e:  # noqa: BLE001 - the converter raises many error kinds
            tmp.unlink(missing_ok=True)
            raise export_error("tflite", model, e) from None
        tmp.replace(path)
        seconds = time.perf_counter() - start
        static = {n: list(t.shape) for n, t in zip(task.input_names, sample, strict=True)}
        delegation, quantized_io = _delegation(path)
        info = {
            "static_shapes": static,
            "layout": "NCHW" if getattr(task, "kind", "") == "classification" else None,
            "export_seconds": round(seconds, 2),
            "converter": f"litert-torch {getattr(litert_torch, '__version__', '?')}",
            "delegation": delegation,
        }
        if qconfig is not None:
            info["quantization"] = {"preset": self.spec.quant_presets[precision],
                                    **get_backend(qconfig.backend).describe(qconfig, flavour="litert"),
                                    "calibration_samples": sum(len(b[0]) for b in batches) if batches else 0}
            if batches is not None:
                info["quantization"]["quantized_io"] = quantized_io
        atomic.write_json(out_dir / "export.json", {"format": "tflite", "precision": precision, **info})
        return ExportArtifact("tflite", precision, path, self.runtime, self.tolerances[precision],
                              [path], info)
