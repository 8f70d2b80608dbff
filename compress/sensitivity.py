"""Per-layer sensitivity, one table across techniques: for each selected layer
alone, the drop in task quality on held-out data when it is pruned at ratio
``r`` or factorized to a lower rank, beside the parameters and FLOPs that change
saves.

Nothing is deep-copied: each change is applied to the model's own weights,
measured and undone (the weights come back bit for bit).

- ``prune@r``, structured (default): the ``r`` lowest-L1 output channels of a
  Conv2d / Linear, found and scored like the ``prune`` stage does (torch-pruning's
  dependency graph and group importance). Removing them is emulated by zeroing
  every slice torch-pruning would cut (the layer's rows and bias, the coupled
  BatchNorm's scale and shift, the consumers' input columns), which gives the
  same outputs and exact parameter and FLOP counts. The output layer is never
  pruned; a layer whose channels are coupled to an earlier row (a residual add)
  shares that row's cells.
- ``prune@r``, unstructured: the ``r`` smallest weights of the layer set to zero.
  Saves non-zero parameters (compressed size), not dense FLOPs.
- ``lowrank@q`` (``q``: the fraction of the layer's weights kept, like the
  ``lowrank`` stage's ``ratio``) and ``lowrank@kN`` (rank ``N``): the weight
  replaced by its truncated SVD, the same function the factorized pair computes.

Quality is the task's own metric (:mod:`edgesmith.models.tasks`): accuracy for a
classifier with labels, cosine to the teacher for a sentence encoder (to the
unchanged model when there is no teacher). ``drop = baseline - quality``.

Example:
    >>> from torch import nn
    >>> import torch
    >>> from edgesmith.models.tasks import ClassificationTask, TensorSet
    >>> net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3))
    >>> data = TensorSet((torch.randn(32, 8),), torch.randint(0, 3, (32,)))
    >>> cfg = SensitivityConfig(prune_ratios=[0.5], lowrank_ratios=[0.5])
    >>> report = sensitivity(net, cfg, ClassificationTask([0.0], [1.0]), data)
    >>> [row["name"] for row in report["layers"]], report["columns"]
    (['0', '2'], ['prune@0.5', 'lowrank@0.5'])
    >>> report["layers"][0]["cells"]["prune@0.5"]["params_saved"]  # 8 rows of '0', their biases, 8 columns of '2'
    96
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from edgesmith.compress.selection import LayerSelection, select
from edgesmith.compress.stage import in_stage, register_stage
from edgesmith.conf.base import RecipeError, at_least, between
from edgesmith.conf.stage import StageConfig
from edgesmith.errors import StageError
from edgesmith.models import count_params
from edgesmith.models.flops import layer_positions
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["SensitivityConfig", "sensitivity", "sensitivity_table", "default_metric"]

DEFAULT_TYPES = ["Linear", "Conv2d"]
UNSTRUCTURED_NOTE = ("unstructured prune cells save non-zero parameters (compressed size); dense runtimes do the "
                     "same work, so they save no FLOPs")


@dataclass
class SensitivityConfig(StageConfig):
    """What to measure.

    Attributes:
        include, exclude, op_types: the layers (rows); default types Linear and Conv2d.
        prune_ratios: fractions of a layer's channels (structured) or weights (unstructured) removed.
        prune_method: ``structured`` (Conv2d / Linear output channels) or ``unstructured`` (L1).
        lowrank_ratios: fractions of a layer's weights kept by the factorized pair.
        lowrank_ranks: absolute ranks.
        metric: the quality measure (default: ``accuracy``, else ``teacher_agreement``;
            ``cosine_to_teacher`` for embeddings).
        samples: at most this many held-out samples (default: all).
        val_fraction: the held-out part of the train split that is scored (in the pipeline).
    """

    kind = "sensitivity"
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    prune_ratios: list[float] = field(default_factory=lambda: [0.3, 0.5, 0.7])
    prune_method: Literal["structured", "unstructured"] = "structured"
    lowrank_ratios: list[float] = field(default_factory=lambda: [0.5])
    lowrank_ranks: list[int] = field(default_factory=list)
    metric: str | None = None
    samples: int | None = field(default=None, metadata=at_least(1))
    val_fraction: float = field(default=0.1, metadata=between(0, 0.5, lo_open=True))

    def validate(self) -> None:
        for key in ("prune_ratios", "lowrank_ratios"):
            values = getattr(self, key)
            for i, r in enumerate(values):
                if not 0 < r < 1:
                    raise RecipeError(f"{key}[{i}]", f"must be in (0, 1), got {r}")
            if len(set(values)) != len(values):
                raise RecipeError(key, f"lists a ratio twice: {values}")
        for i, k in enumerate(self.lowrank_ranks):
            if k < 1:
                raise RecipeError(f"lowrank_ranks[{i}]", f"must be >= 1, got {k}")
        if not (self.prune_ratios or self.lowrank_ratios or self.lowrank_ranks):
            raise RecipeError("prune_ratios", "nothing to measure: give prune_ratios, lowrank_ratios or lowrank_ranks")
        self.selection  # noqa: B018 - validates include/exclude/op_types

    @property
    def selection(self) -> LayerSelection:
        return LayerSelection(include=self.include, exclude=self.exclude, op_types=self.op_types)

    @property
    def columns(self) -> list[str]:
        return ([f"prune@{r:g}" for r in self.prune_ratios] + [f"lowrank@{q:g}" for q in self.lowrank_ratios]
                + [f"lowrank@k{k}" for k in self.lowrank_ranks])


def default_metric(task: Task, data: TensorSet) -> str:
    if task.kind == "embedding":
        return "cosine_to_teacher"
    return "accuracy" if data.labels is not None else "teacher_agreement"


def sensitivity(
    model: nn.Module,
    config: SensitivityConfig,
    task: Task,
    data: TensorSet,
    teacher: nn.Module | None = None,
    *,
    device: str = "cpu",
) -> dict[str, Any]:
    """Measure every selected layer alone at every ratio / rank of ``config``.

    Args:
        model: measured in place and restored exactly (no copy).
        data: held-out samples (not the ones the model trained on).
        teacher: the reference of ``teacher_agreement`` / ``cosine_to_teacher``
            (default: the model as it is).

    Returns:
        A JSON-able report: ``metric``, ``baseline``, ``params`` and ``flops`` of
        the model, ``columns``, and ``layers``: one row per layer with ``cells``
        keyed by column, each ``{quality, drop, params_saved, flops_saved, ...}``
        or ``{skipped: reason}``. :func:`sensitivity_table` draws it.

    Raises:
        RecipeError: (key ``include``) no layer matches; (``metric``) a metric the task does not measure.
    """
    return measure(model, config, task, data, teacher, device=device)[0]


def measure(model: nn.Module, config: SensitivityConfig, task: Task, data: TensorSet,
            teacher: nn.Module | None = None, *, device: str = "cpu",
            keep_masks: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    """:func:`sensitivity`, plus what :mod:`edgesmith.compress.auto` needs to add
    structured savings up exactly: ``masks`` (with ``keep_masks``), per ``(layer,
    column)`` the boolean masks of the parameter entries that cell removes, keyed by
    parameter name, and ``flops_per_weight``, the FLOPs each entry of a Conv2d /
    Linear weight costs (by parameter name)."""
    layers = select(model, config.selection, DEFAULT_TYPES)
    if not len(data):
        raise StageError(f"{config.name or config.kind}: no held-out samples to score")
    if config.samples:
        data = data.take(slice(0, config.samples))
    was_training = model.training
    model.eval()
    try:
        return _measure(model, config, task, data, teacher, layers, device, keep_masks)
    finally:
        model.train(was_training)


def _measure(model, config, task, data, teacher, layers, device, keep_masks):
    example = tuple(t.to(device) for t in task.prepare(data.take(slice(0, 1)).inputs))
    score = _Scorer(model, task, data, teacher, config.metric or default_metric(task, data), device)
    positions = layer_positions(model, example)
    names = {id(m): n for n, m in model.named_modules()}
    groups = None
    if config.prune_ratios and config.prune_method == "structured":
        groups = _ChannelGroups(model, example, layers, names, config)
    rows, masks = [], {}
    for name, m in layers:
        cells: dict[str, Any] = {}
        for r, col in zip(config.prune_ratios, config.columns, strict=False):
            if groups is not None:
                cells[col], mask = groups.cell(name, m, r, score, positions)
                if keep_masks and mask is not None:
                    masks[(name, col)] = mask
            else:
                cells[col] = _unstructured_cell(m, r, score)
        lowrank = [(col, q, None) for q, col in zip(config.lowrank_ratios, config.columns[len(config.prune_ratios):],
                                                    strict=False)]
        lowrank += [(f"lowrank@k{k}", None, k) for k in config.lowrank_ranks]
        if lowrank:
            svd = _Svd(m) if _factorizable(m) is None else None
            for col, q, k in lowrank:
                cells[col] = _lowrank_cell(name, m, svd, q, k, score, positions.get(name, 0))
        weights = m.weight.numel()
        rows.append({"name": name, "type": type(m).__name__, "shape": list(m.weight.shape),
                     "params": sum(p.numel() for p in m.parameters(recurse=False)),
                     "flops": 2 * weights * positions.get(name, 0) if isinstance(m, (nn.Conv2d, nn.Linear)) else 0,
                     "cells": cells})
    notes = [UNSTRUCTURED_NOTE] if config.prune_ratios and config.prune_method == "unstructured" else []
    flops_per_weight = {f"{n}.weight": 2 * p for n, p in positions.items()
                        if isinstance(model.get_submodule(n), (nn.Conv2d, nn.Linear))}
    report = {"metric": score.metric, "baseline": score.baseline, "reference": "teacher" if teacher is not None else "model",
              "samples": len(data), "prune_method": config.prune_method, "params": count_params(model),
              "flops": sum(flops_per_weight[k] * model.get_parameter(k).numel() for k in flops_per_weight),
              "columns": config.columns, "layers": rows, "notes": notes}
    return report, {"masks": masks, "flops_per_weight": flops_per_weight}


# ------------------------------------------------------------------- scoring
class _Scorer:
    """The task's metric of the model on ``data``, against the reference outputs."""

    def __init__(self, model, task: Task, data: TensorSet, teacher, metric: str, device: str):
        self.model, self.task, self.data, self.metric, self.device = model, task, data, metric, device
        self.ref = task.predict(teacher if teacher is not None else model, data, device=device)
        measured = task.metrics(self.ref if teacher is None else task.predict(model, data, device=device),
                                self.ref, data.labels)
        if metric not in measured:
            raise RecipeError("metric", f"'{metric}' is not measured for this task and data; it measures "
                                        f"{', '.join(sorted(measured))}")
        self.baseline = float(measured[metric])

    def __call__(self) -> float:
        outs = self.task.predict(self.model, self.data, device=self.device)
        return float(self.task.metrics(outs, self.ref, self.data.labels)[self.metric])

    def cell(self, **extra: Any) -> dict[str, Any]:
        quality = self()
        return {"quality": quality, "drop": self.baseline - quality, **extra}


@contextlib.contextmanager
def _edited(params: list[torch.Tensor]) -> Iterator[None]:
    """Weights edited inside the block come back exactly afterwards."""
    saved = [p.detach().clone() for p in params]
    try:
        with torch.no_grad():
            yield
    finally:
        with torch.no_grad():
            for p, s in zip(params, saved, strict=True):
                p.copy_(s)


# -------------------------------------------------------------- unstructured
def _unstructured_cell(m: nn.Module, r: float, score: _Scorer) -> dict[str, Any]:
    from edgesmith.compress.prune import _keep_top

    w = m.weight
    keep = _keep_top(w.detach().abs(), round(r * w.numel()))
    before = int((w != 0).sum())
    with _edited([w]):
        w.mul_(keep)
        saved = before - int((w != 0).sum())
        return score.cell(params_saved=saved, flops_saved=0)


# ---------------------------------------------------------------- structured
class _ChannelGroups:
    """Output-channel groups of the selected layers in torch-pruning's dependency graph."""

    def __init__(self, model, example, layers, names, config):
        import torch_pruning as tp

        from edgesmith.compress.prune_structured import _bert_layers, _output_layer

        if _bert_layers(model) is not None:
            raise RecipeError("prune_method", "structured sensitivity covers Conv2d / Linear channels; for a "
                                              "transformer encoder use prune_method: unstructured or lowrank ratios")
        self.tp, self.model, self.names = tp, model, names
        self.graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
        self.importance = tp.importance.MagnitudeImportance(p=1)
        self.output_name, _ = _output_layer(model, example)
        self.params = dict(model.named_parameters())
        self.owner: dict[int, str] = {}  # layers whose channels an earlier row's group already cuts
        self.reason: dict[str, str] = {}  # rows without prune cells, and why
        self.scores: dict[str, torch.Tensor] = {}
        for name, m in layers:
            reason = self._skip(name, m)
            if reason is None:
                full = self._group(m, list(range(m.weight.shape[0])))
                coupled = [dep.target.module for dep, _ in full if dep.target.module is not m
                           and isinstance(dep.target.module, (nn.Conv2d, nn.Linear))
                           and self.graph.is_out_channel_pruning_fn(dep.handler)]
                selected = {id(x) for _, x in layers}
                outside = [names.get(id(t)) for t in coupled if id(t) not in selected]
                if any(names.get(id(t)) == self.output_name for t in coupled):
                    reason = "its channels are coupled to the output layer's"
                elif outside:  # torch-pruning leaves a group alone when one of its layers is not selected
                    reason = f"its channels are coupled to '{outside[0]}', which the selection leaves out"
                else:
                    for t in coupled:
                        self.owner.setdefault(id(t), name)
                    self.scores[name] = self.importance(full).detach().cpu()
            if reason is not None:
                self.reason[name] = reason

    def _group(self, m: nn.Module, idxs: list[int]):
        fn = self.tp.prune_conv_out_channels if isinstance(m, nn.Conv2d) else self.tp.prune_linear_out_channels
        return self.graph.get_pruning_group(m, fn, idxs)

    def _skip(self, name: str, m: nn.Module) -> str | None:
        if not isinstance(m, (nn.Conv2d, nn.Linear)):
            return f"structured pruning removes Conv2d / Linear output channels, not those of a {type(m).__name__}"
        if name == self.output_name:
            return "the output layer: its outputs cannot be pruned"
        if id(m) in self.owner:
            return f"its channels are coupled to '{self.owner[id(m)]}' (same cells)"
        return None

    def cell(self, name, m, r, score, positions) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
        if name in self.reason:
            return {"skipped": self.reason[name]}, None
        n = m.weight.shape[0]
        kept = int(n * (1 - r))  # torch-pruning's count, so that the prune stage removes as many
        if kept < 1 or kept == n:
            return {"skipped": f"keeps {kept} of {n} channels"}, None
        idxs = sorted(torch.argsort(self.scores[name])[: n - kept].tolist())
        masks = self._masks(self._group(m, idxs))
        touched = [self.params[k] for k in masks]
        with _edited(touched):
            for k, mask in masks.items():
                self.params[k].masked_fill_(mask, 0)
            macs = sum(int(mask.sum()) * positions.get(k.rpartition(".")[0], 0) for k, mask in masks.items()
                       if k.endswith(".weight") and isinstance(self.model.get_submodule(k.rpartition(".")[0]),
                                                               (nn.Conv2d, nn.Linear)))
            cell = score.cell(params_saved=sum(int(mk.sum()) for mk in masks.values()), flops_saved=2 * macs,
                              channels=f"{kept}/{n}")
        return cell, masks

    def _masks(self, group) -> dict[str, torch.Tensor]:
        """Per parameter name, the entries that removing the group's channels cuts."""
        out: dict[str, torch.Tensor] = {}

        def mark(mod_name: str, what: str, dim: int, idx: torch.Tensor) -> None:
            p = self.params[f"{mod_name}.{what}"]
            mask = out.setdefault(f"{mod_name}.{what}", torch.zeros_like(p, dtype=torch.bool))
            mask.index_fill_(dim, idx.to(p.device), True)

        for dep, idxs in group:
            mod = dep.target.module
            if not isinstance(mod, nn.Module) or not list(mod.parameters(recurse=False)):
                if isinstance(mod, nn.Parameter):
                    raise StageError(f"structured sensitivity cannot emulate pruning a bare parameter coupled to "
                                     f"'{self.names.get(id(group[0].dep.target.module))}'; use prune_method: unstructured")
                continue
            name = self.names.get(id(mod))
            idx = torch.tensor(sorted({int(getattr(i, "idx", i)) for i in idxs}), dtype=torch.long)
            is_out = self.graph.is_out_channel_pruning_fn(dep.handler)
            depthwise = isinstance(mod, nn.Conv2d) and mod.groups > 1 and mod.groups == mod.in_channels
            if isinstance(mod, (nn.Conv2d, nn.Linear)) and (mod.groups == 1 if isinstance(mod, nn.Conv2d) else True):
                mark(name, "weight", 0 if is_out else 1, idx)
                if is_out and mod.bias is not None:
                    mark(name, "bias", 0, idx)
            elif depthwise:  # its input and output channels are the same channels
                mark(name, "weight", 0, idx)
                if mod.bias is not None:
                    mark(name, "bias", 0, idx)
            elif isinstance(mod, nn.modules.batchnorm._BatchNorm):
                if mod.affine:
                    mark(name, "weight", 0, idx)
                    mark(name, "bias", 0, idx)
            else:
                raise StageError(f"structured sensitivity cannot emulate removing channels through '{name}', a "
                                 f"{type(mod).__name__}; use prune_method: unstructured or exclude the layers feeding it")
        return out


# ------------------------------------------------------------------- lowrank
def _factorizable(m: nn.Module) -> str | None:
    if isinstance(m, nn.Conv2d) and m.groups != 1:
        return f"grouped convolution (groups={m.groups})"
    if not isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
        return f"cannot factorize a {type(m).__name__}"
    return None


class _Svd:
    def __init__(self, m: nn.Module):
        from edgesmith.compress.lowrank import _matrix

        w = _matrix(m)
        self.rows, self.cols = w.shape
        self.u, self.s, self.vh = torch.linalg.svd(w, full_matrices=False)

    def approx(self, r: int) -> torch.Tensor:
        return (self.u[:, :r] * self.s[:r]) @ self.vh[:r]


def _lowrank_cell(name, m, svd, q, k, score, positions) -> dict[str, Any]:
    from edgesmith.compress.lowrank import LowRankConfig, _choose_rank

    if svd is None:
        return {"skipped": _factorizable(m)}
    rows, cols, max_rank = svd.rows, svd.cols, min(svd.rows, svd.cols)
    if k is not None and k > max_rank:
        return {"skipped": f"rank {k} is above the layer's maximum rank {max_rank}"}
    r = k if k is not None else _choose_rank(LowRankConfig(ratio=q), svd.s, rows, cols, name)
    dense, factored = rows * cols, r * (rows + cols)
    if factored >= dense:
        return {"skipped": f"rank {r} would keep {factored} weights, dense has {dense}: no saving"}
    saved = dense - factored
    # an Embedding's factorized pair adds a Linear (r -> d) per token: more FLOPs, said so
    flops = -2 * positions * r * cols if isinstance(m, nn.Embedding) else 2 * positions * saved
    with _edited([m.weight]):
        m.weight.copy_(svd.approx(r).reshape(m.weight.shape).to(m.weight.dtype))
        return score.cell(params_saved=saved, flops_saved=flops, rank=r, max_rank=max_rank)


# --------------------------------------------------------------------- table
def _short(n: float) -> str:
    a = abs(n)
    s = f"{a / 1e9:.2f}G" if a >= 1e9 else f"{a / 1e6:.2f}M" if a >= 1e6 else f"{a / 1e3:.1f}k" if a >= 1e3 else f"{a:.0f}"
    return ("-" if n < 0 else "") + s


def sensitivity_table(report: dict[str, Any], title: str = "sensitivity"):
    """A rich table: layers x {prune@r, lowrank@q, lowrank@kN}; each cell shows the
    quality drop (points), then the parameters and FLOPs saved."""
    from rich.table import Table

    points = 100.0
    t = Table(title=f"{title} · {report['metric']} {points * report['baseline']:.2f} on {report['samples']} held-out "
                    f"samples · {report['prune_method']} prune", title_justify="left")
    t.add_column("layer")
    t.add_column("params", justify="right")
    t.add_column("FLOPs", justify="right")
    for c in report["columns"]:
        t.add_column(c, justify="right")
    for row in report["layers"]:
        cells = []
        for c in report["columns"]:
            cell = row["cells"].get(c, {"skipped": "-"})
            if "skipped" in cell:
                cells.append("[dim]n/a[/dim]")
                continue
            drop = points * cell["drop"]
            colour = "green" if drop <= 0.5 else "yellow" if drop <= 2 else "red"
            cells.append(f"[{colour}]{drop:+.1f}[/{colour}] · -{_short(cell['params_saved'])} · "
                         f"-{_short(cell['flops_saved'])}")
        t.add_row(f"{row['name']} ({row['type']})", _short(row["params"]), _short(row["flops"]), *cells)
    t.caption = ("cell: quality drop in points · parameters saved · FLOPs saved, each layer alone; "
                 "prune@r removes r of the channels (structured) or weights (unstructured); lowrank@q keeps q of the "
                 "weights, lowrank@kN is rank N" + "".join(f"\n{n}" for n in report.get("notes", [])))
    t.caption_justify = "left"
    return t


# --------------------------------------------------------- the recipe stage
@register_stage(SensitivityConfig, passes_model_on=True)
def run_sensitivity_stage(ctx, cfg: SensitivityConfig, model, stage_dir):
    """Per-layer sensitivity table (``sensitivity.json`` + a rich table); the model passes through."""
    from edgesmith import atomic
    from edgesmith.progress import console, quiet

    _, val = ctx.train_val(cfg.val_fraction)
    report = in_stage(ctx, cfg, sensitivity, model, cfg, ctx.task, val, ctx.teacher, device=ctx.device)
    atomic.write_json(stage_dir / "sensitivity.json", report)
    if not quiet():
        console.print(sensitivity_table(report, cfg.name or cfg.kind))
    return model, {"report": "sensitivity.json", "metric": report["metric"], "baseline": report["baseline"],
                   "columns": report["columns"], "layers": [r["name"] for r in report["layers"]]}
