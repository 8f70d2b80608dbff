"""What ``edgesmith drift`` prints: one window of a bundle on an INPUT, the timeline
of JSON-lines report files, or a fleet merge. Each returns the worst status (for
``--fail-on``); user mistakes are one-line :class:`~edgesmith.errors.DataError`."""

from __future__ import annotations

import json
from pathlib import Path

import click

from edgesmith import atomic
from edgesmith.errors import DataError

COLOUR = {"ok": "green", "warn": "yellow", "drift": "red", "recalibrate": "magenta", "insufficient": "dim",
          "no_data": "dim"}


def _console():
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=140)


def _stats_table(report: dict):
    from rich.table import Table

    t = Table()
    for col in ("statistic", "metric", "value", "p-value", "status"):
        t.add_column(col, justify="right" if col in ("value", "p-value") else "left")
    for st in report["statistics"]:
        t.add_row(st["name"], st["metric"], f"{st['value']:.4f}", f"{st.get('p_value', float('nan')):.4f}",
                  f"[{COLOUR.get(st['status'], 'white')}]{st['status']}[/]")
    return t


def _rules(report: dict) -> str:
    c, w = report["config"], report["window"]
    return (f"alarm only when p < alpha {c['alpha']} / {w.get('tests')} statistics and the window holds >= "
            f"{w.get('min_samples')} items; PSI warn >= {c['psi_warn']}, drift > {c['psi_drift']}; mean shift "
            f"warn >= {c['shift_warn']}, drift > {c['shift_drift']} std; recalibrate when > "
            f"{c['saturation_recalibrate']:.0%} of probed values leave the int8 range")


def drift_bundle(bundle: Path, input_: str, runtime: str | None, as_json: bool) -> str:
    """All of INPUT through BUNDLE as one window."""
    from edgesmith.bundle.loader import load_bundle, raw_inputs
    from edgesmith.bundle.telemetry import DriftMonitor

    with load_bundle(bundle, runtime) as b:
        DriftMonitor(sample_rate=0.0).attach(b)  # no reference profile: one line before any work
        raw = raw_inputs(input_, b.manifest)  # an unreadable INPUT: DataError, exit 2
        out = b.predict(raw)
        monitor = DriftMonitor(sample_rate=1.0, window=max(len(out), 1)).attach(b)  # one window: all of INPUT
        monitor.observe(raw, out)
        monitor.drain()
        report, used = monitor.reports[-1], f"{b.format} on {b.runtime.name}"
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return report["status"]
    w = report["window"]
    console = _console()
    console.print(f"{bundle} ({used}): {w['samples']} inputs vs the {w['reference_samples']} of its reference profile")
    console.print(_stats_table(report))
    console.print(_rules(report), style="dim")
    if report["status"] == "insufficient":
        console.print(f"status: insufficient ({w['samples']} inputs; scores are not alarms below the minimum "
                      f"sample of {w['min_samples']})")
    else:
        console.print(f"status: [{COLOUR.get(report['status'], 'white')}]{report['status']}[/]"
                      + (f" (worst: {report['worst']})" if report["worst"] else ""))
    return report["status"]


def _read_all(paths: list[Path]) -> list[dict]:
    from edgesmith.bundle.telemetry.sink import read_reports

    if not paths:
        raise DataError("drift: pass one or more JSON-lines report files")
    reports = []
    for p in paths:
        if p.is_dir():
            raise DataError(f"{p}: a folder; pass BUNDLE INPUT, or JSON-lines report files")
        reps, skipped = read_reports(p)
        if any(skipped.values()):
            click.echo(f"{p}: {len(reps)} report(s) read; skipped {skipped['truncated']} truncated and "
                       f"{skipped['garbage']} unreadable line(s)", err=True)
        reports += reps
    return reports


def drift_reports(paths: list[Path], as_json: bool, prometheus: Path | None, html_out: Path | None = None) -> str:
    """Timeline per statistic of the reports in ``paths`` (one device or many)."""
    from edgesmith.bundle.telemetry.fleet import order, prometheus_text, timeline, worst_status

    reports = order(_read_all(paths))
    if prometheus is not None:
        atomic.write_text(prometheus, prometheus_text(reports))
    if html_out is not None:
        # the results dashboard's drift view (a CLI view may reach up; the monitor never does)
        from edgesmith.benchmarks.dashboard import render_drift

        render_drift(reports, html_out)
    lines = timeline(reports)
    status = worst_status(reports)
    if as_json:
        click.echo(json.dumps({"reports": len(reports), "status": status, "timeline": lines}, indent=2))
        return status
    from rich.table import Table

    console = _console()
    devices = sorted({str(r.get("device", "?")) for r in reports})
    console.print(f"{len(reports)} report(s) from {len(devices)} device(s): {', '.join(devices)}; "
                  f"{reports[0].get('created_utc')} .. {reports[-1].get('created_utc')}")
    for name, points in lines.items():
        t = Table(title=name, title_justify="left")
        for col in ("time", "device", "window", "samples", "value", "p-value", "status"):
            t.add_column(col, justify="right" if col in ("window", "samples", "value", "p-value") else "left")
        for pt in points:
            v, p = pt["value"], pt["p_value"]
            t.add_row(str(pt["time"]), str(pt["device"]), str(pt["window"]), str(pt["samples"]),
                      "-" if v is None else f"{v:.4f}", "-" if p is None else f"{p:.4f}",
                      f"[{COLOUR.get(pt['status'], 'white')}]{pt['status']}[/]")
        console.print(t)
    console.print(f"worst status: [{COLOUR.get(status, 'white')}]{status}[/]")
    return status


def drift_merge(paths: list[Path], out: Path | None, as_json: bool) -> str:
    """Merge the reports in ``paths`` into one scored window; ``out``: append it there."""
    from edgesmith.bundle.telemetry.fleet import merge_reports
    from edgesmith.bundle.telemetry.sink import dumps

    merged = merge_reports(_read_all(paths))
    if out is not None:
        atomic.write_text(out, dumps(merged))
    if as_json:
        click.echo(json.dumps(merged, indent=2))
        return merged["status"]
    m, w = merged["merged"], merged["window"]
    console = _console()
    console.print(f"merged {m['reports']} report(s) from {len(m['devices'])} device(s), {m['from']} .. {m['to']}: "
                  f"{w['samples']} items vs {w['reference_samples']} reference")
    console.print(_stats_table(merged))
    if merged["unmerged"]:
        console.print(f"not mergeable (live reservoir only): {', '.join(merged['unmerged'])}", style="dim")
    console.print(f"status: [{COLOUR.get(merged['status'], 'white')}]{merged['status']}[/]"
                  + (f"; written to {out}" if out else ""))
    return merged["status"]
