"""prune and lowrank as pipeline stages: registered, exercised by digits-quick,
resumable (their skeletons rebuild the pruned / factorized structure so the
saved weights load exactly), and their errors name the stage."""

from __future__ import annotations

import json
import shutil

import pytest

import edgesmith
from edgesmith.compress.stage import stages
from edgesmith.conf.recipe import load_recipe
from edgesmith.errors import RecipeError
from edgesmith.pipeline.runner import Runner

STAGES = stages()

FAST = ["teacher.train.epochs=3", "stages.distill.epochs=3", "stages.prune.epochs=1", "stages.lowrank.epochs=1",
        "export.formats=[]"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, edgesmith_cache):
    out = tmp_path_factory.mktemp("digits") / "run"
    return out, edgesmith.run("digits-quick", out, overrides=FAST)


def _meta(out, name):
    return json.loads(next(out.glob(f"*-{name}/stage.json")).read_text())


def test_every_stage_kind_runs_in_digits_quick():
    # vocab prunes a tokenizer: tests/pipeline/test_vocab_stage.py runs it in a text recipe
    text_only = {k for k in STAGES if STAGES.get(k).switches_tokenizer}
    assert text_only == {"vocab"}
    assert set(STAGES) - text_only <= {c.kind for c in load_recipe("digits-quick").stage_configs}


def test_prune_then_lowrank_shrink_the_student(run):
    out, summary = run
    stages = {s["name"]: s for s in summary["stages"]}
    assert list(stages) == ["distill", "prune", "lowrank", "sensitivity", "quantize", "qat"]
    assert stages["distill"]["params"] == 13754
    assert stages["prune"]["params"] == 3682  # widths 16/32/64 -> 8/16/32, output layer kept
    assert stages["lowrank"]["params"] == 3682 - 32 * 64 + 10 * (32 + 64)  # classifier.2 at rank 10
    prune_meta, lowrank_meta = _meta(out, "prune"), _meta(out, "lowrank")
    assert [(r["out_before"], r["out_after"]) for r in prune_meta["layers"]] == [(16, 8), (32, 16), (64, 32), (10, 10)]
    assert prune_meta["size_after"]["gzip_bytes"] < prune_meta["size_before"]["gzip_bytes"]
    assert [(r["name"], r["rank"]) for r in lowrank_meta["layers"]] == [("classifier.2", 10)]
    for name in ("prune", "lowrank"):
        assert stages[name]["metrics"]["accuracy"] >= 0.6  # trained, not broken (a 3-epoch student here)


def test_rerun_reuses_every_stage(run):
    out, summary = run
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}
    assert len(mtimes) == 7
    again = edgesmith.run("digits-quick", out, overrides=FAST)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")} == mtimes
    assert again["stages"] == summary["stages"]


def test_skeletons_load_the_saved_weights_exactly(run):
    out, summary = run
    runner = Runner(load_recipe("digits-quick", FAST), out)
    model = runner.reload()
    lowrank = next(s for s in summary["stages"] if s["name"] == "lowrank")
    assert runner.ctx.evaluate(model, "lowrank") == lowrank["metrics"]  # quantize passes the model on


def test_run_time_errors_name_the_stage(run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(run[0], out)
    with pytest.raises(RecipeError, match=r"^stages\[2\]\.include: \['nothing\.\*'\] .*matches no layer"):
        edgesmith.run("digits-quick", out, overrides=[*FAST, "stages.lowrank.include=[nothing.*]"])
    with pytest.raises(RecipeError, match=r"^stages\[2\]\.rank: 40 is above the maximum rank 32 of layer 'classifier.2'"):
        edgesmith.run("digits-quick", out, overrides=[*FAST, "stages.lowrank.ratio=null", "stages.lowrank.rank=40"])
