"""One exit-code rule (errors.py): 2 for every user mistake, 1 for failures of the
model or runtime, 130 for an interrupt; one line on stderr, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from edgesmith import errors
from edgesmith.cli import main


def test_exit_code_of_each_error_class():
    user = (errors.UserError, errors.RecipeError, errors.DataError, errors.MissingExtraError, errors.BundleError)
    failures = (errors.EdgesmithError, errors.StageError, errors.ExportError, errors.ParityError)
    assert {c.__name__: c.exit_code for c in user} == {c.__name__: 2 for c in user}
    assert {c.__name__: c.exit_code for c in failures} == {c.__name__: 1 for c in failures}
    assert all(issubclass(c, errors.UserError) for c in user)
    assert not any(issubclass(c, errors.UserError) for c in failures)


def _run(args: list[str]):
    res = CliRunner().invoke(main, args)
    assert "Traceback" not in res.output, res.output
    return res.exit_code, res.stderr.strip()


@pytest.mark.parametrize("args,expected", [
    (["validate", "no-such-recipe"], "no-such-recipe: no such recipe file"),
    (["run", "digits-quick", "--from", "distil", "--device", "cpu"], "--from distil: no such stage"),
    (["bench", "{tmp}/nonexist.onnx"], "{tmp}/nonexist.onnx: no such model file"),
    (["dashboard", "{tmp}/nonexist.db"], "{tmp}/nonexist.db: no such results store"),
    (["show", "{tmp}"], "no summary.json here"),
    (["predict", "{tmp}/nobundle", "x"], "nobundle"),
    (["validate", "digits-quick", "--set", "stages.distil.epochs=2"],
     "--set stages.distil.epochs=2: stages.distil: no entry named 'distil'"),
    (["validate", "digits-quick", "--set", "stages.distill.epochs=x"],
     "--set stages.distill.epochs=x: stages[0].epochs: expected an integer"),
    (["results", "{tmp}/r.db"], "pass --import FILE and/or --export FILE"),
])
def test_user_mistakes_exit_2_with_one_line(args, expected, tmp_path: Path):
    code, err = _run([a.format(tmp=tmp_path) for a in args])
    assert code == 2, err
    assert len(err.splitlines()) == 1 and err.startswith("error: ") and expected.format(tmp=tmp_path) in err, err


def test_a_set_typo_is_not_blamed_on_the_recipe_file():
    code, err = _run(["validate", "digits-quick", "--set", "stages.distill.epochs=x"])
    assert code == 2 and "digits-quick.yaml" not in err


def test_a_model_the_runtime_cannot_load_exits_1(tmp_path: Path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a protobuf")
    code, err = _run(["bench", str(bad)])
    assert code == 1 and "broken.onnx" in err and len(err.splitlines()) == 1, err


def test_interrupt_exits_130(monkeypatch):
    import edgesmith.conf.recipe as recipe

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(recipe, "load_recipe", interrupted)
    code, err = _run(["validate", "digits-quick"])
    assert code == 130 and "interrupted" in err
