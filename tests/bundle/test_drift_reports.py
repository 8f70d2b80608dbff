"""Drift reports on a real digits bundle: no false alarm in 20 in-distribution
windows, the minimum sample, the spooling sink through outages (directory gone,
full disk), the JSON-lines reader, fleet merge (associative, order-independent),
Prometheus exposition and the ``edgesmith drift`` report views with ``--fail-on``."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from click.testing import CliRunner

from edgesmith.bundle import load_bundle
from edgesmith.bundle.telemetry import DriftMonitor, JsonlSink, read_reports
from edgesmith.bundle.telemetry.fleet import merge_reports, prometheus_text
from edgesmith.cli import main
from edgesmith.errors import DataError


def _windows(digits, x, windows: int, size: int, seed: int = 0, **settings) -> list[dict]:
    """``windows`` reports of ``size`` items drawn (with replacement) from ``x``."""
    rng = np.random.default_rng(seed)
    monitor = DriftMonitor(sample_rate=1.0, window=size, keep=windows, device=f"dev{seed}", **settings)
    with load_bundle(digits.bundle, telemetry=monitor) as b:
        for _ in range(windows):
            b.predict(x[rng.integers(0, len(x), size)])
    assert len(monitor.reports) == windows
    return list(monitor.reports)


def test_no_false_alarm_in_20_held_out_windows(digits) -> None:
    reports = _windows(digits, digits.held.x, 20, 150)
    statuses = [r["status"] for r in reports]
    print("held-out windows:", statuses, [r["worst"] for r in reports])
    assert statuses.count("ok") == 20
    assert all(r["window"]["min_samples"] == 140 for r in reports)
    shifted = _windows(digits, np.clip(digits.held.x + 0.3, 0, 1), 2, 150)
    assert [r["status"] for r in shifted] == ["drift", "drift"]


def test_readme_example_does_not_alarm_on_14_samples(digits) -> None:
    monitor = DriftMonitor(sample_rate=0.05, window=500)
    with load_bundle(digits.bundle, telemetry=monitor) as b:
        b.predict(digits.held.x[:400])
    rep = monitor.report()
    assert 5 < rep["window"]["samples"] < 40 and rep["status"] == "insufficient"
    assert all(st["status"] == "insufficient" and 0 < st["p_value"] <= 1 for st in rep["statistics"])


# -------------------------------------------------------------------- sink
def test_sink_spools_through_a_removed_directory_and_a_full_disk(tmp_path, digits) -> None:
    target = tmp_path / "logs" / "drift.jsonl"
    sink = JsonlSink(target, tmp_path / "spool", retry_s=0.0)
    reports = _windows(digits, digits.held.x, 12, 20)
    sink.write(reports[0])
    shutil.rmtree(tmp_path / "logs")
    (tmp_path / "logs").write_text("not a directory")  # the folder is gone and cannot be recreated
    for r in reports[1:6]:
        sink.write(r)
    assert sink.counters()["pending"] == 5 and sink.delivered == 1 and sink.dropped == 0
    full = JsonlSink("/dev/full", tmp_path / "spool2", retry_s=0.0)  # a real ENOSPC on every write
    for r in reports[:3]:
        full.write(r)
    assert full.pending == 3 and full.failures >= 3 and full.dropped == 0
    (tmp_path / "logs").unlink()
    for r in reports[6:]:
        sink.write(r)
    assert sink.flush() and sink.counters() == {**sink.counters(), "delivered": 12, "pending": 0, "dropped": 0}
    got, skipped = read_reports(target)
    # report 0 went down with the removed folder; the 11 written during and after the outage all arrive
    assert [r["window"]["index"] for r in got] == list(range(1, 12)) and skipped == {"truncated": 0, "garbage": 0}
    assert not list((tmp_path / "spool").glob("*.jsonl"))


def test_spool_bound_drops_oldest_counted(tmp_path, digits) -> None:
    reports = _windows(digits, digits.held.x, 10, 20)
    size = len(json.dumps(reports[0], separators=(",", ":"))) + 1
    sink = JsonlSink(tmp_path / "gone" / "sub" / "d.jsonl", tmp_path / "spool", spool_bytes=4 * size,
                     segment_reports=2, retry_s=3600)
    (tmp_path / "gone").write_text("")
    for r in reports:
        sink.write(r)
    c = sink.counters()
    assert c["dropped"] + c["pending"] == 10 and c["dropped"] >= 4 and c["spool_bytes"] <= 5 * size, c
    # a new process adopts the spool and delivers it, oldest first
    (tmp_path / "gone").unlink()
    again = JsonlSink(tmp_path / "gone" / "sub" / "d.jsonl", tmp_path / "spool")
    assert again.flush()
    idx = [r["window"]["index"] for r in read_reports(tmp_path / "gone" / "sub" / "d.jsonl")[0]]
    assert idx == list(range(10 - len(idx), 10))


def test_truncated_last_line_is_skipped_and_never_glued(tmp_path, digits) -> None:
    reports = _windows(digits, digits.held.x, 3, 20)
    path = tmp_path / "d.jsonl"
    line = json.dumps(reports[0]) + "\n"
    path.write_text(line + json.dumps(reports[1])[:100])  # a torn write
    JsonlSink(path, tmp_path / "spool").write(reports[2])
    got, skipped = read_reports(path)
    assert [r["window"]["index"] for r in got] == [0, 2] and skipped == {"truncated": 1, "garbage": 0}
    (tmp_path / "empty.jsonl").write_text("")
    (tmp_path / "garbage.jsonl").write_bytes(b"\x00\xff garbage\n[1, 2]\n")
    for name, msg in (("empty", "is empty"), ("garbage", "holds no drift report"), ("missing", "cannot read")):
        with pytest.raises(DataError, match=msg):
            read_reports(tmp_path / f"{name}.jsonl")
        r = CliRunner().invoke(main, ["drift", str(tmp_path / f"{name}.jsonl")])
        assert r.exit_code == 2 and "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1, r.output


# ------------------------------------------------------------------- fleet
def test_merge_is_associative_and_order_independent(digits) -> None:
    a = _windows(digits, digits.held.x, 2, 60, seed=1)
    b = _windows(digits, digits.held.x, 2, 60, seed=2)
    c = _windows(digits, 1 - digits.held.x, 2, 60, seed=3)
    flat = merge_reports(a + b + c)
    left = merge_reports([merge_reports([merge_reports(a), merge_reports(b)]), *c])
    right = merge_reports([*a, merge_reports([*b, *c])])
    shuffled = merge_reports([c[0], b[1], a[0], c[1], b[0], a[1]])

    def key(rep: dict) -> tuple:
        return (rep["window"]["samples"], rep["status"], rep["merged"]["reports"], rep["merged"]["devices"],
                [(s["name"], s["counts"], s["value"], s["p_value"], s["status"]) for s in rep["statistics"]])

    assert key(flat) == key(left) == key(right) == key(shuffled)
    assert flat["window"]["samples"] == 360 and flat["merged"]["devices"] == ["dev1", "dev2", "dev3"]
    counts = sum(np.asarray(s["counts"]) for r in a + b + c for s in r["statistics"] if s["name"] == "pixels[0]")
    assert np.allclose([s for s in flat["statistics"] if s["name"] == "pixels[0]"][0]["counts"], counts)
    # each 60-item window alone is insufficient; the merged 360 items find the inverted device
    assert all(r["status"] == "insufficient" for r in a + b + c) and flat["status"] == "drift"
    assert merge_reports(a + b)["status"] == "ok"
    q = [flat["sketches"]["confidence"]["quantiles"]["p50"], shuffled["sketches"]["confidence"]["quantiles"]["p50"]]
    assert flat["sketches"]["confidence"]["n"] == 360 and abs(q[0] - q[1]) < 0.02, q


def test_prometheus_exposition(digits) -> None:
    reports = _windows(digits, digits.held.x, 2, 150)
    text = prometheus_text(reports)
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {"edgesmith_drift_score", "edgesmith_drift_p_value", "edgesmith_drift_status"} <= set(families)
    ok = [s for s in families["edgesmith_drift_status"].samples if s.labels["status"] == "ok" and s.value == 1]
    assert len(ok) == 3 and {s.labels["device"] for s in ok} == {"dev0"}


# --------------------------------------------------------------------- CLI
def test_cli_timeline_merge_and_fail_on(digits, tmp_path) -> None:
    dev1, dev2 = tmp_path / "dev1.jsonl", tmp_path / "dev2.jsonl"
    dev1.write_text("".join(json.dumps(r) + "\n" for r in _windows(digits, digits.held.x, 3, 150, seed=1)))
    shifted = _windows(digits, np.clip(digits.held.x + 0.3, 0, 1), 2, 150, seed=2)
    dev2.write_text("".join(json.dumps(r) + "\n" for r in shifted) + json.dumps(shifted[0])[:50])
    for cmd in (["drift", str(dev1)], ["drift", str(digits.bundle), str(dev1)]):  # with or without the bundle
        r = CliRunner().invoke(main, [*cmd, "--fail-on", "warn"])
        assert r.exit_code == 0 and "pixels[0]" in r.output and "worst status: ok" in r.output, r.output
    r = CliRunner().invoke(main, ["drift", str(dev1), str(dev2), "--fail-on", "drift",
                                  "--prometheus", str(tmp_path / "m.prom"), "--html", str(tmp_path / "d.html")])
    assert r.exit_code == 3 and "skipped 1 truncated" in r.output and "dev2" in r.output, r.output
    assert "edgesmith_drift_score" in (tmp_path / "m.prom").read_text()
    page = (tmp_path / "d.html").read_text()
    from edgesmith.benchmarks.dashboard import drift_data

    data = drift_data([json.loads(x) for x in dev1.read_text().splitlines()] + shifted)
    assert [(g["device"], len(g["windows"]), g["worst"]) for g in data["groups"]] == [("dev1", 3, "ok"),
                                                                                     ("dev2", 2, "drift")]
    assert 'id="edgesmith-drift"' in page and "dev2" in page and "<script>" in page
    r = CliRunner().invoke(main, ["drift", "merge", str(dev1), str(dev2), "-o", str(tmp_path / "fleet.jsonl")])
    assert r.exit_code == 0 and "merged 5 report(s) from 2 device(s)" in r.output, r.output
    fleet, _ = read_reports(tmp_path / "fleet.jsonl")
    assert fleet[0]["window"]["samples"] == 750 and fleet[0]["status"] == "drift"


def test_cli_one_image_is_insufficient(digits, tmp_path) -> None:
    from PIL import Image

    Image.fromarray((digits.held.x[0, 0] * 255).astype(np.uint8)).save(tmp_path / "one.png")
    r = CliRunner().invoke(main, ["drift", str(digits.bundle), str(tmp_path / "one.png"), "--fail-on", "warn"])
    assert r.exit_code == 0 and "status: insufficient" in r.output and "minimum" in r.output, r.output
