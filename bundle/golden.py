"""Golden vectors: what the Python side computes for a bundle, written down so the
apps' own implementations (the pure-Java core in ``android-demo/core``, the browser
demo in ``android-demo/web``) can be checked against it, ids and statuses exactly and
floats within :data:`FLOAT_TOLERANCE`.

For an image bundle: preprocessed tensors of uint8 and float images (channels first
and last), Pillow's greyscale of RGB pixels, the bundled model's logits, softmax and
top-k. For a text bundle: token ids and attention masks of tricky texts (accents,
punctuation, CJK, emoji, control characters, special tokens, unknown and very long
words, a text past ``max_length``), batches padded to the longest and to a static
length, a sha256 over the ids of every code point below U+20000, the embeddings and
their cosines. For both: the drift reports the Python hook emits for fixed samples.
The reference for tokens is the ``tokenizers`` tokenizer the bundle loader runs::

    from edgesmith.bundle.golden import write_golden
    write_golden("runs/digits-quick/bundle", "golden.json")
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith import atomic

GOLDEN_SCHEMA = "edgesmith.golden/1"
FLOAT_TOLERANCE = 1e-5
SWEEP_STOP = 0x20000  # code points swept through the tokenizer: the BMP and the SMP (emoji)
TRICKY_TEXTS = [
    "Hello, world!",
    "Crème brûlée à la façon de Zoë; naïve café déjà-vu.",
    "ÅNGSTRÖM İstanbul ΣΊΣΥΦΟΣ Straße",
    "don't stop--it's 3.14159... (really?) [yes] {no} \"quoted\" #hash @at",
    "北京欢迎你 and 東京 mixed with 한국어 and ひらがな",
    "emoji 😀🚀👍🏽 family 👨‍👩‍👧 flag 🇫🇷 heart ❤️",
    "tabs\tand\nnewlines\r\nand\u00a0nbsp\u200bzero-width\u0000nul\ufffdreplacement",
    "unknownwordsxyzzyqwrtplk antidisestablishmentarianism supercalifragilisticexpialidocious",
    "a" * 120 + " " + "b" * 99,
    "[CLS] inside [SEP] text [MASK] and [UNK] too",
    "",
    "   ",
    "The quick brown fox jumps over the lazy dog. " * 12,
]
PAIRS = [(0, 1), (0, 3), (4, 5), (7, 12)]


def _floats(a: Any) -> list:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _top_k(row: np.ndarray, labels: list[str] | None, k: int) -> list[dict]:
    p = np.exp(row - row.max())
    p /= p.sum()
    order = np.argsort(-p, kind="stable")[:k]
    return [{"index": int(i), "label": labels[i] if labels and len(labels) == len(p) else str(int(i)),
             "probability": float(p[i])} for i in order]


def _image_cases(bundle: Any) -> dict:
    from edgesmith.bundle.telemetry import softmax

    pre = bundle.preprocess
    c, (h, w) = pre.channels, pre.size
    rng = np.random.default_rng(0)
    chw = [rng.integers(0, 256, (c, h, w), dtype=np.uint8) for _ in range(3)]
    chw += [np.zeros((c, h, w), np.uint8), np.full((c, h, w), 255, np.uint8),
            np.broadcast_to(np.linspace(0, 255, h * w).round().astype(np.uint8).reshape(1, h, w), (c, h, w)).copy()]
    cases = []
    for i, img in enumerate(chw):
        cases.append({"name": f"uint8-chw-{i}", "dtype": "uint8", "channels_last": False, "pixels": img})
        cases.append({"name": f"uint8-hwc-{i}", "dtype": "uint8", "channels_last": True,
                      "pixels": img.transpose(1, 2, 0).copy()})
    for i in range(2):
        cases.append({"name": f"float-chw-{i}", "dtype": "float32", "channels_last": False,
                      "pixels": rng.random((c, h, w), dtype=np.float32)})
    out = []
    for case in cases:
        x = case["pixels"]
        batch = x.transpose(2, 0, 1)[None] if case["channels_last"] else x[None]
        model_input = pre(batch)[pre.name][0]
        logits = np.asarray(bundle.predict(batch), dtype=np.float32)[0]
        probs = softmax(logits[None])[0]
        out.append({"name": case["name"], "dtype": case["dtype"], "channels_last": case["channels_last"],
                    "pixels": [int(v) for v in x.ravel()] if case["dtype"] == "uint8" else _floats(x),
                    "input": _floats(model_input), "logits": _floats(logits), "softmax": _floats(probs),
                    "top_k": _top_k(logits.astype(np.float64), bundle.labels, 3)})
    argb = rng.integers(0, 2**24, 64, dtype=np.int64) | (0xFF << 24)
    rgb = np.stack([(argb >> 16) & 255, (argb >> 8) & 255, argb & 255], 1).astype(np.uint8).reshape(8, 8, 3)
    from PIL import Image

    grey = np.asarray(Image.fromarray(rgb, "RGB").convert("L"), np.uint8)
    return {"images": out, "argb": {"argb": [int(v) - 2**32 for v in argb], "grey": [int(v) for v in grey.ravel()]}}


def _sweep_sha256(tokenizer: Any, stop: int = SWEEP_STOP) -> str:
    """sha256 of ``"<cp> <ids>\\n"`` for ``"a" + chr(cp) + "b"``, every non-surrogate code point below ``stop``."""
    from tokenizers import Tokenizer

    backend = tokenizer if isinstance(tokenizer, Tokenizer) else tokenizer.backend_tokenizer
    tok = Tokenizer.from_str(backend.to_str())
    tok.no_truncation()
    tok.no_padding()
    cps = [c for c in range(stop) if not 0xD800 <= c <= 0xDFFF]
    h = hashlib.sha256()
    for i in range(0, len(cps), 20000):
        chunk = cps[i : i + 20000]
        for c, enc in zip(chunk, tok.encode_batch(["a" + chr(c) + "b" for c in chunk]), strict=True):
            h.update(f"{c} {' '.join(map(str, enc.ids))}\n".encode())
    return h.hexdigest()


def _text_cases(bundle: Any) -> dict:
    from edgesmith.bundle.loader import TextInputs

    pre = bundle.preprocess
    ids_name, mask_name = pre.names[0], pre.names[1]
    texts = []
    for t in TRICKY_TEXTS:
        enc = pre([t])
        texts.append({"text": t, "input_ids": [int(v) for v in enc[ids_name][0]],
                      "attention_mask": [int(v) for v in enc[mask_name][0]]})
    batches = []
    spec = bundle.manifest["preprocessing"]
    for pad_to in (0, 16):
        p = TextInputs(spec, pre.names, bundle.path, {ids_name: [1, pad_to]} if pad_to else None)
        enc = p(TRICKY_TEXTS)
        batches.append({"pad_to": pad_to, "input_ids": enc[ids_name].tolist(),
                        "attention_mask": enc[mask_name].tolist()})
    emb = np.asarray(bundle.predict(TRICKY_TEXTS), dtype=np.float32)
    unit = emb / np.maximum(np.linalg.norm(emb.astype(np.float64), axis=1, keepdims=True), 1e-300)
    return {"max_length": pre.max_length, "texts": texts, "batches": batches,
            "sweep": {"stop": SWEEP_STOP, "sha256": _sweep_sha256(pre.fast[0] if pre.fast else pre.tokenizer)},
            "embeddings": [_floats(e) for e in emb],
            "cosines": [{"a": a, "b": b, "cosine": float(unit[a].astype(np.float64) @ unit[b])} for a, b in PAIRS]}


def _default_samples(bundle: Any) -> dict[str, Any]:
    if bundle.manifest["preprocessing"]["kind"] == "text":
        return {"tricky": TRICKY_TEXTS * 4}
    c, (h, w) = bundle.preprocess.channels, bundle.preprocess.size
    return {"random": np.random.default_rng(1).integers(0, 256, (120, c, h, w), dtype=np.uint8)}


def _telemetry(bundle: Any, samples: dict[str, Any]) -> list[dict]:
    """Reports of the Python hook over each sample, fed in calls of growing size."""
    from edgesmith.bundle.telemetry import DriftMonitor

    text = bundle.manifest["preprocessing"]["kind"] == "text"
    out = []
    for name, raw in samples.items():
        if text:
            items = [str(t) for t in raw]
        else:
            x = np.asarray(raw)
            items = x if x.dtype == np.uint8 else (np.clip(x, 0, 1) * 255).round().astype(np.uint8)
        n = len(items)
        window = max(n // 2, 1)
        sizes, at, k = [], 0, 1
        while at < n:
            sizes.append(min(k, n - at))
            at += sizes[-1]
            k = k * 2 + 1
        monitor = DriftMonitor(sample_rate=1.0, window=window, seed=0)
        bundle.monitor(monitor)
        outputs, at = [], 0
        try:
            for s in sizes:
                outputs.append(np.asarray(bundle.predict(items[at : at + s]), dtype=np.float32))
                at += s
            monitor.flush()
        finally:
            bundle.telemetry = None
        out.append({"name": name, "config": monitor.config.to_dict(), "calls": sizes,
                    "items": items if text else [[int(v) for v in img.ravel()] for img in items],
                    "outputs": [_floats(r) for r in np.concatenate(outputs)],
                    "reports": list(monitor.reports)})
    return out


def write_golden(bundle_dir: str | os.PathLike, out_path: str | os.PathLike,
                 samples: dict[str, Any] | None = None, runtime: str | None = None) -> dict:
    """Write the golden vectors of a bundle to ``out_path`` (JSON) and return them.

    Args:
        bundle_dir: A bundle folder (``edgesmith.json`` inside).
        out_path: The JSON file to write (atomically).
        samples: Named raw inputs for the drift reports (images ``(N, C, H, W)`` as
            uint8, or floats in [0, 1] rounded to uint8; or lists of texts); None
            takes random images or the tricky texts.
        runtime: The runtime whose outputs are recorded (None: the bundle's default).

    Raises:
        BundleError: The bundle does not verify or has no reference profile.
    """
    from edgesmith.bundle.loader import load_bundle

    root = Path(bundle_dir).resolve()
    with load_bundle(root, runtime=runtime) as bundle:
        kind = bundle.manifest["preprocessing"]["kind"]
        golden = {"schema": GOLDEN_SCHEMA, "bundle": str(root), "kind": kind,
                  "meaning": bundle.manifest["outputs"][0]["meaning"], "format": bundle.format,
                  "runtime": bundle.runtime.name, "float_tolerance": FLOAT_TOLERANCE}
        golden.update(_text_cases(bundle) if kind == "text" else _image_cases(bundle))
        golden["telemetry"] = _telemetry(bundle, samples or _default_samples(bundle))
    atomic.write_json(out_path, golden)
    return golden
