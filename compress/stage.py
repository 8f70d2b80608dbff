"""The stage registry: each technique registers its recipe stage beside its own code.

A stage pairs a config class (``kind`` names it in recipes) with

- ``run(ctx, cfg, model, stage_dir) -> (new_model, info)``: the technique inside a
  run (``ctx`` is the run's context: data, task, teacher, device; ``info`` is a
  JSON-able dict kept in the stage's ``stage.json``), and
- ``skeleton(ctx, prev_model, cfg, info) -> model``: the output model's structure,
  rebuilt from ``info`` when a finished stage is reused (weights are loaded after).

Flags: ``weights=False`` (``quantize``, ``qat``): the stage passes the incoming model
on and its artifact is a file (``info["file"]``), so it must come after every stage
that changes weights. ``passes_model_on``: the model leaves unchanged. ``feeds_teacher``:
the stage runs the teacher on the run's token ids, so it must come before a stage that
``switches_tokenizer`` (``vocab``).

Adding a technique is one file: its config (a :class:`~edgesmith.conf.stage.StageConfig`),
its ``model -> model`` function, and a ``@register_stage`` adapter::

    @register_stage(MyConfig, skeleton=lambda ctx, prev, cfg, info: prev)
    def run_mine(ctx, cfg, model, stage_dir):
        return my_technique(model, cfg), {"note": "..."}

The built-in techniques register when :func:`stages` is first called.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edgesmith.registry import Registry

# Modules whose import registers the built-in stages (imported on first use).
BUILTIN = ("edgesmith.compress.distill", "edgesmith.compress.prune", "edgesmith.compress.lowrank",
           "edgesmith.compress.sensitivity", "edgesmith.compress.vocab", "edgesmith.compress.quantize.stage")


@dataclass(frozen=True)
class StageSpec:
    config: type
    run: Callable[..., Any]
    skeleton: Callable[..., Any]
    weights: bool = True
    passes_model_on: bool = False
    feeds_teacher: bool = True
    switches_tokenizer: bool = False


STAGES: Registry[StageSpec] = Registry("stage kind")
_loaded = False


def stages() -> Registry[StageSpec]:
    """The stage registry with every built-in technique registered."""
    global _loaded
    if not _loaded:
        _loaded = True
        for module in BUILTIN:
            importlib.import_module(module)
        from edgesmith.plugins import load_plugins

        load_plugins()  # EDGESMITH_PLUGINS: techniques defined outside edgesmith
    return STAGES


def register_stage(config: type, *, skeleton: Callable[..., Any] | None = None, weights: bool = True,
                   passes_model_on: bool = False, feeds_teacher: bool = True,
                   switches_tokenizer: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register the decorated ``run`` as the stage of ``config.kind``.

    Args:
        config: The stage's config class (its ``kind`` is the recipe name).
        skeleton: Rebuilds the output structure on resume; default: the incoming model.
        weights, passes_model_on, feeds_teacher, switches_tokenizer: See the module doc.
    """

    def deco(run: Callable[..., Any]) -> Callable[..., Any]:
        STAGES.register(config.kind)(StageSpec(config, run, skeleton or _same, weights, passes_model_on,
                                               feeds_teacher, switches_tokenizer))
        return run

    return deco


def _same(ctx: Any, prev_model: Any, cfg: Any, info: dict) -> Any:
    return prev_model


def stage_index(ctx: Any, cfg: Any) -> int | None:
    """The position of ``cfg`` in the run's recipe (for error messages), or None."""
    return next((i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg), None)


def in_stage(ctx: Any, cfg: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run ``fn``; a RecipeError it raises names the stage's key path (``stages[2].include``)."""
    from edgesmith.errors import RecipeError

    try:
        return fn(*args, **kwargs)
    except RecipeError as e:
        index = stage_index(ctx, cfg)
        raise RecipeError(f"stages[{index}].{e.key}" if index is not None else e.key, e.message) from None


def file_stage(impl: Callable[..., dict]) -> Callable[..., Any]:
    """The ``run`` of a stage that passes its model on and writes a file (``impl``
    returns the info); its StageErrors name the stage's place in the recipe."""

    def run(ctx: Any, cfg: Any, model: Any, stage_dir: Any) -> tuple[Any, dict]:
        from edgesmith.errors import StageError

        try:
            return model, in_stage(ctx, cfg, impl, ctx, cfg, model, stage_dir)
        except StageError as e:
            raise StageError(f"stages[{stage_index(ctx, cfg)}] ({cfg.name or cfg.kind}): "
                             f"{str(e).removeprefix(f'{cfg.kind}: ')}") from None

    return run
