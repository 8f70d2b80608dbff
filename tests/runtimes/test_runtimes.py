"""edgesmith.runtimes: every registered runtime against the eager PyTorch model it came from."""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from edgesmith.errors import EdgesmithError, MissingExtraError
from edgesmith.export import get_exporter
from edgesmith.runtimes import RUNTIMES, Runtime, load, runtime_for
from edgesmith.runtimes.base import require
from edgesmith.runtimes.onnxruntime import OnnxRuntime
from edgesmith.runtimes.torch import TorchRuntime, _flatten

ATOL = 1e-5
# One file suffix per registered runtime: the contract tests below run on each.
CASES = {"onnxruntime": ".onnx", "torch": ".pt2"}
CASES.update({"litert": ".tflite", "executorch": ".pte", "torchscript-lite": ".ptl"})
# Formats written by edgesmith's own exporters (their files carry names and dynamic axes).
EXPORTED = {"tflite": ".tflite", "executorch": ".pte", "torchscript-lite": ".ptl"}
# GPU-only runtimes: their contract tests live beside their exporter (tests/export/test_tensorrt.py).
GPU_ONLY = {"tensorrt": ".engine"}
STATIC_BATCH = {"litert"}  # litert-torch converts static shapes (batch 1); the runtime loops


class CNN(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 4, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Linear(4 * 4 * 4, 10)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn(self.conv(image)))
        return self.head(torch.nn.functional.max_pool2d(x, 2).flatten(1))


class MLP(torch.nn.Module):
    """Token ids (int64) plus float features in; a dict of two outputs back."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = torch.nn.Embedding(50, 8)
        self.fc1 = torch.nn.Linear(8 + 3, 16)
        self.fc2 = torch.nn.Linear(16, 4)

    def forward(self, tokens: torch.Tensor, features: torch.Tensor) -> dict[str, torch.Tensor]:
        h = torch.relu(self.fc1(torch.cat([self.emb(tokens).mean(1), features], dim=1)))
        return {"logits": self.fc2(h), "hidden": h}


def _inputs(kind: str, batch: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    if kind == "cnn":
        return {"image": rng.standard_normal((batch, 1, 8, 8)).astype(np.float32)}
    return {
        "tokens": rng.integers(0, 50, (batch, 6)).astype(np.int64),
        "features": rng.standard_normal((batch, 3)).astype(np.float32),
    }


@dataclass
class _IoTask:
    """The part of a Task the exporters read: input/output names and the batch axis."""

    input_names: list[str]
    output_names: list[str]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {n: {0: "batch"} for n in self.input_names + self.output_names}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """Both models, eval mode, exported once to every runtime's format."""
    torch.manual_seed(0)
    out_dir = tmp_path_factory.mktemp("runtimes")
    built = {}
    for kind, model, names in (
        ("cnn", CNN(), (["image"], ["logits"])),
        ("mlp", MLP(), (["tokens", "features"], ["logits", "hidden"])),
    ):
        model.eval()
        example = _inputs(kind, 2)
        args = tuple(torch.from_numpy(v) for v in example.values())
        batch = torch.export.Dim("batch", min=1, max=1024)
        dyn = {n: {0: batch} for n in example}
        onnx_path = out_dir / f"{kind}.onnx"
        with warnings.catch_warnings():  # "axis name: batch will not be used": it is kept
            warnings.filterwarnings("ignore", "# The axis name", UserWarning)
            torch.onnx.export(
                model,
                args,
                str(onnx_path),
                dynamo=True,
                input_names=names[0],
                output_names=names[1],
                dynamic_shapes=dyn,
                verbose=False,
            )
        pt2_path = out_dir / f"{kind}.pt2"
        torch.export.save(torch.export.export(model, args, dynamic_shapes=dyn), str(pt2_path))
        built[kind] = {"model": model, ".onnx": onnx_path, ".pt2": pt2_path, "names": names}
        config = SimpleNamespace(dynamic_batch=True, max_batch=64)
        for fmt, suffix in EXPORTED.items():
            art = get_exporter(fmt)().export(model, args, _IoTask(*names), out_dir / f"{kind}-{fmt}", config)
            built[kind][suffix] = art.path
    return built


def _eager(model: torch.nn.Module, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
    with torch.inference_mode():
        out = model(*(torch.from_numpy(v) for v in inputs.values()))
    return [t.numpy() for t in _flatten(out)]


def test_every_registered_runtime_has_a_case() -> None:
    assert set(RUNTIMES) == set(CASES) | set(GPU_ONLY), "add a CASES entry (and model export) for each runtime"
    for name, suffix in {**CASES, **GPU_ONLY}.items():
        cls = RUNTIMES.get(name)
        assert issubclass(cls, Runtime) and cls.name == name and suffix in cls.suffixes


def test_import_is_lean() -> None:
    code = (
        "import sys, edgesmith.runtimes as r\n"
        "assert 'torch' in r.RUNTIMES and 'onnxruntime' in r.RUNTIMES and 'tflite' not in r.RUNTIMES\n"
        "assert 'did you mean' in r.RUNTIMES.unknown_message('onnxruntim')\n"
        "heavy = ['onnxruntime', 'torch', 'ai_edge_litert', 'executorch', 'tensorrt']\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("runtime", sorted(CASES))
@pytest.mark.parametrize("kind", ["cnn", "mlp"])
@pytest.mark.parametrize("batch", [1, 5])
def test_outputs_match_eager(models: dict, runtime: str, kind: str, batch: int) -> None:
    m = models[kind]
    inputs = _inputs(kind, batch, seed=batch)
    expected = _eager(m["model"], inputs)
    with load(m[CASES[runtime]], runtime=runtime) as rt:
        got = rt.run(inputs)
    assert len(got) == len(expected) == len(m["names"][1])
    for g, e in zip(got, expected, strict=True):
        assert isinstance(g, np.ndarray) and g.shape == e.shape and g.dtype == np.float32
        np.testing.assert_allclose(g, e, atol=ATOL, rtol=0)


@pytest.mark.parametrize("runtime", sorted(CASES))
def test_specs_names_dtypes_dynamic_batch(models: dict, runtime: str) -> None:
    with load(models["mlp"][CASES[runtime]], runtime=runtime) as rt:
        ins, outs = rt.inputs, rt.outputs
    assert [s.name for s in ins] == ["tokens", "features"]
    assert [s.dtype for s in ins] == ["int64", "float32"]
    assert [s.shape[1:] for s in ins] == [[6], [3]]
    assert [s.dtype for s in outs] == ["float32", "float32"]
    assert [s.shape[1:] for s in outs] == [[4], [16]]
    for s in ins + outs:
        if runtime in STATIC_BATCH:
            assert s.shape[0] == 1, s  # exported with batch 1; run() takes any batch
        else:
            assert isinstance(s.shape[0], str), s  # the dynamic batch dim is symbolic
    if runtime != "torch":  # these keep the names given at export
        assert [s.name for s in outs] == ["logits", "hidden"]
    if runtime in ("onnxruntime", "executorch", "torchscript-lite"):
        assert ins[0].shape[0] == "batch"


@pytest.mark.parametrize("runtime", sorted(CASES))
def test_int32_and_float64_inputs_are_cast(models: dict, runtime: str) -> None:
    inputs = _inputs("mlp", 3)
    loose = {
        "tokens": inputs["tokens"].astype(np.int32),
        "features": inputs["features"].astype(np.float64),
    }
    with load(models["mlp"][CASES[runtime]]) as rt:
        for a, b in zip(rt.run(inputs), rt.run(loose), strict=True):
            np.testing.assert_array_equal(a, b)


def test_load_picks_runtime_by_suffix(models: dict) -> None:
    assert runtime_for("a/b.ONNX") == "onnxruntime" and runtime_for("m.pt2") == "torch"
    with load(models["cnn"][".onnx"]) as a, load(models["cnn"][".pt2"]) as b:
        assert isinstance(a, OnnxRuntime) and isinstance(b, TorchRuntime)
    for runtime, suffix in CASES.items():
        assert runtime_for(f"m{suffix}") == runtime


def test_onnxruntime_session_options_honour_threads(models: dict) -> None:
    import onnxruntime as ort

    with load(models["cnn"][".onnx"], threads=2) as rt:
        opts = rt.session.get_session_options()
        assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (2, 1)
        assert opts.execution_mode == ort.ExecutionMode.ORT_SEQUENTIAL
        assert opts.graph_optimization_level == ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        assert rt.session.get_providers() == ["CPUExecutionProvider"]
    assert rt.closed and not hasattr(rt, "session")  # closed by the context manager
    with pytest.raises(EdgesmithError, match="the onnxruntime runtime was closed"):
        rt.run(_inputs("cnn", 1))


def test_onnx_files_include_external_data(models: dict, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(models["cnn"][".onnx"]))  # weights read back into the proto
    path = tmp_path / "cnn.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="weights.bin")
    with load(path) as rt:
        assert rt.files == [path, tmp_path / "weights.bin"]
        inputs = _inputs("cnn", 2)
        expected = _eager(models["cnn"]["model"], inputs)[0]
        np.testing.assert_allclose(rt.run(inputs)[0], expected, atol=ATOL, rtol=0)
    with load(models["cnn"][".pt2"]) as rt:
        assert rt.files == [models["cnn"][".pt2"]]


def test_torch_runtime_sets_threads(models: dict) -> None:
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        for suffix in (".pt2", ".ptl"):
            with load(models["cnn"][suffix], threads=2):
                assert torch.get_num_threads() == 2
            assert torch.get_num_threads() == 1, f"{suffix}: close() gives the process its thread count back"
    finally:
        torch.set_num_threads(before)


def test_flatten_nested_outputs() -> None:
    class ModelOutput(OrderedDict):  # HF ModelOutput is an OrderedDict without its None fields
        pass

    a, b, c = (torch.full((1,), float(i)) for i in range(3))
    out = ModelOutput(last_hidden_state=a, pooler=(b, None, {"x": c}))
    assert [t.item() for t in _flatten(out)] == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("runtime", [None, *sorted(CASES)])
def test_missing_file_is_one_clear_line(tmp_path: Path, runtime: str | None) -> None:
    path = tmp_path / "nope.onnx"
    with pytest.raises(EdgesmithError) as e:
        load(path, runtime=runtime)
    assert str(e.value) == f"{path}: no such model file"
    if runtime:
        with pytest.raises(EdgesmithError, match="no such model file"):
            RUNTIMES.get(runtime)(path)


@pytest.mark.parametrize("runtime", sorted(CASES))
def test_unloadable_file_names_file_and_runtime(tmp_path: Path, runtime: str) -> None:
    path = tmp_path / f"broken{CASES[runtime]}"
    path.write_bytes(b"this is not a model\n" * 10)
    with pytest.raises(EdgesmithError) as e:
        load(path)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{path}: the {runtime} runtime cannot load it: ")


def test_unknown_runtime_and_suffix(models: dict, tmp_path: Path) -> None:
    with pytest.raises(
        EdgesmithError, match=r"unknown runtime 'onnxruntim' \(did you mean 'onnxruntime'\?\)"
    ):
        load(models["cnn"][".onnx"], runtime="onnxruntim")
    odd = tmp_path / "model.bin"
    odd.write_bytes(b"x")
    with pytest.raises(EdgesmithError, match=r"no runtime loads '\.bin' files"):
        load(odd)


@pytest.mark.parametrize("runtime", sorted(CASES))
def test_wrong_inputs_are_one_clear_line(models: dict, runtime: str) -> None:
    with load(models["mlp"][CASES[runtime]]) as rt:
        with pytest.raises(
            EdgesmithError, match="missing input.s. features; unknown input.s. image"
        ):
            rt.run({"tokens": np.zeros((1, 6), np.int64), "image": np.zeros(1)})
        with pytest.raises(EdgesmithError, match=f"the {runtime} run failed: ") as e:
            rt.run({"tokens": np.zeros((1, 6), np.int64), "features": np.zeros((1, 7), np.float32)})
        assert "\n" not in str(e.value)


def test_missing_package_names_the_extra(models: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(MissingExtraError, match=r"pip install 'edgesmith\[tflite\]'"):
        require("edgesmith_no_such_package", "tflite")
    monkeypatch.setattr(OnnxRuntime, "backend", "onnxruntime_not_installed")
    with pytest.raises(MissingExtraError, match="onnxruntime_not_installed"):
        load(models["cnn"][".onnx"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="has a GPU")
def test_cuda_without_gpu_is_one_clear_line(models: dict) -> None:
    import onnxruntime as ort

    with pytest.raises(EdgesmithError, match="torch.cuda.is_available"):
        load(models["cnn"][".pt2"], device="cuda")
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        with pytest.raises(EdgesmithError, match="no CUDA provider .*onnxruntime-gpu"):
            load(models["cnn"][".onnx"], device="cuda")
    with pytest.raises(EdgesmithError, match="unknown device 'tpu'"):
        load(models["cnn"][".onnx"], device="tpu")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_torch_runtime_on_cuda_matches_eager(models: dict) -> None:
    inputs = _inputs("mlp", 4)
    expected = _eager(models["mlp"]["model"], inputs)
    with load(models["mlp"][".pt2"], device="cuda") as rt:
        for g, e in zip(rt.run(inputs), expected, strict=True):
            np.testing.assert_allclose(g, e, atol=1e-4, rtol=1e-4)
