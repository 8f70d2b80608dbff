"""Compression-aware drift on Fashion-MNIST: a small CNN with BatchNorm trained for
one short pass over 6,000 images, exported to ONNX and statically quantized to int8
QDQ by onnxruntime (MinMax ranges on 256 training images). The bundle's profile
records the calibration ranges of its activation quantizers. The test split stays
inside them; salt-and-pepper pixels (a failing sensor) push the last quantized
layer's input out of its range and raise ``recalibrate``. Inverted and brightened
images drift, but measured here they stay inside every range (and the int8 file
still agrees with its fp32 parent on 99-100% of them), so they do not."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgesmith.atomic import sha256_file, write_json
from edgesmith.bundle import load_bundle
from edgesmith.bundle.loader import MANIFEST
from edgesmith.bundle.telemetry import DriftMonitor
from edgesmith.bundle.telemetry.calibration import calibration_probes

MEAN, STD = 0.286, 0.353


@pytest.fixture(scope="module")
def fashion(tmp_path_factory) -> SimpleNamespace:
    torch = pytest.importorskip("torch")
    from onnxruntime import quantization as q

    from edgesmith.bundle.profile import reference_profile
    from edgesmith.data.images import FASHION_DIR, _fashion

    if not FASHION_DIR.is_dir():
        pytest.skip("Fashion-MNIST missing: run ./setup.sh (Debian dataset-fashion-mnist)")
    data = _fashion(str(FASHION_DIR))
    train, test = data["train"], data["test"]
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3, padding=1), torch.nn.BatchNorm2d(16), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(16, 32, 3, padding=1), torch.nn.BatchNorm2d(32), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(32 * 49, 10))
    opt = torch.optim.Adam(net.parameters(), 3e-3)
    x = torch.from_numpy((np.asarray(train.x[:6000]) - MEAN) / STD).float()
    y = torch.from_numpy(np.asarray(train.y[:6000]))
    for i in range(0, 6000, 64):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(x[i : i + 64]), y[i : i + 64]).backward()
        opt.step()
    root = tmp_path_factory.mktemp("fashion") / "bundle"
    (root / "onnx").mkdir(parents=True)
    fp32 = root.parent / "fp32.onnx"
    torch.onnx.export(net.eval(), (x[:1],), str(fp32), dynamo=False, opset_version=17, input_names=["input"],
                      output_names=["logits"], dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})

    class Reader(q.CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"input": x[i : i + 32].numpy()} for i in range(0, 256, 32)])

        def get_next(self):
            return next(self.it, None)

    q.quantize_static(str(fp32), str(root / "onnx" / "model.onnx"), Reader(), quant_format=q.QuantFormat.QDQ,
                      activation_type=q.QuantType.QUInt8, weight_type=q.QuantType.QInt8)
    manifest = {
        "schema_version": 1, "task": "classification", "labels": [str(i) for i in range(10)],
        "inputs": [{"name": "input", "shape": ["batch", 1, 28, 28], "dtype": "float32", "layout": "NCHW"}],
        "outputs": [{"name": "logits", "shape": ["batch", 10], "meaning": "logits"}],
        "preprocessing": {"kind": "image", "layout": "NCHW", "channels": 1, "size": [28, 28], "mean": [MEAN],
                          "std": [STD], "uint8_scale": 1 / 255},
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime"}},
        "checksums": [{"path": "onnx/model.onnx", "size": (root / "onnx/model.onnx").stat().st_size,
                       "sha256": sha256_file(root / "onnx/model.onnx")}],
    }
    write_json(root / MANIFEST, manifest)
    with load_bundle(root) as b:
        manifest["reference_profile"] = reference_profile(b, train.subset(range(6000, 7000)), "eval")
    write_json(root / MANIFEST, manifest)
    return SimpleNamespace(bundle=root, test=np.asarray(test.x), manifest=manifest)


def _windows(fashion, x: np.ndarray, windows: int = 3, size: int = 200) -> list[dict]:
    monitor = DriftMonitor(sample_rate=1.0, window=size, keep=windows)
    with load_bundle(fashion.bundle, telemetry=monitor) as b:
        for w in range(windows):
            b.predict(x[w * size : (w + 1) * size])
    return list(monitor.reports)


def test_calibration_ranges_are_recorded(fashion) -> None:
    cal = fashion.manifest["reference_profile"]["calibration"]
    probes = cal["probes"]
    assert cal["file"] == "onnx/model.onnx" and 2 <= len(probes) <= 4
    assert probes[0]["tensor"] == "input"  # the model input's quantizer
    assert probes[0]["low"] <= -MEAN / STD + 0.05 and probes[0]["high"] >= (1 - MEAN) / STD - 0.05
    assert all(p["reference_rate"] < 0.01 for p in probes), probes
    assert calibration_probes(fashion.bundle.parent / "fp32.onnx") == []  # a float file has none


def test_test_split_does_not_ask_for_recalibration(fashion) -> None:
    reports = _windows(fashion, fashion.test)
    sat = [[s for s in r["statistics"] if s["metric"] == "saturation"] for r in reports]
    print("test split", [[(s["name"], s["value"], s["status"]) for s in ss] for ss in sat])
    assert all(r["status"] != "recalibrate" for r in reports)
    assert all(s["status"] == "ok" and s["value"] < 0.01 for ss in sat for s in ss)


@pytest.mark.parametrize("shift", ["inverted", "brightened"])
def test_shifted_images_drift_but_stay_inside_the_int8_ranges(fashion, shift) -> None:
    """Found, against the issue's target: with MinMax ranges of 256 training images
    (white garments included) this CNN's activations stay inside their ranges on
    inverted and brightened images (<= 0.2% of values outside), so no ``recalibrate``;
    the pixel and confidence statistics flag the shift as ``drift``."""
    x = 1 - fashion.test if shift == "inverted" else np.clip(fashion.test * 1.8 + 0.2, 0, 1)
    reports = _windows(fashion, x, windows=2)
    sat = [s for s in reports[0]["statistics"] if s["metric"] == "saturation"]
    print(shift, [(s["name"], s["value"], s["p_value"], s["status"]) for s in sat])
    assert [r["status"] for r in reports] == ["drift", "drift"]
    assert max(s["value"] for s in sat) <= 0.002 and all(s["status"] == "ok" for s in sat)


def test_salt_and_pepper_pixels_raise_recalibrate(fashion) -> None:
    rng = np.random.default_rng(0)
    x = fashion.test[:400].copy()
    hit = rng.random(x.shape) < 0.2  # a fifth of the pixels stuck black or white
    x[hit] = rng.integers(0, 2, int(hit.sum()))
    reports = _windows(fashion, x, windows=2)
    sat = {s["name"]: s for s in reports[0]["statistics"] if s["metric"] == "saturation"}
    print("salt and pepper", [(k, s["value"], s["p_value"], s["status"]) for k, s in sat.items()])
    assert [r["status"] for r in reports] == ["recalibrate", "recalibrate"]
    last = list(sat.values())[-1]  # the last quantized tensor: the logits, the Gemm's output
    assert last["status"] == "recalibrate" and last["value"] > 0.05 and last["p_value"] < 1e-6
    assert reports[0]["worst"] == last["name"]


def test_twenty_test_split_windows_raise_no_alarm(fashion) -> None:
    """The issue's in-distribution target: 0 alarms in 20 windows at the default settings."""
    reports = _windows(fashion, fashion.test, windows=20, size=200)
    statuses = [r["status"] for r in reports]
    print("fashion test windows", statuses, reports[0]["window"]["min_samples"])
    assert statuses == ["ok"] * 20 and reports[0]["window"]["min_samples"] <= 200
