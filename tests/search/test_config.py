"""Bad search: blocks fail in one line, before any training."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgesmith.conf.recipe import load_recipe
from edgesmith.errors import RecipeError

RECIPE = Path(__file__).with_name("tiny-search.yaml")


def _raw(**search):
    raw = yaml.safe_load(RECIPE.read_text())
    raw["search"].update(search)
    return raw


@pytest.mark.parametrize("search, key, words", [
    ({"space": {"stages.prune.sparsty": {"low": 0.1, "high": 0.5}}}, "search.space.stages.prune.sparsty",
     "did you mean 'sparsity'"),
    ({"space": {"stages.lowrank.ratio": {"low": 0.1, "high": 0.5}}}, "search.space.stages.lowrank.ratio",
     "no stage 'lowrank'"),
    ({"space": {"stages.prune.sparsity": {"low": 0.5, "high": 0.5}}}, "search.space.stages.prune.sparsity.high",
     "empty range"),
    ({"space": {"student.kwargs.hidden": {"choices": []}}}, "search.space.student.kwargs.hidden.choices",
     "empty list"),
    ({"space": {"stages.prune.sparsity": {"low": 0.5, "high": 1.5}}}, "search.space.stages.prune.sparsity",
     "value 1.5 gives an invalid recipe"),
    ({"objectives": [{"metric": "cosine"}]}, "search.objectives[0].metric", "needs an embedding task"),
    ({"objectives": [{"metric": "latency", "runtime": "litert"}]}, "search.objectives[0].runtime",
     "add tflite to export.formats"),
    ({"objectives": [{"metric": "speed"}]}, "search.objectives[0].metric", "must be one of"),
    ({"start": [{"stages.prune.epochs": 2}]}, "search.start[0].stages.prune.epochs", "not a key of search.space"),
    ({"start": [{"student.kwargs.hidden": 24}]}, "search.start[0].student.kwargs.hidden",
     "24 is not one of its choices [16, 32]"),
])
def test_bad_search_block_is_one_recipe_error(search, key, words):
    with pytest.raises(RecipeError) as e:
        load_recipe(_raw(**search))
    assert e.value.key == key
    assert words in str(e.value) and "\n" not in str(e.value)


def test_good_search_block_loads():
    r = load_recipe(str(RECIPE))
    assert [o.label() for o in r.search.objectives] == ["accuracy", "latency[cpu/onnxruntime]", "size",
                                                        "memory[cpu/onnxruntime]"]
    assert r.search.space["student.kwargs.hidden"].values() == [16, 32]


def test_unreachable_target_fails_before_training(tmp_path):
    """An ssh target that refuses the connection: exit 2, one line, nothing trained."""
    raw = _raw(objectives=[{"metric": "accuracy"}, {"metric": "latency", "target": "ssh://nobody@127.0.0.1:1"}])
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "edgesmith", "search", str(path), "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "search.objectives[1].target" in lines[0] and "unreachable" in lines[0]
    assert not out.exists()


def test_recipe_without_search_block_is_refused(tmp_path):
    from edgesmith.search.study import load_search

    raw = yaml.safe_load(RECIPE.read_text())
    del raw["search"]
    with pytest.raises(RecipeError, match="no 'search:' block"):
        load_search(raw)


def test_a_run_folder_from_older_code_resumes_and_a_changed_search_is_refused(tmp_path):
    """spec.json written before a recipe key existed (here: benchmark.paired_rounds) is the
    same search; a changed value is refused in one line that names it."""
    import json

    from edgesmith.errors import EdgesmithError
    from edgesmith.search.study import check_same_search

    r = load_recipe(str(RECIPE))
    spec = check_same_search(tmp_path, r)
    old = json.loads((tmp_path / "spec.json").read_text())
    assert old["base"]["benchmark"]["paired_rounds"] == 3 and spec["base"] == old["base"]
    del old["base"]["benchmark"]["paired_rounds"]
    (tmp_path / "spec.json").write_text(json.dumps(old))
    assert check_same_search(tmp_path, r)["base"]["benchmark"]["paired_rounds"] == 3
    r2 = load_recipe(_raw() | {"stages": [*_raw()["stages"][:1], {**_raw()["stages"][1], "epochs": 2},
                                          *_raw()["stages"][2:]]})
    with pytest.raises(EdgesmithError) as e:
        check_same_search(tmp_path, r2)
    assert "different base (at stages[1].epochs: 1 -> 2)" in str(e.value) and "\n" not in str(e.value)


def test_start_points_are_the_first_trials_of_a_new_study_only(tmp_path):
    """``search.start``: enqueued in a new study (a key left out is sampled), not again on resume."""
    from edgesmith.search.study import decode, distributions, enqueue_start, open_study

    cfg = load_recipe(_raw(start=[{"stages.prune.sparsity": 0.25, "student.kwargs.hidden": 16},
                                  {"student.kwargs.hidden": 32}])).search
    study = open_study(tmp_path, cfg)
    enqueue_start(study, cfg)
    first, second = (decode(cfg, study.ask(distributions(cfg)).params) for _ in range(2))
    assert first == {"student.kwargs.hidden": 16, "stages.prune.sparsity": 0.25}
    assert second["student.kwargs.hidden"] == 32 and second["stages.prune.sparsity"] in (0.25, 0.5)
    again = open_study(tmp_path, cfg)
    enqueue_start(again, cfg)  # resumed: it holds trials already, nothing more is queued
    assert len(again.get_trials(deepcopy=False)) == 2


def test_a_resumed_study_does_not_replay_the_first_draws(tmp_path):
    """A new process opening a study that holds trials seeds its sampler past them: its
    next draw is not the study's first draw again (the resume bug seen on Fashion-MNIST)."""
    from edgesmith.search.study import distributions, open_study

    cfg = load_recipe(_raw(space={"stages.prune.sparsity": {"low": 0.1, "high": 0.9}})).search
    first = open_study(tmp_path, cfg).ask(distributions(cfg)).params
    again = open_study(tmp_path, cfg).ask(distributions(cfg)).params  # as a resumed process would
    assert again != first
    fresh = open_study(tmp_path / "other", cfg).ask(distributions(cfg)).params
    assert fresh == first  # seeded: a new study draws the same first point
