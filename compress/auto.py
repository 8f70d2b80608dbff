"""Auto mode of ``prune`` and ``lowrank``: per-layer ratios (ranks) chosen from a
sensitivity table (:mod:`edgesmith.compress.sensitivity`) under one global budget.

In a recipe::

    - kind: prune
      method: structured
      auto: {budget: params, target: 0.5, max_drop: 0.05, ratios: [0.25, 0.5, 0.75]}

The stage measures every selected layer alone at every candidate (``ratios``;
for ``lowrank`` also ``ranks``) on its held-out split, then chooses greedily: of
all moves that take one layer to a stronger candidate, the one with the smallest
quality drop per parameter (FLOP) saved goes first, until the model keeps at most
``target`` of its parameters (FLOPs). Candidates whose drop, measured alone,
exceeds ``max_drop`` are never chosen. Savings are added up exactly (structured
pruning of two neighbouring layers cuts a shared weight slice once), so the
budget is met, or beaten by the last move's overshoot. The chosen plan is then
applied with the stage's usual schedule and KD recovery, and recorded in the
stage's report under ``auto``.

For unstructured pruning, parameters mean non-zero parameters, and a FLOP budget
is refused: dense runtimes do the same work with the zeros.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from edgesmith.conf.base import Config, RecipeError, at_least, between
from edgesmith.errors import StageError
from edgesmith.models import count_params
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["AutoConfig", "plan_prune", "plan_lowrank", "choose", "budget_used"]


@dataclass
class AutoConfig(Config):
    """Auto mode settings.

    Attributes:
        target: the largest fraction of the model's parameters (FLOPs) to keep, in (0, 1).
        budget: ``params`` or ``flops``.
        max_drop: never choose a candidate whose quality drop, alone, is above this
            (a fraction: 0.02 is 2 accuracy points).
        ratios: candidates per layer; ``prune``: fraction of channels (weights) removed;
            ``lowrank``: fraction of the layer's weights kept.
        ranks: ``lowrank`` only: absolute rank candidates.
        metric, samples: as in the ``sensitivity`` stage.
    """

    target: float = field(metadata=between(0, 1, lo_open=True, hi_open=True))
    budget: Literal["params", "flops"] = "params"
    max_drop: float | None = field(default=None, metadata=at_least(0))
    ratios: list[float] = field(default_factory=lambda: [0.25, 0.5, 0.75])
    ranks: list[int] = field(default_factory=list)
    metric: str | None = None
    samples: int | None = field(default=None, metadata=at_least(1))

    def validate(self) -> None:
        for i, r in enumerate(self.ratios):
            if not 0 < r < 1:
                raise RecipeError(f"ratios[{i}]", f"must be in (0, 1), got {r}")
        for i, k in enumerate(self.ranks):
            if k < 1:
                raise RecipeError(f"ranks[{i}]", f"must be >= 1, got {k}")
        if not self.ratios and not self.ranks:
            raise RecipeError("ratios", "needs at least one candidate ratio (or rank)")


def nonzero_params(model: nn.Module) -> int:
    return sum(int((p != 0).sum()) for p in model.parameters())


def budget_used(model: nn.Module, budget: str, example: tuple[torch.Tensor, ...], nonzero: bool = False) -> int:
    """The model's parameters (non-zero ones with ``nonzero``) or FLOPs, as the budget counts them."""
    if budget == "flops":
        from edgesmith.models.flops import count_flops

        return count_flops(model, example)
    return nonzero_params(model) if nonzero else count_params(model)


def _held_out(val: TensorSet | None, stage: str) -> TensorSet:
    if val is None or not len(val):
        raise StageError(f"{stage}: auto mode scores layers on held-out data; set val_fraction > 0")
    return val


def plan_prune(model: nn.Module, config, task: Task, val: TensorSet | None, teacher: nn.Module | None,
               device: str = "cpu") -> dict[str, Any]:
    """Measure and choose per-layer prune ratios for ``config`` (a PruneConfig with ``auto``).

    Returns the record stored under ``report["auto"]``; ``record["ratios"]`` maps layer name to ratio.
    """
    from edgesmith.compress.sensitivity import SensitivityConfig, measure

    auto = config.auto
    sens = SensitivityConfig(include=config.include, exclude=config.exclude, op_types=config.op_types,
                             prune_ratios=auto.ratios, prune_method=config.method, lowrank_ratios=[],
                             metric=auto.metric, samples=auto.samples)
    data = _held_out(val, config.name or config.kind)
    report, extra = measure(model, sens, task, data, teacher, device=device, keep_masks=config.method == "structured")
    unstructured = config.method == "unstructured"
    example = tuple(t.to(device) for t in task.prepare(data.take(slice(0, 1)).inputs))
    total = budget_used(model, auto.budget, example, nonzero=unstructured)
    record = choose(report, auto, total, extra if not unstructured else None)
    by_column = dict(zip(sens.columns, auto.ratios, strict=False))
    for p in record["plan"]:
        p["ratio"] = by_column[p["setting"]]
    record["ratios"] = {p["name"]: p["ratio"] for p in record["plan"]}
    return record


def plan_lowrank(model: nn.Module, config, task: Task, val: TensorSet | None, teacher: nn.Module | None,
                 device: str = "cpu") -> dict[str, Any]:
    """Measure and choose per-layer ranks for ``config`` (a LowRankConfig with ``auto``);
    ``record["ranks"]`` maps layer name to rank."""
    from edgesmith.compress.sensitivity import SensitivityConfig, measure

    auto = config.auto
    sens = SensitivityConfig(include=config.include, exclude=config.exclude,
                             op_types=config.op_types or config.default_types, prune_ratios=[],
                             lowrank_ratios=auto.ratios, lowrank_ranks=auto.ranks, metric=auto.metric,
                             samples=auto.samples)
    data = _held_out(val, config.name or config.kind)
    report, _ = measure(model, sens, task, data, teacher, device=device)
    example = tuple(t.to(device) for t in task.prepare(data.take(slice(0, 1)).inputs))
    record = choose(report, auto, budget_used(model, auto.budget, example), None)
    rows = {r["name"]: r for r in report["layers"]}
    for p in record["plan"]:
        p["rank"] = rows[p["name"]]["cells"][p["setting"]]["rank"]
    record["ranks"] = {p["name"]: p["rank"] for p in record["plan"]}
    return record


def choose(report: dict[str, Any], auto: AutoConfig, total: int, extra: dict[str, Any] | None) -> dict[str, Any]:
    """Greedy choice of one column per layer (or none) from a sensitivity ``report``
    so that at most ``floor(target * total)`` parameters (FLOPs) remain.

    Args:
        extra: :func:`~edgesmith.compress.sensitivity.measure`'s masks for structured
            pruning, whose savings overlap between layers; None: savings add up.

    Raises:
        StageError: the budget cannot be reached with the candidates under ``max_drop``.
    """
    key = "params_saved" if auto.budget == "params" else "flops_saved"
    allowed = math.floor(auto.target * total)
    need = total - allowed
    options: dict[str, list[tuple[str, float, int]]] = {}
    for row in report["layers"]:
        for col, cell in row["cells"].items():
            if "skipped" in cell or cell[key] <= 0 or (auto.max_drop is not None and cell["drop"] > auto.max_drop):
                continue
            options.setdefault(row["name"], []).append((col, cell["drop"], cell[key]))
    saving = _union_saving(extra, auto.budget) if extra is not None else None
    current: dict[str, tuple[str, float, int]] = {}
    saved = 0
    while saved < need:
        best = None
        for name, opts in options.items():
            cur = current.get(name)
            for opt in opts:
                if cur is not None and opt[0] == cur[0]:
                    continue
                trial = {**current, name: opt}
                s = saving({n: o[0] for n, o in trial.items()}) if saving else sum(o[2] for o in trial.values())
                gain = s - saved
                if gain <= 0:
                    continue
                cost = (max(opt[1], 0.0) - max(cur[1], 0.0) if cur else max(opt[1], 0.0)) / gain
                if best is None or (cost, -gain) < best[0]:
                    best = ((cost, -gain), name, opt, s)
        if best is None:
            raise StageError(
                f"auto: cannot keep at most {auto.target:g} of the model's {auto.budget} ({allowed} of {total}): the "
                f"candidates reach {total - saved}{' within max_drop ' + format(auto.max_drop, 'g') if auto.max_drop is not None else ''}; "
                "add stronger ratios, raise max_drop or target, or select more layers")
        _, name, opt, saved = best
        current[name] = opt
    rows = {r["name"]: r for r in report["layers"]}
    plan = [{"name": n, "setting": o[0], "drop": o[1], "params_saved": rows[n]["cells"][o[0]]["params_saved"],
             "flops_saved": rows[n]["cells"][o[0]]["flops_saved"]} for n, o in sorted(
                 current.items(), key=lambda kv: [r["name"] for r in report["layers"]].index(kv[0]))]
    return {"budget": auto.budget, "target": auto.target, "max_drop": auto.max_drop, "total": total,
            "allowed": allowed, "predicted_after": total - saved, "predicted_drop": sum(p["drop"] for p in plan),
            "metric": report["metric"], "baseline": report["baseline"], "plan": plan, "sensitivity": report}


def _union_saving(extra: dict[str, Any], budget: str):
    """Exact saving of a set of structured cells: each cut parameter entry counted once."""
    masks, per_weight = extra["masks"], extra["flops_per_weight"]

    def saving(choice: dict[str, str]) -> int:
        union: dict[str, torch.Tensor] = {}
        for name, col in choice.items():
            for k, m in masks[(name, col)].items():
                union[k] = union[k] | m if k in union else m
        if budget == "params":
            return sum(int(m.sum()) for m in union.values())
        return sum(int(m.sum()) * per_weight.get(k, 0) for k, m in union.items())

    return saving
