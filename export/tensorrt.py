"""TensorRT: a TensorRT-ready ONNX, the ``trtexec`` line that builds its engine,
and, where TensorRT and a CUDA device are present, the engine itself.

The ONNX comes from :class:`~edgesmith.export.onnx.OnnxExporter` (so it is the
same file the parity gate already trusts), with one optimisation profile
(min / opt / max shape per dynamic input). Then:

- **TensorRT importable and a CUDA device visible**: the engine is built with
  the TensorRT builder (``fp16``: the FP16 flag; ``int8``: explicit
  quantization from the QDQ nodes of a quantized ONNX, FP16 allowed for the
  rest), written as ``model.engine``, and the parity gate runs it with the
  ``tensorrt`` runtime on the GPU.
- **Otherwise** (every machine without NVIDIA's stack, including this project's
  CI): the artifact is the TensorRT-ready ONNX, checked in onnxruntime;
  ``trtexec.sh`` holds the command that builds the engine on a GPU machine,
  and the export info says ``engine_built: false`` with the reason. Nothing
  pretends an engine exists.
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter
from edgesmith.export.onnx import OnnxExporter

PRECISIONS = ("fp32", "fp16", "int8")
MAX_BATCH = 32
MAX_SEQ = 512


def engine_unavailable_reason() -> str | None:
    """``None`` when an engine can be built here, else why not (one line)."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return ("the tensorrt package is not installed (pip install 'edgesmith[tensorrt]' "
                "with NVIDIA's index, on a machine with an NVIDIA GPU)")
    import torch

    if not torch.cuda.is_available():
        return "tensorrt is installed but no CUDA device is visible"
    return None


def shape_profile(example_inputs: tuple, task, dynamic_batch: bool) -> dict[str, dict[str, list[int]]]:
    """One TensorRT optimisation profile: per input name, ``min``/``opt``/``max`` shapes.

    The example's shape is ``opt``; a dynamic batch axis spans 1..max(opt, 32),
    a dynamic sequence axis 1..512.
    """
    axes = task.dynamic_axes() if dynamic_batch else {}
    profile = {}
    for name, t in zip(task.input_names, example_inputs, strict=True):
        opt = [int(d) for d in t.shape]
        lo, hi = list(opt), list(opt)
        for ax, label in axes.get(name, {}).items():
            lo[ax] = 1
            hi[ax] = max(opt[ax], MAX_BATCH if label == "batch" else MAX_SEQ)
        profile[name] = {"min": lo, "opt": opt, "max": hi}
    return profile


def trtexec_command(onnx_path: Path, engine_path: Path, precision: str,
                    profile: dict[str, dict[str, list[int]]]) -> str:
    """The ``trtexec`` line that builds (and times) the engine on a GPU machine."""
    args = ["trtexec", f"--onnx={onnx_path.name}", f"--saveEngine={engine_path.name}"]
    if precision == "fp16":
        args.append("--fp16")
    elif precision == "int8":
        args += ["--int8", "--fp16"]  # explicit quantization: scales come from the QDQ nodes
    if any(p["min"] != p["max"] for p in profile.values()):
        for key, flag in (("min", "--minShapes"), ("opt", "--optShapes"), ("max", "--maxShapes")):
            shapes = ",".join(f"{n}:{'x'.join(map(str, p[key]))}" for n, p in profile.items())
            args.append(f"{flag}={shapes}")
    return " ".join(shlex.quote(a) for a in args)


def build_engine(onnx_path: Path, engine_path: Path, precision: str,
                 profile: dict[str, dict[str, list[int]]], workspace_gb: float = 2.0) -> None:
    """Build and atomically write a serialized engine with the TensorRT builder."""
    import tensorrt as trt

    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: explicit batch is the only mode
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        first = (errors[0].strip().splitlines() or ["unknown parser error"])[0] if errors else "unknown parser error"
        raise ExportError(f"tensorrt: the ONNX parser rejected {onnx_path.name}: {first}; "
                          "export onnx instead or change the op it names")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gb * 1024**3))
    if precision in ("fp16", "int8"):
        config.set_flag(trt.BuilderFlag.FP16)
    if precision == "int8":
        config.set_flag(trt.BuilderFlag.INT8)
    opt = builder.create_optimization_profile()
    for name, p in profile.items():
        opt.set_shape(name, p["min"], p["opt"], p["max"])
    config.add_optimization_profile(opt)
    blob = builder.build_serialized_network(network, config)
    if blob is None:
        raise ExportError(f"tensorrt: the builder produced no engine for {onnx_path.name} ({precision}); "
                          "see TensorRT's log above, or try precision fp32")
    atomic.write_bytes(engine_path, bytes(blob))


class TensorRTExporter(Exporter):
    name = "tensorrt"

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        out_dir = Path(out_dir)
        precision = getattr(config, "tensorrt_precision", "fp16")
        if precision not in PRECISIONS:
            raise ExportError(f"tensorrt: precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        onnx_art = OnnxExporter().export(model, example_inputs, task, out_dir, config)
        profile = shape_profile(example_inputs, task, config.dynamic_batch)
        engine = out_dir / "model.engine"
        cmd = trtexec_command(onnx_art.path, engine, precision, profile)
        script = out_dir / "trtexec.sh"
        atomic.write_text(script, f"#!/bin/sh\n# Build the TensorRT engine on a machine with an NVIDIA GPU.\n"
                                  f'cd "$(dirname "$0")" && {cmd} "$@"\n')
        os.chmod(script, 0o755)
        reason = engine_unavailable_reason()
        info: dict[str, Any] = {
            "engine_built": reason is None, "engine_precision": precision, "trtexec": cmd,
            "profile": profile, "op_histogram": onnx_art.info.get("op_histogram"),
        }
        if reason is None:
            build_engine(onnx_art.path, engine, precision, profile)
            atomic.write_json(out_dir / "export.json", {"format": "tensorrt", **info})
            return ExportArtifact("tensorrt", precision, engine, self.runtime, self.tolerances[precision],
                                  [engine, *onnx_art.files, script], {**info, "device": "cuda"})
        info["reason"] = f"engine not built: {reason}; run trtexec.sh on a GPU machine"
        atomic.write_json(out_dir / "export.json", {"format": "tensorrt", **info})
        # The artifact is the TensorRT-ready ONNX, checked where it can run: onnxruntime.
        return ExportArtifact("tensorrt", "fp32", onnx_art.path, onnx_art.runtime, onnx_art.tolerance,
                              [*onnx_art.files, script], info)
