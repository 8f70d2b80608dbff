"""The results dashboard: one self-contained HTML page drawn from a results store.

    from edgesmith.benchmarks.dashboard import render

    render("results.db", "report.html")

The page needs no network: its CSS and JS (``dashboard.css``, ``dashboard.js``
beside this module) are inlined, the plots are SVG drawn by that script, and
the data is embedded as JSON in ``<script type="application/json"
id="edgesmith-data">``. It shows latency-vs-quality and size-vs-quality Pareto
plots per target and host, each run's per-stage waterfall (stages slower than the one
before are flagged), a host-against-host table (the same model on host A and host B:
p50 ratio with its interval), and a hardware table filtered live by a latency budget,
with filters by recipe, runtime, target, host and run. The filter state lives in the URL
fragment (``report.html#budget=5&runtime=onnxruntime``) so a view can be shared.
"""

from __future__ import annotations

import html
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from edgesmith.atomic import write_text
from edgesmith.benchmarks.store import ResultsStore
from edgesmith.errors import UserError

ASSETS = Path(__file__).with_name("dashboard.js"), Path(__file__).with_name("dashboard.css")
SEARCH_JS = Path(__file__).with_name("dashboard_search.js")  # the search section's own script
BENCH_FIELDS = (
    "id run_id recipe target runtime model threads batch seq_len p50 p90 p99 mean n "
    "p50_ci_lo p50_ci_hi p99_ci_lo p99_ci_hi throughput_per_s peak_rss_mb load_rss_mb "
    "model_size_bytes accuracy accuracy_on host cpu_model gpu error added_at".split()
)
STAGE_FIELDS = ("position", "name", "kind", "params", "size_bytes", "accuracy", "metrics")
EXPORT_FIELDS = ("format", "precision", "runtime", "size_bytes", "parity_passed", "max_abs_diff")


def dashboard_data(store: ResultsStore) -> dict[str, Any]:
    """The data the page embeds: runs with their stages and exports, and every measurement."""
    stages, exports = store.stages(), store.exports()
    runs = []
    for r in store.runs():
        runs.append(
            {
                **{k: r[k] for k in ("id", "recipe", "task", "source", "added_at")},
                "stages": [
                    {k: s[k] for k in STAGE_FIELDS} for s in stages if s["run_id"] == r["id"]
                ],
                "exports": [
                    {k: e[k] for k in (*EXPORT_FIELDS, "error")}
                    for e in exports
                    if e["run_id"] == r["id"]
                ],
            }
        )
    benchmarks, hosts = [], {}
    for b in store.rows():
        row = {k: b[k] for k in BENCH_FIELDS}
        fp = b.get("fingerprint") or {}
        row["cores"] = (fp.get("cpu") or {}).get("logical_cores")
        row["overhead_ms"] = (b.get("protocol") or {}).get("overhead_ms")
        h = host_of(fp, b)
        row["host_key"] = h["key"]
        hosts.setdefault(h["key"], {**h, "n": 0})["n"] += 1
        benchmarks.append(row)
    return {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "database": str(store.path),
        "runs": runs,
        "hosts": sorted(hosts.values(), key=lambda h: h["label"]),
        "benchmarks": benchmarks,
        "search": search_points(store),
    }


# the ISA flags that decide which kernels run, shortest first in a host's label
ISA_SHOWN = ("amx", "avx512_bf16", "avx512_vnni", "avx_vnni", "avx512f", "avx2", "i8mm", "sve", "asimddp", "neon")


def host_of(fp: dict[str, Any], row: dict[str, Any] | None = None) -> dict[str, Any]:
    """A machine as the dashboard compares it: ``key`` (hostname + CPU + GPU), a short
    ``label`` (CPU model, cores, the ISA flags that matter), and the runtime versions."""
    row = row or {}
    cpu = fp.get("cpu") or {}
    model = cpu.get("model") or row.get("cpu_model")
    gpu = ((fp.get("gpus") or [{}])[0] or {}).get("name") or row.get("gpu")
    hostname = fp.get("hostname") or row.get("host")
    flags = [f for f in ISA_SHOWN if f in (cpu.get("flags") or [])]
    if "amx" in flags:
        flags = [f for f in flags if f not in ("avx512f", "avx2")]
    cores = cpu.get("logical_cores")
    parts = [p for p in (model, gpu, f"{cores} cores" if cores else None, " ".join(flags[:3]) or None) if p]
    key = " | ".join(str(p) for p in (hostname, model, gpu) if p) or "unknown host"
    label = (" · ".join(parts) or "unknown host") + (f" ({hostname})" if hostname else "")
    return {"key": key, "label": label, "hostname": hostname, "cpu_model": model, "gpu": gpu, "cores": cores,
            "flags": cpu.get("flags") or [], "libraries": fp.get("libraries") or {}}
def search_points(store: ResultsStore) -> list[dict[str, Any]]:
    """The points of every ``edgesmith search`` in the store (its rows' ``extra`` carry the
    search, trial, values, front membership and the trial's recipe)."""
    points = []
    for b in store.rows():
        x = b.get("extra") or {}
        if not x.get("search") or b["error"]:
            continue
        points.append({
            "id": b["id"], "search": x["search"], "recipe": b["recipe"], "target": b["target"],
            "runtime": b["runtime"], "name": b["model"], "trial": x.get("trial"),
            "reference": bool(x.get("reference")), "on_front": bool(x.get("on_front")),
            "p50": b["p50"], "p50_ci": [b["p50_ci_lo"], b["p50_ci_hi"]], "accuracy": b["accuracy"],
            "cosine": x.get("cosine"), "size": b["model_size_bytes"], "peak_rss_mb": b["peak_rss_mb"],
            "params": x.get("params"), "trial_recipe": x.get("trial_recipe"), "cpu_model": b["cpu_model"],
        })
    return points


def _script_json(obj: Any) -> str:
    """JSON that cannot end its ``<script>`` element early (``<``, ``>``, ``&`` escaped)."""
    text = json.dumps(obj, allow_nan=False, default=str)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_html(data: dict[str, Any], drift: list[dict] | None = None) -> str:
    """The page for :func:`dashboard_data`'s output, as one HTML string; with ``drift``
    (drift reports) it gains the drift view (:func:`drift_section`)."""
    js, css = (p.read_text() for p in ASSETS)
    title = f"edgesmith results: {len(data['runs'])} runs, {len(data['benchmarks'])} measurements"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>
{css}</style>
</head>
<body>
<header>
  <h1>edgesmith results</h1>
  <p class="meta" id="meta"></p>
  <form id="filters" onsubmit="return false">
    <label>recipe <select id="f-recipe"><option value="">all</option></select></label>
    <label>runtime <select id="f-runtime"><option value="">all</option></select></label>
    <label>target <select id="f-target"><option value="">all</option></select></label>
    <label>host <select id="f-host_key"><option value="">all</option></select></label>
    <label>run <select id="f-run_id"><option value="">all</option></select></label>
    <label>latency budget (p50, ms)
      <input id="budget" type="number" min="0" step="any" placeholder="none"></label>
  </form>
</header>
<main>
  <section><h2>Latency and size against quality, per target and host</h2>
    <p class="note">Accuracy from each runtime's own outputs; x axes are logarithmic;
    whiskers are 95% bootstrap intervals of p50; ringed points are on the Pareto front.</p>
    <div id="pareto"></div></section>
  <section id="hosts-section"><h2>Host against host: the same model, runtime and settings</h2>
    <p class="note">Ratio = p50 on B / p50 on A, with an interval from the two p50 95% CIs
    ([lo B / hi A, hi B / lo A]). B is called faster or slower only when the CIs are disjoint,
    the gap is over 5% and over the harness overhead measured on either host.</p>
    <form id="host-pick" onsubmit="return false">
      <label>A <select id="host-a"></select></label> <label>B <select id="host-b"></select></label></form>
    <table id="hostcmp"><thead></thead><tbody></tbody></table>
    <h3>Hosts</h3><table id="hostlist"><thead></thead><tbody></tbody></table></section>
  <section><h2>Which device and runtime meet the latency budget, at which quality</h2>
    <p class="note" id="hw-caption"></p>
    <table id="hw"><thead></thead><tbody></tbody></table></section>
  <section id="search-section"><h2>Search: Pareto fronts measured on the target</h2>
    <p class="note">One plot per search, target and runtime: trials (red: on the front) and reference
    points (squares: fp32 and dynamic-int8 teacher, files named with --reference); marker area is the
    file's size. Click a point to see its recipe.</p>
    <div id="search-pareto"></div>
    <pre id="search-recipe" style="max-height:24em;overflow:auto;background:#f6f7f9;padding:8px;font-size:12px"></pre>
  </section>
  <section><h2>Per-stage waterfall</h2>
    <p class="note">Teacher, then each stage, then the exported files. A stage slower than
    the stage before it on the same target and runtime is marked <span class="badge">slower</span>.</p>
    <div id="waterfall"></div></section>
{drift_section(drift) if drift else ""}
</main>
<svg id="svg-ns" width="0" height="0" aria-hidden="true"></svg>
<script type="application/json" id="edgesmith-data">{_script_json(data)}</script>
<script>
{js}
{SEARCH_JS.read_text()}</script>
</body>
</html>
"""


def render(store_or_path: ResultsStore | str | Path, out_html: str | Path) -> Path:
    """Write the dashboard of a results store (or of the database at a path) to ``out_html``.

    The file is written atomically. Returns its path.

    Raises:
        EdgesmithError: the database does not exist or is not an edgesmith store.
    """
    if isinstance(store_or_path, ResultsStore):
        data = dashboard_data(store_or_path)
    else:
        path = Path(store_or_path)
        if not path.is_file():
            raise UserError(f"{path}: no such results database")
        with ResultsStore(path) as store:
            data = dashboard_data(store)
    return write_text(out_html, render_html(data))


# ---------------------------------------------------------------- drift view
DRIFT_JS = Path(__file__).with_name("dashboard_drift.js")


def drift_data(reports: list[dict]) -> dict[str, Any]:
    """Drift reports grouped per bundle, format and device, in time order: per window
    its status, size and each statistic's score, p-value and status."""
    from edgesmith.bundle.telemetry.fleet import order, worst_status

    groups: dict[tuple, dict] = {}
    for r in order(reports):
        b = r.get("bundle") or {}
        key = (str(b.get("recipe")), str(b.get("format")), str(r.get("device", "?")))
        g = groups.setdefault(key, {"bundle": key[0], "format": key[1], "device": key[2], "windows": [],
                                    "statistics": [], "reports": []})
        w = r.get("window") or {}
        stats = {s["name"]: {"value": s.get("value"), "p_value": s.get("p_value"), "status": s.get("status")}
                 for s in r.get("statistics") or []}
        g["statistics"] += [n for n in stats if n not in g["statistics"]]
        g["windows"].append({"time": r.get("created_utc", ""), "window": w.get("index"), "samples": w.get("samples"),
                             "min_samples": w.get("min_samples"), "status": r.get("status"), "stats": stats})
        g["reports"].append(r)
    for g in groups.values():
        g["worst"] = worst_status(g.pop("reports"))
    return {"groups": list(groups.values())}


def drift_section(reports: list[dict]) -> str:
    """The drift view: a ``<section>`` with its data and script, self-contained."""
    return f"""<section><h2>Drift: status and scores over time, per bundle and device</h2>
    <p class="note">One column per report window; cells are scores (PSI, mean shift, MMD, saturation rate)
    coloured by status: ok, warn, drift, recalibrate, grey while a window is below its minimum sample.
    Hover for the p-value and window size.</p>
    <div id="drift"></div>
<script type="application/json" id="edgesmith-drift">{_script_json(drift_data(reports))}</script>
<script>
{DRIFT_JS.read_text()}</script></section>"""


def render_drift(reports: list[dict], out_html: str | Path) -> Path:
    """A page holding only the drift view of ``reports`` (``edgesmith drift REPORTS --html``)."""
    title = f"edgesmith drift: {len(reports)} reports"
    css = ASSETS[1].read_text()
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
{css}
table.drift td {{ text-align: right; font-variant-numeric: tabular-nums; }}</style></head>
<body><header><h1>{html.escape(title)}</h1></header><main>
{drift_section(reports)}
</main></body></html>
"""
    return write_text(out_html, page)
