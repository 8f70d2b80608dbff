"""The run's tables: where the ops of each exported file run, next to its latency."""

from __future__ import annotations

from rich.console import Console

from edgesmith.pipeline.report import benchmarks_table, exports_table, ops_summary

# the export entries of a real digits-quick run (summary.json), trimmed to what the tables read
EXPORTS = [
    {"format": "onnx", "precision": "int8", "size_bytes": 21_000, "parity": {"passed": True},
     "compute_precision": {"int8": {"Conv": 2, "Gemm": 3}, "fp32": {}},
     "op_histogram": {"DequantizeLinear": 17, "QuantizeLinear": 8, "Gemm": 3, "Conv": 2, "MaxPool": 2}},
    {"format": "executorch", "precision": "fp32", "size_bytes": 13_000, "parity": {"passed": True},
     "delegation": {"backend": "XnnpackBackend", "delegate_calls": 2, "delegated_ops": 12, "portable_ops": 1}},
    {"format": "tensorrt", "precision": "fp32", "size_bytes": 20_000, "parity": {"passed": True},
     "op_histogram": {"Relu": 3, "Gemm": 3, "Conv": 2, "MaxPool": 2, "Reshape": 1}},
    {"format": "torchscript-lite", "precision": "fp32", "size_bytes": 40_000, "parity": {"passed": True}},
]


def test_ops_summary_per_kind_of_file() -> None:
    assert [ops_summary(e) for e in EXPORTS] == ["int8: Conv×2, Gemm×3", "XNNPACK 12/13", "11 ops", "-"]
    tflite = {"delegation": {"backend": "TfLiteXNNPackDelegate", "delegated_ops": 9, "total_ops": 10}}
    assert ops_summary(tflite) == "XNNPACK 9/10"


def test_ops_shown_beside_the_final_models_latency() -> None:
    lat = {"p50": 0.015, "p90": 0.02, "p99": 0.03, "p50_ci": [0.014, 0.016]}
    bench = [{"model": m, "runtime": rt, "target": "cpu", "threads": 1, "batch": 1, "precision": p, "latency_ms": lat}
             for m, rt, p in (("teacher", "onnxruntime", "fp32"), ("quantize", "onnxruntime", "int8"),
                              ("quantize", "executorch", "fp32"))]
    summary = {"stages": [{"name": "quantize"}], "exports": EXPORTS, "benchmarks": bench}
    console = Console(width=250, record=True, color_system=None)
    console.print(benchmarks_table(summary))
    console.print(exports_table(summary))
    rows = [line for line in console.export_text().splitlines() if "│ cpu" in line]
    assert "int8" not in rows[0] and "XNNPACK" not in rows[0]  # the teacher has no exported file
    assert "int8: Conv×2, Gemm×3" in rows[1] and "XNNPACK 12/13" in rows[2]
