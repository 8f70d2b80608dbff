"""The one home of quantization: configs and named presets, the function-preserving
transforms that prepare a model for int8 (CLE, bias correction, SmoothQuant), the
backends that quantize (onnxruntime for ONNX files, pt2e for TFLite / ExecuTorch),
QAT, the accuracy-budget fallback, and the ``quantize`` / ``qat`` recipe stages.

============================  ==========================================
module                        what it holds
============================  ==========================================
``config``                    ``QuantConfig``, the one config every backend and preset uses
``backend``                   the backend interface, its registry and the built-in backends
``presets``                   named targets (``x86``, ``tensorrt``, ..., ``xnnpack``, ``litert-fp16``)
``ort``                       onnxruntime math: static / dynamic int8, fp16 of an ONNX file
``pt2e``                      pt2e math (XNNPACK / litert quantizers) for the mobile formats
``transforms``                CLE, bias correction, SmoothQuant (``model -> model``)
``qat``                       quantization-aware training (pt2e, XNNPACK ``is_qat``)
``budget``                    per-node fallback to float under an accuracy budget
``stage``                     the ``quantize`` and ``qat`` recipe stages
============================  ==========================================

Importing this package is lean; each name loads its module on first use.

Example:
    >>> from edgesmith.compress.quantize import preset
    >>> preset("x86-dynamic").precision
    'int8-dynamic'
"""

from __future__ import annotations

import importlib

_WHERE = {
    "QuantConfig": "config", "MIN_CALIBRATION_SAMPLES": "config",
    "BACKENDS": "backend", "QuantBackend": "backend", "get_backend": "backend", "quantize": "backend",
    "register_backend": "backend",
    "OnnxQuantConfig": "ort", "quantize_onnx": "ort", "per_node_sqnr": "ort", "describe": "ort",
    "PRESETS": "presets", "preset": "presets", "presets_taking": "presets",
    "quantize_pt2e": "pt2e", "calibration_batches": "pt2e",
    "equalize": "transforms", "smooth": "transforms", "correct_bias": "transforms", "WeightQuant": "transforms",
    "QatConfig": "qat", "qat": "qat", "prepare_qat": "qat",
    "quantize_to_budget": "budget", "rank_by_added_noise": "budget",
    "QuantizeConfig": "stage",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _WHERE:
        return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
