"""Recipe validation: the shipped recipes load; bad ones give one line naming the
key path, exit code 2, and no traceback."""

from __future__ import annotations

import copy
import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgesmith.cli import main
from edgesmith.conf.recipe import RECIPES_DIR, apply_override, load_recipe
from edgesmith.errors import RecipeError

SHIPPED = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))
BASE = yaml.safe_load((RECIPES_DIR / "digits-quick.yaml").read_text())


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_recipes_load_and_round_trip(name):
    r = load_recipe(name)
    again = load_recipe(r.to_dict())
    assert again.to_dict() == r.to_dict()
    assert r.stage_configs, "every shipped recipe has at least one stage"


def test_three_shipped_recipes():
    assert {"minilm-sentiment", "fashion-mnist", "digits-quick"} <= set(SHIPPED)


def _set(d: dict, path: str, value):
    apply_override(d, f"{path}={yaml.safe_dump(value, default_flow_style=True).strip()}")


def _mut(*pairs):
    def f(d):
        for path, value in pairs:
            _set(d, path, value)
        return d

    return f


def _drop(*keys):
    def f(d):
        node = d
        for k in keys[:-1]:
            node = node[k]
        del node[keys[-1]]
        return d

    return f


BAD = {
    "unknown top key": (lambda d: {**d, "stagse": []}, "stagse: unknown key; did you mean 'stages'?"),
    "bad teacher source": (_mut(("teacher.source", "torchvison")), "teacher.source: must be one of"),
    "missing teacher": (_drop("teacher"), "teacher: required key is missing"),
    "empty sources": (_mut(("data.sources", [])), "data.sources: needs at least one source"),
    "unknown source": (_mut(("data.sources[0].name", "fashion")), "data.sources[0].name: unknown data source 'fashion'"),
    "zero limit": (_mut(("data.sources[0].limit", 0)), "data.sources[0].limit: must be >= 1, got 0"),
    "eval fraction > 1": (_mut(("data.splits.eval", 1.5)), "data.splits.eval: a fraction must be in (0, 1], got 1.5"),
    "negative count": (_mut(("data.splits.calibration", -3)), "data.splits.calibration: a count must be >= 1"),
    "bad eval_from": (_mut(("data.splits.eval_from", "offical")), "data.splits.eval_from: must be one of"),
    "missing stage kind": (lambda d: {**d, "stages": [{"epochs": 1}]}, "stages[0].kind: required key is missing"),
    "unknown stage kind": (_mut(("stages[0].kind", "prnue")), "stages[0].kind: unknown stage kind 'prnue'"),
    "wrong type": (_mut(("stages[0].epochs", "three")), "stages[0].epochs: expected an integer, got 'three'"),
    "alpha out of range": (_mut(("stages[0].alpha", 1.5)), "stages[0].alpha: must be in [0, 1], got 1.5"),
    "zero temperature": (_mut(("stages[0].temperature", 0)), "stages[0].temperature: must be > 0, got 0"),
    "unknown stage key": (_mut(("stages[0].tempreature", 2)), "stages[0].tempreature: unknown key; did you mean 'temperature'?"),
    "distill without student": (_drop("student"), "student: a 'distill' stage needs a student"),
    "student arch and rule": (_mut(("student.rule", "keep-every")), "student.arch: give exactly one of 'arch' or 'rule'"),
    "missing weights file": (
        _mut(("teacher.source", "torchvision"), ("teacher.weights", "/nonexistent/w.pt")),
        "teacher.weights: no such file or directory '/nonexistent/w.pt'",
    ),
    "unknown export format": (_mut(("export.formats", ["onnxx"])), "export.formats[0]: unknown export format 'onnxx' (did you mean 'onnx'?)"),
    "unknown precision": (_mut(("export.precision", {"tflite": "int4"})),
                          "export.precision.tflite: must be one of 'fp32', 'fp16', 'int8', 'int8-dynamic', got 'int4'"),
    "precision of an unknown format": (_mut(("export.precision", {"tflit": "int8"})),
                                       "export.precision.tflit: unknown export format 'tflit' (did you mean 'tflite'?)"),
    "precision the exporter lacks": (_mut(("export.precision", {"executorch": "fp16"})),
                                     "export.precision.executorch: the executorch exporter does not export fp16; "
                                     "choose one of: fp32, int8, int8-dynamic"),
    "export seq_len below max_length": (_mut(("export.seq_len", 16), ("data.max_length", 32)),
                                        "export.seq_len: 16 is shorter than data.max_length (32)"),
    "int8 onnx precision": (_mut(("export.precision", {"onnx": "int8"})), "for an int8 ONNX add a 'quantize' stage"),
    "tensorrt in precision": (_mut(("export.precision", {"tensorrt": "int8"})),
                              "export.precision.tensorrt: set the engine's precision with export.tensorrt_precision"),
    "unknown runtime": (_mut(("benchmark.runtimes", ["tensorflow"])), "benchmark.runtimes[0]: unknown runtime 'tensorflow'"),
    "zero threads": (_mut(("benchmark.threads", 0)), "benchmark.threads: must be >= 1, got 0"),
    "bad target": (_mut(("benchmark.targets", ["tpu"])), "benchmark.targets[0]: unknown target; use cpu, cuda, ssh://user@host[:port], adb"),
    "bad factory": (_mut(("teacher.source", "factory"), ("teacher.factory", "nocolon")), "teacher.factory: must look like"),
    "duplicate stage name": (lambda d: {**d, "stages": d["stages"][:1] * 2}, "stages[1].name: stage name 'distill' is used twice"),
    "teacher epochs zero": (_mut(("teacher.train.epochs", 0)), "teacher.train.epochs: must be >= 1, got 0"),
    "npz without path": (_mut(("data.sources[0].name", "npz")), "data.sources[0].path: source 'npz' needs a path"),
    "missing data path": (_mut(("data.sources[0].name", "npz"), ("data.sources[0].path", "/nope.npz")), "data.sources[0].path: no such file"),
    "bool for number": (_mut(("stages[0].lr", True)), "stages[0].lr: expected a number, got True"),
    "list for mapping": (_mut(("data", [1, 2])), "data: expected a mapping, got a list"),
    "unknown augment": (_mut(("teacher.train.augment", ["rotate"])), "teacher.train.augment[0]: must be one of 'hflip', 'shift'"),
}


def _write(tmp_path: Path, recipe) -> Path:
    p = tmp_path / "x.yaml"
    p.write_text(recipe if isinstance(recipe, str) else yaml.safe_dump(recipe, sort_keys=False))
    return p


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipe_one_line_exit_2(case, tmp_path, monkeypatch):
    mutate, expected = BAD[case]
    path = _write(tmp_path, mutate(copy.deepcopy(BASE)))
    monkeypatch.chdir(tmp_path)
    res = CliRunner().invoke(main, ["validate", str(path)])
    assert res.exit_code == 2, res.output
    err = res.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("error: x.yaml: "), err
    assert expected in err, err
    assert "Traceback" not in res.output + res.stderr


def test_at_least_twenty_bad_recipes():
    assert len(BAD) >= 20


@pytest.mark.parametrize(
    "text,expected",
    [("- a\n- b\n", "a recipe must be a YAML mapping"), ("name: [unclosed\n", "invalid YAML at line 2")],
)
def test_bad_yaml(text, expected, tmp_path):
    with pytest.raises(RecipeError) as e:
        load_recipe(_write(tmp_path, text))
    assert expected in str(e.value)
    assert str(e.value).startswith(str(tmp_path / "x.yaml")) or "x.yaml" in str(e.value)


def test_set_overrides_by_stage_name_and_index():
    r = load_recipe("digits-quick", ["stages.distill.epochs=7", "stages[0].lr=0.5", "data.seed=3"])
    assert r.stage_configs[0].epochs == 7
    assert r.stage_configs[0].lr == 0.5
    assert r.data.seed == 3


def test_a_disabled_stage_stays_in_the_recipe_and_leaves_the_plan(tmp_path):
    """``enabled: false`` (the default recipe's vocab stage; ``--set stages.vocab.enabled=true``
    turns it on): no step, no folder; every other step keeps its content key, so a finished run
    reuses them; the recipe round-trips it."""
    from edgesmith.pipeline.plan import build_plan

    on = load_recipe("minilm-sentiment", ["stages.vocab.enabled=true"])
    off = load_recipe("minilm-sentiment")
    names = [s.name for s in build_plan(on, tmp_path)]
    assert [s.name for s in build_plan(off, tmp_path)] == [n for n in names if n != "vocab"]
    assert [c.kind for c in off.stage_configs] == [c.kind for c in on.stage_configs]
    assert load_recipe(off.to_dict()).stage_configs[3].enabled is False

    def keys(recipe):
        out, prev = {}, None
        for step in build_plan(recipe, tmp_path):
            out[step.name] = prev = step.key(recipe, prev)
        return out

    k_on, k_off = keys(on), keys(off)
    assert all(k_on[n] == k_off[n] for n in ("teacher", "distill", "prune", "lowrank"))
    assert k_on["quantize"] != k_off["quantize"]  # its input changed
    # the key leaves the flag out (a config written before the flag existed hashes the same)
    step = next(s for s in build_plan(on, tmp_path) if s.name == "distill")
    flipped = dataclasses.replace(step, config=dataclasses.replace(step.config, enabled=False))
    assert flipped.key(on, k_on["teacher"]) == k_on["distill"]
    assert dataclasses.replace(step, config=dataclasses.replace(step.config, epochs=3)).key(
        on, k_on["teacher"]) != k_on["distill"]


@pytest.mark.parametrize(
    "override,expected",
    [("stages.nosuch.epochs=1", "no entry named 'nosuch'"), ("stages.distill.epochs", "expected KEY=VALUE"),
     ("stages.distill.alpha=2", "stages[0].alpha: must be in [0, 1], got 2")],
)
def test_bad_overrides(override, expected):
    with pytest.raises(RecipeError) as e:
        load_recipe("digits-quick", [override])
    assert expected in str(e.value)


def test_unknown_recipe_name():
    res = CliRunner().invoke(main, ["validate", "no-such-recipe"])
    assert res.exit_code == 2
    assert "no such recipe file" in res.stderr and "digits-quick" in res.stderr


def test_cli_subprocess_exit_code_and_no_traceback(tmp_path):
    bad = copy.deepcopy(BASE)
    bad["stages"][0]["alpha"] = 1.5
    path = _write(tmp_path, bad)
    proc = subprocess.run([sys.executable, "-m", "edgesmith.cli", "run", str(path), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == "error: x.yaml: stages[0].alpha: must be in [0, 1], got 1.5"
    assert not (tmp_path / "run").exists()
