"""A generated corpus of malformed recipes, overrides, manifests and results files,
derived from the shipped recipes and a real bundle: each is exit code 2, exactly one
line on stderr, no traceback, and nothing written outside the run folder (issue 16)."""

from __future__ import annotations

import copy
import csv
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from edgesmith.cli import main
from edgesmith.conf.recipe import RECIPES_DIR

SHIPPED = sorted(p.stem for p in RECIPES_DIR.glob("*.yaml"))


def _raw(name: str) -> dict:
    return yaml.safe_load((RECIPES_DIR / f"{name}.yaml").read_text())


def _set(path: str, value) -> Callable[[dict], bool]:
    """A mutation setting a dotted path (``stages.0.epochs``); False when the path is absent."""
    def mutate(raw: dict) -> bool:
        node = raw
        keys = path.split(".")
        for k in keys[:-1]:
            k = int(k) if k.isdigit() else k
            try:
                node = node[k]
            except (KeyError, IndexError, TypeError):
                return False
            if node is None:
                return False
        last = int(keys[-1]) if keys[-1].isdigit() else keys[-1]
        if isinstance(node, dict):
            node[last] = value
        elif isinstance(node, list) and isinstance(last, int) and last < len(node):
            node[last] = value
        else:
            return False
        return True
    return mutate


def _first_stage(kind: str, key: str, value) -> Callable[[dict], bool]:
    def mutate(raw: dict) -> bool:
        for s in raw.get("stages") or []:
            if s.get("kind") == kind:
                s[key] = value
                return True
        return False
    return mutate


def _when(cond: Callable[[dict], bool], then: Callable[[dict], bool]) -> Callable[[dict], bool]:
    return lambda raw: cond(raw) and then(raw)


def _trained(raw: dict) -> bool:
    return raw["teacher"].get("source") == "train"


def _convnet_student(raw: dict) -> bool:
    return (raw.get("student") or {}).get("arch") == "convnet"


# name -> mutation of the parsed recipe (returns False where it does not apply)
MUTATIONS: dict[str, Callable[[dict], bool]] = {
    "name-escapes": _set("name", "../../escaped"),
    "name-empty": _set("name", ""),
    "name-absolute": _set("name", "/tmp/abs-run"),
    "name-slash": _set("name", "a/b"),
    "name-dotdot": _set("name", ".."),
    "name-not-string": _set("name", ["a"]),
    "seed-huge": _set("seed", 2**70),
    "seed-negative": _set("seed", -1),
    "data-seed-huge": _set("data.seed", 2**40),
    "epochs-absurd": _when(_trained, _set("teacher.train.epochs", 10**30)),
    "epochs-big": _when(_trained, _set("teacher.train.epochs", 10**6)),
    "lr-nan": _when(_trained, _set("teacher.train.lr", float("nan"))),
    "lr-inf": _when(_trained, _set("teacher.train.lr", float("inf"))),
    "lr-negative": _when(_trained, _set("teacher.train.lr", -0.1)),
    "temperature-nan": _first_stage("distill", "temperature", float("nan")),
    "distill-epochs-absurd": _first_stage("distill", "epochs", 10**9),
    "distill-lr-inf": _first_stage("distill", "lr", float("-inf")),
    "stage-name-escapes": _first_stage("distill", "name", "../up"),
    "stage-kind-unknown": _set("stages.0.kind", "nosuch"),
    "stage-unknown-key": _first_stage("distill", "tempreature", 4),
    "student-negative-width": _when(_convnet_student, _set("student.kwargs.widths", [-8, 16])),
    "student-bad-kwarg": _when(_convnet_student, _set("student.kwargs.bogus", 1)),
    "student-pools-mismatch": _when(_convnet_student, _set("student.kwargs.pools", [True])),
    "student-arch-unknown": _when(_convnet_student, _set("student.arch", "nosuchnet")),
    "teacher-arch-unknown": _when(_trained, _set("teacher.arch", "nosuchnet")),
    "teacher-bad-kwarg": _when(_trained, _set("teacher.kwargs", {"widths": [32], "pools": [True], "colour": 1})),
    "teacher-dropout-2": _when(_trained, _set("teacher.kwargs.dropout", 2.0)),
    "std-zero": lambda raw: _set("data.std", [0.0])(raw) or True,
    "max-length-huge": _set("data.max_length", 10**40),
    "unknown-top-key": _set("nosuch", 1),
    "export-format-unknown": _set("export.formats", ["onnx", "nosuch"]),
    "export-opset-text": _set("export.opset", "eighteen"),
    "runtime-unknown": _set("benchmark.runtimes", ["nosuch"]),
    "threads-zero": _set("benchmark.threads", 0),
    "iterations-absurd": _set("benchmark.iterations", 10**12),
    "splits-negative": _set("data.splits.calibration", -5),
    "source-unknown": _set("data.sources.0.name", "nosuch"),
    "sources-empty": _set("data.sources", []),
    "teacher-not-mapping": _set("teacher", "big"),
}

# name -> raw text of a recipe file (from the shipped text)
TEXTS: dict[str, Callable[[str], str | bytes]] = {
    "duplicate-key": lambda t: t + "\nseed: 1\n",
    "duplicate-nested-key": lambda t: t.replace("teacher:\n", "teacher:\n  source: train\n", 1),
    "binary": lambda t: b"\x00\x01\x02" + os.urandom(256),
    "latin1": lambda t: t.replace("description:", "description: caf\xe9 ", 1).encode("latin-1", "replace"),
    "utf16": lambda t: t.encode("utf-16"),
    "alias-bomb": lambda t: "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)) + t,
    "recursive-alias": lambda t: "loop: &l [*l]\n" + t,
    "deep-nesting": lambda t: "x: " + "[" * 5000 + "]" * 5000 + "\n" + t,
    "top-level-list": lambda t: "- " + t.replace("\n", "\n  "),
    "unclosed-bracket": lambda t: t + "\nextra: [1, 2\n",
    "tab-indent": lambda t: t.replace("\n  ", "\n\t", 1),
    "empty": lambda t: "",
    "python-object": lambda t: "!!python/object/apply:os.system ['echo pwned']\n",
}

# --set overrides (same for every recipe)
OVERRIDES: dict[str, list[str]] = {
    "set-no-equals": ["seed"],
    "set-empty-key": ["=1"],
    "set-seed-inf": ["seed=1e400"],
    "set-seed-float": ["seed=0.5"],
    "set-name-escapes": ["name=../../x"],
    "set-name-empty": ["name="],
    "set-lr-nan": ["stages[0].lr=.nan"],
    "set-alias-bomb": ["description=" + "&a [" + ",".join(["x"] * 9) + "]"],  # fine on its own ...
    "set-stage-unknown": ["stages.nosuch.epochs=1"],
    "set-index-out-of-range": ["stages[99].epochs=1"],
    "set-into-scalar": ["seed.x=1"],
    "set-threads-zero": ["benchmark.threads=0"],
    "set-opset-99": ["export.opset=99"],
    "set-dup-key-value": ["teacher={source: train, source: hf}"],
    "set-recursive": ["description=&l [*l]"],
}
OVERRIDES.pop("set-alias-bomb")  # a single anchor is legal YAML; the recursive one is the hostile case


def _recipe_cases() -> list[tuple[str, str, object]]:
    cases = []
    for recipe in SHIPPED:
        for name, mutate in MUTATIONS.items():
            raw = copy.deepcopy(_raw(recipe))
            if mutate(raw):
                cases.append((f"{recipe}:{name}", "yaml", yaml.safe_dump(raw, sort_keys=False)))
        text = (RECIPES_DIR / f"{recipe}.yaml").read_text()
        for name, make in TEXTS.items():
            cases.append((f"{recipe}:{name}", "text", make(text)))
        for name, sets in OVERRIDES.items():
            cases.append((f"{recipe}:{name}", "set", (recipe, sets)))
    return cases


RECIPE_CASES = _recipe_cases()


def _tree(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")}


def _assert_one_line(result, case: str) -> None:
    assert result.exception is None or isinstance(result.exception, SystemExit), \
        f"{case}: {type(result.exception).__name__}: {result.exception}"
    assert result.exit_code == 2, f"{case}: exit {result.exit_code}: {result.output}"
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), f"{case}: {result.stderr!r}"
    assert "Traceback" not in result.output


def test_corpus_is_large_enough():
    assert len(RECIPE_CASES) + len(MANIFEST_CASES) + len(RESULT_CASES) >= 100


@pytest.mark.parametrize("case,kind,payload", RECIPE_CASES, ids=[c[0] for c in RECIPE_CASES])
def test_malformed_recipe_is_one_line_exit_2(case, kind, payload, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    if kind == "set":
        recipe, sets = payload
        args = ["validate", recipe, *[a for s in sets for a in ("--set", s)]]
    else:
        f = tmp_path / "bad.yaml"
        f.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
        args = ["validate", str(f)]
    before = _tree(tmp_path)
    result = CliRunner().invoke(main, args)
    _assert_one_line(result, case)
    assert _tree(tmp_path) == before, f"{case}: wrote files"


def test_folder_as_recipe(tmp_path):
    result = CliRunner().invoke(main, ["validate", str(tmp_path)])
    _assert_one_line(result, "folder")
    assert "is a folder, not a recipe file" in result.stderr


# the same refusals from `edgesmith run` in a real process, for a representative subset
SUBSET = ["digits-quick:name-escapes", "digits-quick:name-empty", "digits-quick:duplicate-key",
          "digits-quick:alias-bomb", "digits-quick:epochs-absurd", "digits-quick:student-negative-width",
          "digits-quick:binary", "fashion-mnist:teacher-arch-unknown"]


@pytest.mark.parametrize("case", SUBSET)
def test_run_in_a_real_process_writes_nothing(case, tmp_path):
    _, kind, payload = next(c for c in RECIPE_CASES if c[0] == case)
    work = tmp_path / "work" / "deep"
    work.mkdir(parents=True)
    f = work / "bad.yaml"
    f.write_bytes(payload if isinstance(payload, bytes) else payload.encode())
    env = {**os.environ, "EDGESMITH_CACHE": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-m", "edgesmith.cli", "run", "bad.yaml"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, f"{case}: {r.stderr}"
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr, r.stderr
    assert _tree(tmp_path) == {"work", "work/deep", "work/deep/bad.yaml"}, f"{case}: wrote {_tree(tmp_path)}"


def test_alias_bomb_is_refused_fast(tmp_path):
    import time

    text = TEXTS["alias-bomb"]((RECIPES_DIR / "digits-quick.yaml").read_text())
    (tmp_path / "bomb.yaml").write_text(text)
    assert len(text.encode()) < 4000
    t0 = time.perf_counter()
    result = CliRunner().invoke(main, ["validate", str(tmp_path / "bomb.yaml")])
    assert time.perf_counter() - t0 < 5, "refused before expansion (was 171 s and 4.7 GB)"
    assert "anchors and aliases expand to more than 100,000 values" in result.stderr


# ---------------------------------------------------------------------- manifests
def _manifest_cases():
    from test_manifests import MALFORMED

    return sorted(MALFORMED)


MANIFEST_CASES = _manifest_cases()


@pytest.mark.parametrize("name", MANIFEST_CASES)
def test_predict_on_malformed_manifest(tiny_run, tmp_path, name, monkeypatch):
    import numpy as np
    from test_manifests import write_malformed

    bundle = write_malformed(tiny_run, tmp_path / "bundle", name)
    np.save(tmp_path / "x.npy", np.zeros((1, 8, 8), np.float32))
    monkeypatch.chdir(tmp_path)
    before = _tree(tmp_path)
    result = CliRunner().invoke(main, ["predict", str(bundle), "x.npy"])
    _assert_one_line(result, name)
    assert _tree(tmp_path) == before


# ---------------------------------------------------------------------- results
HEADER = None


def _good_csv(tmp: Path) -> str:
    from edgesmith.benchmarks.store import ResultsStore

    with ResultsStore(tmp / "seed.db") as s:
        s.add_benchmark({"target": "cpu", "runtime": "onnxruntime", "model": "m.onnx", "threads": 1, "batch": 1,
                         "latency_ms": {"p50": 1.0, "p90": 1.2, "p99": 1.5, "mean": 1.1, "n": 100}})
        s.export_csv(tmp / "good.csv")
        s.export_json(tmp / "good.json")
    return (tmp / "good.csv").read_text()


def _csv_edit(column: str, value: str) -> Callable[[str], str]:
    def edit(text: str) -> str:
        rows = list(csv.DictReader(io.StringIO(text)))
        rows[0][column] = value
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
        return buf.getvalue()
    return edit


def _json_edit(fn: Callable[[dict], None]) -> Callable[[str], str]:
    def edit(text: str) -> str:
        doc = json.loads(text)
        fn(doc)
        return json.dumps(doc)
    return edit


RESULT_CASES = {
    "csv-int-cell": (".csv", _csv_edit("threads", "two")),
    "csv-float-int-cell": (".csv", _csv_edit("batch", "1.5")),
    "csv-bad-json-cell": (".csv", _csv_edit("latency", "{not json")),
    "csv-inf-p50": (".csv", _csv_edit("p50", "inf")),
    "csv-nan-p99": (".csv", _csv_edit("p99", "nan")),
    "csv-text-p50": (".csv", _csv_edit("p50", "fast")),
    "csv-empty-uid": (".csv", _csv_edit("uid", "")),
    "csv-truncated": (".csv", lambda t: t[: len(t) - len(t.splitlines()[-1]) // 2 - 1]),
    "csv-extra-cells": (".csv", lambda t: t.rstrip("\n") + ",x,y\n"),
    "csv-deep-json": (".csv", _csv_edit("extra", "[" * 100000 + "]" * 100000)),
    "csv-not-results": (".csv", lambda t: "a,b\n1,2\n"),
    "csv-latin1": (".csv", lambda t: t.replace("onnxruntime", "onnxrunt\udce9ime")),
    "json-schema-abc": (".json", _json_edit(lambda d: d.update(schema_version="abc"))),
    "json-schema-newer": (".json", _json_edit(lambda d: d.update(schema_version=99))),
    "json-deep-nesting": (".json", lambda t: '{"app": "edgesmith", "x": ' + "[" * 100000 + "]" * 100000 + "}"),
    "json-inf-p50": (".json", lambda t: t.replace('"p50": 1.0', '"p50": Infinity', 1)),
    "json-empty-uid": (".json", _json_edit(lambda d: d["benchmarks"][0].update(uid=""))),
    "json-threads-text": (".json", _json_edit(lambda d: d["benchmarks"][0].update(threads="one"))),
    "json-benchmarks-dict": (".json", _json_edit(lambda d: d.update(benchmarks={"a": 1}))),
    "json-not-edgesmith": (".json", lambda t: '{"rows": []}'),
    "json-truncated": (".json", lambda t: t[: len(t) // 2]),
    "json-binary": (".json", lambda t: "\x00\x01garbage"),
}


@pytest.mark.parametrize("name", sorted(RESULT_CASES))
def test_results_import_is_one_line_and_adds_nothing(tmp_path, name, monkeypatch):
    from edgesmith.benchmarks.store import ResultsStore

    suffix, edit = RESULT_CASES[name]
    good = _good_csv(tmp_path) if suffix == ".csv" else (_good_csv(tmp_path), (tmp_path / "good.json").read_text())[1]
    bad = tmp_path / f"bad{suffix}"
    bad.write_bytes(edit(good).encode("utf-8", "surrogateescape"))
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "store.db"
    result = CliRunner().invoke(main, ["results", str(db), "--import", str(bad)])
    _assert_one_line(result, name)
    with ResultsStore(db) as s:
        assert s.rows() == [], "an import that fails adds nothing"


def test_inf_p50_cannot_break_the_dashboard(tmp_path):
    """Before: an inf p50 was imported and every later `dashboard` failed."""
    good = _good_csv(tmp_path)
    (tmp_path / "inf.csv").write_text(_csv_edit("p50", "inf")(good))
    db = tmp_path / "store.db"
    CliRunner().invoke(main, ["results", str(db), "--import", str(tmp_path / "inf.csv")])
    CliRunner().invoke(main, ["results", str(db), "--import", str(tmp_path / "good.csv")])
    r = CliRunner().invoke(main, ["dashboard", str(db), "-o", str(tmp_path / "d.html")])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "d.html").stat().st_size > 1000


@pytest.mark.parametrize("args,msg", [
    (["results", "{tmp}", "--export", "{tmp}/x.json"], "is a folder; pass a results database"),
    (["show", "{tmp}/partial"], "incomplete summary"),
    (["run", "digits-quick", "--out", "{tmp}/file"], "is a file, not a run folder"),
    (["run", "digits-quick", "--out", "{tmp}/r", "--device", "tpu"], "unknown device 'tpu'"),
    (["predict", "{tmp}/bundle", "x.npy", "--sample-rate", "nan", "--telemetry", "{tmp}/t.jsonl"], "--sample-rate nan"),
])
def test_cli_one_liners(tmp_path, args, msg):
    (tmp_path / "file").write_text("x")
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "summary.json").write_text('{"schema": 1, "stages": []}')
    result = CliRunner().invoke(main, [a.format(tmp=tmp_path) for a in args])
    _assert_one_line(result, " ".join(args))
    assert msg in result.stderr
    assert not (tmp_path / "r").exists()
