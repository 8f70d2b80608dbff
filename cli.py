"""The ``edgesmith`` command line. A user mistake prints one line and exits
with code 2; no traceback reaches the terminal for an :class:`EdgesmithError`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from edgesmith import __version__
from edgesmith.errors import DataError, EdgesmithError, UserError

NOISY_LOGGERS = ("torch.utils._pytree", "torch._dynamo", "torch.onnx", "transformers", "onnxscript", "absl",
                 "tensorflow", "executorch", "coremltools", "torchao", "root")


def _quiet_libraries(verbose: bool = False) -> None:
    """Silence third-party chatter (absl, oneDNN, XNNPACK, TF, Hugging Face) unless --verbose."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("GLOG_minloglevel", "3")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("ONEDNN_VERBOSE", "0")
    import warnings

    warnings.filterwarnings("ignore")
    for name in NOISY_LOGGERS:
        logging.getLogger(None if name == "root" else name).setLevel(logging.ERROR)


def _runtime_alias(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``tflite`` (the format's name in every table) is accepted for the ``litert`` runtime."""
    return RUNTIME_ALIASES.get(value, value)


def _check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    import re

    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value or ""):
        raise UserError(f"--device: unknown device {value!r}; use auto, cpu, cuda or cuda:N")
    return value


def _runtime_names() -> list[str]:
    from edgesmith.runtimes import RUNTIMES

    return [*RUNTIMES, *RUNTIME_ALIASES]


RUNTIME_ALIASES = {"tflite": "litert"}
RUNTIME_CHOICE = click.Choice(_runtime_names())
RUNTIME_HELP = "one of " + ", ".join(_runtime_names()) + " (tflite = litert)"


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
    """The terminal's console; without a TTY, a wide one (``COLUMNS``, default 200) so
    tables in logs are neither folded nor cut."""
    from rich.console import Console

    c = Console()
    return c if c.is_terminal else Console(width=int(os.environ.get("COLUMNS") or 200))


def _print_tables(summary: dict) -> None:
    from edgesmith.pipeline.report import benchmarks_table, exports_table, summary_table

    console = _console()
    console.print(summary_table(summary, width=console.width))
    if summary.get("exports"):
        console.print(exports_table(summary, width=console.width))
    if summary.get("benchmarks"):
        console.print(benchmarks_table(summary, width=console.width))


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
             epilog="""\b
Examples:
  edgesmith run digits-quick      # every stage on sklearn digits
  edgesmith predict runs/digits-quick/bundle digit.png
  edgesmith bench runs/digits-quick/bundle --db results.db
  edgesmith dashboard results.db -o report.html
Exit codes: 0 ok, 1 the model or a runtime failed, 2 a user mistake,
130 interrupted.""")
@click.version_option(__version__, prog_name="edgesmith")
@click.option("--quiet", "-q", is_flag=True, help="Only results and errors: no progress or stage lines.")
@click.option("--verbose", "-v", is_flag=True, help="Also show third-party logs (absl, oneDNN, XNNPACK, ...).")
def main(quiet: bool = False, verbose: bool = False) -> None:
    """edgesmith: distil, prune, factorize, quantize, export, check and benchmark a model."""
    if quiet:
        os.environ["EDGESMITH_QUIET"] = "1"
    _quiet_libraries(verbose)
    if not verbose:
        from edgesmith.progress import filter_native_noise

        filter_native_noise()
    from edgesmith.plugins import load_plugins

    load_plugins()


@main.command(short_help="Run a recipe: teacher to verified, benchmarked bundle.", epilog="""\b
Examples:
  edgesmith run digits-quick
  edgesmith run fashion-mnist --set stages.distill.epochs=1 --out runs/fm
  edgesmith run digits-quick --from export --db results.db""")
@click.argument("recipe", required=False)
@click.option("--out", "-o", type=click.Path(path_type=Path), help="Run directory (default runs/<recipe name>).")
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set stages.distill.epochs=1 (repeatable).")
@click.option("--from", "from_stage", metavar="STAGE", help="Re-run from this stage on (teacher, distill, export, ...).")
@click.option("--device", default="auto", show_default=True, callback=_check_device, metavar="[auto|cpu|cuda|cuda:N]",
              help="Where to train: auto (a GPU when present), cpu, cuda or cuda:N.")
@click.option("--no-parity-gate", is_flag=True, help="Warn instead of stopping when an export fails parity.")
@click.option("--db", type=click.Path(path_type=Path), help="Also append the run's results to this results store.")
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the tables.")
def run(recipe, out, overrides, from_stage, device, no_parity_gate, db, as_json) -> None:
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
    if as_json:
        import json

        click.echo(json.dumps(summary, indent=1, default=str))
    else:
        _print_tables(summary)
        _console().print(f"summary: {runner.out / 'summary.json'}")
    if (summary.get("bundle") or {}).get("path") and not as_json:
        _console().print(f"bundle: {runner.out / summary['bundle']['path']} (edgesmith predict BUNDLE INPUT)")
    if db is not None:
        from edgesmith.benchmarks.store import ResultsStore

        with ResultsStore(db) as store:
            store.add_run(summary, source=str(runner.out))
        if not as_json:
            _console().print(f"results store: {db}")


@main.command(short_help="Check a recipe and print it resolved.", epilog="""\b
Examples:
  edgesmith validate digits-quick --set stages.distill.epochs=2
  edgesmith validate my-recipe.yaml""")
@click.argument("recipe", required=False)
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a recipe value, e.g. --set stages.distill.epochs=2 (repeatable).")
def validate(recipe, overrides) -> None:
    """Check RECIPE and print it fully resolved, without running anything."""
    import yaml

    from edgesmith.conf.recipe import load_recipe

    r = load_recipe(recipe, list(overrides))
    click.echo(yaml.safe_dump(r.to_dict(), sort_keys=False), nl=False)


@main.command(short_help="List the shipped recipes.")
def recipes() -> None:
    """List the shipped recipes."""
    import yaml

    from edgesmith.conf.recipe import DEFAULT_RECIPE, RECIPES_DIR

    for p in sorted(RECIPES_DIR.glob("*.yaml")):
        desc = (yaml.safe_load(p.read_text()) or {}).get("description", "")
        mark = " (default)" if p.stem == DEFAULT_RECIPE else ""
        click.echo(f"{p.stem}{mark}: {desc.strip().splitlines()[0] if desc else ''}")


@main.command(short_help="Print the tables of a finished run.", epilog="""\b
Example:
  edgesmith show runs/digits-quick""")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print summary.json instead of the tables.")
def show(run_dir: Path, as_json: bool) -> None:
    """Print the summary tables of a finished run directory."""
    import json

    path = run_dir / "summary.json" if run_dir.is_dir() else run_dir
    if not path.exists():
        raise UserError(f"{path}: no summary.json here; run `edgesmith run` first")
    try:
        summary = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, IsADirectoryError) as e:
        raise DataError(f"{path}: not valid JSON ({e})") from None
    if as_json:
        click.echo(json.dumps(summary, indent=1))
        return
    try:
        _print_tables(summary)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError) as e:
        raise DataError(f"{path}: incomplete summary (no {e}); run `edgesmith run` again to finish it") from None


def _ints(text: str, name: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise UserError(f"--{name} {text}: expected positive integers separated by commas, e.g. 1,2,4")
    return values


@main.command(short_help="Benchmark a model file or bundle, or import a run.", epilog="""\b
Examples:
  edgesmith bench model.onnx --threads 1,2 --batch 1,8 --db results.db
  edgesmith bench runs/digits-quick/bundle --target cpu --db results.db
  edgesmith bench model.tflite --target adb --benchmark-model ./bm
  edgesmith bench runs/digits-quick --db results.db   # import its results""")
@click.argument("model", type=click.Path(path_type=Path), metavar="MODEL|BUNDLE|RUN_DIR")
@click.option("--runtime", type=RUNTIME_CHOICE, callback=_runtime_alias, metavar="NAME",
              help=f"Runtime, {RUNTIME_HELP}; default: by file suffix (a bundle: every format in it).")
@click.option("--target", default="cpu", show_default=True,
              help="cpu, cuda, ssh://user@host[:port] (a machine with edgesmith) or adb[://SERIAL] (Android).")
@click.option("--remote-python", help="ssh targets: the remote Python that has edgesmith (default python3).")
@click.option("--ssh-identity", "identity_file", type=click.Path(path_type=Path), help="ssh targets: private key file.")
@click.option("--ssh-option", "ssh_options", multiple=True, metavar="KEY=VALUE",
              help="ssh targets: an extra ssh -o option (repeatable).")
@click.option("--benchmark-model", "benchmark_model",
              help="adb targets: LiteRT benchmark_model (a local file is pushed; else a device path).")
@click.option("--threads", default="1", show_default=True, help="Thread counts to sweep, e.g. 1,2.")
@click.option("--batch", default="1", show_default=True,
              help="Batch sizes to sweep, e.g. 1,8 (a static-batch file records other sizes as errors).")
@click.option("--seq-len", default="128", show_default=True, help="Sequence lengths (token models only).")
@click.option("--iterations", default=100, show_default=True, help="Minimum timed runs per point.")
@click.option("--min-seconds", default=1.0, show_default=True,
              help="Minimum timing duration per point (honoured; the runs and seconds are stored).")
@click.option("--db", type=click.Path(path_type=Path), help="Append the results to this results store.")
@click.option("--recipe", "recipe_name", help="Recipe name recorded with the rows in the store.")
@click.option("--json", "as_json", is_flag=True, help="Print the rows as JSON instead of a table.")
def bench(model, runtime, target, remote_python, identity_file, ssh_options, benchmark_model, threads, batch,
          seq_len, iterations, min_seconds, db, recipe_name, as_json) -> None:
    """Benchmark MODEL (a model file, or a bundle: every format in it), each point in a
    fresh process on --target; or import a run directory's summary.json into --db."""
    import json

    from edgesmith.benchmarks.store import ResultsStore
    from edgesmith.pipeline.report import benchmarks_table

    if not model.exists():
        raise UserError(f"{model}: no such model file, bundle or run directory")
    is_bundle = model.is_dir() and (model / "edgesmith.json").is_file()
    if model.is_dir() and not is_bundle:
        path = model / "summary.json"
        if not path.exists():
            raise UserError(f"{model}: a directory that is neither a bundle (no edgesmith.json) nor a run "
                            "directory (no summary.json); give a model file, a bundle or a run directory")
        if db is None:
            hint = f"; to measure its bundle, give {model / 'bundle'}" if (model / "bundle").is_dir() else ""
            raise UserError(f"{model}: a run directory: add --db FILE to import its results{hint}")
        with ResultsStore(db) as store:
            store.add_run(json.loads(path.read_text()), source=str(model))
        _console().print(f"imported {path} into {db}")
        return
    from edgesmith.benchmarks.sweep import sweep, sweep_bundle

    options = {"remote_python": remote_python, "identity_file": identity_file and str(identity_file),
               "ssh_options": tuple(ssh_options), "benchmark_model": benchmark_model}
    kwargs = {"threads": _ints(threads, "threads"), "batches": _ints(batch, "batch"),
              "seq_lens": _ints(seq_len, "seq-len"), "iterations": iterations, "min_seconds": min_seconds,
              "target_options": options}
    if is_bundle:
        rows = sweep_bundle(model, target, [runtime] if runtime else None, **kwargs)
    else:
        rows = sweep(model, runtime, target, **kwargs)
    if db is not None:
        with ResultsStore(db) as store:
            for row in rows:
                store.add_benchmark(row, recipe=recipe_name, source=str(model))
    if as_json:
        click.echo(json.dumps({"model": str(model), "target": target, "benchmarks": rows}, indent=1, default=str))
    else:
        console = _console()
        console.print(benchmarks_table({"benchmarks": rows}, width=console.width))
        if db is not None:
            console.print(f"{len(rows)} row(s) appended to {db}")
    failed = [r for r in rows if r.get("error")]
    if failed and len(failed) == len(rows):
        raise EdgesmithError(f"{model}: every measurement failed; first: {failed[0]['error']}")


@main.command(short_help="Write the HTML dashboard of a results store.", epilog="""\b
Example:
  edgesmith dashboard results.db -o report.html""")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--out", "-o", type=click.Path(path_type=Path), default=Path("report.html"), show_default=True,
              help="The HTML file to write (self-contained: no network needed to view it).")
def dashboard(db: Path, out: Path) -> None:
    """Write the self-contained HTML dashboard of results store DB."""
    from edgesmith.benchmarks.dashboard import render

    if not db.exists():
        raise UserError(f"{db}: no such results store; create one with `edgesmith run --db {db}`")
    _console().print(f"dashboard: {render(db, out)}")


@main.command(short_help="Import into or export from a results store.", epilog="""\b
Examples:
  edgesmith results results.db --export all.json
  edgesmith results results.db --import other-machine.json""")
@click.argument("db", type=click.Path(path_type=Path))
@click.option("--import", "import_path", type=click.Path(path_type=Path), help="Add a .json or .csv export.")
@click.option("--export", "export_path", type=click.Path(path_type=Path), help="Write all results to .json or .csv.")
def results(db: Path, import_path: Path | None, export_path: Path | None) -> None:
    """Import into or export from results store DB (JSON or CSV, chosen by suffix)."""
    from edgesmith.benchmarks.store import ResultsStore

    if import_path is None and export_path is None:
        raise UserError("results: pass --import FILE and/or --export FILE")
    with ResultsStore(db) as store:
        if import_path is not None:
            csv_in = import_path.suffix.lower() == ".csv"
            n = store.import_csv(import_path) if csv_in else store.import_json(import_path)
            _console().print(f"{n} row(s) imported from {import_path}")
        if export_path is not None:
            csv_out = export_path.suffix.lower() == ".csv"
            store.export_csv(export_path) if csv_out else store.export_json(export_path)
            _console().print(f"results written to {export_path}")


@main.command(short_help="Run an input through a bundle and print the prediction.", epilog="""\b
Examples:
  edgesmith predict runs/digits-quick/bundle digit.png --runtime tflite
  edgesmith predict runs/minilm-sentiment/bundle "a warm, funny film" --json""")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.argument("input_", metavar="INPUT")
@click.option("--runtime", type=RUNTIME_CHOICE, callback=_runtime_alias, metavar="NAME",
              help=f"Runtime to run in, {RUNTIME_HELP}; default: the first format that passed parity.")
@click.option("--top-k", "top_k", default=3, show_default=True, help="Classes shown per input.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--telemetry", type=click.Path(path_type=Path), metavar="FILE.jsonl",
              help="Append drift reports of this batch against the bundle's reference profile to FILE.")
@click.option("--sample-rate", "sample_rate", type=click.FloatRange(0, 1), default=1.0, show_default=True,
              help="With --telemetry: fraction of the inputs sampled.")
@click.option("--window", type=click.IntRange(min=1), default=500, show_default=True,
              help="With --telemetry: sampled inputs per report (the last, partial window is reported too).")
@click.option("--text", "as_text", is_flag=True, help="Text bundles: INPUT is the text itself, never a file name.")
def predict(bundle: Path, input_: str, runtime: str | None, top_k: int, as_json: bool, telemetry: Path | None,
            sample_rate: float, window: int, as_text: bool) -> None:
    """Run INPUT (an image, .npy/.npz, a text file, or with --text a quoted string) through BUNDLE."""
    import json

    import numpy as np

    from edgesmith.bundle.loader import load_bundle, raw_inputs
    from edgesmith.bundle.telemetry import DriftMonitor

    if sample_rate != sample_rate:  # NaN passes click's range check
        raise DataError("--sample-rate nan: must be a number in [0, 1]")
    monitor = DriftMonitor(sample_rate=sample_rate, window=window, sink=telemetry) if telemetry else None
    with load_bundle(bundle, runtime, telemetry=monitor) as b:
        raw = raw_inputs(input_, b.manifest, text=as_text)
        from edgesmith.bundle.conventions import inverted_warnings

        for warning in inverted_warnings(raw, b.manifest):
            click.secho(f"warning: {warning}", fg="yellow", err=True)
        out = np.asarray(b.predict(raw), dtype=np.float64)
        meaning, labels, used = b.manifest["outputs"][0]["meaning"], b.labels, f"{b.format} on {b.runtime.name}"
        head = b.manifest.get("head")
        if head and meaning != "logits":  # a text bundle's task head: labels, not the embedding
            from edgesmith.bundle.head import run_head

            out = np.asarray(run_head(b.path, head, out), dtype=np.float64)
            meaning, labels, used = "logits", head["labels"], used + " + head"
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


@main.command(short_help="Drift of a bundle's traffic, from inputs or device reports.", epilog="""\b
Examples:
  edgesmith drift runs/fashion-mnist/bundle animal-images.npz
  edgesmith drift phone1.jsonl phone2.jsonl --fail-on drift
  edgesmith drift merge phone*.jsonl -o fleet.jsonl""")
@click.argument("args", nargs=-1, required=True, metavar="BUNDLE INPUT | REPORTS.jsonl... | merge REPORTS...")
@click.option("--runtime", type=RUNTIME_CHOICE, callback=_runtime_alias, metavar="NAME",
              help=f"BUNDLE INPUT: runtime to run in, {RUNTIME_HELP}; default: the first format that passed parity.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of tables.")
@click.option("--fail-on", "fail_on", type=click.Choice(["never", "warn", "drift"]), default="never",
              show_default=True, help="Exit 3 when a report reaches this status (recalibrate counts as drift).")
@click.option("--out", "-o", "out", type=click.Path(path_type=Path), help="merge: write the merged report here.")
@click.option("--prometheus", type=click.Path(path_type=Path),
              help="REPORTS: also write the Prometheus text exposition of the latest reports here.")
@click.option("--html", "html_out", type=click.Path(path_type=Path),
              help="REPORTS: also write the dashboard's drift view (status and scores over time) here.")
def drift(args: tuple[str, ...], runtime: str | None, as_json: bool, fail_on: str, out: Path | None,
          prometheus: Path | None, html_out: Path | None) -> None:
    """Drift of a bundle's traffic from its reference profile, three ways:

    \b
    edgesmith drift BUNDLE INPUT        all of INPUT (as for predict), one window
    edgesmith drift REPORTS.jsonl...    a timeline per statistic, all devices
    edgesmith drift merge R... -o F     one scored window of all of them

    Every score has a p-value; no alarm below the window's minimum sample."""
    from edgesmith.bundle.telemetry.views import drift_bundle, drift_merge, drift_reports

    is_bundle = Path(args[0]).is_dir() or Path(args[0]).name == "edgesmith.json"
    if is_bundle and len(args) > 1 and all(a.endswith((".jsonl", ".ndjson")) for a in args[1:]):
        args = args[1:]  # `drift BUNDLE drift.jsonl`: the reports a device wrote
        is_bundle = False
    if args[0] == "merge":
        status = drift_merge([Path(a) for a in args[1:]], out, as_json)
    elif len(args) == 2 and is_bundle:
        status = drift_bundle(Path(args[0]), args[1], runtime, as_json)
    else:
        status = drift_reports([Path(a) for a in args], as_json, prometheus, html_out)
    from edgesmith.bundle.telemetry.scoring import STATUSES

    if fail_on != "never" and STATUSES.index(status) >= STATUSES.index(fail_on):
        click.secho(f"drift: status {status} reaches --fail-on {fail_on}", fg="red", err=True)
        sys.exit(3)


@main.command(short_help="Pareto search over a recipe's search: block.", epilog="""\b
Examples:
  edgesmith search conf/recipes/fashion-mnist.yaml --trials 24
  edgesmith search fashion-mnist --show
  edgesmith search fashion-mnist --export-recipe 7 --to best.yaml""")
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


@main.command(short_help="Serve the browser demo for a bundle on localhost.", epilog="""\b
Example:
  edgesmith demo runs/digits-quick/bundle --port 8765""")
@click.argument("bundle", type=click.Path(path_type=Path))
@click.option("--port", default=8765, show_default=True, type=click.IntRange(0, 65535),
              help="Port on 127.0.0.1 (0: any free port).")
@click.option("--no-open", "no_open", is_flag=True, help="Print the URL without opening a browser.")
@click.option("--telemetry", type=click.Path(path_type=Path), metavar="FILE.jsonl",
              help="Where the page's drift reports are appended (default: demo-telemetry.jsonl beside BUNDLE).")
def demo(bundle: Path, port: int, no_open: bool, telemetry: Path | None) -> None:
    """Serve the browser demo for BUNDLE on localhost: its ONNX file in onnxruntime-web with the
    app's preprocessing, tokenizer and drift hook (android-demo/web); prints the URL."""
    from edgesmith.bundle.demo import serve

    serve(bundle, port=port, open_browser=not no_open, telemetry=telemetry)


def _add_single_step_commands() -> None:
    from edgesmith.commands import check, export_cmd, quantize

    for cmd in (quantize, export_cmd, check):
        main.add_command(cmd)


_add_single_step_commands()


if __name__ == "__main__":
    main()
