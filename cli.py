"""The ``edgesmith`` command line. A user mistake prints one line and exits
with code 2; no traceback reaches the terminal for an :class:`EdgesmithError`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from edgesmith import __version__
from edgesmith.errors import DataError, EdgesmithError


def _quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    for name in ("torch.utils._pytree", "torch._dynamo", "torch.onnx", "transformers", "onnxscript"):
        logging.getLogger(name).setLevel(logging.ERROR)


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except EdgesmithError as e:
            click.secho(f"error: {e}", fg="red", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.secho("interrupted: finished stages are kept; run the same command again to resume",
                        fg="yellow", err=True)
            sys.exit(130)


def _console():
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=140)


def _print_tables(summary: dict) -> None:
    from edgesmith.pipeline.report import benchmarks_table, exports_table, summary_table

    console = _console()
    console.print(summary_table(summary))
    if summary.get("exports"):
        console.print(exports_table(summary))
    if summary.get("benchmarks"):
        console.print(benchmarks_table(summary))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="edgesmith")
def main() -> None:
    """edgesmith: distil, prune, factorize, quantize, export, check and benchmark a model."""
    _quiet_libraries()


@main.command()
@click.argument("recipe", required=False)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Run directory (default runs/<recipe name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set stages.distill.epochs=1 (repeatable).")
@click.option("--from", "from_stage", metavar="STAGE", help="Re-run from this stage on (teacher, distill, export, ...).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu or cuda[:N].")
@click.option("--no-parity-gate", is_flag=True, help="Warn instead of stopping when an export fails parity.")
@click.option("--db", type=click.Path(path_type=Path), help="Also append the run's results to this results store.")
def run(recipe, out, overrides, from_stage, device, no_parity_gate, db) -> None:
    """Run RECIPE (a YAML path or a shipped recipe name; default minilm-sentiment)."""
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner

    r = load_recipe(recipe, list(overrides))
    from edgesmith.pipeline import distributed

    if distributed.is_launched():  # torchrun: data-parallel training, rank 0 writes the run folder
        r, out = distributed.setup(r, out, device)
    runner = Runner(r, out, device, from_stage, False if no_parity_gate else None)
    summary = runner.run()
    if distributed.rank() > 0:
        return
    _print_tables(summary)
    _console().print(f"summary: {runner.out / 'summary.json'}")
    if (summary.get("bundle") or {}).get("path"):
        _console().print(f"bundle: {runner.out / summary['bundle']['path']} (edgesmith predict BUNDLE INPUT)")
    if db is not None:
        from edgesmith.benchmarks.store import ResultsStore

        with ResultsStore(db) as store:
            store.add_run(summary, source=str(runner.out))
        _console().print(f"results store: {db}")


@main.command()
@click.argument("recipe", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE")
def validate(recipe, overrides) -> None:
    """Check RECIPE and print it fully resolved, without running anything."""
    import yaml

    from edgesmith.conf.recipe import load_recipe

    r = load_recipe(recipe, list(overrides))
    click.echo(yaml.safe_dump(r.to_dict(), sort_keys=False), nl=False)


@main.command()
def recipes() -> None:
    """List the shipped recipes."""
    import yaml

    from edgesmith.conf.recipe import DEFAULT_RECIPE, RECIPES_DIR

    for p in sorted(RECIPES_DIR.glob("*.yaml")):
        desc = (yaml.safe_load(p.read_text()) or {}).get("description", "")
        mark = " (default)" if p.stem == DEFAULT_RECIPE else ""
        click.echo(f"{p.stem}{mark}: {desc.strip().splitlines()[0] if desc else ''}")


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path))
def show(run_dir: Path) -> None:
    """Print the summary tables of a finished run directory."""
    import json

    path = run_dir / "summary.json" if run_dir.is_dir() else run_dir
    if not path.exists():
        raise EdgesmithError(f"{path}: no summary.json here; run `edgesmith run` first")
    try:
        summary = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise EdgesmithError(f"{path}: not valid JSON ({e})") from None
    _print_tables(summary)


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise EdgesmithError(f"--{name} {text}: expected positive integers separated by commas, e.g. 1,2,4")
    return values


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--runtime", help="Runtime (default: by file suffix).")
@click.option("--target", default="cpu", show_default=True,
              help="cpu, cuda, ssh://user@host[:port] (a machine with edgesmith) or adb[://SERIAL] (Android).")
@click.option("--remote-python", help="ssh targets: the remote Python that has edgesmith (default python3).")
@click.option("--ssh-identity", "identity_file", type=click.Path(path_type=Path), help="ssh targets: private key file.")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="ssh targets: an extra ssh -o option (repeatable).")
@click.option("--benchmark-model", "benchmark_model",
              help="adb targets: LiteRT benchmark_model (a local file is pushed; else a device path).")
@click.option("--threads", default="1", show_default=True, help="Thread counts to sweep, e.g. 1,2.")
@click.option("--batch", default="1", show_default=True, help="Batch sizes to sweep, e.g. 1,8.")
@click.option("--seq-len", default="128", show_default=True, help="Sequence lengths (token models only).")
@click.option("--iterations", default=100, show_default=True, help="Minimum timed runs per point.")
@click.option("--min-seconds", default=1.0, show_default=True, help="Minimum timing duration per point.")
@click.option("--db", type=click.Path(path_type=Path), help="Append the results to this results store.")
@click.option("--recipe", "recipe_name", help="Recipe name recorded with the rows in the store.")
def bench(model, runtime, target, remote_python, identity_file, ssh_options, benchmark_model, threads, batch,
          seq_len, iterations, min_seconds, db, recipe_name) -> None:
    """Benchmark a MODEL file (each point in a fresh process), or import a run directory's
    summary.json into --db."""
    import json

    from edgesmith.benchmarks.store import ResultsStore
    from edgesmith.pipeline.report import benchmarks_table

    if model.is_dir():
        path = model / "summary.json"
        if db is None or not path.exists():
            raise EdgesmithError(f"{model}: a run directory needs summary.json and --db to import into")
        with ResultsStore(db) as store:
            store.add_run(json.loads(path.read_text()), source=str(model))
        _console().print(f"imported {path} into {db}")
        return
    from edgesmith.benchmarks.sweep import sweep

    options = {"remote_python": remote_python, "identity_file": identity_file and str(identity_file),
               "ssh_options": tuple(ssh_options), "benchmark_model": benchmark_model}
    rows = sweep(model, runtime, target, _ints(threads, "threads"), _ints(batch, "batch"),
                 _ints(seq_len, "seq-len"), iterations=iterations, min_seconds=min_seconds,
                 target_options=options)
    _console().print(benchmarks_table({"benchmarks": rows}))
    if db is not None:
        with ResultsStore(db) as store:
            for row in rows:
                store.add_benchmark(row, recipe=recipe_name, source=str(model))
        _console().print(f"{len(rows)} row(s) appended to {db}")
    failed = [r for r in rows if r.get("error")]
    if failed and len(failed) == len(rows):
        raise EdgesmithError(f"{model}: every measurement failed; first: {failed[0]['error']}")


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True)
def dashboard(db: Path, out: Path) -> None:
    """Write the self-contained HTML dashboard of results store DB."""
    from edgesmith.benchmarks.dashboard import render

    if not db.exists():
        raise EdgesmithError(f"{db}: no such results store; create one with `edgesmith run --db {db}`")
    _console().print(f"dashboard: {render(db, out)}")


@main.command()
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--import", "import_path", type=click.Path(path_type=Path), help="Add a .json or .csv export.")
@click.option("--export", "export_path", type=click.Path(path_type=Path), help="Write all results to .json or .csv.")
def results(db: Path, import_path: Path | None, export_path: Path | None) -> None:
    """Import into or export from results store DB (JSON or CSV, chosen by suffix)."""
    from edgesmith.benchmarks.store import ResultsStore

    if import_path is None and export_path is None:
        raise EdgesmithError("results: pass --import FILE and/or --export FILE")
    with ResultsStore(db) as store:
        if import_path is not None:
            csv_in = import_path.suffix.lower() == ".csv"
            n = store.import_csv(import_path) if csv_in else store.import_json(import_path)
            _console().print(f"{n} row(s) imported from {import_path}")
        if export_path is not None:
            csv_out = export_path.suffix.lower() == ".csv"
            store.export_csv(export_path) if csv_out else store.export_json(export_path)
            _console().print(f"results written to {export_path}")


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("input_", metavar="INPUT")
@click.option("--runtime", help="Runtime to run in (default: the first format that passed parity).")
@click.option("--top-k", "top_k", default=3, show_default=True, help="Classes shown per input.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--telemetry", type=click.Path(path_type=Path), metavar="FILE.jsonl",
              help="Append drift reports of this batch against the bundle's reference profile to FILE.")
@click.option("--sample-rate", "sample_rate", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="With --telemetry: fraction of the inputs sampled.")
@click.option("--window", type=click.IntRange(min=1), default=500, show_default=True,
              help="With --telemetry: sampled inputs per report (the last, partial window is reported too).")
def predict(bundle: Path, input_: str, runtime: str | None, top_k: int, as_json: bool, telemetry: Path | None,
            sample_rate: float, window: int) -> None:
    """Run INPUT (an image, .npy/.npz, a text file or a quoted string) through BUNDLE."""
    import json

    import numpy as np

    from edgesmith.bundle.loader import load_bundle, raw_inputs
    from edgesmith.bundle.telemetry import DriftMonitor

    monitor = DriftMonitor(sample_rate=sample_rate, window=window, sink=telemetry) if telemetry else None
    with load_bundle(bundle, runtime, telemetry=monitor) as b:
        out = np.asarray(b.predict(raw_inputs(input_, b.manifest)), dtype=np.float64)
        meaning, labels, used = b.manifest["outputs"][0]["meaning"], b.labels, f"{b.format} on {b.runtime.name}"
    if monitor is not None:
        monitor.flush()
        statuses = ", ".join(r["status"] for r in monitor.reports) or "none (nothing sampled)"
        click.echo(f"telemetry: {len(monitor.reports)} drift report(s) appended to {telemetry}: {statuses}",
                   err=True)
    rows = []
    for i, row in enumerate(out):
        if meaning == "logits":
            p = np.exp(row - row.max())
            p /= p.sum()
            top = np.argsort(-p)[: max(top_k, 1)]
            rows.append({"input": i, "top_k": [{"index": int(k), "class": labels[k] if labels else str(k),
                                                "probability": float(p[k])} for k in top]})
        else:
            rows.append({"input": i, "norm": float(np.linalg.norm(row)), "dim": int(row.size),
                         "first": [round(float(v), 6) for v in row[:8]]})
    if as_json:
        click.echo(json.dumps({"bundle": str(bundle), "format": used, "predictions": rows}, indent=2))
        return
    from rich.table import Table

    t = Table(title=f"{bundle} ({used})", title_justify="left")
    if meaning == "logits":
        for c in ("input", "rank", "class", "probability"):
            t.add_column(c, justify="right" if c != "class" else "left")
        for r in rows:
            for rank, k in enumerate(r["top_k"], 1):
                t.add_row(str(r["input"]), str(rank), k["class"], f"{k['probability']:.4f}")
    else:
        for c in ("input", "norm", "dim", "first dims"):
            t.add_column(c)
        for r in rows:
            t.add_row(str(r["input"]), f"{r['norm']:.4f}", str(r["dim"]), " ".join(f"{v:+.4f}" for v in r["first"]))
    _console().print(t)


@main.command()
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("input_", metavar="INPUT")
@click.option("--runtime", help="Runtime to run in (default: the first format that passed parity).")
@click.option("--json", "as_json", is_flag=True, help="Print the drift report as JSON instead of a table.")
def drift(bundle: Path, input_: str, runtime: str | None, as_json: bool) -> None:
    """Compare all of INPUT (as for predict) with BUNDLE's reference profile: PSI per
    statistic and a status (ok < 0.1 <= warn <= 0.25 < drift). Exits 0 on drift too."""
    import json

    from edgesmith.bundle.loader import load_bundle, raw_inputs
    from edgesmith.bundle.telemetry import DriftMonitor

    with load_bundle(bundle, runtime) as b:
        DriftMonitor(sample_rate=0.0).attach(b)  # no reference profile: one line before any work
        raw = raw_inputs(input_, b.manifest)  # an unreadable INPUT: DataError, exit 2
        out = b.predict(raw)
        monitor = DriftMonitor(sample_rate=1.0, window=max(len(out), 1)).attach(b)  # one window: all of INPUT
        monitor.observe(raw, out)
        report, used = monitor.reports[-1], f"{b.format} on {b.runtime.name}"
    if as_json:
        click.echo(json.dumps(report, indent=2))
        return
    from rich.table import Table

    colour = {"ok": "green", "warn": "yellow", "drift": "red"}
    c, w = report["config"], report["window"]
    t = Table()
    for col in ("statistic", "metric", "value", "status"):
        t.add_column(col, justify="right" if col == "value" else "left")
    for st in report["statistics"]:
        t.add_row(st["name"], st["metric"], f"{st['value']:.4f}", f"[{colour[st['status']]}]{st['status']}[/]")
    console = _console()
    console.print(f"{bundle} ({used}): {w['samples']} inputs vs the {w['reference_samples']} of its reference profile")
    console.print(t)
    metrics = {st["metric"] for st in report["statistics"]}
    rules = {"psi": f"PSI ok < {c['psi_warn']} <= warn <= {c['psi_drift']} < drift",
             "shift": f"mean shift in reference std: ok < {c['shift_warn']} <= warn <= {c['shift_drift']} < drift"}
    console.print("; ".join(rules[m] for m in sorted(metrics)), style="dim")
    console.print(f"status: [{colour.get(report['status'], 'white')}]{report['status']}[/]"
                  + (f" (worst: {report['worst']})" if report["worst"] else ""))


@main.command()
@click.argument("recipe", required=False)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Search folder (default runs/<recipe>-search).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE", help="Override a recipe value (repeatable).")
@click.option("--trials", type=click.IntRange(min=1), help="Finished trials to reach (default: search.trials).")
@click.option("--reference", "references", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="A model file to measure beside the trials, on the same targets (repeatable).")
@click.option("--db", type=click.Path(path_type=Path), help="Results store (default <out>/results.db).")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run trials as Ray Tune trials on the cluster at ADDRESS (local Ray when none given).")
@click.option("--ray-workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Trials Ray runs at once.")
@click.option("--show", is_flag=True, help="Print the Pareto front of the finished search; run nothing.")
@click.option("--export-recipe", "export_n", type=int, metavar="N",
              help="Write trial N's recipe as a plain recipe; run nothing.")
@click.option("--to", "export_to", type=click.Path(path_type=Path), help="Where --export-recipe writes.")
def search(recipe, out, overrides, trials, references, db, ray_address, ray_workers, show, export_n,
           export_to) -> None:
    """Search RECIPE's 'search:' block for the Pareto front of quality, latency, size and memory."""
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.search import study
    from edgesmith.search.front import front_table

    if show or export_n is not None:
        run_dir = study.run_dir_for(load_recipe(recipe, list(overrides)), out)
        if export_n is not None:
            _console().print(f"recipe: {study.export_recipe(run_dir, export_n, export_to)}")
        if show:
            _console().print(front_table(run_dir))
        return
    result = study.search(recipe, out, overrides=list(overrides), trials=trials, reference_files=list(references),
                          db=db, ray_address=ray_address, ray_workers=ray_workers)
    _console().print(front_table(Path(result["run_dir"])))
    _console().print(f"search: {Path(result['run_dir']) / 'search.json'}  (--export-recipe N writes a trial's recipe)")


if __name__ == "__main__":
    main()
