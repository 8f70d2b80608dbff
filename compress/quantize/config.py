"""The one quantization config: :class:`QuantConfig` says what to quantize and how,
and names the backend (:mod:`edgesmith.compress.quantize.backend`) that does it.
The ``quantize`` stage's presets and the mobile ``export.precision`` both resolve
to it (:mod:`edgesmith.compress.quantize.presets`).

Example:
    >>> QuantConfig(precision="int8", calibration="percentile").backend
    'onnxruntime'
    >>> QuantConfig(precision="int8", backend="pt2e", reduce_range=True)
    Traceback (most recent call last):
    ...
    edgesmith.errors.RecipeError: reduce_range: the pt2e backend supports False only, got True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from edgesmith.conf.base import Config, RecipeError, at_least, between

__all__ = ["MIN_CALIBRATION_SAMPLES", "QuantConfig"]

MIN_CALIBRATION_SAMPLES = 8


@dataclass
class QuantConfig(Config):
    """How to quantize a model or an exported file, and with which backend.

    Attributes:
        precision: ``int8`` (static, calibrated), ``int8-dynamic`` (int8 weights,
            activations quantized at run time) or ``fp16``.
        backend: The registered backend that runs it: ``onnxruntime`` (QDQ ONNX),
            ``tensorrt`` (symmetric QDQ ONNX for TensorRT), ``pt2e`` (XNNPACK
            quantizers, for ExecuTorch and TFLite int8), ``litert`` (litert-torch
            recipes, for TFLite fp16 and dynamic int8). Each refuses the settings it
            cannot honour.
        per_channel: One weight scale per output channel (int8 modes).
        symmetric_weights: Weights int8 with zero point 0 (else uint8 asymmetric).
        symmetric_activations: Activations int8 symmetric (TensorRT); else asymmetric
            (onnxruntime: uint8, its CPU's fast u8s8 kernels; pt2e: int8 affine).
            Static int8 only.
        reduce_range: 7-bit weights: x86 CPUs without VNNI saturate u8 x s8 products
            in int16 (vpmaddubsw) and lose far more than the one bit this costs.
        calibration: Activation range observer for static int8: ``minmax``,
            ``percentile`` (clip at ``percentile``), ``entropy`` (KL) or ``histogram``
            (PyTorch's ``HistogramObserver``, the L2-optimal range; pt2e).
        percentile: Percentile kept by the ``percentile`` observer.
        calibration_samples: At most this many samples are fed to calibration; None:
            every sample given.
        op_types: ONNX op types to quantize (fp16: to convert); None means
            the backend's default set for the mode.
        exclude_nodes: Node names or fnmatch patterns kept in float32; each must
            match a node of the (pre-processed) graph.
        include_nodes: Node names or fnmatch patterns to quantize (each must match);
            every other node is kept in float32. None quantizes every node.
        min_sqnr_db: Output SQNR vs fp32 on the calibration batch below which the
            result is refused; None: no floor (the export's parity gate still runs).
        check_on: Where that SQNR is measured: ``onnxruntime`` (its CPU int8
            kernels) or ``qdq-reference`` (Q/DQ evaluated in float, what a
            TensorRT-like backend computes; onnxruntime CPU numbers are reported too).
        float_outputs: Static int8: drop the Q/DQ pair on each graph output, so the
            last op writes float (onnxruntime still fuses it, e.g. QGemm with float
            output) and outputs beyond the calibration range are not clipped
            (digits student, 64 calibration samples: logits max |diff| 3.9 -> 0.6).
        float_op_outputs: Static int8: op types whose outputs get no Q/DQ (onnxruntime's
            ``OpTypesToExcludeOutputQuantization``); their consumers read float. For
            transformers ``[MatMul]``: a float bias Add follows every MatMul, so quantizing
            its output only adds noise (MiniLM, MatMul int8: output SQNR 8.2 -> 15.7 dB).
        table_bits: Bits of each embedding table (a Gather of a constant table), onnxruntime
            only: 8 (the int8 modes' default) or 4 (tables of at least 1,024 rows, a BERT's token
            table, as onnxruntime's GatherBlockQuantized; smaller ones stay int8: 4-bit
            symmetric blocks of ``table_block`` values along the embedding with one fp32 scale a
            block: 0.625 bytes a value at 32). MiniLM-L6 with only its token table in 4 bits: cosine to
            fp32 0.996 on fortunes, while 4-bit MatMul weights (MatMulNBits, same blocks) drop it to 0.963;
            with dynamic int8 MatMuls 0.9897 against 0.9917 with int8 tables.
        table_block: Values per 4-bit block (a power of two, at least 16).
    """

    precision: Literal["int8", "int8-dynamic", "fp16"]
    backend: str = "onnxruntime"
    per_channel: bool = True
    symmetric_weights: bool = True
    symmetric_activations: bool = False
    reduce_range: bool = False
    calibration: Literal["minmax", "percentile", "entropy", "histogram"] = "minmax"
    percentile: float = field(default=99.99, metadata=between(90, 100, hi_open=True))
    calibration_samples: int | None = field(default=256, metadata=at_least(MIN_CALIBRATION_SAMPLES))
    op_types: list[str] | None = None
    exclude_nodes: list[str] = field(default_factory=list)
    include_nodes: list[str] | None = None
    min_sqnr_db: float | None = 10.0
    check_on: Literal["onnxruntime", "qdq-reference"] = "onnxruntime"
    float_outputs: bool = False
    float_op_outputs: list[str] = field(default_factory=list)
    table_bits: Literal[8, 4] = 8
    table_block: int = field(default=32, metadata=at_least(16))

    def validate(self) -> None:
        from edgesmith.compress.quantize.backend import BACKENDS

        if self.op_types is not None and not self.op_types:
            raise RecipeError("op_types", "is empty: list op types to quantize, or null for the default set")
        if self.include_nodes is not None and not self.include_nodes:
            raise RecipeError("include_nodes", "is empty: list node name patterns to quantize, or null for all")
        if self.symmetric_activations and self.precision != "int8":
            raise RecipeError("symmetric_activations", f"applies to static int8 only, not {self.precision}")
        if self.float_outputs and self.precision != "int8":
            raise RecipeError("float_outputs", f"applies to static int8 only, not {self.precision}")
        if self.float_op_outputs and self.precision != "int8":
            raise RecipeError("float_op_outputs", f"applies to static int8 only, not {self.precision}")
        if self.table_bits == 4 and self.precision == "fp16":
            raise RecipeError("table_bits", "4-bit tables go with the int8 modes; fp16 keeps tables in fp16")
        if self.table_bits == 4 and self.backend != "onnxruntime":
            raise RecipeError("table_bits", f"4-bit tables are onnxruntime's GatherBlockQuantized; the {self.backend} "
                                            "backend stores tables in 8 bits")
        if self.table_block & (self.table_block - 1):
            raise RecipeError("table_block", f"must be a power of two (16, 32, 64, ...), got {self.table_block}")
        if self.backend not in BACKENDS:
            raise RecipeError("backend", BACKENDS.unknown_message(self.backend))
        BACKENDS.get(self.backend)().check(self)

    def scheme(self) -> str:
        """One line naming what the config quantizes, for manifests and logs."""
        if self.precision == "fp16":
            return "fp16 weights"
        weights = f"{'per-channel' if self.per_channel else 'per-tensor'} " \
                  f"{'symmetric' if self.symmetric_weights else 'asymmetric'} int8 weights"
        tables = f"; embedding tables 4-bit (blocks of {self.table_block})" if self.table_bits == 4 else ""
        if self.precision == "int8-dynamic":
            return f"dynamic int8: {weights}, activations quantized per batch at run time{tables}"
        acts = "symmetric int8" if self.symmetric_activations else "asymmetric 8-bit"
        return f"static int8: {weights}, {acts} activations, {self.calibration} calibration{tables}"
