"""Named quantization targets for ONNX files: each returns an ordinary
:class:`~edgesmith.compress.quantize.ort.OnnxQuantConfig` the user can edit
(Optimum's ``AutoQuantizationConfig.avx512_vnni()``).

Example:
    >>> preset("x86").precision, preset("tensorrt").symmetric_activations
    ('int8', True)
    >>> preset("x86", calibration="entropy").calibration
    'entropy'
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from edgesmith.compress.quantize.ort import OnnxQuantConfig
from edgesmith.conf.base import RecipeError
from edgesmith.registry import Registry

__all__ = ["PRESETS", "preset"]

PRESETS: Registry[Callable[[], OnnxQuantConfig]] = Registry("onnx quantization preset")


@PRESETS.register("x86")
def x86() -> OnnxQuantConfig:
    """Static QDQ int8 for onnxruntime's CPU provider: per-channel symmetric int8
    weights, asymmetric uint8 activations (its u8s8 kernels), min/max ranges.

    ``reduce_range`` (7-bit weights) is on because x86 CPUs without VNNI (AVX2
    only) saturate u8 x s8 products in int16: on such a CPU a digits CNN fell
    from 37 to 18.5 dB output SQNR without it. On a VNNI CPU turn it off.
    """
    return OnnxQuantConfig(precision="int8", per_channel=True, symmetric_weights=True,
                           symmetric_activations=False, reduce_range=True, calibration="minmax")


@PRESETS.register("x86-dynamic")
def x86_dynamic() -> OnnxQuantConfig:
    """Dynamic int8 for transformers: per-channel int8 weights of MatMul (Gemm is
    rewritten to MatMul + Add first) and fused Attention, activations quantized
    per batch at run time; embedding tables (Gather) stored int8 too, which is
    most of a small encoder's bytes (MiniLM: 90.8 MB -> 23.3 MB, 59 MB without)."""
    return OnnxQuantConfig(precision="int8-dynamic", per_channel=True, symmetric_weights=True,
                           op_types=["MatMul", "Attention", "Gather"])


@PRESETS.register("tensorrt")
def tensorrt() -> OnnxQuantConfig:
    """Explicit-quantization QDQ for TensorRT: symmetric int8 weights (per channel)
    and activations, Q/DQ only around the layers TensorRT runs in int8, and
    percentile (99.99) activation ranges. The SQNR floor is checked on the Q/DQ
    math evaluated in float, not on onnxruntime's CPU int8 kernels."""
    return OnnxQuantConfig(precision="int8", per_channel=True, symmetric_weights=True,
                           symmetric_activations=True, calibration="percentile", percentile=99.99,
                           op_types=["Conv", "ConvTranspose", "Gemm", "MatMul"],
                           check_on="qdq-reference")


@PRESETS.register("fp16")
def fp16() -> OnnxQuantConfig:
    """fp16 weights and compute with fp32 inputs and outputs (GPU, TensorRT fp16)."""
    return OnnxQuantConfig(precision="fp16")


def preset(name: str, **overrides: Any) -> OnnxQuantConfig:
    """The config of target ``name`` with ``overrides`` (field values) applied and validated."""
    config = PRESETS.get(name)()
    known = {f.name for f in dataclasses.fields(config)}
    for key in overrides:
        if key not in known:
            raise RecipeError(key, f"unknown key for preset {name!r}; known keys: {', '.join(sorted(known))}")
    return dataclasses.replace(config, **overrides)
