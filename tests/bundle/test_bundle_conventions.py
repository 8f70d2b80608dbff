"""What a bundle says about itself: which model each file is (one model, or the manifest
names the one that differs and why), the TensorRT entry labelled as what it is, and the
input conventions predict checks (a black-on-white digit fed to a white-on-black model)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from edgesmith.atomic import sha256_file
from edgesmith.bundle.conventions import image_conventions, inverted_warnings
from edgesmith.bundle.writer import engine_label, model_of, one_model
from edgesmith.cli import main
from edgesmith.pipeline.report import precision_label

QAT = ("qat", "qat")


def test_each_file_names_its_weights_and_a_qat_file_is_flagged_as_another_model():
    formats = {
        "onnx": {"model": model_of({"format": "onnx", "precision": "int8", "quantized_by": "qat"}, "lowrank", QAT)},
        "tflite": {"model": model_of({"format": "tflite", "precision": "int8"}, "lowrank", QAT)},
        "torchscript-lite": {"model": model_of({"format": "torchscript-lite", "precision": "fp32"}, "lowrank", QAT)},
    }
    assert formats["onnx"]["model"]["weights"] == "qat" and not formats["onnx"]["model"]["same_weights"]
    assert "QAT changes the weights" in formats["onnx"]["model"]["how"]
    assert formats["tflite"]["model"] == {"weights": "lowrank", "same_weights": True, "how": (
        "int8 of the lowrank weights by the tflite exporter (pt2e post-training quantization, calibrated on the "
        "calibration split)")}
    assert one_model(formats) == {"same_weights": False, "differing_formats": ["onnx"]}
    ptq = model_of({"format": "onnx", "precision": "int8", "quantized_by": "quantize"}, "lowrank", ("quantize", "quantize"))
    assert ptq["same_weights"] and "post-training quantization of the lowrank weights" in ptq["how"]


def test_tensorrt_is_labelled_as_its_engine():
    e = {"format": "tensorrt", "precision": "fp32", "engine_precision": "fp16", "engine_built": False}
    label = engine_label(e)
    assert label["precision"] == "fp16" and label["onnx_precision"] == "fp32" and not label["engine_built"]
    assert "the fp16 engine itself was not built or checked here" in label["parity_checked_on"]
    assert precision_label(e) == "fp16 engine (not built; parity: its fp32 ONNX)"
    assert precision_label({**e, "engine_built": True}) == "fp16 engine"
    assert precision_label({"format": "onnx", "precision": "int8"}) == "int8"


def _digits_like_bundle(root: Path) -> Path:
    """A real ONNX linear classifier over 1x8x8 images, in a bundle whose manifest says
    it was trained on light strokes on a dark background."""
    x = helper.make_tensor_value_info("pixel_values", TensorProto.FLOAT, ["batch", 1, 8, 8])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 10])
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((64, 10)).astype(np.float32), "w")
    shape = numpy_helper.from_array(np.array([-1, 64], np.int64), "shape")
    nodes = [helper.make_node("Reshape", ["pixel_values", "shape"], ["flat"]),
             helper.make_node("MatMul", ["flat", "w"], ["logits"])]
    model = helper.make_model(helper.make_graph(nodes, "lin", [x], [y], [w, shape]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    (root / "onnx").mkdir(parents=True)
    onnx.save(model, str(root / "onnx/model.onnx"))
    train = np.zeros((10, 8, 8))
    train[:, 2:6, 3:5] = 1.0  # bright strokes on black, like sklearn digits
    manifest = {
        "schema_version": 1, "task": "classification",
        "inputs": [{"name": "pixel_values", "shape": ["batch", 1, 8, 8], "dtype": "float32", "layout": "NCHW"}],
        "outputs": [{"name": "logits", "shape": ["batch", 10], "dtype": "float32", "meaning": "logits"}],
        "preprocessing": {"kind": "image", "layout": "NCHW", "channels": 1, "size": [8, 8], "mean": [0.3],
                          "std": [0.4], "input_range": [0.0, 1.0], "uint8_scale": 1 / 255,
                          "conventions": image_conventions(train, 1)},
        "labels": [str(i) for i in range(10)],
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime",
                             "precision": "fp32", "parity": {"passed": True}, "bundle_parity": {"passed": True}}},
        "checksums": [{"path": "onnx/model.onnx", "size": (root / "onnx/model.onnx").stat().st_size,
                       "sha256": sha256_file(root / "onnx/model.onnx")}],
    }
    (root / "edgesmith.json").write_text(json.dumps(manifest))
    return root


def test_conventions_and_the_inverted_input_warning(tmp_path: Path):
    conv = image_conventions(np.full((4, 8, 8), 0.2), 1)
    assert (conv["polarity"], conv["background"], conv["colour"]) == ("light-on-dark", "dark", "grayscale")
    manifest = {"preprocessing": {"size": [8, 8], "conventions": conv}}
    white_paper = np.full((8, 8), 255, np.uint8)
    white_paper[2:6, 3:5] = 0  # a dark stroke on white paper
    (w,) = inverted_warnings(white_paper, manifest)
    assert "looks inverted" in w and "invert it (255 - x) first" in w
    assert inverted_warnings(255 - white_paper, manifest) == [] and inverted_warnings("some text", manifest) == []

    bundle = _digits_like_bundle(tmp_path / "bundle")
    np.save(tmp_path / "seven.npy", white_paper)
    res = CliRunner().invoke(main, ["predict", str(bundle), str(tmp_path / "seven.npy")])
    assert res.exit_code == 0, res.output
    assert "warning: input 0 looks inverted" in res.stderr and "probability" in res.stdout
    np.save(tmp_path / "ok.npy", 255 - white_paper)
    res = CliRunner().invoke(main, ["predict", str(bundle), str(tmp_path / "ok.npy")])
    assert res.exit_code == 0 and "inverted" not in res.stderr


def _tiny_tflite(tmp_path: Path):
    """A real TFLite file (litert-torch export of a tiny ConvNet), an input and its output."""
    import pytest

    pytest.importorskip("litert_torch")
    import torch

    from edgesmith.conf.recipe import ExportConfig
    from edgesmith.export import get_exporter
    from edgesmith.models.cnn import ConvNet
    from edgesmith.models.tasks import ClassificationTask
    from edgesmith.runtimes import load

    torch.manual_seed(0)
    model = ConvNet(num_classes=10, in_channels=1, image_size=8, widths=[4, 8], pools=[True, True], hidden=16).eval()
    art = get_exporter("tflite")().export(model, (torch.randn(1, 1, 8, 8),), ClassificationTask(mean=[0.3], std=[0.4]),
                                          tmp_path / "tfl", ExportConfig())
    x = {"pixel_values": np.random.default_rng(0).standard_normal((1, 1, 8, 8)).astype(np.float32)}
    with load(art.path) as rt:
        return art, x, rt.run(x)[0]


def test_tflite_metadata_round_trip_leaves_the_graph_alone(tmp_path: Path):
    """A real TFLite file (litert-torch) gets the manifest's labels and normalisation in
    its metadata table and computes exactly what it did before."""
    from edgesmith.bundle.tflite_metadata import (
        bundle_metadata,
        read_tflite_metadata,
        write_tflite_metadata,
    )
    from edgesmith.runtimes import load

    art, x, before = _tiny_tflite(tmp_path)
    manifest = {"edgesmith": "0.1.0", "task": "classification", "labels": [str(i) for i in range(10)],
                "preprocessing": {"kind": "image", "mean": [0.3], "std": [0.4], "tokenizer": "never written",
                                  "conventions": image_conventions(np.zeros((2, 8, 8)), 1)}}
    assert read_tflite_metadata(art.path) is None
    write_tflite_metadata(art.path, bundle_metadata(manifest))
    meta = read_tflite_metadata(art.path)
    assert meta["labels"][7] == "7" and meta["preprocessing"]["mean"] == [0.3] and "tokenizer" not in meta["preprocessing"]
    assert meta["preprocessing"]["conventions"]["polarity"] == "light-on-dark"
    with load(art.path) as rt:
        np.testing.assert_array_equal(rt.run(x)[0], before)


def _external_buffers(path: Path) -> int:
    """Rewrite a .tflite so its weights sit after the flatbuffer at buffer ``offset``s, as
    litert-torch writes bigger models; returns how many buffers moved."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(path.read_bytes(), 0))
    moved = [b for b in model.buffers if b.data is not None and len(b.data)]
    blobs = [bytes(np.asarray(b.data, dtype=np.uint8)) for b in moved]
    for b, blob in zip(moved, blobs, strict=True):
        b.data, b.offset, b.size = None, 1 << 40, len(blob)  # placeholders: the fields exist, so the size is final

    def pack() -> bytes:
        builder = flatbuffers.Builder(1024)
        builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
        return bytes(builder.Output())

    head = pack()
    tail, pos = b"", -(-len(head) // 16) * 16
    for b, blob in zip(moved, blobs, strict=True):
        b.offset = pos + len(tail)
        tail += blob + b"\0" * (-len(blob) % 16)
    final = pack()
    assert len(final) == len(head)
    path.write_bytes(final + b"\0" * (pos - len(final)) + tail)
    return len(moved)


def test_tflite_metadata_keeps_weights_stored_at_buffer_offsets(tmp_path: Path):
    """The default MiniLM student's TFLite file keeps its weights after the flatbuffer; writing
    the metadata once dropped them (a 6.7 MB file became 0.46 MB that LiteRT refused to load)."""
    from edgesmith.bundle.tflite_metadata import read_tflite_metadata, write_tflite_metadata
    from edgesmith.runtimes import load

    art, x, before = _tiny_tflite(tmp_path)
    assert _external_buffers(art.path) >= 4
    with load(art.path) as rt:  # the rewritten file is a valid TFLite model computing the same
        np.testing.assert_array_equal(rt.run(x)[0], before)
    write_tflite_metadata(art.path, {"labels": ["a"]})
    assert read_tflite_metadata(art.path) == {"labels": ["a"]}
    with load(art.path) as rt:
        np.testing.assert_array_equal(rt.run(x)[0], before)
