"""The Pareto front of a search: dominance between measured points (latency within noise
is a tie) and the front as a table (``edgesmith search RECIPE --show``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edgesmith.errors import EdgesmithError


def pareto(rows: list[dict], objectives) -> list[dict]:
    """The rows no other row dominates (see :func:`dominates`); a trial that made the same
    files as an earlier one (a sampler's repeat) is that point again, not a second one."""
    labels = [o.label() for o in objectives]
    pts, seen = [], set()
    for r in rows:
        if r.get("values") and all(r["values"].get(k) is not None for k in labels) and \
                (not r.get("export_key") or r["export_key"] not in seen):
            pts.append(r)
            seen.add(r.get("export_key"))
    return [r for r in pts if not any(dominates(q, r, objectives) for q in pts if q is not r)]


def dominates(a: dict, b: dict, objectives) -> bool:
    """Row ``a`` dominates row ``b``: no worse on every objective both have, better on one.
    Two latencies count as equal unless they differ beyond noise by the pipeline's rule for a
    slower step: more than ``SLOWER_MARGIN`` apart and their p50 confidence intervals apart;
    two rows whose export step has the same content key (the same files) never dominate."""
    if a.get("export_key") and a.get("export_key") == b.get("export_key"):
        return False  # the same files (same content key): differences are measurement noise
    better = False
    for o in objectives:
        k = o.label()
        va, vb = (a.get("values") or {}).get(k), (b.get("values") or {}).get(k)
        if va is None or vb is None:
            continue
        if o.metric == "latency" and _same_latency(va, vb, _ci(a, o), _ci(b, o)):
            continue
        if o.direction == "maximize":
            va, vb = -va, -vb
        if va > vb:
            return False
        better = better or va < vb
    return better


def _same_latency(a: float, b: float, ca: list | None, cb: list | None) -> bool:
    """Whether two p50s are the same by the benchmarks' one rule (:func:`~edgesmith.benchmarks.stats.compare_latency`)."""
    from edgesmith.benchmarks.stats import compare_latency

    return compare_latency({"p50": a, "p50_ci": ca}, {"p50": b, "p50_ci": cb}) == "same"


def _ci(row: dict, o) -> list[float] | None:
    where = f"{o.target}/{o.runtime}"
    ci = (row.get("p50_ci") or {}).get(where)
    for m in row.get("measurements") or []:
        ci = ci or (m.get("p50_ci") if f"{m['target']}/{m['runtime']}" == where else None)
    return ci if ci and None not in ci else None


def _fmt(label: str, v: Any) -> str:
    if v is None:
        return "–"
    if label in ("accuracy", "cosine"):
        return f"{100 * v:.2f}%" if label == "accuracy" else f"{v:.4f}"
    if label == "size":
        return f"{v / 1e3:.1f} kB"
    if label.startswith("latency"):
        return f"{v:.4f} ms" if v < 0.1 else f"{v:.3f} ms"
    return f"{v:.1f} MB" if label.startswith("memory") else f"{v:g}"


def _cell(label: str, row: dict) -> str:
    """An objective's value; a latency with its 95% CI."""
    text = _fmt(label.split("[")[0], (row.get("values") or {}).get(label))
    ci = (row.get("p50_ci") or {}).get(label.partition("[")[2].rstrip("]")) if label.startswith("latency") else None
    return f"{text} [{ci[0]:.4g}–{ci[1]:.4g}]" if ci and None not in ci else text


def front_table(run_dir: Path):
    """A rich table of the front's trials and the reference points of ``run_dir``'s search."""
    from rich.markup import escape
    from rich.table import Table

    path = Path(run_dir) / "search.json"
    if not path.is_file():
        raise EdgesmithError(f"{run_dir}: no finished search here (no search.json); run `edgesmith search` first")
    res = json.loads(path.read_text())
    labels = [o["label"] for o in res["objectives"]]
    rows = {r["number"]: r for r in res["rows"]}
    params = list(next((r["params"] for r in res["rows"] if r.get("params")), {}))
    t = Table(title=f"Pareto front of {res['recipe']} ({len(res['front'])} of {res['complete']} trials; "
                    f"{res['stage_executions']} stage executions, {res['stage_reuses']} reuses)")
    t.add_column("trial", min_width=22)
    for p in params:
        t.add_column(p)
    for k, o in zip(labels, res["objectives"], strict=True):
        t.add_column(escape(f"{k} ({'max' if o['direction'] == 'maximize' else 'min'})"), justify="right")
    for n in res["front"]:
        r = rows[n]
        t.add_row(str(n), *(json.dumps(r["params"][p]) for p in params), *(_cell(k, r) for k in labels))
    for ref in res["references"]:
        dom = ref.get("dominated_by") or []
        name = ref["name"] + (f" (dominated by {', '.join(map(str, dom[:4]))})" if dom else "")
        t.add_row(f"[dim]{escape(name)}[/dim]", *([""] * len(params)),
                  *(_cell(k, ref) for k in labels))
    return t
