"""The end-of-run summary table, drawn from ``summary.json`` alone so that
``edgesmith show DIR`` prints the same table later."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.2f} MB"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.2f}%"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.3f} ms"


def _params(n: int | None) -> str:
    return "-" if n is None else (f"{n / 1e6:.2f} M" if n >= 1e5 else f"{n / 1e3:.1f} k")


def stage_result_line(info: dict) -> str:
    """The one line a finished step prints (a log without a TTY shows what each stage did).

    Example:
        >>> stage_result_line({"name": "distill", "seconds": 397.1, "params": 3712,
        ...                    "metrics": {"accuracy": 0.9889, "teacher_agreement": 0.9889}})
        '  distill: done in 397 s; 3.7 k params, accuracy 98.89%, teacher agreement 98.89%'
    """
    m = info.get("metrics") or {}
    parts = [f"{_params(info['params'])} params"] if info.get("params") else []
    for key, label in (("accuracy", "accuracy"), ("teacher_agreement", "teacher agreement")):
        if m.get(key) is not None:
            parts.append(f"{label} {_pct(m[key])}")
    if m.get("cosine_to_teacher") is not None:
        parts.append(f"cosine to teacher {m['cosine_to_teacher']:.4f}")
    if info.get("exports") is not None:
        ok = sum(1 for e in info["exports"] if not e.get("error") and (e.get("parity") or {}).get("passed"))
        parts.append(f"{ok}/{len(info['exports'])} exports passed parity")
    if info.get("benchmarks") is not None:
        parts.append(f"{sum(1 for b in info['benchmarks'] if b.get('latency_ms'))}/{len(info['benchmarks'])} "
                     "measurements")
    return f"  {info.get('name')}: done in {info.get('seconds') or 0:.0f} s" + ("; " + ", ".join(parts) if parts else "")


def _p50(v: float) -> str:
    return f"{v:.3f} ms" if v < 10 else f"{v:.2f} ms"  # three digits even for a tiny model's 0.013 ms


def summary_table(summary: dict, width: int | None = None) -> Table:
    """One row per stage. Under 120 columns (``width``) only the first runtime's p50 is
    shown (the benchmarks table has them all) and nothing is cut: long cells fold."""
    embedding = summary.get("task") == "embedding"
    compact = width is not None and width < 120
    t = Table(title=f"edgesmith · {summary['recipe']} · {summary['out']}", title_justify="left")
    t.add_column("stage", overflow="fold")
    t.add_column("params", justify="right", overflow="fold")
    t.add_column("size", justify="right", overflow="fold")
    t.add_column("sentiment acc" if embedding else "accuracy", justify="right", overflow="fold")
    t.add_column(("cosine" if compact else "cosine to teacher") if embedding
                 else ("agreement" if compact else "teacher agreement"), justify="right", overflow="fold")
    rows = [summary["teacher"], *summary.get("stages", [])]
    # fidelity beyond the mean (text encoders): the 5th-percentile cosine and held-out retrieval recall
    extra = [(k, h) for k, h in FIDELITY_COLUMNS if embedding and any(k in (r.get("metrics") or {}) for r in rows)]
    for _, header in extra:
        t.add_column(header, justify="right", overflow="fold")
    lat_keys = sorted({(b["runtime"], b["target"]) for b in summary.get("benchmarks", []) if b.get("latency_ms")},
                      key=lambda k: (k[0] != "onnxruntime", k))
    if compact:
        lat_keys = lat_keys[:1]
    for rt, target in lat_keys:
        t.add_column(f"p50 {rt}{'' if target == 'cpu' else '/' + target}", justify="right", overflow="fold")
    t.add_column("time", justify="right", overflow="fold")
    for row in rows:
        m = row.get("metrics") or {}
        second = m.get("cosine_to_teacher") if embedding else m.get("teacher_agreement")
        second_s = "-" if second is None else (f"{second:.4f}" if embedding else _pct(second))
        lats = []
        for rt, target in lat_keys:
            b = next((b for b in summary["benchmarks"] if b["model"] == row["name"] and b["runtime"] == rt
                      and b["target"] == target and b.get("latency_ms")), None)
            cell = "-" if b is None else _p50(b["latency_ms"]["p50"])
            lats.append(f"[red]{cell} ▲[/red]" if b is not None and b.get("slower_than_previous") else cell)
        fid = [_fidelity_cell(k, m.get(k)) for k, _ in extra]
        t.add_row(row["name"], _params(row.get("params")), _mb(row.get("size_bytes")), _pct(m.get("accuracy")),
                  second_s, *fid, *lats, f"{row.get('seconds') or 0:.0f} s")
    share = share_note(summary)
    notes = [f"▲ {n}" for n in slower_notes(summary)] + ([share] if share else [])
    if notes:
        t.caption, t.caption_justify = "\n".join(notes), "left"
    return t


def share_note(summary: dict) -> str | None:
    """The last stage's R@1 as a share of the teacher's with its paired 95% interval, if measured."""
    m = next((s.get("metrics") or {} for s in reversed(summary.get("stages") or []) if s.get("metrics")), {})
    if "retrieval_r1_vs_teacher_lo" not in m:
        return None
    return (f"R@1: {m['retrieval_r1_vs_teacher']:.1%} of the teacher's on the same queries "
            f"(95% paired bootstrap interval {m['retrieval_r1_vs_teacher_lo']:.1%} - "
            f"{m['retrieval_r1_vs_teacher_hi']:.1%})")


FIDELITY_COLUMNS = [("cosine_to_teacher_p05", "cosine p05"), ("retrieval_r1", "R@1"), ("retrieval_r10", "R@10")]


def _fidelity_cell(key: str, v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if key.startswith("cosine") else _pct(v)


def slower_notes(summary: dict) -> list[str]:
    """One line per benchmarked step that got slower than the step before it."""
    notes = [f"{b['model']} is {1 / b['speedup_vs_previous']:.2f}x slower than {b['previous']} on {b['runtime']} "
             f"({b['target']}, {b['threads']} thread(s), batch {b['batch']})"
             for b in summary.get("benchmarks", []) if b.get("slower_than_previous")]
    choices = (summary.get("bundle") or {}).get("speed_choices") or {}
    return notes + [f"bundle {fmt}: {c['reason']}" for fmt, c in choices.items() if c["shipped"] == "fp32" or c["forced"]]


def exports_table(summary: dict, width: int | None = None) -> Table:
    """One row per exported file; under 120 columns (``width``) the ops, cosine and
    tolerance columns are left out and long cells fold."""
    compact = width is not None and width < 120
    cols = ("format", "precision", "size", "ops", "max |diff|", "cosine", "agreement", "tolerance", "parity")
    t = Table(title="exports (parity vs PyTorch on held-out inputs)", title_justify="left")
    for c in cols:
        t.add_column(c, overflow="fold")
    for e in summary.get("exports", []):
        p = e.get("parity") or {}
        if e.get("error"):
            t.add_row(e["format"], "-", "-", "-", "-", "-", "-", "-", f"[red]export failed: {e['error']}[/red]")
            continue
        tol = p.get("tolerance") or {}
        none = p.get("max_abs_diff") is None  # the runtime refused the inputs: no numbers
        t.add_row(e["format"], precision_label(e), _mb(e["size_bytes"]), ops_summary(e),
                  "-" if none else f"{p['max_abs_diff']:.2e}",
                  "-" if none else f"{p['cosine']:.6f}", "-" if p.get("agreement") is None else _pct(p["agreement"]),
                  f"atol {tol.get('atol')}", "[green]passed[/green]" if p["passed"] else f"[red]failed: {p.get('reason')}[/red]")
    if compact:
        for name in ("tolerance", "cosine", "ops"):
            t.columns.pop(cols.index(name))
    notes = [f"{e['format']}: {e['reason']}" for e in summary.get("exports", []) if e.get("engine_built") is False]
    if notes:
        from rich.markup import escape

        t.caption, t.caption_justify = escape("\n".join(notes)), "left"
    return t


def precision_label(export: dict) -> str:
    """An export's precision as what was made: a TensorRT entry is its engine's precision,
    marked when the engine was not built (its parity is that of the fp32 ONNX file)."""
    if export.get("format") == "tensorrt" and export.get("engine_precision"):
        built = export.get("engine_built")
        return f"{export['engine_precision']} engine" + ("" if built else f" (not built; parity: its {export['precision']} ONNX)")
    return export.get("precision") or "-"


_BACKENDS = {"XnnpackBackend": "XNNPACK", "TfLiteXNNPackDelegate": "XNNPACK"}


def ops_summary(export: dict) -> str:
    """Where the ops run: delegate coverage (TFLite, ExecuTorch), the ops computing
    in int8 / int4 / fp16 (a quantized ONNX file), else the ONNX op count."""
    d = export.get("delegation") or {}
    if d.get("delegated_ops") is not None:
        total = d.get("total_ops") or d["delegated_ops"] + (d.get("portable_ops") or 0)
        backend = _BACKENDS.get(d.get("backend"), d.get("backend") or "delegate")
        return f"{backend} {d['delegated_ops']}/{total}"
    low = {p: ops for p, ops in (export.get("compute_precision") or {}).items() if p in ("int8", "int4", "fp16") and ops}
    if low:
        return "; ".join(f"{p}: " + ", ".join(f"{op}×{n}" for op, n in ops.items()) for p, ops in low.items())
    hist = export.get("op_histogram")
    return f"{sum(hist.values())} ops" if hist else "-"


def benchmarks_table(summary: dict, width: int | None = None) -> Table:
    """One row per measurement. Under 120 columns (``width``) the table keeps the
    columns that matter (p50 and its CI in ms, RSS, accuracy, the comparison with the
    step before), drops empty ones and folds long cells instead of cutting them, so it
    stays readable at 80 columns. The caption gives the harness overhead measured on
    each target (differences below it are not told apart)."""
    compact = width is not None and width < 120
    rows = summary.get("benchmarks", [])
    cols = ["model", "runtime", "target", "threads", "batch", "p50", "p50 95% CI", "p90", "p99", "peak RSS",
            "accuracy", "vs step before", "ops"]
    if compact:
        cols = ["model", "runtime", "target", "t×b", "p50 ms", "95% CI", "RSS MB", "accuracy", "vs step before"]
    final = (summary.get("stages") or [{}])[-1].get("name")
    exports = {(e["format"], e.get("precision")): e for e in summary.get("exports", []) if not e.get("error")}
    table_rows = []
    for b in rows:
        lat = b.get("latency_ms")
        cells = {"model": b["model"] + (f" ({b['format']})" if b.get("format") else ""), "runtime": b["runtime"] or "-",
                 "target": b["target"], "threads": str(b["threads"]), "batch": str(b["batch"]),
                 "t×b": f"{b['threads']}×{b['batch']}"}
        if not lat:
            cells["p50 ms" if compact else "p50"] = f"[red]{escape(str(b.get('error')))}[/red]"
            table_rows.append(cells)
            continue
        ci = lat.get("p50_ci")
        # a device tool may print no percentiles (adb: benchmark_model): show its mean, marked
        p50 = f"{lat['p50']:.3f}" if lat.get("p50") is not None else f"{lat['mean']:.3f} (mean)"
        rss = b.get("peak_rss_mb")
        cells.update({
            "p50": p50 + " ms", "p50 ms": p50, "p50 95% CI": f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "",
            "95% CI": f"{ci[0]:.3f}-{ci[1]:.3f}" if ci else "", "p90": _ms(lat.get("p90")),
            "p99": _ms(lat.get("p99")), "accuracy": _pct(b.get("accuracy")), "vs step before": _vs_previous(b),
            "peak RSS": "-" if rss is None else f"{rss:.0f} MB", "RSS MB": "-" if rss is None else f"{rss:.0f}",
            "ops": _ops_of(b, final, exports)})
        table_rows.append(cells)
    if compact:  # no column that says nothing: one target, no accuracy, nothing to compare with
        cols = [c for c in cols if c in ("model", "p50 ms")
                or len({r.get(c, "") for r in table_rows} - {"", "-"}) > (1 if c == "target" else 0)]
    t = Table(title="benchmarks (each in a fresh process)", title_justify="left")
    for c in cols:
        t.add_column(c, overflow="fold",
                     justify="right" if c in ("p50", "p50 ms", "p90", "p99", "peak RSS", "RSS MB", "accuracy") else "left")
    for cells in table_rows:
        t.add_row(*[cells.get(c, "") for c in cols])
    notes = overhead_notes(rows)
    if notes:
        t.caption, t.caption_justify = "\n".join(notes), "left"
    return t


def overhead_notes(rows: list[dict]) -> list[str]:
    """One line per target: the harness overhead measured there (median over its rows)."""
    import statistics

    by_target: dict[str, list[float]] = {}
    for b in rows:
        o = (b.get("protocol") or {}).get("overhead_ms")
        if o is not None:
            by_target.setdefault(b.get("target") or "cpu", []).append(o)
    return [f"harness overhead on {t} (no-op model, same inputs): p50 {statistics.median(v) * 1000:.1f} µs; "
            "smaller differences are not told apart" for t, v in sorted(by_target.items())]


def _vs_previous(b: dict) -> str:
    if b.get("speedup_vs_previous") is None:
        return ""
    text = f"{b['speedup_vs_previous']:.2f}x vs {b['previous']}"
    return f"[red]{text} (slower)[/red]" if b.get("slower_than_previous") else text


def _ops_of(b: dict, final: str | None, exports: dict) -> str:
    """The ops column of the final model's exported file this benchmark ran."""
    from edgesmith.export import format_for_runtime

    e = exports.get((format_for_runtime(b["runtime"]), b.get("precision"))) if b["model"] == final else None
    return ops_summary(e) if e else ""
