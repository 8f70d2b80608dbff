"""Shared fixtures of the bundle tests: a real digits bundle (a short digits-quick run)."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
import yaml

import edgesmith
from edgesmith.conf.recipe import load_recipe, resolve_recipe_path
from edgesmith.data import build_splits

TRAIN = 900  # of digits' 1,797: 359 eval (the reference profile), 64 calibration, 474 never seen


@pytest.fixture(scope="session")
def digits(tmp_path_factory, edgesmith_cache) -> SimpleNamespace:
    """A small digits-quick run (teacher only, ONNX only) and its 474 unseen digits."""
    raw = yaml.safe_load(resolve_recipe_path("digits-quick").read_text())
    raw["teacher"]["kwargs"] = {"widths": [8, 16], "pools": [True, True], "hidden": 32, "dropout": 0.0}
    raw["teacher"]["train"]["epochs"] = 8
    raw["stages"] = []
    raw["data"]["splits"]["train"] = TRAIN
    raw["export"] = {"formats": ["onnx"], "parity": {"samples": 64}}
    raw["benchmark"]["runtimes"] = []
    out = tmp_path_factory.mktemp("digits") / "run"
    edgesmith.run(raw, out)
    data = load_recipe(out / "recipe.resolved.yaml").data
    splits = build_splits(data)
    pool = build_splits(dataclasses.replace(data, splits=dataclasses.replace(data.splits, train=None)))["train"]
    assert np.array_equal(pool.x[:TRAIN], splits["train"].x)  # same permutation: the rest was never trained on
    held = pool.subset(range(TRAIN, len(pool)))
    return SimpleNamespace(bundle=out / "bundle", held=held, eval=splits["eval"])


