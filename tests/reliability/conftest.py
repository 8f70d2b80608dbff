"""One tiny finished digits run (a 1-epoch teacher, a 1-epoch distilled student,
ONNX / TFLite / ExecuTorch / TorchScript-lite exports, a bundle) shared by the
reliability tests that need real stage folders and model files; tests copy it
before damaging anything."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from rel_helpers import TINY


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, edgesmith_cache) -> Path:
    """A finished run folder; never modify it (use :func:`copy_run`)."""
    import edgesmith

    out = tmp_path_factory.mktemp("tiny") / "run"
    edgesmith.run("digits-quick", out, overrides=TINY, device="cpu")
    return out


@pytest.fixture
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run in an empty folder, so anything written outside the run folder shows."""
    monkeypatch.chdir(tmp_path)
    os.environ.setdefault("EDGESMITH_CACHE", str(tmp_path / ".cache"))
    return tmp_path
