"""Side-by-side comparison tables: each row's p50 and size as ratios to the teacher
and to the best peer, printed with rich and appended to a results store.

A row is a dict with ``name``, ``role`` (``teacher``, ``peer`` or ``ours``),
``size_bytes``, ``accuracy``, ``cosine_to_teacher`` (or None), ``latency_ms`` (a
:func:`~edgesmith.benchmarks.stats.summarize` dict, None when the measurement
failed) and ``error``; :func:`add_ratios` adds ``vs_teacher`` and ``vs_best_peer``.

Example:
    >>> rows = [{"name": "t", "role": "teacher", "size_bytes": 100, "accuracy": 0.75,
    ...          "latency_ms": {"p50": 40.0}},
    ...         {"name": "p", "role": "peer", "size_bytes": 25, "accuracy": 0.745,
    ...          "latency_ms": {"p50": 10.0}}]
    >>> add_ratios(rows)["name"], rows[1]["vs_teacher"]["p50"], rows[0]["vs_best_peer"]["size"]
    ('p', 0.25, 4.0)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesmith.errors import UserError

ACCURACY_SLACK = 0.01  # a peer within 1 point of the teacher's accuracy can be the "best peer"


def best_peer(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The fastest measured peer within :data:`ACCURACY_SLACK` of the first teacher
    row's accuracy, else the fastest measured peer; None without one."""
    peers = [r for r in rows if r["role"] == "peer" and r.get("latency_ms")]
    if not peers:
        return None
    teacher = next((r for r in rows if r["role"] == "teacher"), None)
    close = [
        r for r in peers if teacher is None or r["accuracy"] >= teacher["accuracy"] - ACCURACY_SLACK
    ]
    return min(close or peers, key=lambda r: r["latency_ms"]["p50"])


def _ratios(row: dict[str, Any], ref: dict[str, Any] | None) -> dict[str, float] | None:
    if ref is None or not row.get("latency_ms"):
        return None
    return {
        "p50": row["latency_ms"]["p50"] / ref["latency_ms"]["p50"],
        "size": row["size_bytes"] / ref["size_bytes"],
        "accuracy_points": 100 * (row["accuracy"] - ref["accuracy"]),
    }


def add_ratios(rows: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Set ``vs_teacher`` (the first measured teacher row) and ``vs_best_peer`` on every
    row: ``p50`` and ``size`` as row / reference, ``accuracy_points`` as row - reference.
    Returns the best peer (:func:`best_peer`)."""
    teacher = next((r for r in rows if r["role"] == "teacher" and r.get("latency_ms")), None)
    peer = best_peer(rows)
    for r in rows:
        r["vs_teacher"], r["vs_best_peer"] = _ratios(r, teacher), _ratios(r, peer)
    return peer


def _ms(v: float) -> str:
    return f"{v:.2f}" if v >= 10 else f"{v:.3f}"


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"


def table(
    title: str,
    rows: list[dict[str, Any]],
    peer: dict[str, Any] | None,
    protocol: str,
    accuracy: str = "accuracy",
    cosine: bool = True,
) -> Any:
    """The rich table of ``rows`` (after :func:`add_ratios`); ``protocol`` goes in the caption."""
    from rich.markup import escape
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    cols = ["model", "size", "p50 ms [95% CI]", accuracy, *(["cos to teacher"] if cosine else []),
            "p50 / teacher", "size / teacher", "p50 / best peer", "size / best peer"]  # fmt: skip
    for c in cols:
        t.add_column(c, justify="left" if c == "model" else "right")
    for r in rows:
        lat = r.get("latency_ms")
        ci = (lat or {}).get("p50_ci") or [float("nan")] * 2
        p50 = (
            f"[red]{escape(str(r.get('error')))}[/red]"
            if not lat
            else f"{_ms(lat['p50'])} [{_ms(ci[0])}-{_ms(ci[1])}]"
        )
        cos = r.get("cosine_to_teacher")
        ratios = [f"{v[k]:.2f}x" if v else "-" for v in (r.get("vs_teacher"), r.get("vs_best_peer"))
                  for k in ("p50", "size")]  # fmt: skip
        t.add_row(r["name"] + (" *" if r is peer else ""), _size(r["size_bytes"]), p50,
                  f"{100 * r['accuracy']:.2f}%", *([("-" if cos is None else f"{cos:.4f}")] if cosine else []),
                  *ratios)  # fmt: skip
    t.caption = (f"* best peer: the fastest peer within {100 * ACCURACY_SLACK:g} accuracy point of the teacher. "
                 f"Ratios are row / reference (below 1: smaller or faster). {protocol}")  # fmt: skip
    t.caption_justify = "left"
    return t


def store_rows(
    db: str | Path, rows: list[dict[str, Any]], recipe: str, common: dict[str, Any]
) -> int:
    """Append comparison ``rows`` to results store ``db`` as benchmark rows of ``recipe``;
    ``common`` holds the shared keys (``target``, ``threads``, ``batch``, ``seq_len``,
    ``accuracy_on``, ``fingerprint``). Returns the number of rows added."""
    from edgesmith.benchmarks.store import ResultsStore

    keep = (
        "runtime",
        "latency_ms",
        "peak_rss_mb",
        "accuracy",
        "protocol",
        "error",
        "cosine_to_teacher",
        "role",
    )
    with ResultsStore(db) as store:
        for r in rows:
            bench = {
                **common,
                **{k: r.get(k) for k in keep},
                "model": r["name"],
                "model_size_bytes": r["size_bytes"],
            }
            bench["fingerprint"] = r.get("fingerprint") or common.get("fingerprint")
            store.add_benchmark(bench, recipe=recipe, source=r.get("path", ""))
    return len(rows)


def run_files(run_dir: Path, runtime: str = "onnxruntime") -> tuple[dict, list[tuple[str, Path]]]:
    """A finished run's summary and its ``runtime`` files as ``(label, path)``: the
    bundle's (``bundle/edgesmith.json``) or, for a run without a bundle, its exports."""
    summary_path = run_dir / "summary.json"
    if not summary_path.is_file():
        raise UserError(f"{run_dir}: no summary.json; finish `edgesmith run` first")
    summary = json.loads(summary_path.read_text())
    manifest = run_dir / "bundle" / "edgesmith.json"
    if manifest.is_file():
        formats = json.loads(manifest.read_text()).get("formats", {}).values()
        found = [
            (f"bundle {e.get('precision')}", run_dir / "bundle" / e["path"])
            for e in formats
            if e.get("runtime") == runtime
        ]
    else:
        found = [
            (f"export {e.get('precision')}", run_dir / e["path"])
            for e in summary.get("exports", [])
            if e.get("runtime") == runtime and e.get("path") and not e.get("error")
        ]
    found = [(label, path) for label, path in found if path.is_file()]
    if not found:
        raise UserError(f"{run_dir}: no {runtime} file in its bundle or exports")
    return summary, found
