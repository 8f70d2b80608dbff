"""Stage kinds a recipe may list, registered by name. A stage spec pairs the
technique's config class with an adapter that runs it inside the pipeline and a
``skeleton`` that rebuilds the model's structure when a finished stage is
resumed from its saved weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgesmith.compress.distill import DistillConfig
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
    student, fit = distill(
        student, ctx.teacher, cfg, ctx.task, train, val,
        device=ctx.device, checkpoint_dir=stage_dir, seed=ctx.recipe.seed,
    )
    (stage_dir / "best.safetensors").unlink(missing_ok=True)
    return student, {"fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                             "best_val": fit.best_score, "history": fit.history}}


def _distill_skeleton(ctx, prev_model, cfg, info):
    return ctx.new_student()


STAGES.register("distill")(StageSpec(DistillConfig, _run_distill, _distill_skeleton))
