"""One descriptor per export format: every fact about a format that code outside
its exporter needs (suffix, runtime, pip extra, parity tolerances per precision,
the nearest format to fall back to, the libraries that identify its toolchain),
declared once. Every table of formats (the runtime -> format map, the fallback
hints of export errors, recipe validation of ``export.precision``) is derived
from :data:`FORMATS`.

The descriptors are lean (no toolchain import): the exporter class is named as
``module:Class`` and imported on first use (:func:`get_exporter`), which sets the
descriptor's facts on it (``name``, ``suffix``, ``runtime``, ``tolerances``).

Adding a format is its exporter file, its runtime file (:mod:`edgesmith.runtimes`)
and one :func:`register_format` call::

    register_format(FormatSpec("toy", suffix=".toy", runtime="toy-runtime",
                               exporter="mypkg.toy:ToyExporter", extra="core"))
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from edgesmith.export.base import Tolerance, tiers
from edgesmith.registry import Registry

__all__ = ["FORMATS", "FormatSpec", "format_for_runtime", "get_exporter", "quant_config", "register_format"]


@dataclass(frozen=True)
class FormatSpec:
    """The facts of one export format.

    Attributes:
        name: Format name in recipes (``export.formats``).
        suffix: The main file's suffix.
        runtime: The registered runtime (:data:`edgesmith.runtimes.RUNTIMES`) that runs it.
        exporter: ``"module:Class"`` (imported on first use) or the exporter class.
        extra: The pip extra that installs its toolchain.
        tolerances: Parity tolerance per precision it exports (``fp32`` always).
        nearest: The formats to try when this one cannot take a model (export errors say it).
        libraries: PyPI distributions whose versions identify its toolchain.
        gpu_only: Exported files can be built and run only with a GPU.
        quant_presets: The quantization preset (:mod:`edgesmith.compress.quantize.presets`)
            each of its ``export.precision`` values other than fp32 resolves to.
    """

    name: str
    suffix: str
    runtime: str
    exporter: str | type
    extra: str = "core"
    tolerances: dict[str, Tolerance] = field(default_factory=tiers)
    nearest: str = "onnx"
    libraries: tuple[str, ...] = ()
    gpu_only: bool = False
    quant_presets: dict[str, str] = field(default_factory=dict)


FORMATS: Registry[FormatSpec] = Registry("export format")


def register_format(spec: FormatSpec) -> FormatSpec:
    """Register ``spec`` under its name; returns it."""
    return FORMATS.register(spec.name)(spec)


def get_exporter(name: str) -> Any:
    """The exporter class of format ``name`` (imported on first use), carrying its
    descriptor's ``name``, ``suffix``, ``runtime`` and ``tolerances``.

    Raises:
        EdgesmithError: Unknown format (names the known ones).
    """
    spec = FORMATS.get(name)
    cls = spec.exporter
    if isinstance(cls, str):
        module, _, attr = cls.partition(":")
        cls = getattr(importlib.import_module(module), attr)
    cls.spec, cls.name, cls.suffix, cls.runtime, cls.tolerances = spec, spec.name, spec.suffix, spec.runtime, \
        spec.tolerances
    return cls


def format_for_runtime(runtime: str) -> str | None:
    """The format a runtime runs (the benchmark measures that format's file on it), or None."""
    return next((name for name, spec in FORMATS.items() if spec.runtime == runtime), None)


def quant_config(fmt: str, precision: str) -> Any:
    """The :class:`~edgesmith.compress.quantize.config.QuantConfig` that precision
    ``precision`` of format ``fmt`` means (its descriptor's ``quant_presets``), or
    None for a precision that quantizes nothing (fp32).

    Example:
        >>> quant_config("tflite", "int8").backend, quant_config("tflite", "fp32")
        ('pt2e', None)
    """
    name = FORMATS.get(fmt).quant_presets.get(precision)
    if name is None:
        return None
    from edgesmith.compress.quantize.presets import preset

    return preset(name)


# ------------------------------------------------------------- the built-ins
register_format(FormatSpec("onnx", ".onnx", "onnxruntime", "edgesmith.export.onnx:OnnxExporter",
                           nearest="pt2 or torchscript-lite", libraries=("onnx", "onnxruntime")))
register_format(FormatSpec("pt2", ".pt2", "torch", "edgesmith.export.pt2:Pt2Exporter",
                           tolerances={"fp32": Tolerance(atol=1e-5, min_cosine=0.999999)},
                           nearest="onnx or torchscript-lite", libraries=("torch",)))
register_format(FormatSpec("tflite", ".tflite", "litert", "edgesmith.export.tflite:TfliteExporter", extra="tflite",
                           tolerances=tiers("fp16", "int8", "int8-dynamic"), nearest="executorch or onnx",
                           libraries=("litert-torch", "ai-edge-litert"),
                           quant_presets={"fp16": "litert-fp16", "int8": "xnnpack", "int8-dynamic": "litert-dynamic"}))
register_format(FormatSpec("executorch", ".pte", "executorch", "edgesmith.export.executorch:ExecuTorchExporter",
                           extra="mobile", tolerances=tiers("int8", "int8-dynamic"), nearest="onnx or tflite",
                           libraries=("executorch",), quant_presets={"int8": "xnnpack", "int8-dynamic": "xnnpack-dynamic"}))
register_format(FormatSpec("torchscript-lite", ".ptl", "torchscript-lite",
                           "edgesmith.export.torchscript_lite:TorchScriptLiteExporter",
                           nearest="executorch or onnx", libraries=("torch",)))
register_format(FormatSpec("tensorrt", ".engine", "tensorrt", "edgesmith.export.tensorrt:TensorRTExporter",
                           extra="tensorrt", gpu_only=True, libraries=("tensorrt",),
                           tolerances={"fp32": Tolerance(atol=1e-3, min_cosine=0.9999),  # TF32 in matmuls
                                       "fp16": Tolerance(atol=5e-2, min_cosine=0.999),
                                       "int8": Tolerance(atol=1.0, min_cosine=0.99)}))
