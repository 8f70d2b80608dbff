"""The studies (``benchmarks/studies/``) are scripts, not library: no test imports one.
The compression study's chain planning is checked by running it as a process in its
``--plan`` mode, which prints the recipes it would run and exits."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edgesmith.conf.recipe import load_recipe, resolve_recipe_path

ROOT = Path(__file__).resolve().parents[2]


def _plan(*args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.studies.compress", "--plan", *args],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _raw(name: str) -> dict:
    return yaml.safe_load(resolve_recipe_path(name).read_text())


def test_no_test_and_no_library_module_imports_a_study():
    offenders = []
    for path in [*ROOT.joinpath("tests").rglob("*.py"), *ROOT.glob("*.py"), *ROOT.joinpath("benchmarks").glob("*.py"),
                 *ROOT.joinpath("pipeline").glob("*.py"), *ROOT.joinpath("models").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) else (
                [a.name for a in node.names] if isinstance(node, ast.Import) else [])
            offenders += [f"{path.relative_to(ROOT)}: {n}" for n in names if "benchmarks.studies" in n]
    assert offenders == []


def test_studies_are_not_in_the_wheel():
    import configparser

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read(ROOT / "setup.cfg")
    packages = cfg["options"]["packages"].split()
    assert "edgesmith.benchmarks" in packages and not [p for p in packages if "studies" in p]
    assert not [k for k in cfg["options.package_data"] if "studies" in k]
    assert (ROOT / "benchmarks/studies/results").is_dir() and not (ROOT / "benchmarks/results").exists()


def test_digits_quick_plan_keeps_its_own_stages_so_a_finished_run_is_reused():
    raw = _raw("digits-quick")
    out = _plan("--recipe", "digits-quick")["chain"]
    assert [s["kind"] for s in out["stages"]] == ["distill", "prune", "lowrank"]
    assert out["stages"] == raw["stages"][:3] and out["export"]["formats"] == []
    quick = _plan("--recipe", "digits-quick", "--quick")["chain"]
    assert [s["epochs"] for s in quick["stages"]] == [raw["stages"][0]["epochs"], 1, 1]


def test_fashion_mnist_plan_uses_its_own_prune_and_lowrank_and_branches_from_the_student():
    raw = _raw("fashion-mnist")
    own = {s["kind"]: s for s in raw["stages"]}
    plan = _plan("--recipe", "fashion-mnist", "--unstructured", "0.8")
    assert plan["chain"]["stages"][1:] == [own["prune"], own["lowrank"]]
    branch = load_recipe(plan["unstructured"]).stage_configs
    assert [c.kind for c in branch] == ["distill", "prune"]
    assert plan["unstructured"]["stages"][0] == plan["chain"]["stages"][0]  # reused from the main chain
    assert (branch[1].method, branch[1].scope, branch[1].sparsity, branch[1].schedule_steps) == (
        "unstructured", "global", 0.8, 4)


def test_a_recipe_without_prune_and_lowrank_gets_valid_defaults(tmp_path: Path):
    raw = _raw("fashion-mnist")
    raw["stages"] = [s for s in raw["stages"] if s["kind"] not in ("prune", "lowrank")]
    path = tmp_path / "no-prune.yaml"
    path.write_text(yaml.safe_dump(raw))
    stages = load_recipe(_plan("--recipe", str(path))["chain"]).stage_configs
    assert [c.kind for c in stages] == ["distill", "prune", "lowrank"]
    assert stages[1].method == "structured" and stages[2].include == ["classifier.2"]


@pytest.mark.parametrize("name", ["digits-quick", "fashion-mnist", "minilm-sentiment"])
def test_the_search_studies_fit_their_shipped_recipes(name):
    """A search study's block loads against the shipped recipe as it is now (every key path
    and every value checked), each value gives another recipe, and the MiniLM budget applies."""
    from edgesmith.search.trial import trial_recipe

    proc = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.studies.search", name, "--plan", "--trials",
                           "4"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    raw = json.loads(proc.stdout)
    r = load_recipe(raw)
    assert r.search.trials == 4 and r.search.space
    for key, p in r.search.space.items():
        seen = {yaml.safe_dump(load_recipe(trial_recipe(raw, {key: v})).to_dict()) for v in p.values()}
        assert len(seen) == len(p.values()), f"{key}: some values give the same recipe"
    base = load_recipe(trial_recipe(raw, {})).to_dict()
    if name == "minilm-sentiment":  # each trial distils 1 epoch over 8,000 texts, no shipped reference
        assert base["data"]["splits"]["train"] == 8000 and not r.search.shipped
        assert [s["epochs"] for s in base["stages"] if s["kind"] == "lowrank"] == [1]
    else:
        assert base["data"] == load_recipe(_raw(name)).to_dict()["data"] and r.search.shipped


def test_the_lowrank_distillation_curve_fits_the_default_recipe(tmp_path: Path):
    """``distill_curve --stage lowrank``: every point loads against the shipped default (every key
    path and value checked), no two points train alike, every point keeps all of the recipe's
    stages without export, and its ``b64-5ep`` point is the recipe's own distillation."""
    proc = subprocess.run([sys.executable, "-m", "edgesmith.benchmarks.studies.distill_curve", "--stage", "lowrank",
                           "--recipe", "minilm-sentiment", "--out", str(tmp_path), "--plan"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    points = json.loads(proc.stdout)
    shipped = load_recipe("minilm-sentiment").to_dict()

    def lowrank(r: dict) -> dict:
        return next(s for s in r["stages"] if s["kind"] == "lowrank")

    assert len(points) == 6 and lowrank(points["b64-5ep"]) == lowrank(shipped)
    assert lowrank(points["b64-5ep-dropout"]) == {k: v for k, v in lowrank(shipped).items() if k != "dropout"}
    assert len({json.dumps(lowrank(r), sort_keys=True) for r in points.values()}) == len(points)
    for r in points.values():
        assert [s["kind"] for s in r["stages"]] == [s["kind"] for s in shipped["stages"]] and r["export"]["formats"] == []
        assert r["data"] == shipped["data"]
