"""Shared pieces of the reliability tests (imported by conftest and the tests)."""

from __future__ import annotations

import shutil
from pathlib import Path

TINY = [
    "teacher.train.epochs=1",
    "stages=[{kind: distill, epochs: 1, lr: 0.01, batch_size: 64, temperature: 4.0, alpha: 0.7}]",
    "export.formats=[onnx, tflite, executorch, torchscript-lite]",
    "benchmark.iterations=5",
    "benchmark.min_seconds=0",
    "benchmark.warmup=1",
    "benchmark.runtimes=[onnxruntime]",
]


def copy_run(src: Path, dst: Path) -> Path:
    """A copy of a run folder to damage."""
    shutil.copytree(src, dst, symlinks=True)
    return dst


MODEL_SUFFIXES = (".onnx", ".safetensors", ".pte", ".tflite", ".ptl")


def model_files(run: Path) -> dict[str, bytes]:
    """Every model file of a run (stage folders and bundle) by relative path. A .ptl is
    compared by its tensor data and extra files: its TorchScript code names classes
    with per-process counters (``___torch_mangle_N``) and it holds a
    ``serialization_id`` derived from them, so a second export in one process differs
    in those bytes only."""
    import io
    import zipfile

    out = {}
    for p in sorted(run.rglob("*")):
        if p.is_file() and p.suffix in MODEL_SUFFIXES and not any(part.endswith(".tmp") for part in p.parts):
            data = p.read_bytes()
            if p.suffix == ".ptl":
                with zipfile.ZipFile(io.BytesIO(data)) as z:
                    members = sorted((n.split("/", 1)[-1], z.read(n)) for n in z.namelist()
                                     if n.split("/", 1)[-1].startswith(("data/", "extra/")))
                data = repr(members).encode()
            out[p.relative_to(run).as_posix()] = data
    return out
