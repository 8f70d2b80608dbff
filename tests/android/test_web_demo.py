"""The browser demo (android-demo/web) served by ``edgesmith demo``, driven in headless
Chromium through playwright-core: on the golden inputs its onnxruntime-web outputs match
Python onnxruntime within the export tolerance, its JavaScript tokenizer and drift hook
match the Python side exactly (ids, statuses) or within 1e-5, the latency panel fills in,
and its drift reports arrive at the /telemetry endpoint."""

from __future__ import annotations

import json
import math
import shutil
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgesmith.bundle import demo as demo_module
from edgesmith.bundle.demo import DemoServer
from edgesmith.cli import main

WEB = Path(__file__).parents[2] / "android-demo" / "web"
CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
NULL_DRAWS = 400  # the PSI bootstrap's draws (edgesmith.bundle.telemetry.stats.NULL_DRAWS)


def _skip_without_browser() -> None:
    if shutil.which("node") is None or CHROMIUM is None:
        pytest.skip("node or Debian's chromium missing (apt-get install nodejs chromium; ./setup.sh)")
    if not (WEB / "node_modules" / "playwright-core").is_dir():
        pytest.skip(f"{WEB}/node_modules missing: run `npm ci` in {WEB} (./setup.sh does)")


def _drive(golden: Path, tmp_path: Path) -> tuple[dict, list[dict], float]:
    """Serve the golden's bundle, drive the page, return its outputs and the posted reports."""
    sink = tmp_path / "posted.jsonl"
    t0 = time.perf_counter()
    with DemoServer(json.loads(golden.read_text())["bundle"], port=0, telemetry=sink) as server:
        res = subprocess.run(["node", str(WEB / "test" / "drive.mjs"), server.url + "?window=5", str(golden),
                              str(tmp_path / "page.json")], capture_output=True, text=True, timeout=300,
                             env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
        received = server.received
    took = time.perf_counter() - t0
    page = json.loads((tmp_path / "page.json").read_text())
    assert res.returncode == 0 and not page["errors"], (page["errors"], res.stderr[-2000:])
    posted = [json.loads(line) for line in sink.read_text().splitlines()]
    assert len(posted) == received
    return page, posted, took


def monte_carlo_tolerance(p: float, draws: int) -> float:
    """How far two Monte-Carlo p-values from ``draws`` null draws may be apart: 4 standard errors of the
    difference of two independent estimates, ``sqrt(2 p (1 - p) / draws)`` with ``p`` floored at one draw,
    plus one draw's resolution (Telemetry.monteCarloTolerance in the Java tests is the same)."""
    q = max(p, 1 / (draws + 1))
    return 4 * math.sqrt(2 * q * (1 - q) / draws) + 1 / (draws + 1)


def _assert_reports(want: list[dict], got: list[dict], tol: float) -> float:
    """Python's reports against the JavaScript hook's: ids, counts, statuses, minimum sample and worst
    statistic exactly or within ``tol``; the Monte-Carlo p-values (PSI bootstrap, MMD permutations) within
    :func:`monte_carlo_tolerance`, as the generators differ. Not compared: time, device, ``sketches`` (the
    page writes none). Returns the largest p-value gap as a fraction of its tolerance."""
    assert len(got) == len(want)
    worst = 0.0
    for w, g in zip(want, got, strict=True):
        assert list(g) == list(w) and g["schema"] == w["schema"] == "edgesmith.drift/2"
        assert (g["status"], g["worst"], g["window"], g["bundle"], g["config"]) == \
            (w["status"], w["worst"], w["window"], w["bundle"], w["config"])
        assert g["sketches"] == {} and g["device"] == "browser"
        assert [s["status"] for s in g["statistics"]] == [s["status"] for s in w["statistics"]]
        for sw, sg in zip(w["statistics"], g["statistics"], strict=True):
            assert list(sg) == list(sw), (sw["name"], list(sg))
            for key, value in sw.items():
                if key == "p_value":
                    draws = w["config"]["permutations"] if sw["metric"] == "mmd" else NULL_DRAWS
                    limit = monte_carlo_tolerance(value, draws) if sw["metric"] in ("psi", "max_psi", "mmd") else tol
                    assert abs(sg[key] - value) <= limit, (sw["name"], sg[key], value, limit)
                    worst = max(worst, abs(sg[key] - value) / limit)
                elif isinstance(value, str | bool) or value is None:
                    assert sg[key] == value, (sw["name"], key)
                else:
                    fw, fg = (list(f.values()) if isinstance(f, dict) else f for f in (value, sg[key]))
                    if isinstance(value, dict):
                        assert list(sg[key]) == list(value)
                    np.testing.assert_allclose(np.asarray(fg, float), np.asarray(fw, float), atol=tol,
                                               err_msg=f"{sw['name']}.{key}")
    return worst


def _replayed_reports_match(g: dict, page: dict) -> None:
    """The page's drift hook replays the golden samples: its reports must match Python's."""
    worst = max(_assert_reports(scenario["reports"], replayed, g["float_tolerance"])
                for scenario, replayed in zip(g["telemetry"], page["replayed"], strict=True))
    print(f"JavaScript drift reports match; largest Monte-Carlo p-value gap {worst:.2f} of its tolerance")


def _assert_live(page: dict, posted: list[dict], items: int) -> None:
    lat = page["latency"]
    print(f"latency in Chromium: p50 {lat['p50_ms']:.4f} ms, p90 {lat['p90_ms']:.4f} ms, {lat['runtime']}, "
          f"{lat['threads']} thread(s), cross-origin isolated {lat['cross_origin_isolated']}")
    assert lat["runs"] == 100 and 0 < lat["p50_ms"] <= lat["p90_ms"] < 1000 and lat["threads"] == 1
    assert lat["runtime"] == "onnxruntime-web 1.31.1 (wasm, SIMD)" and page["latency_text"]["threads"] == "1"
    assert page["latency_text"]["p50"].endswith(" ms") and float(page["latency_text"]["p50"][:-3]) > 0
    # window=5: every prediction sampled, a report per 5 items, the rest flushed
    assert [r["window"]["samples"] for r in posted] == [5] * (items // 5) + ([items % 5] if items % 5 else [])
    assert [r["window"]["index"] for r in posted] == list(range(len(posted)))
    # 5-item windows are below any bundle's minimum sample: reported, never alarmed
    assert all(r["status"] == "insufficient" and r["config"]["window"] == 5 for r in posted)
    assert page["sent_text"] == str(len(posted))


def _read_by_the_cli(sink: Path, posted: list[dict]) -> None:
    """The reports the page posted read as the Python hook's do: `edgesmith drift` and `drift merge`."""
    res = CliRunner().invoke(main, ["drift", str(sink), "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["reports"] == len(posted), res.output[-2000:]
    res = CliRunner().invoke(main, ["drift", "merge", str(sink), "--json"])
    assert res.exit_code == 0, res.output[-2000:]
    merged = json.loads(res.output)
    assert merged["window"]["samples"] == sum(r["window"]["samples"] for r in posted)
    assert [s["name"] for s in merged["statistics"]] == [s["name"] for s in posted[0]["statistics"]
                                                        if s.get("mergeable", True)]


def test_image_bundle_in_chromium(goldens, tmp_path) -> None:
    _skip_without_browser()
    g = goldens.image_data
    page, posted, took = _drive(goldens.image, tmp_path)
    print(f"\nimage page: load + verify {page['load_ms']} ms, whole drive {took:.1f} s")
    assert page["info"] == {"format": "onnx", "kind": "image", "ort": "1.31.1", "threads": 1}
    manifest = json.loads((Path(g["bundle"]) / "edgesmith.json").read_text())
    atol = manifest["formats"]["onnx"]["parity"]["tolerance"]["atol"]  # the export tolerance of the file
    inputs, logits = page["classified"]["inputs"], np.asarray(page["classified"]["logits"])
    for case, got_in, got_out in zip(g["images"], inputs, logits, strict=True):
        np.testing.assert_allclose(got_in, case["input"], atol=g["float_tolerance"], err_msg=case["name"])
        np.testing.assert_allclose(got_out, case["logits"], atol=atol, err_msg=case["name"])
        assert int(np.argmax(got_out)) == case["top_k"][0]["index"]
    diff = float(np.abs(logits - np.asarray([c["logits"] for c in g["images"]])).max())
    print(f"onnxruntime-web vs Python onnxruntime: max |logit diff| {diff:.2e} (export atol {atol})")
    _assert_live(page, posted, len(g["images"]))
    _read_by_the_cli(tmp_path / "posted.jsonl", posted)
    _replayed_reports_match(g, page)


def test_text_bundle_in_chromium(goldens, tmp_path) -> None:
    _skip_without_browser()
    g = goldens.text_data
    page, posted, took = _drive(goldens.text, tmp_path)
    print(f"\ntext page: load + verify {page['load_ms']} ms, code-point sweep {page['sweep_ms']} ms, "
          f"whole drive {took:.1f} s")
    assert [t["input_ids"] for t in g["texts"]] == page["tokens"]
    for want, got in zip(g["batches"], page["batches"], strict=True):
        assert got["ids"] == [i for row in want["input_ids"] for i in row]
        assert got["mask"] == [m for row in want["attention_mask"] for m in row]
    assert page["sweep"] == g["sweep"]["sha256"]  # every code point below U+20000 tokenizes alike
    emb, ref = np.asarray(page["embeddings"]), np.asarray(g["embeddings"])
    diff = float(np.abs(emb - ref).max())
    print(f"onnxruntime-web vs Python onnxruntime: max |embedding diff| {diff:.2e}")
    np.testing.assert_allclose(emb, ref, atol=1e-5)
    unit = ref / np.linalg.norm(ref, axis=1, keepdims=True)
    assert float(page["cosine_text"]) == pytest.approx(float(unit[0] @ unit[1]), abs=1e-4)
    _assert_live(page, posted, len(g["texts"]) + 2)  # the embedded texts and the compare screen's pair
    _read_by_the_cli(tmp_path / "posted.jsonl", posted)
    _replayed_reports_match(g, page)


def test_demo_cli_refuses_what_it_cannot_serve(goldens, tmp_path, monkeypatch) -> None:
    res = CliRunner().invoke(main, ["demo", str(tmp_path), "--no-open"])
    assert res.exit_code == 2 and "no bundle manifest here" in res.output and "Traceback" not in res.output
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = CliRunner().invoke(main, ["demo", str(goldens.digits.bundle), "--no-open", "--port", str(port)])
    assert res.exit_code == 2 and f"--port: cannot listen on 127.0.0.1:{port}" in res.output, res.output
    monkeypatch.setattr(demo_module, "ORT_DIST", tmp_path / "nowhere")
    res = CliRunner().invoke(main, ["demo", str(goldens.digits.bundle), "--no-open"])
    assert res.exit_code == 2 and "onnxruntime-web is not installed; run `npm ci`" in res.output


def test_demo_server_serves_only_the_bundle_and_reports(goldens, tmp_path) -> None:
    import urllib.error
    import urllib.request

    sink = tmp_path / "t.jsonl"
    with DemoServer(goldens.digits.bundle, port=0, telemetry=sink) as server:
        def get(path: str) -> int:
            try:
                with urllib.request.urlopen(server.url + path) as r:
                    assert r.headers["Cross-Origin-Embedder-Policy"] == "require-corp" and r.read()
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        def post(body: bytes) -> int:
            req = urllib.request.Request(server.url + "telemetry", data=body, method="POST")
            try:
                with urllib.request.urlopen(req) as r:
                    return r.status
            except urllib.error.HTTPError as e:
                return e.code

        assert [get(p) for p in ("", "app.js", "bundle/edgesmith.json", "bundle/onnx/model.onnx",
                                 "ort/ort-wasm-simd-threaded.wasm")] == [200] * 5
        assert [get(p) for p in ("bundle/../recipe.resolved.yaml", "bundle/%2e%2e/recipe.resolved.yaml",
                                 "package.json", "ort/../package.json")] == [404] * 4
        assert post(b"not json") == 400 and post(b'{"schema": "other"}') == 400
        assert post(json.dumps({"schema": "edgesmith.drift/1", "status": "ok"}).encode()) == 400  # the old schema
        assert post(json.dumps({"schema": "edgesmith.drift/2", "status": "ok"}).encode()) == 204
    assert [json.loads(x)["status"] for x in sink.read_text().splitlines()] == ["ok"]
