"""--help that teaches: a summary per command that fits 80 columns, an example under
every command, help text on every option, choices instead of free text."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from edgesmith.cli import main

COMMANDS = sorted(main.commands)


def _help(*args: str) -> str:
    res = CliRunner().invoke(main, [*args, "--help"], terminal_width=80)
    assert res.exit_code == 0, res.output
    return res.output


def test_top_level_list_shows_every_summary_whole_at_80_columns():
    text = _help()
    for name in COMMANDS:
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(name + " "))
        assert not line.rstrip().endswith("..."), line
    assert max(len(ln) for ln in text.splitlines()) <= 80
    assert "Exit codes: 0 ok, 1 the model or a runtime failed, 2 a user mistake" in text


@pytest.mark.parametrize("name", COMMANDS)
def test_every_help_fits_80_columns(name):
    assert [ln for ln in _help(name).splitlines() if len(ln) > 80] == []


@pytest.mark.parametrize("name", [c for c in COMMANDS if c != "recipes"])
def test_every_command_shows_an_example(name):
    assert "edgesmith " + name in _help(name).split("Example")[-1]


@pytest.mark.parametrize("name", COMMANDS)
def test_every_option_has_help(name):
    missing = [p.name for p in main.commands[name].params if isinstance(p, click.Option) and not p.help]
    assert missing == []


def test_runtime_and_device_are_choices_and_tflite_means_litert(tmp_path):
    text = _help("predict")
    assert "tflite" in text and "litert" in text and "onnxruntime" in text
    res = CliRunner().invoke(main, ["predict", str(tmp_path), "x", "--runtime", "tensorflow"])
    assert res.exit_code == 2 and "'tensorflow' is not one of" in res.output
    res = CliRunner().invoke(main, ["run", "digits-quick", "--device", "gpu"])
    assert res.exit_code == 2 and "use auto, cpu, cuda or cuda:N" in res.output
    opt = next(p for p in main.commands["predict"].params if p.name == "runtime")
    assert opt.callback(None, opt, "tflite") == "litert" and opt.callback(None, opt, None) is None
