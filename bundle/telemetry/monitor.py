"""The sampling hook a :class:`~edgesmith.bundle.loader.Bundle` calls on every
``predict``: it samples items, accumulates their statistics into a window and emits
a scored, mergeable report every ``window`` sampled items."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.bundle.telemetry import sketch
from edgesmith.bundle.telemetry.embedding import Reservoir, mmd_test
from edgesmith.bundle.telemetry.features import Spec, parts_for
from edgesmith.bundle.telemetry.scoring import TelemetryConfig, minimum_sample, score, worst
from edgesmith.bundle.telemetry.sink import JsonlSink
from edgesmith.conf.base import RecipeError
from edgesmith.errors import BundleError

log = logging.getLogger(__name__)
REPORT_SCHEMA = "edgesmith.drift/2"
QUEUE = 8  # full windows waiting to be scored in the background


class DriftMonitor:
    """Samples a bundle's traffic and reports drift from its reference profile.

    Args:
        config: Sampling and thresholds; keyword ``settings`` override its fields
            (``DriftMonitor(sample_rate=0.05, window=1000)``).
        sink: JSON-lines file each report is appended to, or a
            :class:`~edgesmith.bundle.telemetry.sink.JsonlSink` (spooling settings).
        callback: Called with each report (a dict) as it is emitted.
        keep: Emitted reports kept in :attr:`reports` (memory stays bounded).

    Raises:
        RecipeError: A setting out of range.

    A failing sink spools (never loses a report below its bounds) and a failing
    callback is logged; neither ever fails ``predict``.
    """

    def __init__(self, config: TelemetryConfig | None = None, *, sink: str | os.PathLike | JsonlSink | None = None,
                 callback: Callable[[dict], Any] | None = None, keep: int = 16, **settings: Any):
        base = (config or TelemetryConfig()).to_dict()
        unknown = sorted(set(settings) - set(base))
        if unknown:
            raise RecipeError(unknown[0], f"unknown telemetry setting; known: {', '.join(base)}")
        self.config = TelemetryConfig.from_dict({**base, **settings})
        self.sink = sink if isinstance(sink, JsonlSink) or sink is None else JsonlSink(sink)
        self.callback = callback
        self.reports: deque[dict] = deque(maxlen=keep)
        self.device = self.config.device or socket.gethostname()
        self._lock, self._sink_lock = threading.Lock(), threading.Lock()
        self._rng = np.random.default_rng(self.config.seed)
        self._gaps, self._gap_at = np.empty(0, np.int64), 0
        self.seen, self.sampled, self.errors, self._windows = 0, 0, 0, 0
        self._next = self._gap() - 1  # position in the request stream of the next sampled item
        self._bundle: Any = None
        self._parts: list[Any] = []
        self._specs: list[Spec] = []
        self._window_n = 0
        self._queue: queue.Queue[dict] = queue.Queue(QUEUE)
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()

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
        self._parts = parts_for(bundle, manifest, where)
        self._specs = [s for p in self._parts for s in p.specs]
        self.reference_samples = int(prof.get("samples") or 0)
        src = manifest.get("source") or {}
        self._identity = {"recipe": src.get("recipe"), "recipe_sha256": src.get("recipe_sha256"),
                          "format": bundle.format, "created_utc": manifest.get("created_utc")}
        templates = [{"metric": s.metric, "reference": s.reference, "reference_samples": s.reference_samples}
                     for s in self._specs]
        self.min_samples = minimum_sample(templates, self.config, self.reference_samples)
        self._bundle = bundle
        self._reset()
        if self.config.window < self.min_samples:
            log.warning("drift telemetry: a window of %d items is below the minimum sample of %d this bundle's "
                        "tests need (alpha %.3g, power %.2f); its reports will say 'insufficient'",
                        self.config.window, self.min_samples, self.config.alpha, self.config.power)
        return self

    @property
    def statistics(self) -> list[str]:
        """Names of the compared statistics, in report order."""
        return [s.name for s in self._specs]

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

    def observe(self, raw_inputs: Any, outputs: np.ndarray, feeds: dict[str, np.ndarray] | None = None) -> None:
        """Account for one ``predict`` call: sample its items and add them to the window.

        Args:
            raw_inputs: What ``predict`` was given.
            outputs: What it returned (one row per item).
            feeds: The preprocessed inputs ``predict`` ran (token ids and mask, or
                normalised images), reused instead of preprocessing sampled items again.
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
            out = np.asarray(outputs)
            feats: dict[str, np.ndarray] = {}
            for part in self._parts:
                feats.update(part.features(raw_inputs, out, idx, feeds))
        except Exception:  # telemetry never breaks inference
            self.errors += 1
            if self.errors == 1:
                log.exception("drift telemetry: could not profile a sampled batch; skipped")
            return
        done = self._accumulate(feats, len(idx))
        if done:
            self._hand_off(done)

    def _accumulate(self, feats: dict[str, np.ndarray], n: int) -> list[dict]:
        done = []
        with self._lock:
            self.sampled += n
            at = 0
            while at < n:
                take = min(self.config.window - self._window_n, n - at)
                for k, v in feats.items():
                    if k.startswith("sketch:"):
                        sketch.update(self._sketches.setdefault(k[7:], sketch.new()), v[at : at + take])
                    elif isinstance(self._acc[k], Reservoir):
                        self._acc[k].add(v[at : at + take])
                    else:
                        self._acc[k] += v[at : at + take].sum(0)
                self._window_n += take
                at += take
                if self._window_n >= self.config.window:
                    done.append(self._snapshot(full=True))
                    self._windows += 1
                    self._reset()
        return done

    def _reset(self) -> None:
        c = self.config
        self._acc: dict[str, Any] = {
            s.name: Reservoir(c.reservoir, s.shape[0], c.seed + self._windows) if s.metric == "mmd"
            else np.zeros(s.shape) for s in self._specs}
        self._sketches: dict[str, Any] = {}
        self._window_n = 0

    # ---------------------------------------------------------- reports
    def _snapshot(self, full: bool) -> dict:
        """The window's state, detached (the accumulators are replaced by _reset, never mutated)."""
        return {"acc": self._acc, "sketches": self._sketches, "n": self._window_n, "full": full,
                "index": self._windows, "seen": self.seen, "sampled": self.sampled}

    def _entry(self, spec: Spec, acc: Any) -> dict:
        if spec.metric == "mmd":
            emb = next(p.emb for p in self._parts if getattr(p, "emb", None) is not None)
            live = acc.sample
            value, p = mmd_test(emb.sample, live, emb.bandwidth, self.config.permutations, self.config.seed) \
                if len(live) >= 8 else (0.0, 1.0)
            return {"name": spec.name, "metric": "mmd", "value": value, "p_value": p, "reservoir": len(live),
                    "mergeable": False}
        entry = {"name": spec.name, "metric": spec.metric, "counts": np.round(acc, 6).tolist(),
                 "reference": spec.reference}
        if spec.reference_samples:
            entry["reference_samples"] = spec.reference_samples
        if spec.metric == "psi":
            total = max(float(acc.sum()), 1.0)
            fractions = [round(float(c) / total, 6) for c in acc]
            entry["fractions"] = dict(zip(spec.bins, fractions, strict=True)) if spec.bins else fractions
        return entry

    def _build(self, snap: dict) -> dict:
        n, c = snap["n"], self.config
        entries = [self._entry(s, snap["acc"][s.name]) for s in self._specs] if n else []
        stats = [score(e, n, self.reference_samples, c, len(self._specs), self.min_samples, c.seed) for e in entries]
        top = worst(stats)
        status = "no_data" if top is None else top["status"]
        report = {
            "schema": REPORT_SCHEMA,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "device": self.device,
            "bundle": self._identity,
            "window": {"index": snap["index"], "samples": n, "full": snap["full"], "requests_seen": snap["seen"],
                       "sampled_total": snap["sampled"], "reference_samples": self.reference_samples,
                       "min_samples": self.min_samples, "tests": len(self._specs)},
            "config": c.to_dict(),
            "status": status,
            "worst": top["name"] if top is not None else None,
            "statistics": stats,
            "sketches": {k: sketch.dump(v) for k, v in snap["sketches"].items() if v is not None},
        }
        if self.sink is not None:
            report["sink"] = self.sink.counters()
        return report

    def report(self) -> dict:
        """The current (unfinished) window's report, without emitting or resetting it;
        status ``no_data`` while the window holds no sample."""
        self._require_attached()
        self.drain()
        with self._lock:
            snap = self._snapshot(full=False)
            snap["acc"] = {k: v if isinstance(v, Reservoir) else v.copy() for k, v in snap["acc"].items()}
            return self._build(snap)

    summary = report  # the same: the current window's report

    def flush(self) -> dict | None:
        """Emit the current window now (``full: false``) and start a new one, then try
        to deliver spooled reports; returns the report, None when the window is empty."""
        self._require_attached()
        self.drain()
        with self._lock:
            snap = None
            if self._window_n:
                snap = self._snapshot(full=False)
                self._windows += 1
                self._reset()
        rep = self._build(snap) if snap is not None else None
        if rep is not None:
            self._emit([rep])
        if self.sink is not None:
            with self._sink_lock:
                self.sink.flush()
        return rep

    def close(self) -> None:
        """Wait for windows being scored, then try once more to deliver spooled reports
        (the current window is kept)."""
        self.drain()
        if self.sink is not None:
            with self._sink_lock:
                self.sink.flush()

    # ------------------------------------------------ background scoring
    def _hand_off(self, snaps: list[dict]) -> None:
        """Score and emit full windows off the ``predict`` path: the call that fills a
        window only queues its snapshot (the bootstrap and MMD tests take milliseconds).
        A full queue (:data:`QUEUE` windows pending) makes the caller wait: never lossy."""
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=DriftMonitor._work, args=(weakref.ref(self), self._queue),
                                                name="edgesmith-drift", daemon=True)
                self._worker.start()
        for snap in snaps:
            self._queue.put(snap)  # FIFO: reports leave in window order

    @staticmethod
    def _work(ref: weakref.ref, jobs: queue.Queue) -> None:
        """The worker holds the monitor only while scoring (a weak reference between
        windows), so an idle worker keeps no monitor or sketch alive."""
        while True:
            snap = jobs.get()
            monitor = ref()
            try:
                if monitor is not None:
                    monitor._emit([monitor._build(snap)])
            except Exception:  # telemetry never breaks inference
                monitor.errors += 1
                log.exception("drift telemetry: could not score a window")
            finally:
                del snap, monitor
                jobs.task_done()

    def drain(self) -> None:
        """Wait until every full window handed to the background worker is emitted."""
        self._queue.join()

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
                    self.sink.write(rep)
                if self.callback is not None:
                    try:
                        self.callback(rep)
                    except Exception:  # telemetry never breaks inference
                        log.exception("drift telemetry: the report callback failed")

    def __repr__(self) -> str:
        c = self.config
        return (f"DriftMonitor(sample_rate={c.sample_rate}, window={c.window}, seen={self.seen}, "
                f"sampled={self.sampled}, sink={str(self.sink.path) if self.sink else None!r})")


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
