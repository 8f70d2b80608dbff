"""Named quantization targets: each returns an ordinary
:class:`~edgesmith.compress.quantize.config.QuantConfig` the user can edit
(Optimum's ``AutoQuantizationConfig.avx512_vnni()``). ``x86``, ``x86-dynamic``,
``tensorrt`` and ``fp16`` quantize an ONNX file (the ``quantize`` stage);
``xnnpack``, ``xnnpack-dynamic``, ``litert-fp16`` and ``litert-dynamic`` are what
the mobile formats' ``export.precision`` resolves to (each format's descriptor,
:class:`~edgesmith.export.formats.FormatSpec` ``quant_presets``, names its own).

Example:
    >>> preset("x86").precision, preset("tensorrt").symmetric_activations
    ('int8', True)
    >>> preset("x86", calibration="entropy").calibration
    'entropy'
    >>> preset("xnnpack").backend
    'pt2e'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from edgesmith.compress.quantize.config import QuantConfig
from edgesmith.conf.base import RecipeError
from edgesmith.registry import Registry

__all__ = ["PRESETS", "preset", "presets_taking"]

PRESETS: Registry[Callable[[], QuantConfig]] = Registry("quantization preset")


@PRESETS.register("x86")
def x86() -> QuantConfig:
    """Static QDQ int8 for onnxruntime's CPU provider: per-channel symmetric int8
    weights, asymmetric uint8 activations (its u8s8 kernels), min/max ranges.

    ``reduce_range`` (7-bit weights) is on because x86 CPUs without VNNI (AVX2
    only) saturate u8 x s8 products in int16: on such a CPU a digits CNN fell
    from 37 to 18.5 dB output SQNR without it. On a VNNI CPU turn it off.
    """
    return QuantConfig(precision="int8", per_channel=True, symmetric_weights=True,
                       symmetric_activations=False, reduce_range=True, calibration="minmax")


@PRESETS.register("x86-vnni")
def x86_vnni() -> QuantConfig:
    """Static QDQ int8 for onnxruntime on CPUs with VNNI (AVX-512 VNNI, AVX-VNNI) or
    ARM's dot-product kernels, which do not saturate u8 x s8 products: 8-bit per-channel
    weights and percentile (99.99) activation ranges. The choice for MobileNet-class CNNs
    (ReLU6, linear bottlenecks, residual adds), with ``bias_correction: true`` in the stage:
    MobileNetV2 (ImageNet weights) on held-out natural photo crops, top-1 agreement with fp32
    73.1% with ``x86``, 87.2% with this preset, 88.9% with bias correction too; onnxruntime's
    ``quantize_static`` defaults 65.0% (``python -m edgesmith.benchmarks.studies.mobilenet_int8``).
    """
    return QuantConfig(precision="int8", per_channel=True, symmetric_weights=True,
                       symmetric_activations=False, reduce_range=False, calibration="percentile",
                       percentile=99.99)


@PRESETS.register("x86-dynamic")
def x86_dynamic() -> QuantConfig:
    """Dynamic int8 for transformers: per-channel int8 weights of MatMul (Gemm is
    rewritten to MatMul + Add first) and fused Attention, activations quantized
    per batch at run time; embedding tables (Gather) stored int8 too, which is
    most of a small encoder's bytes (MiniLM: 90.8 MB -> 23.3 MB, 59 MB without)."""
    return QuantConfig(precision="int8-dynamic", per_channel=True, symmetric_weights=True,
                       op_types=["MatMul", "Attention", "Gather"])


@PRESETS.register("tensorrt")
def tensorrt() -> QuantConfig:
    """Explicit-quantization QDQ for TensorRT: symmetric int8 weights (per channel)
    and activations, Q/DQ only around the layers TensorRT runs in int8, and
    percentile (99.99) activation ranges. The SQNR floor is checked on the Q/DQ
    math evaluated in float, not on onnxruntime's CPU int8 kernels."""
    return QuantConfig(precision="int8", backend="tensorrt", per_channel=True, symmetric_weights=True,
                       symmetric_activations=True, calibration="percentile", percentile=99.99,
                       op_types=["Conv", "ConvTranspose", "Gemm", "MatMul"],
                       check_on="qdq-reference")


@PRESETS.register("fp16")
def fp16() -> QuantConfig:
    """fp16 weights and compute with fp32 inputs and outputs (GPU, TensorRT fp16)."""
    return QuantConfig(precision="fp16")


@PRESETS.register("xnnpack")
def xnnpack() -> QuantConfig:
    """Static int8 for XNNPACK (ExecuTorch and TFLite ``int8``), by pt2e: per-channel
    symmetric int8 weights, int8 affine activations from PyTorch's HistogramObserver,
    calibrated on every calibration input given; the export's parity gate checks it."""
    return QuantConfig(precision="int8", backend="pt2e", per_channel=True, symmetric_weights=True,
                       symmetric_activations=False, calibration="histogram", calibration_samples=None,
                       min_sqnr_db=None)


@PRESETS.register("xnnpack-dynamic")
def xnnpack_dynamic() -> QuantConfig:
    """Dynamic int8 for XNNPACK (ExecuTorch ``int8-dynamic``), by pt2e: per-channel
    int8 Linear weights, activations quantized per batch at run time."""
    return QuantConfig(precision="int8-dynamic", backend="pt2e", per_channel=True, symmetric_weights=True,
                       calibration_samples=None, min_sqnr_db=None)


@PRESETS.register("litert-fp16")
def litert_fp16() -> QuantConfig:
    """fp16 weights in a ``.tflite`` (TFLite ``fp16``), litert-torch's fp16 recipe."""
    return QuantConfig(precision="fp16", backend="litert", calibration_samples=None, min_sqnr_db=None)


@PRESETS.register("litert-dynamic")
def litert_dynamic() -> QuantConfig:
    """Dynamic-range int8 in a ``.tflite`` (TFLite ``int8-dynamic``), litert-torch's
    dynamic recipe: per-channel int8 weights, activations quantized at run time."""
    return QuantConfig(precision="int8-dynamic", backend="litert", per_channel=True, symmetric_weights=True,
                       calibration_samples=None, min_sqnr_db=None)


def preset(name: str, **overrides: Any) -> QuantConfig:
    """The config of target ``name`` with ``overrides`` (field values) applied and validated."""
    config = PRESETS.get(name)()
    known = {f.name for f in dataclasses.fields(config)}
    for key in overrides:
        if key not in known:
            raise RecipeError(key, f"unknown key for preset {name!r}; known keys: {', '.join(sorted(known))}")
    return dataclasses.replace(config, **overrides)


def presets_taking(takes: str) -> list[str]:
    """Names of the presets whose backend takes ``takes``: ``onnx`` (a file, the
    ``quantize`` stage's) or ``torch`` (a model, the mobile exporters')."""
    from edgesmith.compress.quantize.backend import BACKENDS

    return [name for name, make in PRESETS.items() if BACKENDS.get(make().backend).takes == takes]
