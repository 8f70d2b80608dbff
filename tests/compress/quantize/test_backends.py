"""edgesmith.compress.quantize.backend: one config type, one backend interface. The
registry holds the built-in backends, every preset and every mobile export precision
resolves to a QuantConfig that its backend accepts, a backend refuses the fields it
cannot honour, a backend registered from here is used, and the pt2e int8 export made
through the interface is byte for byte the one the hand-built quantizer made."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from edgesmith.compress.quantize import (
    BACKENDS,
    PRESETS,
    QuantBackend,
    QuantConfig,
    get_backend,
    preset,
    quantize,
    register_backend,
)
from edgesmith.compress.quantize.stage import QuantizeConfig
from edgesmith.conf.base import RecipeError
from edgesmith.conf.recipe import ExportConfig, load_recipe
from edgesmith.export import FORMATS, get_exporter
from edgesmith.models.cnn import ConvNet
from edgesmith.models.tasks import ClassificationTask

RECIPES = sorted((Path(__file__).parents[3] / "conf" / "recipes").glob("*.yaml"))
# backend -> the presets that exercise it (every registered backend needs an entry)
CASES = {"onnxruntime": ["x86", "x86-vnni", "x86-dynamic", "fp16"], "tensorrt": ["tensorrt"],
         "pt2e": ["xnnpack", "xnnpack-dynamic"], "litert": ["litert-fp16", "litert-dynamic"]}


def test_the_registry_lists_the_backends() -> None:
    assert {"onnxruntime", "pt2e", "tensorrt"} <= set(BACKENDS)
    assert set(BACKENDS) == set(CASES), "add a CASES entry for each registered backend"
    assert {n: get_backend(n).takes for n in BACKENDS} == {
        "litert": "torch", "onnxruntime": "onnx", "pt2e": "torch", "tensorrt": "onnx"}
    assert get_backend("tensorrt").precisions == ("int8",)


def test_every_preset_is_a_quant_config_its_backend_accepts() -> None:
    assert sorted(p for names in CASES.values() for p in names) == sorted(PRESETS)
    for backend, names in CASES.items():
        for name in names:
            config = preset(name)
            assert type(config) is QuantConfig and config.backend == backend
            assert QuantConfig.from_dict(config.to_dict()) == config


def test_mobile_precision_and_the_quantize_stage_share_one_config_type() -> None:
    mobile = ExportConfig(formats=["tflite"], precision={"tflite": "int8"}).quant_config("tflite")
    stage = QuantizeConfig(preset="x86").onnx_config(64)
    assert type(mobile) is type(stage) is QuantConfig
    assert mobile == preset("xnnpack")
    assert (mobile.backend, mobile.precision, mobile.per_channel, mobile.symmetric_weights,
            mobile.symmetric_activations, mobile.calibration) == ("pt2e", "int8", True, True, False, "histogram")
    assert (stage.backend, stage.precision, stage.reduce_range) == ("onnxruntime", "int8", True)
    assert ExportConfig(formats=["tflite"]).quant_config("tflite") is None  # fp32: nothing to quantize


def test_every_format_precision_resolves_to_a_preset() -> None:
    checked = 0
    for name, spec in FORMATS.items():
        if spec.gpu_only:  # TensorRT's engine precision is export.tensorrt_precision
            continue
        for precision in spec.tolerances:
            config = ExportConfig(formats=[name], precision={name: precision}).quant_config(name)
            if precision == "fp32":
                assert config is None
                continue
            assert config is not None, f"{name} {precision}: add it to the descriptor's quant_presets"
            assert config.precision == precision and get_backend(config.backend).takes == "torch"
            checked += 1
    assert checked == 5  # tflite fp16 / int8 / int8-dynamic, executorch int8 / int8-dynamic


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.stem)
def test_every_shipped_recipe_precision_resolves(path: Path) -> None:
    export = load_recipe(str(path)).export
    for fmt, precision in export.precision.items():
        config = export.quant_config(fmt)
        assert (config is None) == (precision == "fp32") and (config is None or config.precision == precision)


def test_a_backend_refuses_what_it_cannot_honour() -> None:
    with pytest.raises(RecipeError, match="^calibration: the pt2e backend's XNNPACK quantizers observe"):
        QuantConfig(precision="int8", backend="pt2e", calibration="minmax", min_sqnr_db=None)
    with pytest.raises(RecipeError, match="^symmetric_activations: the tensorrt backend supports True only"):
        preset("tensorrt", symmetric_activations=False)
    with pytest.raises(RecipeError, match="^precision: the litert backend makes fp16, int8-dynamic, not int8"):
        QuantConfig(precision="int8", backend="litert", min_sqnr_db=None)
    with pytest.raises(RecipeError, match="^calibration: the onnxruntime backend calibrates with"):
        preset("x86", calibration="histogram")
    with pytest.raises(RecipeError, match=r"^backend: unknown quantization backend 'pt2' \(did you mean 'pt2e'"):
        QuantConfig(precision="int8", backend="pt2")
    with pytest.raises(RecipeError, match="^preset: 'xnnpack' quantizes a model for a mobile format"):
        QuantizeConfig(preset="xnnpack")


@pytest.fixture
def toy_backend():
    """A backend registered for one test: int8 that rounds weights to 2 decimals."""
    before = dict(BACKENDS._items)

    @register_backend
    class Toy(QuantBackend):
        name, takes, precisions = "toy", "torch", ("int8",)
        only = {"reduce_range": False}

        def quantize(self, model, config, calibration=None, **options):
            for p in model.parameters():
                p.data = torch.round(p.data * 100) / 100
            return model

    yield Toy
    BACKENDS._items = before


def test_a_backend_registered_from_a_test_is_used(toy_backend) -> None:
    config = QuantConfig(precision="int8", backend="toy")
    model = torch.nn.Linear(3, 2)
    out = quantize(model, config)
    assert out is model and torch.equal(model.weight, torch.round(model.weight * 100) / 100)
    assert get_backend("toy").describe(config)["backend"] == "toy"
    with pytest.raises(RecipeError, match="^reduce_range: the toy backend supports False only"):
        QuantConfig(precision="int8", backend="toy", reduce_range=True)
    with pytest.raises(RecipeError, match="^precision: the toy backend makes int8, not fp16"):
        QuantConfig(precision="fp16", backend="toy")


@pytest.fixture(scope="module")
def digits() -> SimpleNamespace:
    """A seeded, untrained ConvNet of the digits shape and 64 real digits to calibrate on."""
    from sklearn.datasets import load_digits

    d = load_digits()
    task = ClassificationTask(mean=[0.3], std=[0.4])
    data = task.tensors(SimpleNamespace(x=d.images[:, None] / 16.0, y=d.target))
    torch.manual_seed(0)
    model = ConvNet(1, 10, widths=[8, 16], pools=[True, True], hidden=32, dropout=0.0, image_size=8).eval()
    calibration = [b.inputs for b in data.take(slice(0, 64)).batches(16)]
    return SimpleNamespace(model=model, task=task, example=task.prepare(data.take(slice(0, 2)).inputs),
                           calibration=calibration)


def _hand_built_xnnpack_quantizer(self, config, flavour="xnnpack"):
    """The quantizer export/executorch.py built inline before the backend interface."""
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False))


def test_pt2e_int8_export_is_byte_identical_to_the_hand_built_quantizer(digits, tmp_path, monkeypatch) -> None:
    pytest.importorskip("executorch")
    config = ExportConfig(formats=["executorch"], precision={"executorch": "int8"})

    def export(out: Path):
        return get_exporter("executorch")().export(digits.model, digits.example, digits.task, out, config,
                                                   calibration=digits.calibration)

    art = export(tmp_path / "interface")
    assert art.info["quantization"]["preset"] == "xnnpack"
    assert art.info["quantization"]["config"] == preset("xnnpack").to_dict()
    assert art.info["quantization"]["calibration_samples"] == 64
    monkeypatch.setattr(type(get_backend("pt2e")), "quantizer", _hand_built_xnnpack_quantizer)
    old = export(tmp_path / "hand-built")
    digest = [hashlib.sha256(a.path.read_bytes()).hexdigest() for a in (art, old)]
    assert digest[0] == digest[1]
