"""Layer selection by name pattern and op type, on the three model families."""

from __future__ import annotations

import pytest
from torch import nn

from edgesmith.compress.selection import LayerSelection, select
from edgesmith.errors import RecipeError


def _names(model, sel, types=("Linear", "Conv2d")):
    return [n for n, _ in select(model, sel, list(types))]


def test_default_selects_every_layer_of_the_default_types(mlp, resnet):
    assert _names(mlp, LayerSelection()) == ["0", "2", "4"]
    assert _names(resnet, LayerSelection()) == ["stem.0", "conv1", "conv2", "down.0", "fc"]


def test_include_exclude_patterns(resnet, bert):
    assert _names(resnet, LayerSelection(include=["conv*"])) == ["conv1", "conv2"]
    assert _names(resnet, LayerSelection(exclude=["fc", "stem.*"])) == ["conv1", "conv2", "down.0"]
    # '*' crosses dots; [] picks layer numbers
    picked = _names(bert, LayerSelection(include=["*.layer.1.attention.self.*"]))
    assert picked == [f"encoder.encoder.layer.1.attention.self.{p}" for p in ("query", "key", "value")]
    assert len(_names(bert, LayerSelection(exclude=["*.layer.[0]*"]))) == 6


def test_op_types_override_defaults_and_match_subclasses(resnet):
    assert _names(resnet, LayerSelection(op_types=["BatchNorm2d"])) == ["stem.1", "bn1", "bn2", "down.1"]

    class MyLinear(nn.Linear):
        pass

    net = nn.Sequential(MyLinear(3, 3), nn.Linear(3, 2))
    assert _names(net, LayerSelection(), ["Linear"]) == ["0", "1"]
    assert _names(net, LayerSelection(op_types=["MyLinear"])) == ["0"]


def test_selection_matching_nothing_is_one_clear_line(resnet):
    with pytest.raises(RecipeError) as e:
        select(resnet, LayerSelection(include=["encoder.*"]), ["Conv2d"])
    msg = str(e.value)
    assert e.value.key == "include" and "\n" not in msg
    assert "matches no layer of type Conv2d" in msg and "stem.0 (Conv2d)" in msg and "conv1 (Conv2d)" in msg


def test_unknown_op_type_lists_the_leaf_layers(mlp):
    with pytest.raises(RecipeError, match=r"matches no layer of type Conv2d; there is none; leaf layers are: 0 \(Linear\)"):
        select(mlp, LayerSelection(), ["Conv2d"])


def test_selection_config_validates_and_round_trips():
    sel = LayerSelection(include=["a.*"], exclude=["a.b"], op_types=["Linear"])
    assert LayerSelection.from_dict(sel.to_dict()) == sel
    with pytest.raises(RecipeError, match="include: needs at least one pattern"):
        LayerSelection(include=[])
    with pytest.raises(RecipeError, match="include: expected a list"):
        LayerSelection.from_dict({"include": "conv*"})
