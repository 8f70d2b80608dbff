"""The pure-Java core of the Android app (android-demo/core) against the Python side:
its JUnit tests run on the JVM with golden vectors written by edgesmith.bundle.golden
for a real digits bundle and a MiniLM-tokenizer text bundle, and must all pass."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from edgesmith.bundle.telemetry import STATUSES

ANDROID_DEMO = Path(__file__).parents[2] / "android-demo"
JAVA_TESTS = 24  # StatsTest 7, ManifestTest 8, GoldenImageTest 4, GoldenTextTest 5 (android-demo/core/src/test)


def test_golden_vectors_cover_the_tricky_cases(goldens) -> None:
    image, text = goldens.image_data, goldens.text_data
    assert len(image["images"]) == 14 and image["format"] == "onnx" and image["runtime"] == "onnxruntime"
    ids = {t["text"]: t["input_ids"] for t in text["texts"]}
    assert ids["Hello, world!"] == [101, 7592, 1010, 2088, 999, 102]  # MiniLM's vocabulary
    assert ids[""] == [101, 102] and len(ids["The quick brown fox jumps over the lazy dog. " * 12]) == 64
    assert ids["[CLS] inside [SEP] text [MASK] and [UNK] too"][:4] == [101, 101, 2503, 102]  # specials kept
    statuses = {s["name"]: [r["status"] for r in s["reports"]] for s in image["telemetry"]}
    assert statuses == {"held": ["ok", "ok"], "inverted": ["drift", "drift"]}, statuses  # 474 digits, 2 windows
    # 150-text windows against a 300-text profile are below the hook's derived minimum sample: no verdict
    assert {r["status"] for s in text["telemetry"] if s["name"] == "short" for r in s["reports"]} == {"insufficient"}


def test_java_core_matches_python(goldens, tmp_path) -> None:
    if shutil.which("javac") is None:
        pytest.skip("javac not on PATH: install a JDK (apt-get install default-jdk-headless, or ./setup.sh)")
    t0 = time.perf_counter()
    drift_out = tmp_path / "drift"
    drift_out.mkdir()
    res = subprocess.run([str(ANDROID_DEMO / "core" / "run-tests.sh"), "--image-golden", str(goldens.image),
                          "--text-golden", str(goldens.text)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "CORE_BUILD": str(tmp_path / "build"),  # class files out of the tree
                              "EDGESMITH_DRIFT_OUT": str(drift_out)})
    took = time.perf_counter() - t0
    print(res.stdout[-3000:], f"\ncompile + run: {took:.1f} s")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    summary = re.search(r"java core: (\d+) tests, (\d+) failures, (\d+) skipped", res.stdout)
    assert summary and summary.groups() == (str(JAVA_TESTS), "0", "0"), res.stdout[-2000:]
    for kind, g in (("image", goldens.image_data), ("text", goldens.text_data)):
        reported = re.search(rf"{kind} drift reports: (\d+) matched", res.stdout)
        assert reported and int(reported.group(1)) == sum(len(s["reports"]) for s in g["telemetry"]), kind
    _java_reports_read_by_the_cli(goldens, drift_out)


def _java_reports_read_by_the_cli(goldens, drift_out: Path) -> None:
    """The JSON-lines files the Java hook wrote read as the Python hook's do: `edgesmith drift` keeps
    Python's statuses, and `drift merge` re-scores the summed counts (MMD listed as not mergeable)."""
    from click.testing import CliRunner

    from edgesmith.cli import main

    for kind, g in (("image", goldens.image_data), ("text", goldens.text_data)):
        for scenario in g["telemetry"]:
            path = drift_out / f"{kind}-{scenario['name']}.jsonl"
            res = CliRunner().invoke(main, ["drift", str(path), "--json"])
            want = max((r["status"] for r in scenario["reports"]), key=STATUSES.index)
            assert res.exit_code == 0 and json.loads(res.output)["status"] == want, (path, res.output[-2000:])
            res = CliRunner().invoke(main, ["drift", "merge", str(path), "--json"])
            assert res.exit_code == 0, (path, res.output[-2000:])
            merged = json.loads(res.output)
            assert merged["window"]["samples"] == sum(r["window"]["samples"] for r in scenario["reports"])
            assert merged["unmerged"] == (["embedding_mmd"] if kind == "text" else [])


def test_write_golden_default_samples(goldens, tmp_path) -> None:
    """Without samples, the drift reports come from 120 random uint8 images: far from digits."""
    from edgesmith.bundle.golden import write_golden

    g = write_golden(goldens.digits.bundle, tmp_path / "g.json")
    assert json.loads((tmp_path / "g.json").read_text())["schema"] == "edgesmith.golden/1"
    (scenario,) = g["telemetry"]
    assert scenario["name"] == "random" and len(scenario["items"]) == 120 and scenario["calls"][:3] == [1, 3, 7]
    # 60-image windows are below the hook's derived minimum sample: no verdict, but the PSI is there
    assert [r["status"] for r in scenario["reports"]] == ["insufficient", "insufficient"]
    pixels = [s for s in scenario["reports"][0]["statistics"] if s["name"] == "pixels[0]"][0]
    assert pixels["value"] > 1, pixels  # uniform noise vs mostly-dark digits
