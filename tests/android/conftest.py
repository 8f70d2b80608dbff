"""Bundles for the app tests, built by the bundle tests' own fixtures (a short digits run,
a MiniLM-tokenizer text bundle), and their golden vectors written by the Python side."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest


def _load(name: str, file: str):
    spec = importlib.util.spec_from_file_location(name, Path(__file__).parents[1] / "bundle" / file)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# fixtures of the bundle tests: a digits-quick bundle (ONNX) and a MiniLM-tokenizer text bundle
digits = _load("_edgesmith_tests_bundle_conftest", "conftest.py").digits
text = _load("_edgesmith_tests_bundle_telemetry", "test_telemetry.py").text

ANDROID_DEMO = Path(__file__).parents[2] / "android-demo"


@pytest.fixture(scope="module")
def goldens(digits, text, tmp_path_factory) -> SimpleNamespace:
    """Golden vectors of both bundles, with real samples for the drift reports: held-out
    digits as they are and inverted (drift), held-out fortunes and one-word texts (drift)."""
    from edgesmith.bundle.golden import write_golden

    out = tmp_path_factory.mktemp("golden")
    held = (np.asarray(digits.held.x) * 255).round().astype(np.uint8)
    image = write_golden(digits.bundle, out / "image.json", samples={"held": held, "inverted": 255 - held})
    texts = write_golden(text.bundle, out / "text.json", samples={"held": text.held, "short": text.short})
    return SimpleNamespace(image=out / "image.json", text=out / "text.json", image_data=image, text_data=texts,
                           digits=digits, texts=text)
