"""Exporters, registered by format name. Each turns a PyTorch model into files
for one runtime and declares its parity tolerance per precision; every export is
then checked against the PyTorch model (:mod:`edgesmith.export.parity`).

The registry holds ``module:Class`` strings so that ``import edgesmith.export``
imports no exporter toolchain (onnx, litert-torch, executorch, TensorRT)."""

from __future__ import annotations

import importlib

from edgesmith.registry import Registry

EXPORTERS: Registry[str] = Registry("export format")
EXPORTERS.register("onnx")("edgesmith.export.onnx:OnnxExporter")
EXPORTERS.register("pt2")("edgesmith.export.pt2:Pt2Exporter")
EXPORTERS.register("tflite")("edgesmith.export.tflite:TfliteExporter")
EXPORTERS.register("executorch")("edgesmith.export.executorch:ExecuTorchExporter")
EXPORTERS.register("torchscript-lite")("edgesmith.export.torchscript_lite:TorchScriptLiteExporter")
EXPORTERS.register("tensorrt")("edgesmith.export.tensorrt:TensorRTExporter")

# The format each runtime runs (the inverse of the exporters' ``runtime``, kept here so
# that it is known without importing an exporter).
FORMAT_FOR_RUNTIME = {"onnxruntime": "onnx", "torch": "pt2", "litert": "tflite", "executorch": "executorch",
                      "torchscript-lite": "torchscript-lite", "tensorrt": "tensorrt"}


def get_exporter(name: str):
    """The exporter class for a format name (imported on first use)."""
    module, _, cls = EXPORTERS.get(name).partition(":")
    return getattr(importlib.import_module(module), cls)
