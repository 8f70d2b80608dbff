"""Magnitude pruning: unstructured (global or per-layer L1, optional 2:4 pattern)
and structured (CNN channels through torch-pruning's dependency graph; attention
heads and FFN neurons of BERT-style encoders), on a gradual cubic schedule
(Zhu & Gupta) interleaved with KD recovery fine-tuning.

The input model is never modified: a new one is returned, with masks made
permanent (plain dense weights holding zeros) or with really smaller layers.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> pruned, report = prune(net, PruneConfig(sparsity=0.75, epochs=0))
    >>> round(report["global_sparsity"], 2)
    0.75
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from edgesmith.compress.auto import AutoConfig
from edgesmith.compress.recovery import KDRecovery, cubic_schedule, model_sizes
from edgesmith.compress.selection import LayerSelection, select
from edgesmith.compress.stage import in_stage, register_stage
from edgesmith.compress.train import TrainingKeys
from edgesmith.conf.base import RecipeError, at_least, between
from edgesmith.conf.stage import StageConfig
from edgesmith.errors import StageError
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["PruneConfig", "prune", "rebuild_pruned"]

UNSTRUCTURED_NOTE = (
    "unstructured sparsity keeps every tensor's shape: dense runtimes (onnxruntime, PyTorch, TFLite) "
    "do the same work and run no faster; the saving shows in compressed size (gzip_bytes)"
)
TWO_FOUR_NOTE = (
    "2:4 sparsity runs faster only on kernels built for it (NVIDIA sparse tensor cores, e.g. "
    "torch.sparse.to_sparse_semi_structured); exported dense it runs no faster"
)


@dataclass
class PruneConfig(StageConfig, TrainingKeys):
    """Magnitude pruning settings.

    ``sparsity`` is the fraction of weights (unstructured) or of channels, heads
    and FFN neurons (structured) removed at the end of ``schedule_steps`` steps;
    each step is followed by ``epochs`` of KD recovery (0: none). With ``auto``
    (:mod:`edgesmith.compress.auto`) each layer gets its own ratio, chosen from a
    sensitivity table under a global budget, and ``sparsity`` is not used.
    """

    kind = "prune"
    method: Literal["unstructured", "structured"] = "unstructured"
    sparsity: float = field(default=0.5, metadata=between(0, 1, hi_open=True))
    scope: Literal["global", "layer"] = "layer"
    # structured transformers: how FFN neurons are ranked (magnitude: L1 of their weights; activation:
    # their output's spread on `calibration_samples` train texts, then the kept ones refitted by least squares)
    criterion: Literal["magnitude", "activation"] = "magnitude"
    calibration_samples: int = field(default=512, metadata=at_least(1))
    pattern: Literal["none", "2:4"] = "none"
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    schedule_steps: int = field(default=1, metadata=at_least(1))
    round_to: int = field(default=1, metadata=at_least(1))
    epochs: int = field(default=1, metadata=at_least(0))
    lr: float = field(default=1e-3, metadata=at_least(0, open_=True))
    batch_size: int = field(default=64, metadata=at_least(1))
    temperature: float = field(default=4.0, metadata=at_least(0, open_=True))
    alpha: float = field(default=0.9, metadata=between(0, 1))
    # classifiers: KD recovery on augmented batches, the reference run on them (as distill's)
    augment: list[Literal["hflip", "shift"]] = field(default_factory=list)
    val_fraction: float = field(default=0.05, metadata=between(0, 0.5))
    auto: AutoConfig | None = None

    def validate(self) -> None:
        self.selection  # noqa: B018 - validates include/exclude/op_types
        if self.auto is not None:
            if self.auto.ranks:
                raise RecipeError("auto.ranks", "ranks are lowrank candidates; a prune stage takes auto.ratios")
            if self.pattern != "none":
                raise RecipeError("auto", f"pattern '{self.pattern}' fixes each layer's sparsity; remove auto or pattern")
            if self.scope != "layer":
                raise RecipeError("scope", "auto chooses a ratio per layer; set scope: layer")
            if self.method == "unstructured" and self.auto.budget == "flops":
                raise RecipeError("auto.budget", "unstructured sparsity saves no dense FLOPs; use budget: params "
                                                 "or method: structured")
        if self.criterion != "magnitude" and self.method != "structured":
            raise RecipeError("criterion", f"'{self.criterion}' ranks structured units (FFN neurons); set "
                                           "method: structured or criterion: magnitude")
        if self.pattern == "2:4":
            if self.method != "unstructured":
                raise RecipeError("pattern", "'2:4' is a pattern of unstructured sparsity; set method: unstructured")
            if self.sparsity != 0.5:
                raise RecipeError("sparsity", f"pattern '2:4' removes exactly half the weights; set 0.5, got {self.sparsity}")

    @property
    def selection(self) -> LayerSelection:
        return LayerSelection(include=self.include, exclude=self.exclude, op_types=self.op_types)


def prune(
    model: nn.Module,
    config: PruneConfig,
    task: Task | None = None,
    train: TensorSet | None = None,
    val: TensorSet | None = None,
    teacher: nn.Module | None = None,
    *,
    device: str = "cpu",
    seed: int = 0,
    cache_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Prune a copy of ``model``; returns ``(pruned_model, report)``.

    Args:
        model: the model to prune (left untouched).
        config: what to prune and how far.
        task, train, val: needed for recovery fine-tuning (``epochs > 0``) and, for
            structured pruning, to trace the model (``train``'s first samples).
        teacher: the recovery loss distils from it; default: ``model`` as it was.
        cache_dir: the teacher-target cache (:mod:`edgesmith.compress.targets`); None: no cache.

    Returns:
        The report holds per-layer real sparsity (or kept channels / heads /
        neurons), the sizes before and after (params, bytes, gzip bytes), the
        schedule's steps and an honest note on what gets faster. For structured
        pruning ``report["structure"]`` lets :func:`rebuild_pruned` rebuild the shapes.
    """
    pruned = copy.deepcopy(model).to(device).eval()
    before = model_sizes(pruned)
    reference = teacher
    if reference is None and config.epochs > 0 and train is not None:
        reference = copy.deepcopy(pruned)
    auto = None
    if config.auto is not None:
        from edgesmith.compress.auto import plan_prune

        if task is None:
            raise StageError(f"{config.name or 'prune'}: auto mode needs the task and held-out data to score layers")
        auto = plan_prune(pruned, config, task, val, teacher, device)
    recovery = KDRecovery(reference, config, task, train, val, device=device, seed=seed,
                          cache_dir=cache_dir) if reference is not None else None
    ratios = None if auto is None else auto["ratios"]
    if config.method == "unstructured":
        report = _unstructured(pruned, config, recovery, ratios)
    else:
        from edgesmith.compress.prune_structured import prune_structured

        if task is None or train is None or not len(train):
            raise StageError(f"{config.name or 'prune'}: structured pruning needs task and train data to trace the model")
        report = prune_structured(pruned, config, task, train, recovery, device, ratios)
    if auto is not None:
        _check_budget(pruned, config, auto, task, val, device)
    report = {"method": config.method, "target_sparsity": None if auto else config.sparsity, "scope": config.scope,
              "pattern": config.pattern, **report, "size_before": before, "size_after": model_sizes(pruned)}
    if auto is not None:
        report["auto"] = auto
    if config.method == "unstructured":
        report["note"] = UNSTRUCTURED_NOTE + (f"; {TWO_FOUR_NOTE}" if config.pattern == "2:4" else "")
    return pruned.eval(), report


def _check_budget(model: nn.Module, config: PruneConfig, auto: dict[str, Any], task: Task, val: TensorSet,
                  device: str) -> None:
    """Record what the pruned model really uses; it must be within the budget."""
    from edgesmith.compress.auto import budget_used

    example = tuple(t.to(device) for t in task.prepare(val.take(slice(0, 1)).inputs))
    auto["after"] = budget_used(model, config.auto.budget, example, nonzero=config.method == "unstructured")
    auto["met"] = auto["after"] <= auto["allowed"]
    if not auto["met"]:
        raise StageError(f"{config.name or 'prune'}: auto plan left {auto['after']} {config.auto.budget}, above the "
                         f"budget of {auto['allowed']}; please report this (predicted {auto['predicted_after']})")


def rebuild_pruned(model: nn.Module, report: dict[str, Any]) -> nn.Module:
    """A copy of ``model`` (the stage's input) with the pruned output's shapes,
    from the report of :func:`prune`; load the pruned weights into it."""
    from edgesmith.compress.prune_structured import apply_structure

    out = copy.deepcopy(model)
    return apply_structure(out, report.get("structure") or {}, report.get("pruned_heads"))


# ------------------------------------------------------------------ unstructured
def _unstructured(model: nn.Module, config: PruneConfig, recovery: KDRecovery | None,
                  ratios: dict[str, float] | None = None) -> dict[str, Any]:
    layers = select(model, config.selection, ["Linear", "Conv2d"])
    if ratios is not None:  # auto: each layer its own final sparsity, on the same cubic schedule
        layers = [(n, m) for n, m in layers if n in ratios]
    skipped = []
    if config.pattern == "2:4":
        skipped = [{"name": n, "reason": f"rows of {m.weight[0].numel()} weights do not split into groups of 4"}
                   for n, m in layers if m.weight[0].numel() % 4]
        layers = [(n, m) for n, m in layers if m.weight[0].numel() % 4 == 0]
        if not layers:
            raise RecipeError("pattern", "'2:4' needs layers whose rows split into groups of 4; none selected do")
    steps = cubic_schedule(config.sparsity, config.schedule_steps)
    history = []
    for step, target in enumerate(steps, 1):
        for _, m in layers:
            if torch_prune.is_pruned(m):
                torch_prune.remove(m, "weight")
        weights = [m.weight.detach() for _, m in layers]
        if ratios is not None:
            masks = [_keep_top(w.abs(), round(cubic_schedule(ratios[n], len(steps))[step - 1] * w.numel()))
                     for (n, _), w in zip(layers, weights, strict=True)]
        elif config.pattern == "2:4":
            masks = [_two_four_mask(w) for w in weights]
        else:
            masks = _magnitude_masks(weights, target, config.scope)
        for (_, m), mask in zip(layers, masks, strict=True):
            torch_prune.custom_from_mask(m, "weight", mask)
        rec = recovery(model, step if len(steps) > 1 else None) if recovery is not None else None
        history.append({"step": step, "target_sparsity": None if ratios is not None else target, "recovery": rec})
    for _, m in layers:
        torch_prune.remove(m, "weight")
    per_layer = [{"name": n, "type": type(m).__name__, "weights": m.weight.numel(),
                  "zeros": int((m.weight == 0).sum()), "sparsity": float((m.weight == 0).float().mean())}
                 for n, m in layers]
    total = sum(r["weights"] for r in per_layer)
    zeros_all = sum(int((p == 0).sum()) for p in model.parameters())
    n_all = sum(p.numel() for p in model.parameters())
    return {"layers": per_layer, "skipped": skipped, "steps": history,
            "global_sparsity": sum(r["zeros"] for r in per_layer) / max(total, 1),
            "model_sparsity": zeros_all / max(n_all, 1)}


def _keep_top(scores: torch.Tensor, n_remove: int) -> torch.Tensor:
    """A boolean mask of ``scores``' shape, False at its ``n_remove`` smallest entries."""
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if n_remove > 0:
        keep[torch.topk(scores.flatten(), n_remove, largest=False).indices] = False
    return keep.view_as(scores)


def _magnitude_masks(weights: list[torch.Tensor], sparsity: float, scope: str) -> list[torch.Tensor]:
    """L1 (absolute value) masks removing ``sparsity`` of the weights, ranked per
    layer or over all the layers together."""
    if scope == "layer":
        return [_keep_top(w.abs(), round(sparsity * w.numel())) for w in weights]
    flat = torch.cat([w.abs().flatten() for w in weights])
    keep = _keep_top(flat, round(sparsity * flat.numel()))
    return [k.view_as(w) for k, w in zip(keep.split([w.numel() for w in weights]), weights, strict=True)]


def _two_four_mask(w: torch.Tensor) -> torch.Tensor:
    """Keep the 2 largest of every 4 consecutive weights along each row."""
    groups = w.abs().reshape(w.shape[0], -1, 4)
    mask = torch.zeros_like(groups, dtype=torch.bool)
    mask.scatter_(-1, groups.topk(2, dim=-1).indices, True)
    return mask.view_as(w)


# --------------------------------------------------------- the recipe stage
@register_stage(PruneConfig, skeleton=lambda ctx, prev_model, cfg, info: rebuild_pruned(prev_model, info))
def run_prune_stage(ctx, cfg: PruneConfig, model, stage_dir):
    train, val = ctx.train_val(cfg.val_fraction)
    return in_stage(ctx, cfg, prune, model, cfg, ctx.task, train, val, ctx.teacher,
                    device=ctx.device, seed=ctx.recipe.seed, cache_dir=ctx.targets_cache)
