"""Advanced PTQ: cross-layer equalization keeps the fp32 function and rescues
per-tensor int8 of a depthwise CNN with imbalanced channels, bias correction
removes the mean output shift of weight quantization, SmoothQuant keeps the fp32
function and raises static int8 SQNR of a BERT encoder with outlier channels,
the weight quantizer matches onnxruntime's bit for bit, skipped pairs are named,
and bad input stops with one line."""

from __future__ import annotations

import copy
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from edgesmith.compress.quantize.transforms import (
    SmoothedLinear,
    WeightQuant,
    correct_bias,
    equalize,
    smooth,
)
from edgesmith.errors import RecipeError
from edgesmith.models.cnn import ConvNet
from edgesmith.models.mobilenet import imbalance_channels, mobilenet_digits


def _sqnr(ref: torch.Tensor, out: torch.Tensor) -> float:
    return float(10 * torch.log10(ref.pow(2).sum() / (ref - out).pow(2).sum()))


@torch.no_grad()
def _fake_quant_weights(model: nn.Module, scheme: WeightQuant) -> nn.Module:
    """``model`` with every Conv/Linear weight quantized and dequantized by ``scheme``."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.weight.copy_(scheme.fake_quantize(m.weight))
    return model


@pytest.fixture(scope="module")
def digits() -> torch.Tensor:
    from sklearn.datasets import load_digits

    x = torch.tensor(load_digits().images[:256] / 16.0, dtype=torch.float32)[:, None]
    return (x - x.mean()) / x.std()


@pytest.fixture(scope="module")
def imbalanced() -> nn.Module:
    """The QAT benchmark's MobileNet-style CNN (random init, realistic BN statistics)
    with depthwise channels scaled 30x apart, compensated in the pointwise convs."""
    torch.manual_seed(0)
    model = mobilenet_digits()
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.running_mean.normal_(0, 0.1)
    return imbalance_channels(model.eval(), spread=30.0, seed=0).eval()


# ---------------------------------------------------------------- equalization

def test_equalize_keeps_fp32_and_rescues_per_tensor_weights(imbalanced, digits):
    eq, report = equalize(imbalanced, example_inputs=(digits,))
    folded, _ = equalize(imbalanced, iterations=0)  # BatchNorm folded, no equalization
    with torch.no_grad():
        ref = imbalanced(digits)
        assert float((eq(digits) - ref).abs().max()) < 1e-4 * float(ref.abs().max())
        per_tensor = WeightQuant(per_channel=False, reduce_range=True)
        before = _sqnr(ref, _fake_quant_weights(folded, per_tensor)(digits))
        after = _sqnr(ref, _fake_quant_weights(eq, per_tensor)(digits))
    print(f"\nper-tensor 7-bit weights, output SQNR: BN folded {before:.1f} dB, CLE {after:.1f} dB")
    assert after > before + 15 and after > 25
    # the four depthwise -> ReLU -> pointwise pairs; ReLU6 stops the others
    assert [(p["first"], p["second"]) for p in report["pairs"]] == [(f"{i}.0", f"{i}.3") for i in (3, 4, 5, 6)]
    assert all(p["between"] == ["BatchNorm (folded)", "ReLU"] for p in report["pairs"])
    assert all(p["range_ratio_before"] > 20 and p["range_ratio_after"] < p["range_ratio_before"] / 4
               for p in report["pairs"])
    assert len(report["folded_batchnorms"]) == 9
    assert len(report["skipped"]) == 5 and all("ReLU6" in s["reason"] for s in report["skipped"])
    assert report["fp32_max_abs_diff"] < 1e-4 * float(ref.abs().max())
    assert isinstance(imbalanced[3][1], nn.BatchNorm2d), "the model passed in is untouched"


def test_equalize_lifts_onnxruntime_per_tensor_int8(imbalanced, digits, tmp_path):
    """End to end: the x86 preset with per-tensor weights in onnxruntime."""
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.export import get_exporter
    from edgesmith.models.tasks import ClassificationTask
    from edgesmith.numeric import sqnr_db

    ort = pytest.importorskip("onnxruntime")
    task, cfg = ClassificationTask([0.0], [1.0]), SimpleNamespace(opset=18, dynamic_batch=True)
    feeds = [{"pixel_values": digits[i:i + 64].numpy()} for i in range(0, 256, 64)]
    eq, _ = equalize(imbalanced)
    sqnr = {}
    for name, m in (("plain", imbalanced), ("cle", eq)):
        fp32 = get_exporter("onnx")().export(m, (digits[:2].clone(),), task, tmp_path / name, cfg).path
        q = tmp_path / f"{name}.int8.onnx"
        quantize_onnx(fp32, q, preset("x86", per_channel=False, calibration_samples=256, min_sqnr_db=-1e9), feeds)
        ref = ort.InferenceSession(str(fp32)).run(None, {"pixel_values": digits.numpy()})[0]
        sqnr[name] = sqnr_db(ref, ort.InferenceSession(str(q)).run(None, {"pixel_values": digits.numpy()})[0])
    print(f"\nonnxruntime per-tensor int8 output SQNR: plain {sqnr['plain']:.1f} dB, CLE {sqnr['cle']:.1f} dB")
    assert sqnr["cle"] > sqnr["plain"] + 15 and sqnr["cle"] > 20


def test_equalize_through_pooling_flatten_and_linears():
    """A ConvNet (BN, ReLU, max-pool, Flatten, Dropout, two Linears): three pairs,
    the last one Linear -> ReLU -> Linear; Flatten maps a channel to its block of columns."""
    torch.manual_seed(0)
    net = ConvNet(1, 10, widths=[8, 16], pools=[True, True], hidden=32, image_size=8).eval()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.1, 5.0)
    x = torch.randn(16, 1, 8, 8)
    eq, report = equalize(net, example_inputs=(x,))
    assert [(p["first"], p["second"]) for p in report["pairs"]] == [
        ("features.0", "features.4"), ("features.4", "classifier.2"), ("classifier.2", "classifier.4")]
    assert report["pairs"][1]["between"] == ["BatchNorm (folded)", "ReLU", "MaxPool2d", "Flatten", "Dropout"]
    assert report["skipped"] == []
    with torch.no_grad():
        ref = net(x)
        assert float((eq(x) - ref).abs().max()) < 1e-4 * float(ref.abs().max())
    assert all(p["range_ratio_after"] <= p["range_ratio_before"] for p in report["pairs"])


class _Mixed(nn.Module):
    """One equalizable pair (grouped conv -> ReLU -> conv) and one of each thing that stops CLE."""

    def __init__(self):
        super().__init__()
        self.a = nn.Conv2d(4, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.c = nn.Conv2d(8, 8, 1)
        self.d = nn.Conv2d(8, 8, 1)
        self.e = nn.Conv2d(8, 8, 1)
        self.f = nn.Linear(8, 8)
        self.g = nn.Linear(8, 4)

    def forward(self, x):
        y = self.b(torch.relu(self.a(x)))        # a -> b: equalized (b is grouped)
        y = self.c(nn.functional.gelu(y))        # b -> c: GELU is not homogeneous
        z = self.d(y) + y                        # c's output branches (d and the residual add)
        z = self.e(z)                            # d -> add: a residual merge
        return self.g(nn.functional.silu(self.f(z.mean((2, 3)))))  # e -> mean; f -> SiLU -> g


def test_equalize_skips_what_is_not_exact_and_says_why():
    torch.manual_seed(0)
    net, x = _Mixed().eval(), torch.randn(2, 4, 6, 6)
    eq, report = equalize(net, example_inputs=(x,))
    assert [(p["first"], p["second"]) for p in report["pairs"]] == [("a", "b")]
    reasons = {s["first"]: s["reason"] for s in report["skipped"]}
    assert set(reasons) == {"b", "c", "d", "e", "f"}
    assert "gelu" in reasons["b"] and "not positively homogeneous" in reasons["b"]
    assert "read by 2 ops" in reasons["c"]
    assert "residual/branch merge" in reasons["d"]
    assert "silu" in reasons["f"]
    assert report["fp32_max_abs_diff"] < 1e-5


def test_clip_aware_equalization_across_relu6(digits):
    """With calibration data, pairs across a ReLU6 (MobileNetV2's activation) are equalized
    too: channels that reach the clip keep scale 1, the others stay below 6, so the fp32
    function is unchanged on that data."""
    torch.manual_seed(0)
    model = mobilenet_digits().eval()
    with torch.no_grad():  # realistic BatchNorm statistics and a few channels that clip
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.2, 3.0)
                m.weight.uniform_(0.5, 4.0)
    calibration = [(digits[i:i + 64],) for i in range(0, 192, 64)]
    held_out = digits[192:]
    plain, plain_report = equalize(model)
    eq, report = equalize(model, example_inputs=calibration[0], calibration=calibration)
    relu6 = [p for p in report["pairs"] if "ReLU6" in p["between"]]
    assert not any("ReLU6" in p["between"] for p in plain_report["pairs"])
    assert len(report["pairs"]) == len(plain_report["pairs"]) + len(relu6) and len(relu6) >= 3
    assert sum(p["clipping_channels"] for p in relu6) > 0, "the test needs channels that clip"
    assert report["fp32_max_abs_diff"] < 1e-4
    with torch.no_grad():
        ref, out = model(held_out), eq(held_out)
    assert float((ref - out).abs().max()) < 1e-3 * float(ref.abs().max())
    assert any(p["range_ratio_after"] < p["range_ratio_before"] * 0.8 for p in relu6)
    # a channel of the stem conv that clips on the calibration data keeps its weights (scale 1)
    folded, _ = equalize(model, iterations=0)
    assert relu6[0]["first"] == "0"
    with torch.no_grad():
        peak = torch.cat([folded[0](x) for (x,) in calibration]).transpose(0, 1).flatten(1).amax(1)
    clips = peak >= 6
    assert 0 < int(clips.sum()) == relu6[0]["clipping_channels"] < len(clips)
    assert torch.equal(eq[0].weight[clips], folded[0].weight[clips])
    assert not torch.equal(eq[0].weight[~clips], folded[0].weight[~clips])


def test_equalize_errors_are_one_line(bert):
    with pytest.raises(RecipeError, match=r"^equalize: Sequential has no Conv/Linear pair that can be equalized "
                                          r"exactly; 1 candidates skipped \(first: 0: ReLU6") as e:
        equalize(nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU6(), nn.Conv2d(4, 4, 1)))
    assert "\n" not in str(e.value)
    with pytest.raises(RecipeError, match=r"^equalize: torch.fx cannot trace SentenceEncoder .*; equalize needs a "
                                          r"traceable CNN: remove equalize for this model$") as e:
        equalize(bert)
    assert "\n" not in str(e.value)


# ------------------------------------------------------------ weight quantizer

@pytest.mark.parametrize("scheme", [WeightQuant(), WeightQuant(reduce_range=True), WeightQuant(per_channel=False),
                                    WeightQuant(symmetric=False), WeightQuant(symmetric=False, reduce_range=True)])
def test_weight_quantizer_matches_onnxruntime(scheme):
    from onnx import TensorProto
    from onnxruntime.quantization.quant_utils import quantize_data

    w = torch.randn(6, 5, 3, 3) * torch.logspace(-2, 1, 6)[:, None, None, None]
    qtype = TensorProto.INT8 if scheme.symmetric else TensorProto.UINT8
    rows = list(w.numpy()) if scheme.per_channel else [w.numpy()]
    expect = []
    for r in rows:
        zero, scale, q = quantize_data(r.ravel(), qtype, scheme.symmetric, scheme.reduce_range)
        expect.append(((q.astype(np.float32) - np.float32(zero)) * np.float32(scale)).reshape(r.shape))
    expect = np.stack(expect) if scheme.per_channel else expect[0]
    np.testing.assert_array_equal(scheme.fake_quantize(w).numpy(), expect)


# -------------------------------------------------------------- bias correction

def test_bias_correction_removes_the_mean_output_shift():
    """Per-tensor 7-bit weights of a conv and a Linear fed non-negative inputs shift
    the output means, and the conv's shift passes through the ReLU into the Linear's;
    corrected on calibration data, the shift on held-out data of the same
    distribution falls by more than 90%."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(8, 16, 3, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                        nn.Linear(16 * 6 * 6, 10)).eval()
    with torch.no_grad():
        net[0].weight.mul_(torch.logspace(-1, 1, 16)[:, None, None, None])  # a wide per-tensor range
    calib = [(torch.rand(32, 8, 6, 6) * 2,) for _ in range(4)]
    held_out = torch.rand(256, 8, 6, 6) * 2
    scheme = WeightQuant(per_channel=False, reduce_range=True)
    fixed, report = correct_bias(net, calib, scheme)
    with torch.no_grad():
        ref = net(held_out)
        plain = _fake_quant_weights(copy.deepcopy(net), scheme)(held_out)
        corrected = _fake_quant_weights(fixed, scheme)(held_out)
    before, after = (plain - ref).mean(0).norm(), (corrected - ref).mean(0).norm()
    print(f"\nmean output shift |E[y_q - y]|: {before:.4f} -> {after:.4f}")
    assert after < 0.1 * before
    assert [r["name"] for r in report["layers"]] == ["0", "3"] and report["layers"][0]["bias_created"]
    assert report["samples"] == 128 and net[0].bias is None, "the model passed in is untouched"



def test_bias_correction_passes_converge_to_the_one_pass_sweep(monkeypatch):
    """Batches that do not concatenate are corrected by whole-model passes; converged,
    they give the layer-by-layer sweep's biases (a ReLU chain five layers deep)."""
    from edgesmith.compress.quantize import transforms as ptq

    torch.manual_seed(0)
    net = nn.Sequential(*[m for _ in range(5) for m in (nn.Conv2d(6, 6, 3, padding=1), nn.ReLU())]).eval()
    calib = [(torch.rand(16, 6, 5, 5),) for _ in range(3)]
    scheme = WeightQuant(per_channel=False, reduce_range=True)
    sweep, one = correct_bias(net, calib, scheme)
    monkeypatch.setattr(ptq, "_concat", lambda batches: None)
    passes, many = correct_bias(net, calib, scheme)
    assert one["passes"] == 1 and many["converged"] and 2 < many["passes"] <= 6
    for a, b in zip(sweep.modules(), passes.modules(), strict=True):
        if isinstance(a, nn.Conv2d):
            torch.testing.assert_close(a.bias, b.bias, atol=2e-5, rtol=0)


# ----------------------------------------------------------------- SmoothQuant

@pytest.fixture(scope="module")
def outlier_bert():
    """A BERT-style encoder whose LayerNorms have a few outlier channels (gamma x30),
    as trained transformers do, and token batches to calibrate and test it on."""
    from transformers import BertConfig, BertModel

    from edgesmith.models.encoder import SentenceEncoder

    torch.manual_seed(0)
    config = BertConfig(vocab_size=100, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=32, attn_implementation="eager")
    model = SentenceEncoder(BertModel(config, add_pooling_layer=False)).eval()
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.LayerNorm) and not name.endswith("layer.1.output.LayerNorm"):
                m.weight[[3, 17, 40]] *= 30
    g = torch.Generator().manual_seed(0)

    def batch(n):
        ids = torch.randint(1, 100, (n, 16), generator=g)
        return ids, torch.ones_like(ids)

    return model, [batch(32) for _ in range(4)], batch(64)


def test_smoothquant_keeps_fp32_and_smooths_the_layernorm_groups(outlier_bert):
    model, calib, _ = outlier_bert
    smoothed, report = smooth(model, calib, alpha=0.5)
    with torch.no_grad():
        ref = model(*calib[0])
        assert float((smoothed(*calib[0]) - ref).abs().max()) < 1e-5
    by_first = {g["layers"][0]: g for g in report["groups"]}
    qkv = by_first["encoder.encoder.layer.0.attention.self.query"]
    assert qkv["layers"] == [f"encoder.encoder.layer.0.attention.self.{k}" for k in ("query", "key", "value")]
    assert qkv["input_from"] == "encoder.embeddings.LayerNorm" and qkv["smoothed"]
    assert qkv["act_range_ratio"] > 10 and qkv["smoothed_act_range_ratio"] < qkv["act_range_ratio"] / 3
    assert qkv["smoothed_sqnr_db"] > qkv["sqnr_db"] + 3
    ln_groups = [g for g in report["groups"] if g["input_from"]]
    assert len(ln_groups) == 4 and all(g["smoothed"] for g in ln_groups)  # QKV and FC1 of both layers
    q = smoothed.get_submodule("encoder.encoder.layer.0.attention.self.query")
    v = smoothed.get_submodule("encoder.encoder.layer.0.attention.self.value")
    assert isinstance(q, SmoothedLinear) and q.smooth_inv is v.smooth_inv, "QKV share one scale (one Mul)"
    assert type(model.get_submodule("encoder.encoder.layer.0.attention.self.query")) is nn.Linear


def test_smoothquant_raises_onnxruntime_static_int8_sqnr(outlier_bert, tmp_path):
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.export import get_exporter
    from edgesmith.models.tasks import EmbeddingTask
    from edgesmith.numeric import sqnr_db

    ort = pytest.importorskip("onnxruntime")
    model, calib, test = outlier_bert
    smoothed, _ = smooth(model, calib, alpha=0.5)
    task, cfg = EmbeddingTask(tokenizer=None, max_length=16), SimpleNamespace(opset=18, dynamic_batch=True)
    feeds = [{"input_ids": i.numpy(), "attention_mask": m.numpy()} for i, m in calib]
    test_feed = {"input_ids": test[0].numpy(), "attention_mask": test[1].numpy()}
    q_cfg = preset("x86", op_types=["MatMul"], float_op_outputs=["MatMul"], calibration_samples=128,
                   min_sqnr_db=-1e9)
    sqnr, muls = {}, {}
    for name, m in (("plain", model), ("smoothquant", smoothed)):
        fp32 = get_exporter("onnx")().export(m, tuple(t[:2].clone() for t in calib[0]), task, tmp_path / name,
                                             cfg).path
        q = tmp_path / f"{name}.int8.onnx"
        info = quantize_onnx(fp32, q, q_cfg, feeds)
        muls[name] = info["op_histogram"].get("Mul", 0)
        ref = ort.InferenceSession(str(tmp_path / "plain" / "model.onnx")).run(None, test_feed)[0]
        sqnr[name] = sqnr_db(ref, ort.InferenceSession(str(q)).run(None, test_feed)[0])
    print(f"\nstatic int8 (MatMul) output SQNR: plain {sqnr['plain']:.1f} dB, SmoothQuant {sqnr['smoothquant']:.1f} dB; "
          f"Mul ops {muls}")
    assert sqnr["smoothquant"] > sqnr["plain"] + 3
    assert 4 <= muls["smoothquant"] - muls["plain"] <= 8, "one Mul per smoothed group, QKV sharing one"


def test_smoothquant_errors_are_one_line():
    conv = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU())
    with pytest.raises(RecipeError, match=r"^smoothquant: Sequential has no Linear layer to smooth; smoothquant is "
                                          r"for transformers: remove it$"):
        smooth(conv, [(torch.randn(2, 1, 5, 5),)])
    with pytest.raises(RecipeError, match=r"^smoothquant: alpha must be in \[0, 1\], got 1.5$"):
        smooth(nn.Linear(4, 4), [(torch.randn(2, 4),)], alpha=1.5)

