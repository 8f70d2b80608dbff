"""Drift telemetry: watch a shipped model by comparing a sample of its live traffic
with the ``reference_profile`` its bundle carries.

A :class:`DriftMonitor` rides on a :class:`~edgesmith.bundle.loader.Bundle`. Each
``predict`` call draws which of its items to sample (a seeded Bernoulli process,
``sample_rate``; an unsampled call costs a lock and an integer compare) and adds the
sampled items' statistics to the current window: per-channel pixel histograms or
the token-length histogram of the inputs; the predicted-class distribution and the
top-softmax-confidence histogram (classifiers) or the embedding norm (encoders).
Every ``window`` sampled items it emits a drift report to a JSON-lines file and/or
a callback. Reports hold only window aggregates, never an input::

    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor

    monitor = DriftMonitor(sample_rate=0.05, window=500, sink="drift.jsonl")
    with load_bundle("runs/digits-quick/bundle", telemetry=monitor) as bundle:
        bundle.predict(images)          # reports appended every 500 sampled images
        print(monitor.report()["status"])  # the current window, on demand

Scores: the population stability index per histogram,
``PSI = sum((p - q) * ln(p / q))`` over bins (live ``p``, reference ``q``, each
floored at :data:`PSI_EPSILON`); for embedding norms the shift of the window mean
in reference standard deviations. Status: PSI < 0.1 ``ok``, 0.1 to 0.25 ``warn``,
> 0.25 ``drift``; a mean shift of ``d`` std has PSI ~ d^2 for a normal, so the shift
thresholds are sqrt(0.1) ~ 0.32 and 0.5. A report's status is its worst statistic's.

The statistics helpers (:func:`summary`, :func:`histogram`, :func:`bin_index`,
:func:`token_length_edges`, :func:`softmax`) are the ones
:mod:`edgesmith.bundle.profile` writes the reference with, so both sides bin alike.
"""

from __future__ import annotations

import json
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.conf.base import Config, RecipeError, at_least, between
from edgesmith.errors import BundleError

log = logging.getLogger(__name__)

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
UNIT_BINS = np.linspace(0.0, 1.0, 11)  # pixel values and confidences: 10 equal bins over [0, 1]
PSI_EPSILON = 1e-4  # floor of a bin's fraction: an empty bin scores as 0.01%, not log(0)
REPORT_SCHEMA = "edgesmith.drift/1"
STATUSES = ("ok", "warn", "drift")


# --------------------------------------------------------------- statistics
def summary(values: np.ndarray) -> dict[str, Any]:
    """Mean, std and :data:`QUANTILES` of a 1-D array."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"count": 0}
    q = np.quantile(v, QUANTILES)
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            "quantiles": {f"p{round(p * 100):02d}": float(x) for p, x in zip(QUANTILES, q, strict=True)}}


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``edges[i] <= v < edges[i + 1]``, the last bin closed,
    values outside the edges clipped into the end bins (as :func:`histogram` counts)."""
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, list]:
    """Fractions per bin (the last bin closed, outliers clipped in), with the bin edges."""
    counts = np.bincount(bin_index(np.ravel(values), edges), minlength=len(edges) - 1)
    total = max(int(counts.sum()), 1)
    return {"edges": [round(float(e), 6) for e in edges], "fractions": [round(int(c) / total, 6) for c in counts]}


def token_length_edges(max_length: int) -> np.ndarray:
    """Token-length bin edges: 0, powers of two below ``max_length``, ``max_length``."""
    return np.asarray([0] + [2**i for i in range(1, 16) if 2**i < max_length] + [max_length], float)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def psi(live: np.ndarray, reference: np.ndarray, eps: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions over the same bins (counts or
    fractions; each is normalised, then floored at ``eps``)."""
    p, q = (np.asarray(a, dtype=np.float64) for a in (live, reference))
    p, q = (np.maximum(a / max(a.sum(), 1e-300), eps) for a in (p, q))
    return float(np.sum((p - q) * np.log(p / q)))


# ------------------------------------------------------------------- config
@dataclass
class TelemetryConfig(Config):
    """How a :class:`DriftMonitor` samples and judges traffic.

    Attributes:
        sample_rate: Fraction of predicted items sampled, in [0, 1].
        window: Sampled items per drift report.
        seed: Seed of the sampling; the same seed samples the same positions of
            the request stream, whatever the batch sizes.
        psi_warn: PSI from which a histogram is ``warn``.
        psi_drift: PSI above which a histogram is ``drift``.
        shift_warn: Mean shift (reference std units) from which it is ``warn``.
        shift_drift: Mean shift above which it is ``drift``.
    """

    sample_rate: float = field(default=0.1, metadata=between(0, 1))
    window: int = field(default=500, metadata=at_least(1))
    seed: int = 0
    psi_warn: float = field(default=0.1, metadata=at_least(0, open_=True))
    psi_drift: float = field(default=0.25, metadata=at_least(0, open_=True))
    shift_warn: float = field(default=0.32, metadata=at_least(0, open_=True))
    shift_drift: float = field(default=0.5, metadata=at_least(0, open_=True))

    def validate(self) -> None:
        for kind in ("psi", "shift"):
            if getattr(self, f"{kind}_warn") > getattr(self, f"{kind}_drift"):
                raise RecipeError(f"{kind}_warn", f"must be <= {kind}_drift ({getattr(self, f'{kind}_drift')})")

    def status(self, metric: str, value: float) -> str:
        """``ok`` / ``warn`` / ``drift`` of one score (``metric``: psi or shift)."""
        v = abs(value)
        warn, drift = getattr(self, f"{metric}_warn"), getattr(self, f"{metric}_drift")
        return "ok" if v < warn else "warn" if v <= drift else "drift"


# --------------------------------------------------------------- reference
@dataclass(frozen=True)
class _Stat:
    """One compared statistic: a histogram (``psi``) or a mean (``shift``); per item it
    contributes a row of bin counts, or ``[1, v, v^2]``."""

    name: str
    metric: str
    reference: list[float]  # fractions per bin, or [mean, std]
    bins: list[str] | None = None


def _profile_part(manifest: dict, where: Path, *keys: str) -> Any:
    node: Any = manifest.get("reference_profile")
    path = "reference_profile"
    for k in keys:
        if not isinstance(node, dict) or k not in node:
            raise BundleError(f"{where}: '{path}' has no '{k}'; rebuild the bundle with a current edgesmith")
        node, path = node[k], f"{path}.{k}"
    return node


def _hist_stat(name: str, hist: Any, where: Path, bins: list[str] | None = None) -> tuple[_Stat, np.ndarray]:
    ok = isinstance(hist, dict) and len(hist.get("edges", [])) == len(hist.get("fractions", [])) + 1 >= 2
    if not ok:
        raise BundleError(f"{where}: reference_profile histogram of {name} is malformed (edges / fractions)")
    return _Stat(name, "psi", [float(f) for f in hist["fractions"]], bins), np.asarray(hist["edges"], float)


def _per_item_counts(idx: np.ndarray, bins: int) -> np.ndarray:
    """``(n, m)`` bin indices (or ``(n,)``) to ``(n, bins)`` counts per item."""
    idx = idx.reshape(len(idx), -1)
    flat = idx + (np.arange(len(idx)) * bins)[:, None]
    return np.bincount(flat.ravel(), minlength=len(idx) * bins).reshape(len(idx), bins).astype(np.float64)


class _ImageInputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        channels = _profile_part(manifest, where, "inputs", "channels")
        pairs = [_hist_stat(f"pixels[{c}]", ch.get("histogram") if isinstance(ch, dict) else None, where)
                 for c, ch in enumerate(channels)]
        self.stats, self.edges = [s for s, _ in pairs], [e for _, e in pairs]
        self.preprocess = bundle.preprocess

    def features(self, raw: Any, idx: np.ndarray) -> dict[str, np.ndarray]:
        x = self.preprocess.nchw(raw)[idx]
        flat = x.reshape(len(x), x.shape[1], -1)
        return {s.name: _per_item_counts(bin_index(flat[:, c], e), len(e) - 1)
                for c, (s, e) in enumerate(zip(self.stats, self.edges, strict=True))}


class _TextInputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        stat, self.edges = _hist_stat("token_length", _profile_part(
            manifest, where, "inputs", "token_length", "histogram"), where)
        self.stats = [stat]
        self.preprocess = bundle.preprocess

    def features(self, raw: Any, idx: np.ndarray) -> dict[str, np.ndarray]:
        texts = [raw] if isinstance(raw, str) else list(raw)
        lengths = self.preprocess.lengths([str(texts[i]) for i in idx])
        return {"token_length": _per_item_counts(bin_index(lengths, self.edges), len(self.edges) - 1)}


class _ClassifierOutputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        classes = _profile_part(manifest, where, "outputs", "predicted_class")
        if not isinstance(classes, dict) or not classes:
            raise BundleError(f"{where}: reference_profile.outputs.predicted_class is empty")
        names = list(classes)
        width = (manifest["outputs"][0].get("shape") or [None])[-1]
        if isinstance(width, int) and width != len(names):
            raise BundleError(f"{where}: the model outputs {width} classes, its reference profile {len(names)}")
        conf, self.edges = _hist_stat("confidence", _profile_part(
            manifest, where, "outputs", "confidence", "histogram"), where)
        self.stats = [_Stat("predicted_class", "psi", [float(v) for v in classes.values()], names), conf]

    def features(self, out: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
        probs = softmax(out[idx])
        k = len(self.stats[0].reference)
        return {"predicted_class": _per_item_counts(probs.argmax(1), k),
                "confidence": _per_item_counts(bin_index(probs.max(1), self.edges), len(self.edges) - 1)}


class _EmbeddingOutputs:
    def __init__(self, bundle: Any, manifest: dict, where: Path):
        norm = _profile_part(manifest, where, "outputs", "norm")
        if not isinstance(norm, dict) or "mean" not in norm or "std" not in norm:
            raise BundleError(f"{where}: reference_profile.outputs.norm has no mean / std")
        self.stats = [_Stat("embedding_norm", "shift", [float(norm["mean"]), float(norm["std"])])]

    def features(self, out: np.ndarray, idx: np.ndarray) -> dict[str, np.ndarray]:
        v = np.linalg.norm(np.asarray(out[idx], dtype=np.float64), axis=1)
        return {"embedding_norm": np.stack([np.ones_like(v), v, v * v], 1)}


INPUTS: dict[str, type] = {"image": _ImageInputs, "text": _TextInputs}
OUTPUTS: dict[str, type] = {"logits": _ClassifierOutputs, "sentence_embedding": _EmbeddingOutputs}


# ------------------------------------------------------------------ monitor
class DriftMonitor:
    """Samples a bundle's traffic and reports drift from its reference profile.

    Args:
        config: Sampling and thresholds; keyword ``settings`` override its fields
            (``DriftMonitor(sample_rate=0.05, window=1000)``).
        sink: JSON-lines file each report is appended to (one line per report).
        callback: Called with each report (a dict) as it is emitted.
        keep: Emitted reports kept in :attr:`reports`.

    Raises:
        RecipeError: A setting out of range, or a sink that cannot be appended to.

    Reports are emitted every ``window`` sampled items; a failing sink or callback
    is logged and never fails ``predict``.
    """

    def __init__(self, config: TelemetryConfig | None = None, *, sink: str | os.PathLike | None = None,
                 callback: Callable[[dict], Any] | None = None, keep: int = 16, **settings: Any):
        base = (config or TelemetryConfig()).to_dict()
        unknown = sorted(set(settings) - set(base))
        if unknown:
            raise RecipeError(unknown[0], f"unknown telemetry setting; known: {', '.join(base)}")
        self.config = TelemetryConfig.from_dict({**base, **settings})
        self.sink = Path(sink) if sink is not None else None
        if self.sink is not None:
            try:
                self.sink.parent.mkdir(parents=True, exist_ok=True)
                with open(self.sink, "ab"):
                    pass
            except OSError as e:
                raise RecipeError("sink", f"{self.sink}: cannot append drift reports ({e.strerror})") from None
        self.callback = callback
        self.reports: deque[dict] = deque(maxlen=keep)
        self._lock, self._sink_lock = threading.Lock(), threading.Lock()
        self._rng = np.random.default_rng(self.config.seed)
        self._gaps, self._gap_at = np.empty(0, np.int64), 0
        self.seen, self.sampled, self.errors, self._windows = 0, 0, 0, 0
        self._next = self._gap() - 1  # position in the request stream of the next sampled item
        self._bundle: Any = None
        self._parts: list[Any] = []
        self._window: dict[str, np.ndarray] = {}
        self._window_n = 0

    # ---------------------------------------------------------- binding
    def attach(self, bundle: Any) -> DriftMonitor:
        """Read ``bundle``'s reference profile; called by ``load_bundle(telemetry=...)``.

        Raises:
            BundleError: The manifest has no usable ``reference_profile`` (one line).
        """
        if self._bundle is not None and self._bundle is not bundle:
            raise BundleError("this DriftMonitor already watches another bundle; make one per bundle")
        manifest, where = bundle.manifest, Path(bundle.path) / "edgesmith.json"
        prof = manifest.get("reference_profile")
        if not isinstance(prof, dict):
            raise BundleError(f"{where}: no 'reference_profile' to compare traffic with; rebuild the bundle "
                              "with a current edgesmith (`edgesmith run`, or write_bundle(run_dir))")
        if "error" in prof:
            raise BundleError(f"{where}: 'reference_profile' holds no statistics (profiling failed when the "
                              f"bundle was written: {prof['error']})")
        kind, meaning = manifest["preprocessing"]["kind"], manifest["outputs"][0]["meaning"]
        if kind not in INPUTS or meaning not in OUTPUTS:
            raise BundleError(f"{where}: no drift statistics for {kind} inputs with {meaning} outputs")
        self._parts = [INPUTS[kind](bundle, manifest, where), OUTPUTS[meaning](bundle, manifest, where)]
        self._reference_samples = int(prof.get("samples") or 0)
        src = manifest.get("source") or {}
        self._identity = {"recipe": src.get("recipe"), "recipe_sha256": src.get("recipe_sha256"),
                          "format": bundle.format, "created_utc": manifest.get("created_utc")}
        self._bundle = bundle
        self._reset()
        classes = len(self._parts[1].stats[0].reference) if meaning == "logits" else 0
        live, ref = ((classes - 1) / n for n in (self.config.window, max(self._reference_samples, 1)))
        if classes and live + ref > self.config.psi_warn / 2:  # E[PSI] of two samples of one distribution
            log.warning("drift telemetry: with %d classes, sampling noise alone puts the predicted-class PSI near "
                        "%.2f (%.2f from the %d-item window, %.2f from the %d reference samples); %s", classes,
                        live + ref, live, self.config.window, ref, self._reference_samples,
                        "raise window" if live > ref else "profile more reference data")
        return self

    @property
    def statistics(self) -> list[str]:
        """Names of the compared statistics, in report order."""
        return [s.name for p in self._parts for s in p.stats]

    # ---------------------------------------------------------- hot path
    def _gap(self) -> int:
        rate = self.config.sample_rate
        if rate <= 0:
            return 2**62
        if rate >= 1:
            return 1
        if self._gap_at >= len(self._gaps):
            self._gaps, self._gap_at = self._rng.geometric(rate, 1024), 0
        self._gap_at += 1
        return int(self._gaps[self._gap_at - 1])

    def observe(self, raw_inputs: Any, outputs: np.ndarray) -> None:
        """Account for one ``predict`` call: sample its items and add them to the window.

        Args:
            raw_inputs: What ``predict`` was given.
            outputs: What it returned (one row per item).
        """
        n = len(outputs)
        with self._lock:
            start, end = self.seen, self.seen + n
            self.seen = end
            if self._next >= end or self._bundle is None:
                return
            picked = []
            while self._next < end:
                picked.append(self._next - start)
                self._next += self._gap()
        idx = np.asarray(picked, dtype=np.int64)
        try:
            feats = self._parts[0].features(raw_inputs, idx)
            feats.update(self._parts[1].features(np.asarray(outputs), idx))
        except Exception:  # telemetry never breaks inference
            self.errors += 1
            if self.errors == 1:
                log.exception("drift telemetry: could not profile a sampled batch; skipped")
            return
        self._emit(self._accumulate(feats, len(idx)))

    def _accumulate(self, feats: dict[str, np.ndarray], n: int) -> list[dict]:
        done = []
        with self._lock:
            self.sampled += n
            at = 0
            while at < n:
                take = min(self.config.window - self._window_n, n - at)
                for k, v in feats.items():
                    self._window[k] += v[at : at + take].sum(0)
                self._window_n += take
                at += take
                if self._window_n >= self.config.window:
                    done.append(self._build(full=True))
                    self._reset()
        return done

    def _reset(self) -> None:
        self._window = {s.name: np.zeros(len(s.reference) if s.metric == "psi" else 3)
                        for p in self._parts for s in p.stats}
        self._window_n = 0

    # ---------------------------------------------------------- reports
    def _score(self, stat: _Stat, acc: np.ndarray) -> dict:
        if stat.metric == "psi":
            value = psi(acc, np.asarray(stat.reference))
            total = max(acc.sum(), 1.0)
            fractions = [round(float(c) / total, 6) for c in acc]
            live: Any = dict(zip(stat.bins, fractions, strict=True)) if stat.bins else fractions
            detail = {"fractions": live}
        else:
            n, s, s2 = (float(a) for a in acc)
            mean = s / n if n else math.nan
            std = math.sqrt(max(s2 / n - mean * mean, 0.0)) if n else math.nan
            ref_mean, ref_std = stat.reference
            scale = max(ref_std, 1e-3 * abs(ref_mean), 1e-12)  # unit-norm embeddings: no alarm on rounding
            value = (mean - ref_mean) / scale
            detail = {"mean": mean, "std": std, "reference_mean": ref_mean, "reference_std": ref_std}
        return {"name": stat.name, "metric": stat.metric, "value": round(value, 6),
                "status": self.config.status(stat.metric, value), **detail}

    def _build(self, full: bool) -> dict:
        n = self._window_n
        stats = [self._score(s, self._window[s.name]) for p in self._parts for s in p.stats] if n else []
        worst = max(stats, key=lambda r: (STATUSES.index(r["status"]), abs(r["value"])), default=None)
        report = {
            "schema": REPORT_SCHEMA,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "bundle": self._identity,
            "window": {"index": self._windows, "samples": n, "full": full, "requests_seen": self.seen,
                       "sampled_total": self.sampled, "reference_samples": self._reference_samples},
            "config": self.config.to_dict(),
            "status": worst["status"] if worst else "no_data",
            "worst": worst["name"] if worst else None,
            "statistics": stats,
        }
        if full:
            self._windows += 1
        return report

    def report(self) -> dict:
        """The current (unfinished) window's report, without emitting or resetting it;
        status ``no_data`` while the window holds no sample."""
        self._require_attached()
        with self._lock:
            return self._build(full=False)

    summary = report  # the same: the current window's report

    def flush(self) -> dict | None:
        """Emit the current window now (``full: false``) and start a new one; None
        when it holds no sample."""
        self._require_attached()
        with self._lock:
            if not self._window_n:
                return None
            rep = self._build(full=False)
            self._windows += 1
            self._reset()
        self._emit([rep])
        return rep

    def _require_attached(self) -> None:
        if self._bundle is None:
            raise BundleError("this DriftMonitor watches no bundle yet; pass it to load_bundle(telemetry=...)")

    def _emit(self, reports: list[dict]) -> None:
        if not reports:
            return
        with self._sink_lock:
            for rep in reports:
                self.reports.append(rep)
                if self.sink is not None:
                    line = (json.dumps(rep, separators=(",", ":"), default=_plain) + "\n")
                    try:  # one unbuffered write per line in append mode: lines from several writers stay whole
                        with open(self.sink, "ab", buffering=0) as f:
                            f.write(line.encode())
                    except OSError as e:
                        log.warning("drift telemetry: cannot append to %s (%s); report dropped", self.sink, e)
                if self.callback is not None:
                    try:
                        self.callback(rep)
                    except Exception:  # telemetry never breaks inference
                        log.exception("drift telemetry: the report callback failed")

    def __repr__(self) -> str:
        c = self.config
        return (f"DriftMonitor(sample_rate={c.sample_rate}, window={c.window}, seen={self.seen}, "
                f"sampled={self.sampled}, sink={str(self.sink) if self.sink else None!r})")


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)


def make_monitor(telemetry: DriftMonitor | bool | str | os.PathLike, **settings: Any) -> DriftMonitor:
    """A monitor from ``load_bundle``'s ``telemetry`` argument: a monitor as is,
    True for one with default settings (reports kept in memory), or a path for one
    that appends its reports to that JSON-lines file."""
    if isinstance(telemetry, DriftMonitor):
        if settings:
            raise RecipeError(next(iter(settings)), "set it on the DriftMonitor you pass, not here")
        return telemetry
    if telemetry is True:
        return DriftMonitor(**settings)
    if isinstance(telemetry, (str, os.PathLike)):
        return DriftMonitor(sink=telemetry, **settings)
    raise RecipeError("telemetry", f"expected a DriftMonitor, True or a .jsonl path, got {telemetry!r}")
