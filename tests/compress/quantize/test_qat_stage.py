"""The ``qat`` stage on real data (sklearn digits): a trained CNN is fine-tuned with
int8 fake quantization (pt2e, XNNPACKQuantizer) and KD from the teacher, converted,
exported to ONNX QDQ, scored in onnxruntime on the held-out split and shipped as
the run's ONNX export through the parity gate; bad input stops with one line."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

import edgesmith
from edgesmith.compress.quantize.qat import QatConfig, prepare_qat
from edgesmith.conf.recipe import RECIPES_DIR, load_recipe
from edgesmith.errors import RecipeError
from edgesmith.export.base import TIERS
from edgesmith.models.cnn import ConvNet

ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("torchao")
pytest.importorskip("executorch")


def _recipe(**stage) -> dict:
    """digits-quick's data and teacher (3 epochs, the teacher cache shared with the
    quantize-stage tests), then one short qat stage on the ~53k-parameter teacher."""
    raw = yaml.safe_load((RECIPES_DIR / "digits-quick.yaml").read_text())
    raw["teacher"]["train"]["epochs"] = 3
    raw["stages"] = [{"kind": "qat", "epochs": 2, "lr": 1e-3, **stage}]
    raw["export"]["formats"] = ["onnx"]
    raw["benchmark"].update(runtimes=["onnxruntime"], iterations=5, min_seconds=0, warmup=1)
    return raw


@pytest.fixture(scope="module")
def run(tmp_path_factory, edgesmith_cache):
    out = tmp_path_factory.mktemp("qat") / "run"
    summary = edgesmith.run(_recipe(), out)
    return out, summary, json.loads((out / "01-qat" / "stage.json").read_text())


def test_stage_yields_an_int8_qdq_onnx_within_two_points_of_fp32(run):
    out, summary, info = run
    q = out / info["path"]
    assert q.name == "model.int8.onnx" and q.is_file()
    assert not (out / "01-qat" / "model.safetensors").exists(), "the fp32 model passes on; no weights copy"
    ops = {n.op_type for n in onnx.load(str(q)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops and "BatchNormalization" not in ops
    assert info["quantization"]["compute_precision"]["int8"] == {"Conv": 2, "Gemm": 2}
    m, fp32 = info["metrics"], info["fp32_metrics"]
    print(f"\ndigits QAT: fp32 ONNX accuracy {fp32['accuracy']:.4f}, int8 QAT {m['accuracy']:.4f}, "
          f"size {info['fp32_size_bytes']} -> {info['size_bytes']} bytes ({info['size_ratio']:.2f}x), "
          f"SQNR {m['sqnr_db']} dB, fit {info['fit']['seconds']} s")
    assert fp32["accuracy"] == pytest.approx(summary["teacher"]["metrics"]["accuracy"], abs=0.003)
    assert fp32["accuracy"] >= 0.85
    assert abs(m["accuracy"] - fp32["accuracy"]) <= 0.02
    assert m["drop_points"] == pytest.approx(100 * (fp32["accuracy"] - m["accuracy"]), abs=1e-3)
    assert m["fp32_accuracy"] == fp32["accuracy"]
    assert m["cosine_to_fp32"] > 0.98 and m["sqnr_db"] > 10 and m["teacher_agreement"] >= 0.95
    # int8 weights, fp32 biases and per-channel scales, and the Q/DQ graph: 227 kB -> 99 kB
    assert info["size_ratio"] >= 2.2 and info["size_bytes"] == q.stat().st_size
    assert info["fit"]["epochs_run"] == 2 and 1 <= info["fit"]["best_epoch"] <= 2
    stage = summary["stages"][0]
    assert stage["kind"] == "qat" and stage["params"] == summary["teacher"]["params"]
    assert stage["size_bytes"] == info["size_bytes"] and stage["metrics"] == m


def test_export_ships_the_qat_file_through_the_parity_gate(run):
    out, summary, info = run
    (onnx_export,) = summary["exports"]
    assert onnx_export["format"] == "onnx" and onnx_export["precision"] == "int8"
    assert onnx_export["quantized_by"] == "qat"
    shipped = out / onnx_export["path"]
    assert shipped.read_bytes() == (out / info["path"]).read_bytes()
    parity = onnx_export["parity"]
    assert parity["passed"] and parity["tolerance"] == TIERS["int8"].to_dict()
    assert parity["cosine"] >= 0.99 and parity["agreement"] >= 0.95
    bench = {b["model"]: b for b in summary["benchmarks"]}
    assert set(bench) == {"teacher", "qat", "qat-fp32"}
    assert bench["qat"]["precision"] == "int8" and bench["qat"]["model_size_bytes"] == info["size_bytes"]
    assert bench["qat"]["accuracy"] == pytest.approx(info["metrics"]["accuracy"], abs=0.003)


def test_rerun_reuses_the_qat_file(run):
    out, summary, _ = run
    mtimes = {p: p.stat().st_mtime_ns for p in out.glob("*/**/*") if p.is_file()}
    again = edgesmith.run(_recipe(), out)
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/**/*") if p.is_file()} == mtimes
    assert again["stages"] == summary["stages"] and again["exports"] == summary["exports"]


def test_prepare_leaves_the_model_alone_and_excluded_layers_float():
    torch.manual_seed(0)
    net = ConvNet(widths=[8, 16], pools=[True, True], hidden=16, image_size=8).eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    x = torch.rand(4, 1, 8, 8)
    prepared = prepare_qat(net, QatConfig(exclude=["classifier.4"]), (x[:2],),
                           ({0: torch.export.Dim("batch", min=1, max=64)},))
    prepared.train()
    torch.optim.SGD(prepared.parameters(), lr=0.1).zero_grad()
    prepared(x).sum().backward()
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items()), "the input model is untouched"
    fq = [n for n, _ in prepared.named_modules() if "activation_post_process" in n]
    assert len(fq) >= 4  # input, conv/linear outputs: fake-quantized
    linears = [n for n in prepared.graph.nodes if n.target == torch.ops.aten.linear.default]
    last = linears[-1].args[1]  # the excluded classifier.4's weight is read as is, no fake quant
    assert last.op == "get_attr"
    assert linears[0].args[1].op == "call_module", "classifier.2's weight goes through a fake quant"


# ------------------------------------------------------------------- errors

@pytest.mark.parametrize(("stage", "message"), [
    ({"epochs": 0}, r"^<recipe>: stages\[0\]\.epochs: must be >= 1, got 0$"),
    ({"freeze_observers_epoch": 5}, r"^<recipe>: stages\[0\]\.freeze_observers_epoch: 5 is after the last epoch"),
    ({"op_types": ["LayerNorm"]}, r"^<recipe>: stages\[0\]\.op_types: \['LayerNorm'\] cannot be quantized by QAT"),
    ({"per_channel": "yes"}, r"^<recipe>: stages\[0\]\.per_channel: "),
])
def test_recipe_errors_are_one_line_with_the_key_path(stage, message):
    with pytest.raises(RecipeError, match=message) as e:
        load_recipe(_recipe(**stage))
    assert "\n" not in str(e.value)


def test_qat_must_come_last():
    raw = yaml.safe_load((RECIPES_DIR / "digits-quick.yaml").read_text())
    raw["stages"] = [s for s in raw["stages"] if s["kind"] != "qat"]  # digits-quick ends with one
    raw["stages"].insert(1, {"kind": "qat"})
    with pytest.raises(RecipeError, match=r"^<recipe>: stages\[1\]\.kind: a 'qat' stage passes the model on "
                                          r"unchanged, so stages\[2\] \(prune\) after it"):
        load_recipe(raw)


def test_unmatched_include_names_the_key(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run[0], out)
    with pytest.raises(RecipeError, match=r"^stages\[0\]\.include: \['nothing\*'\] .*matches no layer") as e:
        edgesmith.run(_recipe(include=["nothing*"]), out)
    assert "\n" not in str(e.value)
