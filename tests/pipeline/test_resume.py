"""Runs are resumable: finished stages are reused by content key, an
interrupted stage leaves nothing half-written, and the final artifacts of a
resumed run are identical to those of an uninterrupted one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

import edgesmith
from edgesmith.pipeline.runner import STEP_RUNS

FAST = [
    "teacher.train.epochs=3",
    "stages.distill.epochs=3",
    "stages.prune.epochs=1",
    "stages.lowrank.epochs=1",
    "benchmark.iterations=5",
    "benchmark.min_seconds=0",
    "benchmark.warmup=1",
    "benchmark.runtimes=[onnxruntime]",
    # which file the bundle ships depends on a latency measurement (never ship a slower
    # file); forcing the quantized one keeps the compared artifacts deterministic
    "export.force_quantized=true",
]


def _digest(run: Path) -> dict[str, str]:
    files = sorted(p for p in run.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".onnx"))
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def _stage_meta(run: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/stage.json")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory, edgesmith_cache):
    out = tmp_path_factory.mktemp("ref") / "run"
    summary = edgesmith.run("digits-quick", out, overrides=FAST)
    return out, summary


def test_rerun_recomputes_nothing(reference):
    out, _ = reference
    before_meta, before_files = _stage_meta(out), _digest(out)
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}
    edgesmith.run("digits-quick", out, overrides=FAST)
    assert _stage_meta(out) == before_meta
    assert _digest(out) == before_files
    assert {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")} == mtimes


def test_interrupted_run_resumes_with_identical_artifacts(reference, tmp_path, monkeypatch):
    ref_out, ref_summary = reference
    out = tmp_path / "run"

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setitem(STEP_RUNS, "export", interrupted)
    with pytest.raises(KeyboardInterrupt):
        edgesmith.run("digits-quick", out, overrides=FAST)
    finished = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert finished == ["00-teacher", "01-distill", "02-prune", "03-lowrank", "04-sensitivity", "05-quantize", "06-qat"]
    assert not list(out.glob(".*tmp")), "no half-written stage folder is left behind"
    done = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}

    monkeypatch.undo()
    summary = edgesmith.run("digits-quick", out, overrides=FAST)
    assert {p: p.stat().st_mtime_ns for p in done} == done, "finished stages were not recomputed"
    assert _digest(out) == _digest(ref_out)
    assert summary["stages"][0]["metrics"] == ref_summary["stages"][0]["metrics"]
    assert summary["exports"][0]["parity"]["passed"]


def test_changed_config_reruns_from_that_stage(reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "run"
    edgesmith.run("digits-quick", out, overrides=FAST)
    teacher_meta = (out / "00-teacher" / "stage.json").stat().st_mtime_ns
    distill_key = _stage_meta(out)["01-distill"]["key"]
    edgesmith.run("digits-quick", out, overrides=[*FAST, "stages.distill.temperature=2.0"])
    assert (out / "00-teacher" / "stage.json").stat().st_mtime_ns == teacher_meta
    assert _stage_meta(out)["01-distill"]["key"] != distill_key


def test_from_stage_forces_a_deterministic_rerun(reference, tmp_path):
    ref_out, _ = reference
    out = tmp_path / "run"
    edgesmith.run("digits-quick", out, overrides=FAST)
    before = (out / "01-distill" / "stage.json").stat().st_mtime_ns
    edgesmith.run("digits-quick", out, overrides=FAST, from_stage="distill")
    assert (out / "01-distill" / "stage.json").stat().st_mtime_ns != before
    assert _digest(out) == _digest(ref_out), "the same recipe and seed give the same weights"


def test_resolved_recipe_and_summary_written(reference):
    out, summary = reference
    resolved = (out / "recipe.resolved.yaml").read_text()
    assert "epochs: 3" in resolved and "temperature: 4.0" in resolved
    on_disk = json.loads((out / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    assert on_disk["schema"] == 1


def test_heldout_wordnet_split_is_part_of_the_keys(monkeypatch):
    """A recipe that reads WordNet (or runs the retrieval check on text) gets new keys when
    the held-out synsets or the retrieval pool change, so a resumed run never mixes
    students trained or scored on another split; an image recipe keeps its keys."""
    import edgesmith.data.texts as texts
    import edgesmith.models.fidelity as fidelity
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.plan import build_plan

    def keys(name):
        recipe, prev, out = load_recipe(name), None, []
        for step in build_plan(recipe, Path("run")):
            prev = step.key(recipe, prev)
            out.append(prev)
        return out

    text, image = keys("minilm-sentiment"), keys("fashion-mnist")
    monkeypatch.setattr(texts, "HELDOUT_PER_MILLE", texts.HELDOUT_PER_MILLE + 1)
    moved = keys("minilm-sentiment")
    assert len(moved) == len(text) and not set(moved) & set(text)
    monkeypatch.setattr(texts, "HELDOUT_PER_MILLE", texts.HELDOUT_PER_MILLE - 1)
    assert keys("minilm-sentiment") == text
    monkeypatch.setattr(fidelity, "RETRIEVAL_POOL", 1000)
    assert keys("minilm-sentiment")[0] != text[0] and keys("fashion-mnist") == image
