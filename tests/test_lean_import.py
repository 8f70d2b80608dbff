"""`import edgesmith` (and the registries recipe validation uses) must not pull
in heavy runtimes or initialise CUDA."""

import subprocess
import sys

HEAVY = ["torch", "onnxruntime", "onnx", "ai_edge_litert", "executorch", "tensorrt", "transformers",
         "litert_torch", "tensorflow", "torchvision"]


def _loaded_after(code: str) -> list[str]:
    probe = f"{code}\nimport sys\nprint(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_import_edgesmith_is_lean():
    assert _loaded_after("import edgesmith") == []


def test_registries_are_lean():
    code = "import edgesmith.export, edgesmith.runtimes, edgesmith.data, edgesmith.errors, edgesmith.registry"
    assert _loaded_after(code) == []


def test_version_is_package_metadata():
    import edgesmith

    assert edgesmith.__version__.count(".") >= 2
