"""The compression benchmark's plan: which steps it runs for each shipped CNN
recipe, and its table (the full run is `python -m edgesmith.benchmarks.compress`)."""

from __future__ import annotations

import yaml

from edgesmith.benchmarks.compress import (
    DEFAULT_LOWRANK,
    DEFAULT_PRUNE,
    chain,
    regressions,
    table,
    unstructured_chain,
)
from edgesmith.conf.recipe import load_recipe, resolve_recipe_path


def _raw(name: str) -> dict:
    return yaml.safe_load(resolve_recipe_path(name).read_text())


def test_digits_quick_keeps_its_own_stages_so_a_finished_run_is_reused():
    raw = _raw("digits-quick")
    out = chain(raw)
    assert [s["kind"] for s in out["stages"]] == ["distill", "prune", "lowrank"]
    assert out["stages"] == raw["stages"][:3] and out["export"]["formats"] == []
    assert [c.kind for c in load_recipe(out).stage_configs] == ["distill", "prune", "lowrank"]
    quick = chain(raw, quick=True)
    assert [s["epochs"] for s in quick["stages"]] == [raw["stages"][0]["epochs"], 1, 1]


def test_fashion_mnist_uses_its_own_prune_and_lowrank():
    raw = _raw("fashion-mnist")
    own = {s["kind"]: s for s in raw["stages"]}
    assert chain(raw)["stages"][1:] == [own["prune"], own["lowrank"]]


def test_a_recipe_without_them_gets_default_prune_and_lowrank():
    raw = _raw("fashion-mnist")
    raw["stages"] = [s for s in raw["stages"] if s["kind"] not in ("prune", "lowrank")]
    out = chain(raw)
    assert out["stages"][1:] == [DEFAULT_PRUNE, DEFAULT_LOWRANK]
    recipe = load_recipe(out)  # the defaults are valid stages
    assert recipe.stage_configs[1].method == "structured" and recipe.stage_configs[2].include == ["classifier.2"]


def test_table_has_one_row_per_step():
    rows = [{"step": s, "params": p, "onnx_bytes": 4 * p + 900, "gzip_bytes": 3 * p, "flops": 10 * p,
             "p50_ms": 0.1, "metrics": {"accuracy": 0.9}, "onnxruntime_accuracy": 0.9}
            for s, p in (("teacher", 50000), ("distill", 4000), ("prune", 1000), ("lowrank", 900))]
    t = table({"recipe": "digits-quick", "protocol": "p", "eval_samples": 360, "rows": rows})
    assert t.row_count == 4 and len(t.columns) == 10
    assert [c._cells for c in t.columns][2] == ["-"] * 4  # no nonzero count recorded


def test_unstructured_branch_starts_from_the_distilled_student():
    raw = _raw("fashion-mnist")
    out = unstructured_chain(raw, 0.8)
    assert [s["kind"] for s in out["stages"]] == ["distill", "prune"]
    assert out["stages"][0] == chain(raw)["stages"][0]  # the same distill step: reused from the main chain
    prune = load_recipe(out).stage_configs[1]
    assert (prune.name, prune.method, prune.scope, prune.sparsity, prune.schedule_steps) == (
        "unstructured", "unstructured", "global", 0.8, 4)
    assert load_recipe(unstructured_chain(raw, 0.8, quick=True)).stage_configs[1].schedule_steps == 2


def test_branch_row_is_not_compared_with_the_chain():
    rows = [{"step": s, "params": p, "nonzero_params": nz, "branch": b, "onnx_bytes": 4 * p, "gzip_bytes": 3 * nz,
             "flops": 10 * p, "p50_ms": 0.1, "p50_runs_ms": [0.1], "metrics": {"accuracy": 0.9},
             "onnxruntime_accuracy": 0.9}
            for s, p, nz, b in (("teacher", 50000, 50000, False), ("distill", 4000, 4000, False),
                                ("unstructured", 4000, 800, True))]
    assert regressions(rows) == []  # the branch's bigger file is not "bigger than the step before"
    t = table({"recipe": "digits-quick", "protocol": "p", "eval_samples": 360, "rows": rows})
    cells = [c._cells for c in t.columns]
    assert cells[0][2] == "unstructured (from distill)" and cells[2][2] == "800 (80% zero)"
