"""Sensitivity table and auto mode on real data: a small CNN trained on sklearn
digits (1,797 real 8x8 scans). The table's rows and columns are exact, the model
comes back bit for bit, each cell's savings are exact (checked against really
pruning / factorizing the layer), a whole layer costs more than a third of it,
auto mode keeps within its budget and records its plan, bad configs are one line."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesmith.compress.auto import AutoConfig, choose, nonzero_params
from edgesmith.compress.lowrank import LowRankConfig, factorize
from edgesmith.compress.prune import PruneConfig, prune
from edgesmith.compress.sensitivity import SensitivityConfig, sensitivity, sensitivity_table
from edgesmith.errors import RecipeError, StageError
from edgesmith.models import count_params
from edgesmith.models.cnn import ConvNet
from edgesmith.models.flops import count_flops
from edgesmith.models.io import clone_state
from edgesmith.models.tasks import ClassificationTask, TensorSet

COLUMNS = ["prune@0.3", "prune@0.5", "prune@0.7", "lowrank@0.5", "lowrank@k2"]
ROWS = ["features.0", "features.4", "classifier.2", "classifier.4"]


@pytest.fixture(scope="module")
def digits():
    return train_digits_cnn()


def train_digits_cnn():
    """(task, model, train, held-out): ConvNet widths 8/16, hidden 32, trained 12 epochs."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
    y = torch.tensor(y)
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    x, y = x[order], y[order]
    task = ClassificationTask([0.3], [0.4])
    x = (x - 0.3) / 0.4
    train, held = TensorSet((x[:1400],), y[:1400]), TensorSet((x[1400:],), y[1400:])
    torch.manual_seed(0)
    model = ConvNet(in_channels=1, num_classes=10, widths=[8, 16], pools=[True, True], hidden=32, dropout=0.0,
                    image_size=8)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(12):
        model.train()
        for b in train.batches(64, shuffle=True, generator=torch.Generator().manual_seed(_)):
            opt.zero_grad()
            nn.functional.cross_entropy(model(*b.inputs), b.labels).backward()
            opt.step()
    model.eval()
    acc = float((task.predict(model, held).argmax(-1) == held.labels).float().mean())
    assert acc >= 0.9, acc
    return task, model, train, held


@pytest.fixture(scope="module")
def table(digits):
    task, model, _, held = digits
    cfg = SensitivityConfig(include=["features.*", "classifier.*"], prune_ratios=[0.3, 0.5, 0.7],
                            lowrank_ratios=[0.5], lowrank_ranks=[2])
    return sensitivity(model, cfg, task, held)


def _cells(report, col):
    return {r["name"]: r["cells"][col] for r in report["layers"]}


def test_rows_and_columns_are_exact(table, digits):
    assert [r["name"] for r in table["layers"]] == ROWS
    assert table["columns"] == COLUMNS
    assert all(list(r["cells"]) == COLUMNS for r in table["layers"])
    assert table["metric"] == "accuracy" and table["samples"] == len(digits[3])
    # the output layer is never pruned structurally; every other cell is measured
    skipped = {(r["name"], c) for r in table["layers"] for c, cell in r["cells"].items() if "skipped" in cell}
    assert skipped == {("classifier.4", c) for c in COLUMNS[:3]}
    rendered = sensitivity_table(table)
    assert rendered.row_count == 4 and len(rendered.columns) == 3 + len(COLUMNS)


def test_the_model_comes_back_bit_for_bit(digits):
    task, model, _, held = digits
    before = clone_state(model)
    model.train()
    sensitivity(model, SensitivityConfig(prune_ratios=[0.5], lowrank_ranks=[1]), task, held)
    assert model.training, "the training flag is restored"
    model.eval()
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in model.modules())


@pytest.mark.parametrize("name", ["features.0", "features.4", "classifier.2"])
def test_structured_cells_match_really_pruning_the_layer(table, digits, name):
    task, model, train, held = digits
    cell = _cells(table, "prune@0.5")[name]
    pruned, _ = prune(model, PruneConfig(method="structured", sparsity=0.5, include=[name], epochs=0), task, train)
    assert cell["params_saved"] == count_params(model) - count_params(pruned)
    example = task.prepare(held.take(slice(0, 1)).inputs)
    assert cell["flops_saved"] == count_flops(model, example) - count_flops(pruned, example)
    acc = float((task.predict(pruned, held).argmax(-1) == held.labels).float().mean())
    assert cell["quality"] == pytest.approx(acc, abs=1.5 / len(held))  # emulated removal = real removal


def test_exact_counts_by_hand(table):
    c = _cells(table, "prune@0.5")
    assert c["features.0"]["params_saved"] == 4 * 9 + 2 * 4 + 16 * 4 * 9  # conv rows, BN scale+shift, next conv's inputs
    assert c["features.0"]["channels"] == "4/8"
    assert c["classifier.2"]["params_saved"] == 16 * 64 + 16 + 10 * 16  # rows, biases, output layer's columns
    assert _cells(table, "prune@0.3")["features.4"]["channels"] == "11/16"  # int(16 * 0.7), torch-pruning's count
    k2 = _cells(table, "lowrank@k2")["classifier.2"]
    assert (k2["rank"], k2["params_saved"], k2["flops_saved"]) == (2, 64 * 32 - 2 * 96, 2 * (64 * 32 - 2 * 96))


@pytest.mark.parametrize("name", ["features.4", "classifier.2", "classifier.4"])
def test_lowrank_cells_match_really_factorizing_the_layer(table, digits, name):
    task, model, _, held = digits
    cell = _cells(table, "lowrank@0.5")[name]
    small, report = factorize(model, LowRankConfig(ratio=0.5, include=[name], epochs=0))
    assert cell["rank"] == report["layers"][0]["rank"]
    assert cell["params_saved"] == count_params(model) - count_params(small)
    example = task.prepare(held.take(slice(0, 1)).inputs)
    assert cell["flops_saved"] == count_flops(model, example) - count_flops(small, example)
    acc = float((task.predict(small, held).argmax(-1) == held.labels).float().mean())
    assert cell["quality"] == pytest.approx(acc, abs=1.5 / len(held))


def test_more_removed_costs_more(table, digits):
    task, model, _, held = digits
    # structured: for the most sensitive layer the drop grows with the ratio (loosely: noise of one sample)
    worst = max(table["layers"][:3], key=lambda r: r["cells"]["prune@0.7"]["drop"])
    drops = [worst["cells"][c]["drop"] for c in COLUMNS[:3]]
    assert drops[2] > drops[0] + 0.02, drops
    assert drops[0] <= drops[1] + 1.5 / len(held) and drops[1] <= drops[2] + 1.5 / len(held), drops
    # unstructured: zeroing (almost) the whole layer costs far more than 30% of its smallest weights
    report = sensitivity(model, SensitivityConfig(include=["features.4"], prune_method="unstructured",
                                                  prune_ratios=[0.3, 0.99], lowrank_ratios=[]), task, held)
    c30, c99 = (report["layers"][0]["cells"][c] for c in ("prune@0.3", "prune@0.99"))
    assert c99["drop"] > c30["drop"] + 0.3, (c30, c99)
    assert c30["params_saved"] == round(0.3 * 16 * 8 * 9) and c30["flops_saved"] == 0
    assert "no FLOPs" in report["notes"][0]


def test_sentence_encoder_scores_cosine_to_the_unchanged_model(bert, text_data):
    task, data = text_data
    cfg = SensitivityConfig(include=["*layer.0.*"], prune_method="unstructured", prune_ratios=[0.5],
                            lowrank_ratios=[0.25])
    report = sensitivity(bert, cfg, task, data)
    assert report["metric"] == "cosine_to_teacher" and report["reference"] == "model"
    assert report["baseline"] == pytest.approx(1.0, abs=1e-6)
    names = [r["name"] for r in report["layers"]]
    assert len(names) == 6 and all(".layer.0." in n for n in names)  # q, k, v, attention out, FFN in, FFN out
    for row in report["layers"]:  # a random tiny BERT: attention is near uniform, so query / key barely matter
        for cell in row["cells"].values():
            assert -1e-6 <= cell["drop"] < 0.01 and cell["params_saved"] > 0
            assert cell["drop"] > 0 or row["name"].endswith(("query", "key"))
    tokens = int(data.inputs[1][0].sum())  # FLOPs of one sample: its tokens (after trimming the padding)
    ffn_in = next(r for r in report["layers"] if r["name"].endswith("intermediate.dense"))
    assert ffn_in["flops"] == 2 * 32 * 64 * tokens
    with pytest.raises(RecipeError, match=r"^prune_method: structured sensitivity covers Conv2d / Linear channels"):
        sensitivity(bert, SensitivityConfig(include=["*layer.0.*"]), task, data)


# ----------------------------------------------------------------------- auto
def test_auto_structured_prune_meets_the_param_budget(digits):
    task, model, train, held = digits
    cfg = PruneConfig(method="structured", epochs=1, batch_size=64, lr=1e-3,
                      auto={"budget": "params", "target": 0.6, "ratios": [0.25, 0.5, 0.75]})
    pruned, report = prune(model, cfg, task, train, held)
    auto, total = report["auto"], count_params(model)
    assert auto["total"] == total and auto["allowed"] == int(0.6 * total)
    assert auto["met"] and auto["after"] == count_params(pruned) <= auto["allowed"]
    assert auto["after"] == auto["predicted_after"]  # overlapping savings were added up exactly
    assert auto["plan"] and {p["name"] for p in auto["plan"]} <= {"features.0", "features.4", "classifier.2"}
    widths = {r["name"]: (r["out_before"], r["out_after"]) for r in report["layers"]}
    for p in auto["plan"]:  # the plan is what was applied
        before, after = widths[p["name"]]
        assert after == int(before * (1 - p["ratio"])) and p["setting"] == f"prune@{p['ratio']:g}"
    assert report["target_sparsity"] is None and "sensitivity" in auto
    acc = float((task.predict(pruned, held).argmax(-1) == held.labels).float().mean())
    assert acc >= 0.6, acc


def test_auto_unstructured_counts_nonzero_weights(digits):
    task, model, train, held = digits
    cfg = PruneConfig(epochs=0, auto={"target": 0.5, "max_drop": 0.2, "ratios": [0.3, 0.6, 0.9]})
    pruned, report = prune(model, cfg, task, train, held)
    auto = report["auto"]
    assert auto["allowed"] == int(0.5 * nonzero_params(model))
    assert auto["after"] == nonzero_params(pruned) <= auto["allowed"]
    assert all(p["drop"] <= 0.2 for p in auto["plan"])
    assert count_params(pruned) == count_params(model)  # the shapes stay


def test_auto_lowrank_meets_a_flop_budget(digits):
    task, model, train, held = digits
    cfg = LowRankConfig(epochs=0, auto={"budget": "flops", "target": 0.7, "ratios": [0.3, 0.6], "ranks": [1]})
    small, report = factorize(model, cfg, task, train, held)
    example = task.prepare(held.take(slice(0, 1)).inputs)
    auto = report["auto"]
    assert auto["total"] == count_flops(model, example)
    assert auto["after"] == count_flops(small, example) == auto["predicted_after"] <= auto["allowed"]
    assert {r["name"]: r["rank"] for r in report["layers"]} == auto["ranks"]


def _report(cells: dict[str, dict[str, tuple[float, int]]]) -> dict:
    layers = [{"name": n, "cells": {c: {"drop": d, "params_saved": s, "flops_saved": 0} for c, (d, s) in cs.items()}}
              for n, cs in cells.items()]
    return {"layers": layers, "metric": "accuracy", "baseline": 1.0}


def test_greedy_takes_the_cheapest_drop_per_parameter_first():
    report = _report({"a": {"p@0.5": (0.010, 100), "p@0.9": (0.100, 180)},
                      "b": {"p@0.5": (0.002, 100), "p@0.9": (0.003, 120)}})
    plan = choose(report, AutoConfig(target=0.85), 1000, None)  # save 150: b@0.5, b@0.9, then a@0.5
    assert [(p["name"], p["setting"]) for p in plan["plan"]] == [("a", "p@0.5"), ("b", "p@0.9")]
    assert plan["predicted_after"] == 1000 - 220 <= plan["allowed"] == 850
    plan = choose(report, AutoConfig(target=0.9), 1000, None)  # 100 is enough: the cheapest, b@0.5, alone
    assert [(p["name"], p["setting"]) for p in plan["plan"]] == [("b", "p@0.5")]
    with pytest.raises(StageError, match=r"^auto: cannot keep at most 0.5 of the model's params \(500 of 1000\)") as e:
        choose(report, AutoConfig(target=0.5, max_drop=0.05), 1000, None)
    assert "\n" not in str(e.value)


# --------------------------------------------------------------------- errors
@pytest.mark.parametrize(("cls", "raw", "message"), [
    (SensitivityConfig, {"prune_ratios": [0.3, 1.5]}, r"^stages\[2\]\.prune_ratios\[1\]: must be in \(0, 1\), got 1.5$"),
    (SensitivityConfig, {"lowrank_ratios": [0.0]}, r"^stages\[2\]\.lowrank_ratios\[0\]: must be in \(0, 1\), got 0.0$"),
    (SensitivityConfig, {"lowrank_ranks": [0]}, r"^stages\[2\]\.lowrank_ranks\[0\]: must be >= 1, got 0$"),
    (SensitivityConfig, {"prune_ratios": [], "lowrank_ratios": []}, r"^stages\[2\]\.prune_ratios: nothing to measure"),
    (SensitivityConfig, {"prune_method": "channels"}, r"^stages\[2\]\.prune_method: must be one of"),
    (SensitivityConfig, {"include": []}, r"^stages\[2\]\.include: needs at least one pattern"),
    (PruneConfig, {"auto": {}}, r"^stages\[2\]\.auto\.target: required key is missing$"),
    (PruneConfig, {"auto": {"target": 1.5}}, r"^stages\[2\]\.auto\.target: must be in \(0, 1\), got 1.5$"),
    (PruneConfig, {"auto": {"target": 0.5, "budget": "flops"}}, r"^stages\[2\]\.auto\.budget: unstructured sparsity"),
    (PruneConfig, {"auto": {"target": 0.5, "ranks": [4]}}, r"^stages\[2\]\.auto\.ranks: ranks are lowrank candidates"),
    (PruneConfig, {"auto": {"target": 0.5, "ratios": [2]}}, r"^stages\[2\]\.auto\.ratios\[0\]: must be in \(0, 1\)"),
    (LowRankConfig, {"ratio": 0.5, "auto": {"target": 0.5}}, r"^stages\[2\]\.ratio: auto chooses each layer's rank"),
])
def test_bad_configs_are_one_line(cls, raw, message):
    with pytest.raises(RecipeError, match=message) as e:
        cls.from_dict(raw, "stages[2]")
    assert "\n" not in str(e.value)


def test_configs_round_trip_and_load_from_a_recipe():
    for cfg in (SensitivityConfig(prune_ratios=[0.2], lowrank_ranks=[4], metric="teacher_agreement"),
                PruneConfig(method="structured", auto={"target": 0.4, "budget": "flops", "max_drop": 0.03}),
                LowRankConfig(auto={"target": 0.5, "ranks": [2, 4]})):
        assert type(cfg).from_dict(cfg.to_dict()) == cfg
    from edgesmith.conf.recipe import load_recipe

    recipe = load_recipe("digits-quick", ["stages.prune.auto.target=0.5", "stages.lowrank.ratio=null",
                                          "stages.lowrank.auto={target: 0.8, budget: flops}"])
    prune_cfg, lowrank_cfg = recipe.stage_configs[1], recipe.stage_configs[2]
    assert prune_cfg.auto == AutoConfig(target=0.5) and lowrank_cfg.auto.budget == "flops"
    assert [c.kind for c in recipe.stage_configs] == ["distill", "prune", "lowrank", "sensitivity", "quantize", "qat"]
    with pytest.raises(RecipeError, match=r"^--set stages.prune.auto.target=1.5: stages\[1\]\.auto\.target: must be in \(0, 1\), got 1.5$"):
        load_recipe("digits-quick", ["stages.prune.auto.target=1.5"])
    with pytest.raises(RecipeError, match=r"^--set stages.sensitivity.prune_ratios=\[1.0\]: stages\[3\]\.prune_ratios\[0\]: must be in \(0, 1\)"):
        load_recipe("digits-quick", ["stages.sensitivity.prune_ratios=[1.0]"])


def test_run_time_errors_are_one_line(digits):
    task, model, train, held = digits
    with pytest.raises(RecipeError, match=r"^include: \['nothing\.\*'\] .*matches no layer") as e:
        sensitivity(model, SensitivityConfig(include=["nothing.*"]), task, held)
    assert "\n" not in str(e.value)
    with pytest.raises(RecipeError, match=r"^metric: 'cosine_to_teacher' is not measured .* it measures accuracy"):
        sensitivity(model, SensitivityConfig(metric="cosine_to_teacher"), task, held)
    with pytest.raises(StageError, match=r"^prune: auto mode scores layers on held-out data; set val_fraction > 0$"):
        prune(model, PruneConfig(epochs=0, auto={"target": 0.5}), task, train, None)


def test_stage_error_names_the_stage_key(tmp_path, edgesmith_cache):
    """In a recipe, a selection matching nothing names the stage's key path."""
    import yaml

    import edgesmith
    from edgesmith.conf.recipe import RECIPES_DIR

    raw = yaml.safe_load((RECIPES_DIR / "digits-quick.yaml").read_text())
    raw["teacher"]["train"]["epochs"] = 3
    raw["stages"] = [{"kind": "sensitivity", "include": ["nothing.*"]}]
    raw["export"]["formats"] = []
    with pytest.raises(RecipeError, match=r"^stages\[0\]\.include: \['nothing\.\*'\] .*matches no layer") as e:
        edgesmith.run(raw, tmp_path / "run")
    assert "\n" not in str(e.value)
