"""Reports from many devices and windows: merge, timeline, Prometheus exposition.

:func:`merge_reports` sums the exact counts of every mergeable statistic (and
merges the KLL sketches) of reports of one bundle and scores the merged window
with the same rules as a live window (:func:`~.scoring.score`), so a server
computes fleet-wide drift without raw data. Merging is associative and
order-independent: counts add, device sets unite, time ranges widen, and the
bootstrap p-values are a function of the counts alone. The MMD test runs on a
live reservoir of embeddings a report never carries, so it is not merged
(``unmerged`` lists it).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from edgesmith.bundle.telemetry import sketch
from edgesmith.bundle.telemetry.monitor import REPORT_SCHEMA
from edgesmith.bundle.telemetry.scoring import (
    STATUSES,
    TelemetryConfig,
    minimum_sample,
    score,
    worst,
)
from edgesmith.errors import DataError


def _span(rep: dict) -> dict:
    m = rep.get("merged") or {}
    t = rep.get("created_utc", "")
    return {"reports": int(m.get("reports", 1)), "devices": list(m.get("devices") or [rep.get("device") or "?"]),
            "from": m.get("from", t), "to": m.get("to", t)}


def merge_reports(reports: list[dict]) -> dict:
    """One report for the union of ``reports`` (of one bundle), scored as one window.

    Raises:
        DataError: No reports, a report without counts (schema 1), or reports of
            different bundles or reference profiles (one line).
    """
    if not reports:
        raise DataError("drift merge: no reports to merge")
    first = reports[0]
    key = lambda r: ((r.get("bundle") or {}).get("recipe_sha256"), (r.get("bundle") or {}).get("format"))  # noqa: E731
    for r in reports:
        if r.get("schema") != REPORT_SCHEMA:
            raise DataError(f"drift merge: a report has schema {r.get('schema')!r}; only {REPORT_SCHEMA} reports "
                            "carry the counts a merge needs (re-record with a current edgesmith)")
        if key(r) != key(first):
            raise DataError(f"drift merge: reports of different bundles ({key(first)} vs {key(r)}); merge each "
                            "bundle's reports separately")
    stats: dict[str, dict] = {}
    unmerged: set[str] = set()
    for r in reports:
        unmerged.update(r.get("unmerged") or [])
        for st in r["statistics"]:
            if "counts" not in st:
                unmerged.add(st["name"])
                continue
            acc = stats.get(st["name"])
            if acc is None:
                stats[st["name"]] = {"name": st["name"], "metric": st["metric"], "reference": st["reference"],
                                     "counts": np.asarray(st["counts"], float), **_bins(st),
                                     **({"reference_samples": st["reference_samples"]}
                                        if st.get("reference_samples") else {})}
            elif acc["reference"] != st["reference"] or acc["metric"] != st["metric"]:
                raise DataError(f"drift merge: statistic {st['name']} has another reference in some reports; "
                                "they come from different bundles")
            else:
                acc["counts"] = acc["counts"] + np.asarray(st["counts"], float)
    n = sum(int(r["window"]["samples"]) for r in reports)
    m = int(first["window"].get("reference_samples") or 0)
    cfg = TelemetryConfig.from_dict(first["config"])
    entries = [{**e, "counts": np.round(e["counts"], 6).tolist()} for e in stats.values()]
    for e in entries:
        if e["metric"] == "psi":
            total = max(float(np.sum(e["counts"])), 1.0)
            fr = [round(float(c) / total, 6) for c in e["counts"]]
            e["fractions"] = dict(zip(e.pop("bins"), fr, strict=True)) if e.get("bins") else fr
        e.pop("bins", None)
    min_n = minimum_sample(entries, cfg, m)
    scored = [score(e, n, m, cfg, len(entries), min_n, cfg.seed) for e in entries]
    top = worst(scored)
    spans = [_span(r) for r in reports]
    names = sorted({k for r in reports for k in (r.get("sketches") or {})})
    sketches = {k: sketch.merged([r["sketches"][k] for r in reports if k in (r.get("sketches") or {})])
                for k in names}
    return {
        "schema": REPORT_SCHEMA,
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": "fleet",
        "bundle": first["bundle"],
        "merged": {"reports": sum(s["reports"] for s in spans), "devices": sorted({d for s in spans for d in s["devices"]}),
                   "from": min(s["from"] for s in spans), "to": max(s["to"] for s in spans)},
        "window": {"index": None, "samples": n, "full": True, "reference_samples": m, "min_samples": min_n,
                   "tests": len(entries)},
        "config": first["config"],
        "status": "no_data" if top is None else top["status"],
        "worst": top["name"] if top is not None else None,
        "statistics": scored,
        "unmerged": sorted(unmerged),
        "sketches": sketches,
    }


def _bins(st: dict) -> dict:
    fr = st.get("fractions")
    return {"bins": list(fr)} if isinstance(fr, dict) else {}


def order(reports: list[dict]) -> list[dict]:
    """Reports in time order (then device, then window index)."""
    return sorted(reports, key=lambda r: (r.get("created_utc", ""), str(r.get("device")),
                                          (r.get("window") or {}).get("index") or 0))


def timeline(reports: list[dict]) -> dict[str, list[dict]]:
    """Per statistic, one point per report in time order: time, device, window,
    samples, value, p-value, status."""
    out: dict[str, list[dict]] = {}
    for r in order(reports):
        w = r.get("window") or {}
        for st in r.get("statistics") or []:
            out.setdefault(st["name"], []).append({
                "time": r.get("created_utc"), "device": r.get("device", "?"), "window": w.get("index"),
                "samples": w.get("samples"), "value": st.get("value"), "p_value": st.get("p_value"),
                "status": st.get("status")})
    return out


def worst_status(reports: list[dict]) -> str:
    """The most severe status among ``reports``."""
    return max((r.get("status", "no_data") for r in reports), key=lambda s: STATUSES.index(s) if s in STATUSES else 0,
               default="no_data")


def prometheus_text(reports: list[dict]) -> str:
    """Prometheus text exposition of the latest report per device and bundle: scores,
    p-values and status per statistic, window sizes and the sink's counters."""
    from prometheus_client import CollectorRegistry, Gauge, generate_latest

    reg = CollectorRegistry()
    labels = ["bundle", "format", "device"]
    g: dict[str, Any] = {
        "score": Gauge("edgesmith_drift_score", "Latest drift score per statistic", labels + ["statistic", "metric"],
                       registry=reg),
        "p": Gauge("edgesmith_drift_p_value", "Latest p-value per statistic", labels + ["statistic"], registry=reg),
        "status": Gauge("edgesmith_drift_status", "Latest status per statistic (1 for the current status)",
                        labels + ["statistic", "status"], registry=reg),
        "samples": Gauge("edgesmith_drift_window_samples", "Items in the latest window", labels, registry=reg),
        "seen": Gauge("edgesmith_drift_requests_seen", "Items predicted since the monitor started", labels,
                      registry=reg),
        "sink": Gauge("edgesmith_drift_sink_reports", "Sink counters (delivered, pending, spooled, dropped)",
                      labels + ["counter"], registry=reg),
    }
    latest: dict[tuple, dict] = {}
    for r in order(reports):
        b = r.get("bundle") or {}
        latest[(str(b.get("recipe")), str(b.get("format")), str(r.get("device", "?")))] = r
    for lab, r in latest.items():
        w = r.get("window") or {}
        g["samples"].labels(*lab).set(w.get("samples") or 0)
        g["seen"].labels(*lab).set(w.get("requests_seen") or 0)
        for k, v in (r.get("sink") or {}).items():
            g["sink"].labels(*lab, k).set(v)
        for st in r.get("statistics") or []:
            g["score"].labels(*lab, st["name"], st["metric"]).set(st.get("value") or 0.0)
            g["p"].labels(*lab, st["name"]).set(st.get("p_value", 1.0))
            for s in STATUSES[1:]:
                g["status"].labels(*lab, st["name"], s).set(1.0 if st.get("status") == s else 0.0)
    return generate_latest(reg).decode()
