"""Stage kinds a recipe may list, registered by name. A stage spec pairs the
technique's config class with

- ``run(ctx, cfg, model, stage_dir) -> (new_model, info)``: runs the technique
  inside the pipeline (``ctx`` is the :class:`RunContext`; ``info`` is a JSON-able
  dict stored in the stage's ``stage.json``), and
- ``skeleton(ctx, prev_model, cfg, info) -> model``: rebuilds the output model's
  *structure* (weights are loaded afterwards from ``model.safetensors``) when a
  finished stage is reused on resume. A structural technique replays its
  structural change from ``info`` (e.g. kept channels, ranks).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgesmith.compress.distill import DistillConfig
from edgesmith.compress.lowrank import LowRankConfig
from edgesmith.compress.prune import PruneConfig
from edgesmith.registry import Registry


@dataclass(frozen=True)
class StageSpec:
    config: type
    run: Callable[..., Any]
    skeleton: Callable[..., Any]


STAGES: Registry[StageSpec] = Registry("stage kind")


def _run_distill(ctx, cfg: DistillConfig, model, stage_dir):
    from edgesmith.compress.distill import distill

    student = ctx.new_student()
    train, val = ctx.train_val(cfg.val_fraction)
    student, fit = _in_stage(ctx, cfg, distill, student, ctx.teacher, cfg, ctx.task, train, val,
                             device=ctx.device, checkpoint_dir=stage_dir, seed=ctx.recipe.seed)
    (stage_dir / "best.safetensors").unlink(missing_ok=True)
    return student, {"fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                             "best_val": fit.best_score, "history": fit.history}}


def _distill_skeleton(ctx, prev_model, cfg, info):
    return ctx.new_student()


STAGES.register("distill")(StageSpec(DistillConfig, _run_distill, _distill_skeleton))


# ----------------------------------------------------------- prune / lowrank

def _in_stage(ctx, cfg, fn, *args, **kwargs):
    """Run ``fn``; a RecipeError it raises names the stage's key path (``stages[2].include``)."""
    from edgesmith.errors import RecipeError

    try:
        return fn(*args, **kwargs)
    except RecipeError as e:
        index = next((i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg), None)
        raise RecipeError(f"stages[{index}].{e.key}" if index is not None else e.key, e.message) from None


def _run_prune(ctx, cfg: PruneConfig, model, stage_dir):
    from edgesmith.compress.prune import prune

    train, val = ctx.train_val(cfg.val_fraction)
    return _in_stage(ctx, cfg, prune, model, cfg, ctx.task, train, val, ctx.teacher,
                     device=ctx.device, seed=ctx.recipe.seed)


def _prune_skeleton(ctx, prev_model, cfg, info):
    from edgesmith.compress.prune import rebuild_pruned

    return rebuild_pruned(prev_model, info)


def _run_lowrank(ctx, cfg: LowRankConfig, model, stage_dir):
    from edgesmith.compress.lowrank import factorize

    train, val = ctx.train_val(cfg.val_fraction)
    return _in_stage(ctx, cfg, factorize, model, cfg, ctx.task, train, val, ctx.teacher,
                     device=ctx.device, seed=ctx.recipe.seed)


def _lowrank_skeleton(ctx, prev_model, cfg, info):
    from edgesmith.compress.lowrank import rebuild_factorized

    return rebuild_factorized(prev_model, info)


STAGES.register("prune")(StageSpec(PruneConfig, _run_prune, _prune_skeleton))
STAGES.register("lowrank")(StageSpec(LowRankConfig, _run_lowrank, _lowrank_skeleton))
