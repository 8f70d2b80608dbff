"""Each shipped recipe's whole path (teacher -> distill -> ONNX + parity ->
benchmark) on a small real subset, asserting real numbers."""

from __future__ import annotations

import json

import pytest

import edgesmith

QUICK_BENCH = ["benchmark.iterations=5", "benchmark.min_seconds=0", "benchmark.warmup=1", "benchmark.paired_rounds=2"]


def _check_summary_shape(summary: dict) -> None:
    assert summary["schema"] == 1
    for entry in [summary["teacher"], *summary["stages"]]:
        assert {"name", "kind", "params", "size_bytes", "seconds", "metrics"} <= set(entry)
        assert entry["params"] > 0 and entry["size_bytes"] > 0
    for e in summary["exports"]:
        assert {"format", "precision", "path", "size_bytes", "parity"} <= set(e)
        assert {"max_abs_diff", "cosine", "agreement", "tolerance", "passed"} <= set(e["parity"])
    for b in summary["benchmarks"]:
        assert {"target", "runtime", "model", "threads", "batch", "latency_ms", "peak_rss_mb", "accuracy"} <= set(b)
        assert b["error"] is None, b["error"]
        assert 0 < b["latency_ms"]["p50"] <= b["latency_ms"]["p99"]


@pytest.mark.slow
def test_digits_quick(tmp_path, edgesmith_cache):
    s = edgesmith.run("digits-quick", tmp_path / "run", overrides=[
        *QUICK_BENCH, "benchmark.stages=all", "benchmark.runtimes=[torch,onnxruntime,litert]"])
    _check_summary_shape(s)
    teacher, (student, _, final, sens, quant, qat) = s["teacher"], s["stages"]
    assert [st["kind"] for st in s["stages"]] == ["distill", "prune", "lowrank", "sensitivity", "quantize", "qat"]
    # the sensitivity stage reports and passes the model on unchanged
    assert sens["params"] == final["params"] and sens["metrics"] == final["metrics"]
    table = json.loads((tmp_path / "run" / "04-sensitivity" / "sensitivity.json").read_text())
    assert [r["name"] for r in table["layers"]] == ["features.0", "features.4", "classifier.4"]
    assert table["columns"] == ["prune@0.5", "lowrank@0.5"]
    assert teacher["metrics"]["accuracy"] >= 0.95
    assert student["metrics"]["accuracy"] >= 0.90
    assert student["metrics"]["teacher_agreement"] >= 0.90
    assert student["params"] * 3 <= teacher["params"] and final["params"] * 20 <= teacher["params"]
    assert final["params"] < student["params"] and final["metrics"]["accuracy"] >= 0.85
    # the quantize stage: static int8 of the final model, scored in onnxruntime on the same split
    q, fp32_acc = quant["metrics"], final["metrics"]["accuracy"]
    assert quant["params"] == final["params"] and q["fp32_accuracy"] == pytest.approx(fp32_acc, abs=0.003)
    assert abs(q["accuracy"] - fp32_acc) <= 0.02 and q["sqnr_db"] > 20, (q, fp32_acc)
    # QAT from the same fp32 model (one epoch of fake-quant KD); its file is the one the onnx export ships
    qq = qat["metrics"]
    assert qq["fp32_accuracy"] == pytest.approx(fp32_acc, abs=0.003) and abs(qq["accuracy"] - fp32_acc) <= 0.03, qq
    onnx = s["exports"][0]
    assert onnx["format"] == "onnx" and onnx["precision"] == "int8" and onnx["parity"]["passed"]
    assert onnx["path"].startswith("07-export/") and onnx["quantized_by"] == "qat"
    # 2,594 parameters: the Q/DQ nodes outweigh the int8 weights, so no size test here (see the fashion and
    # MiniLM tests); what is checked is that the convs and Linears compute in int8
    assert set(onnx["compute_precision"]["int8"]) == {"Conv", "Gemm"}, onnx["compute_precision"]
    # vs the fp32 PyTorch model it was fine-tuned from: max diff 2.6, cosine 0.9973 (PTQ's file: 4.1, 0.9998)
    assert onnx["parity"]["max_abs_diff"] <= 6.0 and onnx["parity"]["cosine"] >= 0.99, onnx["parity"]
    assert onnx["parity"]["agreement"] >= 0.95, onnx["parity"]  # 64 samples: a near-tie flip is 1.6 points
    # tflite and executorch: pt2e int8 (export.precision), calibrated on the 64 calibration digits
    mobile = {e["format"]: e for e in s["exports"] if e["format"] in ("tflite", "executorch")}
    for e in mobile.values():
        print(f"\n{e['format']} {e['precision']}: {e['size_bytes']} B, parity {e['parity']}, {e['delegation']}")
        assert e["precision"] == "int8" and e["parity"]["passed"] and e["parity"]["cosine"] >= 0.999, e["parity"]
        assert e["parity"]["agreement"] >= 0.95 and e["quantization"]["calibration_samples"] == 64
    assert mobile["tflite"]["delegation"]["coverage"] == 1.0  # every node of the int8 file in XNNPACK
    assert mobile["executorch"]["delegation"]["coverage"] >= 0.9  # all but the flatten
    # every runtime scores the held-out split like PyTorch (fp32) or the qat stage (its int8 ONNX) does
    metrics = {st["name"]: st["metrics"] for st in [teacher, *s["stages"]]}
    for b in s["benchmarks"]:
        if b["precision"] == "int8" and b["runtime"] != "onnxruntime":  # the pt2e int8 .tflite of the fp32 model
            assert b["accuracy"] == pytest.approx(fp32_acc, abs=0.02), b
            continue
        # int8: the shipped QAT file; fp32 rows of the quantizers (and their -fp32 parents): the fp32 model
        ref = qq if b["precision"] == "int8" else {"accuracy": fp32_acc} if b["model"] in ("quantize", "qat") \
            else metrics.get(b["model"], {"accuracy": fp32_acc})
        assert b["accuracy"] == pytest.approx(ref["accuracy"], abs=0.003), b
    # the shipped int8 .tflite is measured as shipped, beside its fp32 parent (never ship a slower file);
    # the teacher and the stages before are fp32 files
    assert {b["model"]: b["precision"] for b in s["benchmarks"] if b["runtime"] == "litert"} == {
        "teacher": "fp32", "distill": "fp32", "prune": "fp32", "lowrank": "fp32", "qat-fp32": "fp32", "qat": "int8"}
    # benchmark.stages: all measures every weight-changing stage, each against the step before it
    order = ["teacher", "distill", "prune", "lowrank", "qat-fp32", "qat"]
    ort = [b for b in s["benchmarks"] if b["runtime"] == "onnxruntime"]
    assert sorted((b["model"], b["precision"]) for b in ort) == sorted(
        [(m, "fp32") for m in order[:-1]] + [("qat", "int8")])
    for b in ort[1:]:
        prev = order[order.index(b["model"]) - 1]
        assert b["previous"] == prev and isinstance(b["slower_than_previous"], bool), b
        assert b["speedup_vs_previous"] > 0
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["recipe"] == "digits-quick"


@pytest.mark.slow
def test_fashion_mnist_subset(tmp_path, edgesmith_cache):
    s = edgesmith.run("fashion-mnist", tmp_path / "run", overrides=[
        "data.splits.train=4000", "data.splits.eval=1000", "data.splits.calibration=64",
        "teacher.train.epochs=3", "stages.distill.epochs=3", "stages.prune.epochs=1", "stages.lowrank.epochs=1",
        "benchmark.runtimes=[onnxruntime]", *QUICK_BENCH,
    ])
    _check_summary_shape(s)
    assert [x["kind"] for x in s["stages"]] == ["distill", "prune", "lowrank", "quantize"]
    t, st = s["teacher"]["metrics"], s["stages"][0]["metrics"]
    assert t["accuracy"] >= 0.80, t
    assert st["accuracy"] >= 0.75, st
    assert st["teacher_agreement"] >= 0.80, st
    assert s["stages"][0]["params"] * 5 <= s["teacher"]["params"]
    pruned, factorized = s["stages"][1], s["stages"][2]
    assert pruned["params"] * 2.5 <= s["stages"][0]["params"]  # 40% of the channels of every conv: ~0.36 the weights
    assert factorized["params"] < pruned["params"] and factorized["metrics"]["accuracy"] >= st["accuracy"] - 0.05
    q, final = s["stages"][3]["metrics"], factorized["metrics"]
    assert abs(q["accuracy"] - final["accuracy"]) <= 0.02, (q, final)
    onnx = s["exports"][0]
    assert onnx["precision"] == "int8" and onnx["parity"]["passed"] and onnx["parity"]["agreement"] >= 0.95
    mobile = {e["format"]: e for e in s["exports"][1:]}
    assert {f: e["precision"] for f, e in mobile.items()} == {
        "tflite": "int8", "executorch": "int8", "torchscript-lite": "fp32"}
    assert all(e["parity"]["passed"] for e in mobile.values()), [e["parity"] for e in mobile.values()]
    # the slower-file rule read the int8 file and its fp32 parent timed run for run (20 pairs here)
    c = s["bundle"]["speed_choices"]["onnx"]
    assert c["run_for_run"]["pairs"] >= 20 and "run for run" in c["reason"], c
    lo, hi = c["run_for_run"]["ratio_ci"]
    assert 0 < lo <= c["run_for_run"]["ratio"] <= hi, c


@pytest.mark.slow
def test_minilm_sentiment_subset(tmp_path, edgesmith_cache):
    s = edgesmith.run("minilm-sentiment", tmp_path / "run", overrides=[
        "data.splits.train=300", "data.splits.eval=100", "data.splits.calibration=16",
        # the recipe distils once, in its lowrank stage (distill and prune epochs 0); on 300 texts this
        # test distils first and recovers after each cut at the gentle lr the mechanics were pinned with
        "probe.train=300", "probe.test=300", "stages.distill.epochs=2", "stages.prune.epochs=1",
        # the vocab stage, off in the shipped recipe (it keeps the teacher's tokenizer), on here: its
        # tokenizer switch and bundle in the default pipeline
        "stages.vocab.enabled=true",
        "stages.prune.lr=2e-4", "stages.lowrank.epochs=1", "stages.lowrank.lr=2e-4", "stages.lowrank.batch_size=32",
        "benchmark.runtimes=[onnxruntime,litert,executorch]",
        "benchmark.eval_samples=100", *QUICK_BENCH,
    ])
    _check_summary_shape(s)
    assert [x["kind"] for x in s["stages"]] == ["distill", "prune", "lowrank", "vocab", "quantize"]
    student, pruned, factorized, cut = (x["params"] for x in s["stages"][:4])
    # 4 layers x 60% of 1536 FFN neurons (922) x (384 in + 384 out + 1 bias); then 30522 x 384 -> 30522 x 128 + 128 x 384
    assert student - pruned == 4 * 922 * (384 + 384 + 1), (student, pruned)
    assert pruned - factorized == 30522 * 384 - (30522 * 128 + 128 * 384), (pruned, factorized)
    # the vocabulary of data.sources (eval split held out, min_count 1): rank-128 rows dropped, probe never used
    vocab = json.loads((tmp_path / "run" / "04-vocab" / "stage.json").read_text())
    assert factorized - cut == (30522 - vocab["vocab_after"]) * 128 and vocab["corpus"] == "sources", vocab
    assert vocab["corpus_max_abs_diff"] <= 1e-6 and vocab["oov"]["probe"]["dropped_token_rate"] < 0.05, vocab
    t, st = s["teacher"]["metrics"], s["stages"][0]["metrics"]
    assert 0.6 <= t["accuracy"] <= 1.0, t  # sentiment probe on real movie snippets
    # 300 texts are far too few to reach the full recipe's cosine (0.73 on 8,000);
    # what must hold: training reduces the KD loss and the student stays close
    fit = json.loads((tmp_path / "run" / "01-distill" / "stage.json").read_text())["fit"]
    assert fit["history"][1]["loss"] < fit["history"][0]["loss"], fit
    assert st["cosine_to_teacher"] >= 0.50, st
    assert st["accuracy"] >= t["accuracy"] - 0.12, (st, t)
    assert s["stages"][0]["params"] < s["teacher"]["params"]
    final = s["stages"][3]["metrics"]
    # the student keeps the teacher's last layer, whose FFN is cut too (60%); one epoch on 300 texts
    # regains part of it (measured 0.81 -> 0.64 after prune, lowrank and vocab)
    assert final["cosine_to_teacher"] >= st["cosine_to_teacher"] - 0.20, (final, st)
    q = s["stages"][4]["metrics"]  # dynamic int8: cosine to the fp32 model's outputs, then to the teacher
    assert q["cosine_to_fp32"] >= 0.99, q
    assert q["drop_points"] <= 1.0 and abs(q["accuracy"] - final["accuracy"]) <= 0.03, (q, final)
    onnx = s["exports"][0]
    assert onnx["precision"] == "int8" and onnx["scheme"] == "int8-dynamic"
    assert onnx["parity"]["passed"] and onnx["parity"]["cosine"] >= 0.99
    assert onnx["size_bytes"] * 3 <= onnx["fp32_size_bytes"]  # int8 embedding tables and MatMul weights
    # the mobile formats: dynamic int8 (tflite, executorch) within their tolerance of PyTorch
    mobile = {e["format"]: e for e in s["exports"][1:]}
    assert {f: e["precision"] for f, e in mobile.items()} == {
        "tflite": "int8-dynamic", "executorch": "int8-dynamic", "torchscript-lite": "fp32"}
    assert all(e["parity"]["passed"] for e in mobile.values()), [e["parity"] for e in mobile.values()]
    assert mobile["tflite"]["parity"]["cosine"] >= 0.99 and mobile["executorch"]["parity"]["cosine"] >= 0.99
    # tflite is static-shape: exported at the benchmark's 128 tokens (data.max_length is 64), so every
    # runtime is measured on the same inputs
    assert mobile["tflite"]["static_shapes"] == {"input_ids": [1, 128], "attention_mask": [1, 128]}
    assert mobile["executorch"]["dynamic_bounds"]["sequence"] == 128
    assert mobile["tflite"]["size_bytes"] * 2.5 <= onnx["fp32_size_bytes"]
    measured = {(b["runtime"], b["seq_len"]) for b in s["benchmarks"] if b.get("error") is None}
    assert {("onnxruntime", 128), ("litert", 128), ("executorch", 128)} <= measured, s["benchmarks"]
    # fidelity beyond the probe, for the teacher and every stage: p05 cosine and held-out WordNet retrieval
    # (1,973 synsets never in the corpus, each query among the glosses of its pool of about 500; the
    # teacher's R@1 is 33.9%)
    assert 0.2 <= t["retrieval_r1"] <= t["retrieval_r10"] <= 1.0, t
    for x in s["stages"]:
        m = x["metrics"]
        assert 0 <= m["retrieval_r1"] <= m["retrieval_r10"] <= 1 and m["cosine_to_teacher_p05"] <= m["cosine_to_teacher"], x
    manifest = json.loads((tmp_path / "run" / "bundle" / "edgesmith.json").read_text())
    fid = manifest["fidelity"]
    assert fid["final"] == "quantize" and set(fid["stages"]) == {"teacher", *(x["name"] for x in s["stages"])}
    assert fid["stages"]["vocab"]["retrieval_r1"] == s["stages"][3]["metrics"]["retrieval_r1"]
    # each stage's R@1 as a share of the teacher's on the same queries, with its paired 95% interval
    for x in s["stages"]:
        m = x["metrics"]
        assert m["retrieval_r1_vs_teacher"] == pytest.approx(m["retrieval_r1"] / t["retrieval_r1"]), m
        assert m["retrieval_r1_vs_teacher_lo"] <= m["retrieval_r1_vs_teacher"] <= m["retrieval_r1_vs_teacher_hi"], m
    lo, hi = fid["retrieval_r1_vs_teacher_ci"]
    assert lo <= fid["retrieval_r1_vs_teacher"] <= hi and hi - lo > 0.02, fid
    # never ship a slower file: each int8 file's fp32 parent was measured on its runtime and the rule decided
    choices = s["bundle"]["speed_choices"]
    assert {"onnx", "tflite", "executorch"} <= set(choices), choices
    for fmt, c in choices.items():
        # timed against its parent again: run for run (or, where a runtime cannot hold both, 2 rounds)
        assert c.get("run_for_run", {}).get("pairs", 0) >= 20 or len(c.get("quantized_p50_rounds_ms", [])) == 2, c
        shipped = manifest["formats"][fmt]["precision"]
        assert shipped == ("fp32" if c["shipped"] == "fp32" else mobile.get(fmt, onnx)["precision"]), (fmt, c)
