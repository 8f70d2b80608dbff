"""A 4-trial search of the tiny digits recipe, run once (conftest), then read."""

import json
import subprocess
import sys
from pathlib import Path

import yaml

from edgesmith.search.front import dominates, pareto
from edgesmith.search.study import load_rows

RECIPE = Path(__file__).with_name("tiny-search.yaml")


def test_front_is_the_non_dominated_set(search_run):
    out, result = search_run
    objs = _objectives(result)
    rows = [r for r in load_rows(out) if not r.get("error")]
    assert result["complete"] == 4 and result["failed"] == 0
    front = [r for r in rows if r["number"] in result["front"]]
    assert front and set(result["front"]) == {r["number"] for r in pareto(rows, objs)}
    for f in front:  # nothing dominates a front point; every other point is dominated
        assert not any(dominates(r, f, objs) for r in rows)
    for r in rows:  # off the front: dominated, or a repeat of an earlier trial's files
        if r["number"] not in result["front"]:
            assert any(dominates(f, r, objs) for f in rows) or any(
                q["export_key"] == r["export_key"] for q in rows if q["number"] < r["number"])
    for r in rows:
        assert 0 < r["values"]["accuracy"] <= 1 and r["values"]["size"] > 1000
        assert 0 < r["values"]["latency[cpu/onnxruntime]"] < 50 and r["values"]["memory[cpu/onnxruntime]"] > 10


def test_dominance_treats_latencies_within_their_intervals_as_equal():
    from edgesmith.conf.search import ObjectiveConfig

    objs = [ObjectiveConfig("accuracy"), ObjectiveConfig("latency", "cpu", "onnxruntime")]

    def row(acc, p50, ci):
        return {"values": {"accuracy": acc, "latency[cpu/onnxruntime]": p50}, "p50_ci": {"cpu/onnxruntime": ci}}

    same = row(0.9, 1.00, [0.95, 1.05])
    assert not dominates(row(0.9, 0.98, [0.96, 1.0]), same, objs)  # faster only within noise
    assert not dominates(row(0.9, 0.97, [0.969, 0.971]), row(0.9, 1.0, [0.999, 1.001]), objs)  # 3%: a tie
    assert dominates(row(0.9, 0.80, [0.78, 0.82]), same, objs)  # faster beyond noise
    assert dominates(row(0.91, 1.02, [0.97, 1.07]), same, objs)  # more accurate, latency a tie
    assert not dominates(row(0.91, 1.2, [1.1, 1.3]), same, objs)  # more accurate but slower
    twin = {**row(0.9, 0.5, [0.49, 0.51]), "export_key": "k1"}
    assert not dominates(twin, {**same, "export_key": "k1"}, objs)  # the same files measured twice


def _objectives(result):
    from edgesmith.conf.search import ObjectiveConfig

    out = []
    for o in result["objectives"]:
        metric, _, rest = o["label"].partition("[")
        target, _, runtime = rest.rstrip("]").partition("/")
        out.append(ObjectiveConfig(metric, target or None, runtime or None))
    return out


def test_shared_prefixes_are_trained_once(search_run):
    out, result = search_run
    rows = load_rows(out)
    steps = result["stages_per_trial"]  # teacher, distill, prune, quantize, export
    assert steps == 5
    assert result["stage_executions"] + result["stage_reuses"] == 4 * steps
    # the teacher is trained once (by the references) and reused by every trial
    assert all("teacher" in r["reused"] for r in rows)
    # each (stage, content key) executed at most once across the search
    seen = set()
    for r in rows:
        for name in r["executed"]:
            key = json.loads(next((out / "trials" / f"{r['number']:04d}").glob(f"*-{name}/stage.json")).read_text())["key"]
            assert (name, key) not in seen
            seen.add((name, key))
    # trials with the same student share its distill stage
    by_hidden = {}
    for r in rows:
        by_hidden.setdefault(r["params"]["student.kwargs.hidden"], []).append(r)
    for group in by_hidden.values():
        assert sum("distill" in r["executed"] for r in group) <= 1


def test_no_measurement_overlapped_another_or_training(search_run):
    out, result = search_run
    assert result["timing"]["cpu"]["overlaps"] == 0
    events = json.loads((out / "timing.json").read_text())["cpu"]
    kinds = [e["kind"] for e in events]
    assert kinds.count("measure") == 4 + 2 and kinds.count("train") == 4 + 1  # trials + references


def test_references_measured_in_the_same_search(search_run):
    _, result = search_run
    names = [r["name"] for r in result["references"]]
    assert names == ["teacher-fp32 [cpu/onnxruntime]", "teacher-int8-dynamic [cpu/onnxruntime]"]
    fp32, int8 = result["references"]
    assert fp32["values"]["size"] > 2.5 * int8["values"]["size"]  # int8 weights
    assert abs(fp32["values"]["accuracy"] - int8["values"]["accuracy"]) < 0.05


def test_every_row_is_in_the_results_store(search_run):
    from edgesmith.benchmarks.store import ResultsStore

    out, result = search_run
    with ResultsStore(out / "results.db") as store:
        rows = [b for b in store.rows() if (b["extra"] or {}).get("search") == str(out)]
    trials = [b for b in rows if not b["extra"]["reference"]]
    assert len(trials) == 4 and len(rows) == 6
    assert {b["extra"]["trial"] for b in trials} == {0, 1, 2, 3}
    assert {b["extra"]["trial"] for b in trials if b["extra"]["on_front"]} == set(result["front"])
    assert all(b["p50"] > 0 and b["accuracy"] and b["extra"]["trial_recipe"]["stages"] for b in trials)


def test_show_and_export_recipe(search_run, tmp_path):
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner
    from edgesmith.search.cache import step_keys

    out, result = search_run
    n = result["front"][0]
    dest = tmp_path / "chosen.yaml"
    cmd = [sys.executable, "-m", "edgesmith", "search", str(RECIPE), "-o", str(out)]
    proc = subprocess.run([*cmd, "--show", "--export-recipe", str(n), "--to", str(dest)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "Pareto front of digits-search" in proc.stdout and "teacher-int8-dynamic" in proc.stdout
    raw = yaml.safe_load(dest.read_text())
    assert "search" not in raw
    r = load_recipe(raw)
    row = next(x for x in load_rows(out) if x["number"] == n)
    assert r.student.kwargs["hidden"] == row["params"]["student.kwargs.hidden"]
    # the exported recipe is the trial: its stage keys are the trial's, so `edgesmith run` reproduces it
    trial_dir = out / "trials" / f"{n:04d}"
    for step, key in step_keys(Runner(r, trial_dir)):
        if step.kind != "benchmark":
            assert json.loads((step.dir / "stage.json").read_text())["key"] == key


def test_resume_adds_trials_and_retries_a_cut_off_one(search_copy):
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.search import search
    from edgesmith.search.study import decode, distributions, open_study

    cfg = load_recipe(str(RECIPE)).search
    study = open_study(search_copy, cfg)
    cut = study.ask(distributions(cfg))  # a trial a killed process left running
    params = decode(cfg, cut.params)
    result = search(str(RECIPE), search_copy, trials=5)
    rows = load_rows(search_copy)
    assert result["complete"] == 5 and [r["number"] for r in rows] == [0, 1, 2, 3, 5]
    assert rows[-1]["params"] == params  # the cut-off trial's values, retried
    assert rows[-1]["executed"] == [] or "teacher" not in rows[-1]["executed"]
    assert all(r["seconds"] for r in rows[:4])  # the first four were not re-run
    assert json.loads((search_copy / "trials" / "0000" / "trial.json").read_text()) == rows[0]


def test_dashboard_pareto_view_shows_a_points_recipe(search_run, tmp_path):
    import re
    import shutil

    import pytest

    from edgesmith.benchmarks.dashboard import render
    from edgesmith.benchmarks.store import ResultsStore

    chromium = shutil.which("chromium")
    out, result = search_run
    with ResultsStore(out / "results.db") as store:
        page = render(store, tmp_path / "report.html")
        rows = [b for b in store.rows() if (b["extra"] or {}).get("search")]
    chosen = next(b for b in rows if b["extra"]["trial"] == result["front"][0] and not b["extra"]["reference"])
    html = page.read_text()
    assert '"trial_recipe"' in html and 'id="search-pareto"' in html
    if chromium is None:
        pytest.skip("no chromium to run the page's script")
    proc = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'p'}",
                           "--dump-dom", page.as_uri() + f"#spoint={chosen['id']}"],
                          capture_output=True, text=True, timeout=120)
    dom = proc.stdout
    assert dom.count('class="spt') == 6  # 4 trials and 2 reference points
    assert dom.count('class="spt front-pt') == len(result["front"])
    panel = re.search(r'<pre id="search-recipe"[^>]*data-point="(\d+)"[^>]*>(.*?)</pre>', dom, re.S)
    assert panel and int(panel.group(1)) == chosen["id"]
    hidden = chosen["extra"]["params"]["student.kwargs.hidden"]
    assert f"hidden: {hidden}" in panel.group(2) and f"--export-recipe {result['front'][0]}" in panel.group(2)


def test_timing_queue_keeps_measurements_apart_from_each_other_and_training(search_run):
    """Threads of one process: two measurements and a training lease asked for at once."""
    import threading
    import time

    import numpy as np

    from edgesmith.search.timing import TimingQueue, overlaps

    out, _ = search_run
    model = next((out / "references").glob("*-export/onnx/*.onnx"))
    q = TimingQueue("cpu")
    x = {"pixel_values": np.zeros((1, 1, 8, 8), np.float32)}
    results = []

    def train():
        with q.training("t"):
            time.sleep(1.0)

    def measure():
        results.append(q.measure(str(model), "onnxruntime", x, iterations=10, min_seconds=0.05, label="m"))

    jobs = [threading.Thread(target=train)] + [threading.Thread(target=measure) for _ in range(2)]
    for j in jobs:
        j.start()
        time.sleep(0.05)
    for j in jobs:
        j.join(60)
    events = q.get_events()
    assert [e["kind"] for e in events] == ["train", "measure", "measure"]  # measurements waited for training
    assert overlaps(events) == [] and all(r["error"] is None and r["latency_ms"]["p50"] > 0 for r in results)
    assert events[1]["start"] >= events[0]["end"] and events[2]["start"] >= events[1]["end"]
