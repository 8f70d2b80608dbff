"""The reference profile a bundle carries for drift monitoring: summary statistics
of held-out inputs and of what the bundled file outputs on them, computed through
the bundle itself (its preprocessing, its file, its runtime).

A monitor compares live traffic with it: per-channel pixel statistics or token
lengths for the inputs; the predicted-class histogram and the histogram of the
top softmax probability for classifiers; embedding norms and a compact summary of
the embeddings (centroid, principal directions, projection histograms, a sample of
projections: :mod:`edgesmith.bundle.telemetry.embedding`) for encoders; and, for a
static int8 ONNX file, the calibration ranges of a few activation quantizers with
the fraction of reference values outside them
(:mod:`edgesmith.bundle.telemetry.calibration`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from edgesmith.bundle.telemetry.stats import (  # one binning for the profile and the monitor reading it
    QUANTILES,
    UNIT_BINS,
    histogram,
    softmax,
    summary,
    token_length_edges,
)

__all__ = ["QUANTILES", "UNIT_BINS", "histogram", "reference_profile", "summary"]


def _image_inputs(bundle, raw: Any) -> dict:
    x = bundle.preprocess.nchw(raw)  # (N, C, H, W) in [0, 1], before normalisation
    return {"space": "pixels in [0, 1] before normalisation",
            "channels": [{**summary(x[:, c]), "histogram": histogram(x[:, c].ravel(), UNIT_BINS)}
                         for c in range(x.shape[1])]}


def _text_inputs(bundle, raw: Any) -> dict:
    lengths = bundle.preprocess.lengths(list(raw))
    max_length = bundle.preprocess.max_length
    return {"space": "tokens per text (special tokens included, truncated to max_length)",
            "token_length": {**summary(lengths), "histogram": histogram(lengths, token_length_edges(max_length)),
                             "at_max_length": float(np.mean(lengths >= max_length)) if len(lengths) else 0.0}}


def _classifier_outputs(out: np.ndarray, labels: list[str] | None, y: np.ndarray | None) -> dict:
    probs = softmax(out)
    pred, conf = probs.argmax(1), probs.max(1)
    k = out.shape[1]
    names = labels if labels and len(labels) == k else [str(i) for i in range(k)]
    counts = np.bincount(pred, minlength=k)
    result = {"predicted_class": {n: round(int(c) / max(len(pred), 1), 6) for n, c in zip(names, counts, strict=True)},
              "confidence": {**summary(conf), "histogram": histogram(conf, UNIT_BINS)}}
    if y is not None:
        result["accuracy"] = float((pred == np.asarray(y)[: len(pred)]).mean())
    return result


def _embedding_outputs(out: np.ndarray, labels: list[str] | None, y: np.ndarray | None) -> dict:
    from edgesmith.bundle.telemetry.embedding import embedding_profile

    return {"dim": int(out.shape[1]), "norm": summary(np.linalg.norm(out, axis=1)),
            "embedding": embedding_profile(out)}


INPUT_PROFILES: dict[str, Callable[..., dict]] = {"image": _image_inputs, "text": _text_inputs}
OUTPUT_PROFILES: dict[str, Callable[..., dict]] = {"logits": _classifier_outputs,
                                                   "sentence_embedding": _embedding_outputs}


def reference_profile(bundle, raw, split: str, limit: int = 1000) -> dict:
    """Profile the first ``limit`` items of ``raw`` (a RawData split) through ``bundle``."""
    sub = raw.subset(range(min(limit, len(raw))))
    manifest = bundle.manifest
    out = np.asarray(bundle.predict(sub.x), dtype=np.float64)
    meaning = manifest["outputs"][0]["meaning"]
    profile = {
        "split": split, "samples": len(sub), "format": bundle.format,
        "inputs": INPUT_PROFILES[manifest["preprocessing"]["kind"]](bundle, sub.x),
        "outputs": OUTPUT_PROFILES[meaning](out, manifest.get("labels"), sub.y),
    }
    from edgesmith.bundle.telemetry.calibration import saturation_profile

    try:
        calibration = saturation_profile(bundle, sub.x, limit)
    except Exception as e:  # a file the probe cannot rewrite: no saturation check, the bundle still ships
        calibration = {"error": f"{type(e).__name__}: {e}".splitlines()[0]}
    if calibration is not None:
        profile["calibration"] = calibration
    return profile
