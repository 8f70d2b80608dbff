"""The "did it get faster" check: each benchmarked step against the step before it."""

from __future__ import annotations

from rich.console import Console

from edgesmith.pipeline.report import benchmarks_table, slower_notes, summary_table
from edgesmith.pipeline.steps import flag_slower_steps

ORDER = ["teacher", "distill", "prune", "lowrank", "quantize-fp32", "quantize"]


def _r(model: str, p50: float, ci: tuple[float, float] | None = None, runtime: str = "torch", **kw) -> dict:
    lat = {"p50": p50, **({"p50_ci": list(ci)} if ci else {})}
    return {"model": model, "runtime": runtime, "target": "cpu", "threads": 1, "batch": 1, "latency_ms": lat, **kw}


def test_flags_a_step_slower_than_the_one_before_beyond_noise() -> None:
    results = [
        _r("lowrank", 0.587, (0.581, 0.593)),  # the real digits-quick case: factorized convs, more launches
        _r("teacher", 0.476, (0.470, 0.480)),
        _r("distill", 0.200, (0.195, 0.205)),
        _r("prune", 0.190, (0.185, 0.209)),  # 5% faster: not a regression, not flagged
    ]
    flag_slower_steps(results, ORDER)
    by = {r["model"]: r for r in results}
    assert "previous" not in by["teacher"]
    assert by["distill"]["previous"] == "teacher" and by["distill"]["speedup_vs_previous"] == 2.38
    assert by["distill"]["slower_than_previous"] is False and by["prune"]["slower_than_previous"] is False
    # compared with prune (the step right before), not with the teacher it still beats
    assert by["lowrank"]["previous"] == "prune" and by["lowrank"]["slower_than_previous"] is True
    assert by["lowrank"]["speedup_vs_previous"] == round(0.190 / 0.587, 3)


def test_noise_is_not_a_regression() -> None:
    # 4% slower, or 10% slower with overlapping confidence intervals: within run-to-run noise
    a = [_r("teacher", 1.00, (0.98, 1.02)), _r("distill", 1.04, (1.03, 1.05))]
    b = [_r("teacher", 1.00, (0.90, 1.15)), _r("distill", 1.10, (1.05, 1.20))]
    c = [_r("teacher", 1.00), _r("distill", 1.10)]  # no CIs (a device tool's mean): the margin alone decides
    for results, slower in ((a, False), (b, False), (c, True)):
        flag_slower_steps(results, ORDER)
        assert results[1]["slower_than_previous"] is slower, results


def test_each_runtime_and_failed_or_missing_steps() -> None:
    results = [
        _r("teacher", 1.0, runtime="onnxruntime"), _r("teacher", 1.0),
        _r("quantize-fp32", 0.5, runtime="onnxruntime"),
        _r("quantize", 0.8, runtime="onnxruntime", precision="int8"),  # int8 slower than its fp32 parent
        _r("quantize", 0.7),  # torch measured no fp32 parent: compared with the teacher
        {"model": "distill", "runtime": "torch", "target": "cpu", "threads": 1, "batch": 1, "latency_ms": None,
         "error": "export failed"},
    ]
    flag_slower_steps(results, ORDER)
    q_ort, q_torch = results[3], results[4]
    assert (q_ort["previous"], q_ort["slower_than_previous"]) == ("quantize-fp32", True)
    assert (q_torch["previous"], q_torch["slower_than_previous"]) == ("teacher", False)
    assert "previous" not in results[5]

    summary = {"recipe": "digits-quick", "out": "runs/x", "teacher": {"name": "teacher"},
               "stages": [{"name": "quantize", "kind": "quantize"}], "benchmarks": results}
    assert slower_notes(summary) == [
        "quantize is 1.60x slower than quantize-fp32 on onnxruntime (cpu, 1 thread(s), batch 1)"]
    console = Console(width=200, record=True, color_system=None)
    console.print(summary_table(summary))
    console.print(benchmarks_table(summary))
    text = console.export_text()
    assert "0.800 ms ▲" in text and "▲ quantize is 1.60x slower than quantize-fp32" in text
    assert "0.62x vs quantize-fp32 (slower)" in text and "1.43x vs teacher" in text
