"""Exporters, one descriptor per format (:mod:`edgesmith.export.formats`). Each
exporter turns a PyTorch model into files for one runtime; every export is then
checked against the PyTorch model (:mod:`edgesmith.export.parity`).

Importing this package imports no exporter toolchain (onnx, litert-torch,
ExecuTorch, TensorRT): the descriptors name their exporter as ``module:Class``."""

from __future__ import annotations

from edgesmith.export.formats import (
    FORMATS,
    FormatSpec,
    format_for_runtime,
    get_exporter,
    register_format,
)

__all__ = ["FORMATS", "FormatSpec", "format_for_runtime", "get_exporter", "register_format"]
