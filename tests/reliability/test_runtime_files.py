"""Damaged model files are one error line in every runtime, never a dead process (issue 16, item 5)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edgesmith.errors import BundleError, EdgesmithError
from edgesmith.runtimes import RUNTIMES, load
from edgesmith.runtimes.validate import CHECKS, check_container, probe_in_child

# runtime -> the export folder of the tiny run whose file it loads (None: no file built on a CPU machine)
FOLDERS = {"onnxruntime": "onnx", "litert": "tflite", "executorch": "executorch",
           "torchscript-lite": "torchscript-lite", "torch": None, "tensorrt": None}


def test_every_runtime_is_covered():
    assert set(FOLDERS) == set(RUNTIMES)
    checked = {s for name, cls in RUNTIMES.items() for s in cls.suffixes if s in CHECKS}
    assert {".onnx", ".tflite", ".pte", ".ptl", ".pt2"} <= checked


def _model(tiny_run: Path, runtime: str) -> Path:
    folder = next(tiny_run.glob("*-export")) / FOLDERS[runtime]
    return next(p for p in folder.iterdir() if p.suffix in RUNTIMES.get(runtime).suffixes)


def _damaged(good: bytes, kind: str) -> bytes:
    rnd = os.urandom(len(good))
    return {"zero": b"", "truncated": good[: len(good) // 2], "head": good[:64], "random": rnd,
            "random-with-header": good[:16] + rnd[16:], "tail-garbage": good[:-200] + rnd[:200]}[kind]


KINDS = ["zero", "truncated", "head", "random", "random-with-header", "tail-garbage"]


@pytest.mark.parametrize("runtime", [r for r, f in FOLDERS.items() if f])
def test_damaged_files_are_one_line_errors(tiny_run, tmp_path, runtime):
    good = _model(tiny_run, runtime)
    outcomes = {}
    for kind in KINDS:
        bad = tmp_path / kind / good.name
        bad.parent.mkdir()
        bad.write_bytes(_damaged(good.read_bytes(), kind))
        try:
            with load(bad, runtime):
                outcomes[kind] = "loaded"
        except EdgesmithError as e:
            assert "\n" not in str(e) and str(bad) in str(e), str(e)
            outcomes[kind] = "error"
    # a file whose container still parses may load (its checksum is what catches it in a bundle);
    # the rest must be refused, and nothing may kill the process
    assert outcomes["zero"] == outcomes["truncated"] == outcomes["head"] == outcomes["random"] == "error", outcomes


@pytest.mark.parametrize("suffix", sorted(CHECKS))
def test_container_check_refuses_garbage_of_each_format(tmp_path, suffix):
    for name, data in {"empty": b"", "random": os.urandom(4096), "text": b"hello world\n" * 50}.items():
        f = tmp_path / f"{name}{suffix}"
        f.write_bytes(data)
        with pytest.raises(EdgesmithError, match="re-export it or restore the original"):
            check_container(f)


def test_probe_turns_a_crash_in_the_child_into_an_error(tmp_path):
    f = tmp_path / "model.pte"
    f.write_bytes(b"x" * 64)
    with pytest.raises(EdgesmithError, match=r"crashed loading it \(signal 6\)"):
        probe_in_child(f, "executorch", os.abort)
    probe_in_child(f, "executorch", lambda: None)  # a clean load passes (and is remembered)
    probe_in_child(f, "executorch", os.abort)  # same content, same runtime: not probed again


def _tampered_bundle(tiny_run: Path, tmp_path: Path, fmt: str, data: bytes) -> Path:
    bundle = shutil.copytree(tiny_run / "bundle", tmp_path / "bundle")
    manifest = json.loads((bundle / "edgesmith.json").read_text())
    rel = manifest["formats"][fmt]["path"]
    (bundle / rel).write_bytes(data)
    import hashlib

    for c in manifest["checksums"]:  # checksums made to match: only the container check stands in the way
        if c["path"] == rel:
            c.update(size=len(data), sha256=hashlib.sha256(data).hexdigest())
    (bundle / "edgesmith.json").write_text(json.dumps(manifest))
    return bundle


def test_random_pte_with_matching_checksum_is_a_bundle_error_in_a_real_process(tiny_run, tmp_path):
    """The issue's case: ExecuTorch aborted the process (SIGABRT) in predict and load_bundle."""
    bundle = _tampered_bundle(tiny_run, tmp_path, "executorch", os.urandom(12000))
    np_in = tmp_path / "x.npy"
    import numpy as np

    np.save(np_in, np.zeros((2, 8, 8), np.float32))
    r = subprocess.run([sys.executable, "-m", "edgesmith.cli", "predict", str(bundle), str(np_in), "--runtime",
                        "executorch"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "not a valid ExecuTorch file" in lines[0] and "Traceback" not in r.stderr
    from edgesmith.bundle import load_bundle

    with pytest.raises(BundleError, match="not a valid ExecuTorch file"):
        load_bundle(bundle, "executorch")
