"""Never ship a slower file: two real int8 ONNX files of a small CNN and their fp32
parent, each measured in onnxruntime; the bundle's rule ships what measured faster
(beyond the p50 CIs) unless the recipe forces the quantized file."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesmith.benchmarks.stats import compare_latency
from edgesmith.bundle.choice import choose, speed_choices


def slower_beyond_ci(a: dict, b: dict) -> bool:
    """``a`` slower than ``b`` by the benchmarks' one rule (no harness overhead recorded here)."""
    return compare_latency(b, a) == "slower"


def test_rule_on_constructed_latencies():
    fast = {"p50": 1.0, "p50_ci": [0.95, 1.05]}
    slow = {"p50": 1.2, "p50_ci": [1.10, 1.30]}
    overlap = {"p50": 1.08, "p50_ci": [1.00, 1.15]}
    assert slower_beyond_ci(slow, fast) and not slower_beyond_ci(fast, slow)
    assert not slower_beyond_ci(overlap, fast)  # higher p50 but within the CIs: noise
    q = {"precision": "int8", "latency_ms": slow}
    c = choose(q, {"latency_ms": fast})
    assert c["shipped"] == "fp32" and not c["forced"] and "beyond the 95% CIs" in c["reason"]
    assert choose(q, {"latency_ms": fast}, force=True) | {"reason": ""} == c | {
        "shipped": "int8", "forced": True, "reason": ""}
    assert choose({"precision": "int8", "latency_ms": overlap}, {"latency_ms": fast})["shipped"] == "int8"


def test_interleaved_rounds_call_a_file_slower_only_when_every_round_agrees():
    fast, slow = {"p50": 1.0, "p50_ci": [0.99, 1.01]}, {"p50": 1.5, "p50_ci": [1.49, 1.51]}
    q = {"precision": "int8", "latency_ms": slow}
    # one timing each says slower beyond the CIs; the rounds (drift: 1.5 then 0.98) overrule it
    c = choose(q, {"latency_ms": fast}, rounds=([1.5, 0.98, 1.4], [1.0, 1.0, 1.0]))
    assert c["shipped"] == "int8" and "in 2 of 3 interleaved rounds" in c["reason"]
    assert c["quantized_p50_rounds_ms"] == [1.5, 0.98, 1.4] and c["fp32_p50_rounds_ms"] == [1.0, 1.0, 1.0]
    c = choose(q, {"latency_ms": fast}, rounds=([1.5, 1.2, 1.4], [1.0, 1.1, 1.0]))
    assert c["shipped"] == "fp32" and "in 3 of 3 interleaved rounds" in c["reason"]
    # 4% above in every round: inside the 5% margin
    assert choose(q, {"latency_ms": fast}, rounds=([1.04, 1.04], [1.0, 1.0]))["shipped"] == "int8"
    # every round slower, but by less than the timing loop's own overhead
    q_over = {**q, "protocol": {"overhead_ms": 0.5}}
    c = choose(q_over, {"latency_ms": fast}, rounds=([1.3, 1.3], [1.0, 1.0]))
    assert c["shipped"] == "int8" and "harness overhead" in c["reason"]
    # timed run for run: read before the rounds; slower only when the ratio's whole CI is beyond 5%
    pair = {"ratio": 1.3, "ratio_ci": [1.2, 1.4], "pairs": 300, "quantized_p50_ms": 1.3, "fp32_p50_ms": 1.0}
    c = choose(q, {"latency_ms": fast}, rounds=([0.9, 0.9], [1.0, 1.0]), pair=pair)
    assert c["shipped"] == "fp32" and "run for run" in c["reason"] and c["run_for_run"]["ratio"] == 1.3
    assert "quantized_p50_rounds_ms" not in c
    c = choose(q, {"latency_ms": fast}, pair={**pair, "ratio": 1.06, "ratio_ci": [1.03, 1.09]})
    assert c["shipped"] == "int8" and "not slower than its fp32 parent beyond 5%" in c["reason"]
    assert choose(q_over, {"latency_ms": fast}, pair=pair)["shipped"] == "int8"  # 1.0 ms x 0.3 under 0.5 ms
    # a failed round leaves one pair: back to the one-timing rule (slower beyond the CIs)
    c = choose(q, {"latency_ms": fast}, rounds=([1.5, None], [1.0, 1.0]))
    assert c["shipped"] == "fp32" and "95% CIs" in c["reason"] and "quantized_p50_rounds_ms" not in c


@pytest.fixture(scope="module")
def cnn_files(tmp_path_factory):
    """A small CNN on 1x28x28: its fp32 ONNX, a static int8 QDQ file (the pipeline's x86
    preset, calibrated) and a dynamic int8 one (ConvInteger: slow on x86 CPUs)."""
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.conf.recipe import ExportConfig
    from edgesmith.export import get_exporter
    from edgesmith.models.cnn import ConvNet
    from edgesmith.models.tasks import ClassificationTask

    out = tmp_path_factory.mktemp("speed")
    torch.manual_seed(0)
    model = ConvNet(in_channels=1, num_classes=10, widths=[16, 32], pools=[True, True], hidden=32).eval()
    x = torch.randn(2, 1, 28, 28)
    art = get_exporter("onnx")().export(model, (x,), ClassificationTask([0.0], [1.0]), out / "fp32", ExportConfig())
    calib = [{"pixel_values": np.random.default_rng(i).standard_normal((8, 1, 28, 28)).astype(np.float32)}
             for i in range(4)]
    static = quantize_onnx(art.path, out / "static.onnx", preset("x86"), calib)
    dynamic = quantize_onnx(art.path, out / "dynamic.onnx", preset("x86-dynamic", op_types=["Conv"]), calib)
    return art.path, out / "static.onnx", out / "dynamic.onnx", (static, dynamic)


def _measure(path) -> dict:
    from edgesmith.benchmarks.latency import measure

    r = measure(path, "onnxruntime", {"pixel_values": np.zeros((1, 1, 28, 28), np.float32)}, threads=1,
                warmup=20, iterations=300, min_seconds=0.5)
    assert r["error"] is None, r["error"]
    return r["latency_ms"]


def test_bundle_ships_what_measured_faster(cnn_files):
    fp32, static, dynamic, infos = cnn_files
    assert {i["compute_precision"].get("int8", {}).get("Conv") for i in infos} >= {2}  # both really compute int8
    lat = {"fp32": _measure(fp32), "static": _measure(static), "dynamic": _measure(dynamic)}
    parent = {"format": "onnx", "precision": "fp32", "runtime": "onnxruntime", "path": "fp32/model.onnx",
              "parity": {"passed": True}}
    for kind in ("static", "dynamic"):
        shipped = {"format": "onnx", "precision": "int8", "runtime": "onnxruntime", "path": f"{kind}.onnx",
                   "parity": {"passed": True}}
        bench = {"fp32_parents": {"onnx": parent}, "benchmarks": [
            {"model": "teacher", "runtime": "onnxruntime", "precision": "fp32", "latency_ms": {"p50": 9.0}},
            {"model": "quantize", "runtime": "onnxruntime", "precision": "int8", "latency_ms": lat[kind]},
            {"model": "quantize-fp32", "runtime": "onnxruntime", "precision": "fp32", "latency_ms": lat["fp32"]}]}
        files, choices = speed_choices([shipped], bench)
        slower = slower_beyond_ci(lat[kind], lat["fp32"])
        assert files == [parent if slower else shipped], (kind, lat)
        assert choices["onnx"]["shipped"] == ("fp32" if slower else "int8")
        assert choices["onnx"]["quantized_p50_ms"] == lat[kind]["p50"]
        # the recipe forces the quantized file: it is shipped whatever the measurement
        files, choices = speed_choices([shipped], bench, force=True)
        assert files == [shipped] and choices["onnx"]["forced"] == slower
    # dynamic int8 convolutions (ConvInteger) run several times slower than fp32 here: always swapped
    assert slower_beyond_ci(lat["dynamic"], lat["fp32"]), lat
    # an export with no measured fp32 parent is shipped as it is, with no decision
    assert speed_choices([parent], {"benchmarks": []}) == ([parent], {})


def test_interleaved_rounds_of_two_real_files(cnn_files):
    """The benchmark step's re-timing (A, B, A, B in fresh processes) of a file that is
    really slower (dynamic int8 convolutions) and of one that is not (static QDQ)."""
    from edgesmith.benchmarks.targets import measure_interleaved

    fp32, static, dynamic, _ = cnn_files
    x = {"pixel_values": np.zeros((1, 1, 28, 28), np.float32)}
    d, s, f = measure_interleaved("cpu", [dynamic, static, fp32], "onnxruntime", x, rounds=3, warmup=20,
                                  iterations=200, min_seconds=0.3)
    assert len(d) == len(s) == len(f) == 3 and all(v and v > 0 for v in d + s + f)
    bench = {"latency_ms": {"p50": 1.0}}
    assert choose({"precision": "int8", **bench}, bench, rounds=(d, f))["shipped"] == "fp32", (d, f)
    # static QDQ: several times faster than ConvInteger in every round
    assert all(a * 2 < b for a, b in zip(s, d, strict=True)), (s, d)


def test_run_for_run_of_two_real_files(cnn_files):
    """What the benchmark step runs on this machine: each int8 file timed against its fp32
    parent in one process, read by the rule."""
    from edgesmith.benchmarks.paired import compare_files

    fp32, static, dynamic, _ = cnn_files
    x = {"pixel_values": np.zeros((1, 1, 28, 28), np.float32)}
    bench = {"latency_ms": {"p50": 1.0}}
    for kind, path in (("dynamic", dynamic), ("static", static)):
        r = compare_files(path, fp32, "onnxruntime", x, pairs=300, min_seconds=0.3)
        assert r["error"] is None, r["error"]
        pair = {"ratio": r["ratio"], "ratio_ci": r["ratio_ci"], "pairs": r["pairs"],
                "quantized_p50_ms": r["a_ms"]["p50"], "fp32_p50_ms": r["b_ms"]["p50"]}
        c = choose({"precision": "int8", **bench}, bench, pair=pair)
        if kind == "dynamic":  # ConvInteger: several times slower than fp32 here
            assert r["verdict"] == "slower" and c["shipped"] == "fp32", (r["ratio"], r["ratio_ci"])
        else:
            assert c["shipped"] == ("fp32" if r["verdict"] == "slower" else "int8"), c
