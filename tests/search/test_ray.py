"""The Ray backend: a 4-trial search on a local Ray with 2 workers tries the same points
as the local backend (same seeds) and gets the same front on the deterministic
objectives (accuracy, size); latency is measured anew, so it is compared only for
its queue discipline."""

import json
from pathlib import Path

import pytest

from edgesmith.search.front import pareto
from edgesmith.search.study import load_rows

RECIPE = Path(__file__).with_name("tiny-search.yaml")


@pytest.fixture(scope="module")
def ray_run(tmp_path_factory, edgesmith_cache):
    pytest.importorskip("ray", reason="ray is not installed: pip install 'edgesmith[ray]'")
    import os

    from edgesmith.search import search

    home = tmp_path_factory.mktemp("ray-home")  # Ray writes ~/.ray/auth_token: keep it out of the real home
    old = os.environ.get("HOME")
    os.environ["HOME"] = str(home)
    try:
        out = tmp_path_factory.mktemp("ray") / "run"
        result = search(str(RECIPE), out, ray_address="local", ray_workers=2)
    finally:
        os.environ["HOME"] = old
    return out, result


def test_ray_search_tries_the_same_points_and_finds_the_same_front(search_run, ray_run):
    (local_out, _), (ray_out, result) = search_run, ray_run
    assert result["complete"] == 4 and result["failed"] == 0
    a, b = load_rows(local_out), load_rows(ray_out)
    assert [r["params"] for r in a] == [r["params"] for r in b]
    for x, y in zip(a, b, strict=True):
        assert x["values"]["size"] == y["values"]["size"]
        assert x["values"]["accuracy"] == pytest.approx(y["values"]["accuracy"], abs=1e-9)
    from edgesmith.conf.search import ObjectiveConfig

    objs = [ObjectiveConfig("accuracy"), ObjectiveConfig("size")]
    assert {r["number"] for r in pareto(a, objs)} == {r["number"] for r in pareto(b, objs)}


def test_ray_trials_share_stages_and_queue_their_measurements(ray_run):
    out, result = ray_run
    assert result["stage_executions"] < 4 * result["stages_per_trial"]
    assert result["timing"]["cpu"]["overlaps"] == 0
    events = json.loads((out / "timing.json").read_text())["cpu"]
    assert sum(e["kind"] == "measure" for e in events) == 4 + 2
    assert sum(e["kind"] == "train" for e in events) == 4 + 1
    assert (out / "study.db").is_file() and len(list((out / "trials").glob("*/trial.json"))) == 4
