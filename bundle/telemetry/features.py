"""What the monitor measures per sampled item, by input kind and output meaning.

Each part reads its reference from the bundle's ``reference_profile`` and declares
its statistics (:class:`Spec`: name, metric, reference, how a window accumulates
it); :meth:`features` turns sampled items into per-item rows (bin counts,
moments, projections, saturation counts) and per-item scalars for the window's
quantile sketches (``sketch`` key).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.bundle.telemetry.stats import bin_index, softmax
from edgesmith.errors import BundleError


@dataclass(frozen=True)
class Spec:
    """One compared statistic. ``reference``: fractions per bin (``psi``), one
    histogram per direction (``max_psi``), ``[mean, std]`` (``shift``), the reference
    rate (``saturation``) or None (``mmd``: the sample lives in the part)."""

    name: str
    metric: str
    reference: Any
    bins: list[str] | None = None
    shape: tuple[int, ...] = ()
    reference_samples: int | None = None  # items behind ``reference`` when not the profile's ``samples``


def profile_part(manifest: dict, where: Path, *keys: str) -> Any:
    """``reference_profile[keys...]``, or a one-line BundleError naming the missing key."""
    node: Any = manifest.get("reference_profile")
    path = "reference_profile"
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise BundleError(f"{where}: '{path}' has no '{k}'; rebuild the bundle with a current edgesmith")
        node, path = node[k], f"{path}.{k}"
    return node


def hist_spec(name: str, hist: Any, where: Path, bins: list[str] | None = None) -> tuple[Spec, np.ndarray]:
    ok = isinstance(hist, dict) and len(hist.get("edges", [])) == len(hist.get("fractions", [])) + 1 >= 2
    if not ok:
        raise BundleError(f"{where}: reference_profile histogram of {name} is malformed (edges / fractions)")
    ref = [float(f) for f in hist["fractions"]]
    return Spec(name, "psi", ref, bins, (len(ref),)), np.asarray(hist["edges"], float)


def per_item_counts(idx: np.ndarray, bins: int) -> np.ndarray:
    """``(n, m)`` bin indices (or ``(n,)``) to ``(n, bins)`` counts per item."""
    idx = idx.reshape(len(idx), -1)
    flat = idx + (np.arange(len(idx)) * bins)[:, None]
    return np.bincount(flat.ravel(), minlength=len(idx) * bins).reshape(len(idx), bins).astype(np.float64)


class ImageInputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        channels = profile_part(manifest, where, "inputs", "channels")
        pairs = [hist_spec(f"pixels[{c}]", ch.get("histogram") if isinstance(ch, dict) else None, where)
                 for c, ch in enumerate(channels)]
        self.specs, self.edges = [s for s, _ in pairs], [e for _, e in pairs]
        self.preprocess = bundle.preprocess

    def features(self, raw: Any, out: np.ndarray, idx: np.ndarray, feeds: dict | None = None) -> dict[str, np.ndarray]:
        x = self.preprocess.nchw(raw)[idx]
        flat = x.reshape(len(x), x.shape[1], -1)
        feats = {s.name: per_item_counts(bin_index(flat[:, c], e), len(e) - 1)
                 for c, (s, e) in enumerate(zip(self.specs, self.edges, strict=True))}
        feats["sketch:pixel_mean"] = flat.mean((1, 2))
        return feats


class TextInputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        spec, self.edges = hist_spec("token_length", profile_part(
            manifest, where, "inputs", "token_length", "histogram"), where)
        self.specs = [spec]
        self.preprocess = bundle.preprocess

    def features(self, raw: Any, out: np.ndarray, idx: np.ndarray, feeds: dict | None = None) -> dict[str, np.ndarray]:
        mask = (feeds or {}).get(self.preprocess.names[-1]) if len(self.preprocess.names) > 1 else None
        if mask is not None:  # predict's own tokens: no second tokenization
            lengths = np.asarray(mask)[idx].sum(1)
        else:
            texts = [raw] if isinstance(raw, str) else raw
            lengths = self.preprocess.lengths([str(texts[i]) for i in idx])
        return {"token_length": per_item_counts(bin_index(lengths, self.edges), len(self.edges) - 1),
                "sketch:token_length": np.asarray(lengths, np.float64)}


class ClassifierOutputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        classes = profile_part(manifest, where, "outputs", "predicted_class")
        if not isinstance(classes, dict) or not classes:
            raise BundleError(f"{where}: reference_profile.outputs.predicted_class is empty")
        names = list(classes)
        width = (manifest["outputs"][0].get("shape") or [None])[-1]
        if isinstance(width, int) and width != len(names):
            raise BundleError(f"{where}: the model outputs {width} classes, its reference profile {len(names)}")
        conf, self.edges = hist_spec("confidence", profile_part(
            manifest, where, "outputs", "confidence", "histogram"), where)
        ref = [float(v) for v in classes.values()]
        self.specs = [Spec("predicted_class", "psi", ref, names, (len(ref),)), conf]

    def features(self, raw: Any, out: np.ndarray, idx: np.ndarray, feeds: dict | None = None) -> dict[str, np.ndarray]:
        probs = softmax(out[idx])
        k = len(self.specs[0].reference)
        return {"predicted_class": per_item_counts(probs.argmax(1), k),
                "confidence": per_item_counts(bin_index(probs.max(1), self.edges), len(self.edges) - 1),
                "sketch:confidence": probs.max(1)}


class EmbeddingOutputs:
    """Embedding norm (a shift), and, when the profile has ``outputs.embedding``
    (:mod:`.embedding`): projections on principal directions, centroid cosine, MMD."""

    def __init__(self, bundle: Any, manifest: dict, where: Path):
        from edgesmith.bundle.telemetry.embedding import EmbeddingStats

        norm = profile_part(manifest, where, "outputs", "norm")
        if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
            raise BundleError(f"{where}: reference_profile.outputs.norm has no mean / std")
        self.specs = [Spec("embedding_norm", "shift", [float(norm["mean"]), float(norm["std"])], None, (3,))]
        prof = manifest["reference_profile"]["outputs"].get("embedding")
        self.emb = EmbeddingStats(prof) if isinstance(prof, dict) else None
        if self.emb is not None:
            e, m = self.emb, prof.get("measured_on")
            self.specs += [
                Spec("embedding_directions", "max_psi", [h["fractions"] for h in e.hists], None,
                     (len(e.hists), len(e.hists[0]["fractions"])), m),
                Spec("centroid_cosine", "psi", prof["centroid_cosine"]["fractions"], None, (len(e.cos_edges) - 1,), m),
                Spec("embedding_mmd", "mmd", None, None, (e.directions.shape[0],)),
            ]

    def features(self, raw: Any, out: np.ndarray, idx: np.ndarray, feeds: dict | None = None) -> dict[str, np.ndarray]:
        x = np.asarray(out[idx], dtype=np.float64)
        v = np.linalg.norm(x, axis=1)
        feats = {"embedding_norm": np.stack([np.ones_like(v), v, v * v], 1), "sketch:embedding_norm": v}
        if self.emb is not None:
            e = self.emb
            proj = e.project(x)
            feats["embedding_directions"] = np.stack(
                [per_item_counts(bin_index(proj[:, j], edges), len(edges) - 1) for j, edges in enumerate(e.edges)], 1)
            cos = e.cosine(x)
            feats["centroid_cosine"] = per_item_counts(bin_index(cos, e.cos_edges), len(e.cos_edges) - 1)
            feats["embedding_mmd"] = proj
            feats["sketch:centroid_cosine"] = cos
        return feats


class Saturation:
    """Values outside the int8 calibration ranges (:mod:`.calibration`), per probe."""

    def __init__(self, bundle: Any, manifest: dict, where: Path):
        from edgesmith.bundle.telemetry.calibration import SaturationProbe

        cal = manifest["reference_profile"]["calibration"]
        self.specs = [Spec(f"saturation[{p['tensor']}]", "saturation", float(p.get("reference_rate", 0.0)), None, (2,))
                      for p in cal["probes"]]
        self.preprocess = bundle.preprocess
        names = [i["name"] for i in manifest["inputs"]]
        self.probe = SaturationProbe(Path(bundle.path) / cal["file"], cal["probes"], names)

    def features(self, raw: Any, out: np.ndarray, idx: np.ndarray, feeds: dict | None = None) -> dict[str, np.ndarray]:
        if feeds:
            counts = self.probe.counts({k: np.asarray(v)[idx] for k, v in feeds.items()})
            return {s.name: counts[:, j] for j, s in enumerate(self.specs)}
        if hasattr(self.preprocess, "nchw"):
            sub: Any = self.preprocess.nchw(raw)[idx]
        else:
            texts = [raw] if isinstance(raw, str) else raw
            sub = [str(texts[i]) for i in idx]
        counts = self.probe.counts(self.preprocess(sub))
        return {s.name: counts[:, j] for j, s in enumerate(self.specs)}


INPUTS: dict[str, type] = {"image": ImageInputs, "text": TextInputs}
OUTPUTS: dict[str, type] = {"logits": ClassifierOutputs, "sentence_embedding": EmbeddingOutputs}


def parts_for(bundle: Any, manifest: dict, where: Path) -> list[Any]:
    """The parts watching a bundle: its inputs, its outputs and, for a static int8
    file with recorded calibration ranges, saturation."""
    kind, meaning = manifest["preprocessing"]["kind"], manifest["outputs"][0]["meaning"]
    if kind not in INPUTS or meaning not in OUTPUTS:
        raise BundleError(f"{where}: no drift statistics for {kind} inputs with {meaning} outputs")
    parts = [INPUTS[kind](bundle, manifest, where), OUTPUTS[meaning](bundle, manifest, where)]
    cal = manifest["reference_profile"].get("calibration")
    if isinstance(cal, dict) and cal.get("format") == bundle.format and cal.get("probes"):
        parts.append(Saturation(bundle, manifest, where))
    return parts
