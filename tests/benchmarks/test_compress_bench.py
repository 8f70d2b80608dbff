"""The compression benchmark's plan: which steps it runs for each shipped CNN
recipe, and its table (the full run is `python -m edgesmith.benchmarks.compress`)."""

from __future__ import annotations

import yaml

from edgesmith.benchmarks.compress import DEFAULT_LOWRANK, DEFAULT_PRUNE, chain, table
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
    assert t.row_count == 4 and len(t.columns) == 9
