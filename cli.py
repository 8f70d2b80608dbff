"""The ``edgesmith`` command line. A user mistake prints one line and exits
with code 2; no traceback reaches the terminal for an :class:`EdgesmithError`."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

import click

from edgesmith import __version__
from edgesmith.errors import EdgesmithError


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
def run(recipe, out, overrides, from_stage, device, no_parity_gate) -> None:
    """Run RECIPE (a YAML path or a shipped recipe name; default minilm-sentiment)."""
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner

    r = load_recipe(recipe, list(overrides))
    runner = Runner(r, out, device, from_stage, False if no_parity_gate else None)
    summary = runner.run()
    _print_tables(summary)
    _console().print(f"summary: {runner.out / 'summary.json'}")


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


if __name__ == "__main__":
    main()
