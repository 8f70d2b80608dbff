"""The pipeline runner: teacher -> stages -> export (+ parity gate) -> benchmark.

Each step writes its folder ``DIR/NN-<step>/`` atomically with a ``stage.json``
holding a content key (hash of its config and of its input's key). A re-run
skips every step whose key is unchanged, so a crashed or interrupted run
resumes where it stopped; ``from_stage`` forces a re-run from a step on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from edgesmith import __version__, atomic
from edgesmith.compress.stage import stages
from edgesmith.errors import RecipeError, UserError
from edgesmith.models import count_params
from edgesmith.models.io import load_weights, save_weights
from edgesmith.pipeline import integrity
from edgesmith.pipeline import steps as step_impl
from edgesmith.pipeline.context import RunContext
from edgesmith.pipeline.lock import run_lock
from edgesmith.pipeline.plan import (
    BENCHMARK,
    EXPORT,
    TEACHER,
    Step,
    StepResult,
    build_plan,
    final_stage,
)
from edgesmith.pipeline.report import stage_result_line
from edgesmith.progress import log

SUMMARY_SCHEMA = 1


def resolve_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RecipeError("--device", f"{device}: no CUDA device is available here; use --device cpu")
    return device


class Runner:
    """Runs a recipe's plan (:func:`~edgesmith.pipeline.plan.build_plan`) into ``out``.

    Each step's result stays in memory (:attr:`results`) for the steps after it; a
    step whose content key matches the ``stage.json`` in its folder is reused (its
    model rebuilt from the folder) instead of run.
    """

    def __init__(self, recipe, out: str | Path | None = None, device: str | None = None,
                 from_stage: str | None = None, parity_gate: bool | None = None):
        self.recipe = recipe
        self.out = Path(out or Path("runs") / recipe.name)
        self.ctx = RunContext(recipe, self.out, resolve_device(device))
        self.parity_gate = recipe.export.parity.gate if parity_gate is None else parity_gate
        self.steps: list[Step] = build_plan(recipe, self.out)
        self.results: dict[str, StepResult] = {}
        names = [s.name for s in self.steps]
        if from_stage is not None and from_stage not in names:
            raise UserError(f"--from {from_stage}: no such stage; stages are: {', '.join(names)}")
        self.force_from = names.index(from_stage) if from_stage else None

    @property
    def final(self) -> Step:
        """The step whose model the run ships (the last recipe stage, else the teacher)."""
        return final_stage(self.steps)

    def result(self, kind: str) -> StepResult | None:
        """The in-memory result of the last finished step of ``kind``, or None."""
        return next((r for r in reversed(self.results.values()) if r.step.kind == kind), None)

    # ------------------------------------------------------------------ keys
    def _key(self, step: Step, prev_key: str | None) -> str:
        return step.key(self.recipe, prev_key)

    def _done(self, step: Step, key: str) -> dict | None:
        """The ``stage.json`` of a finished step with this key whose files verify
        (reusable), else None: a damaged step is recomputed, never shipped."""
        if self.force_from is not None and step.index >= self.force_from:
            return None
        return integrity.reusable(step.dir, key)

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
        with run_lock(self.out):  # one run per folder; cleans a killed run's temporary folders
            return self._run()

    def _run(self) -> dict:
        atomic.write_text(self.out / "recipe.resolved.yaml", _yaml(self.recipe.to_dict()))
        prev_key, model = None, None
        for step in self.steps:
            key = self._key(step, prev_key)
            info = self._done(step, key)
            if info is not None:
                log(f"[dim]{step.dir.name}: unchanged, reusing[/dim]")
                model = self._reload(step, info, model)
                self.results[step.name] = StepResult(step, model, info, reused=True)
            else:
                log(f"[bold cyan]{step.dir.name}[/bold cyan]")
                model, info = self._run_step(step, key, model)
                self.results[step.name] = StepResult(step, model, info)
                log(stage_result_line(info))
            prev_key = key
            if step.kind == EXPORT:
                step_impl.raise_on_failed_parity(self, info)
        if any(s.kind == EXPORT for s in self.steps):  # last: DIR/bundle/ from the exports
            from edgesmith.bundle.writer import write_bundle
            from edgesmith.errors import BundleError

            try:
                self._bundle = write_bundle(self, model)
            except BundleError as e:  # e.g. every export failed: the run's other results still stand
                log(f"[yellow]warning: no bundle: {e}[/yellow]")
                self._bundle = {"error": str(e)}
        summary = self.summary()
        atomic.write_json(self.out / "summary.json", summary)
        return summary

    def _run_step(self, step: Step, key: str, model):
        """Run one step into its folder (atomically) and return ``(model, info)``."""
        t0 = time.perf_counter()
        with atomic.atomic_dir(step.dir) as tmp:
            model, info = STEP_RUNS.get(step.kind, step_impl.run_stage)(self, step, model, tmp)
            info.update({"name": step.name, "kind": step.kind, "key": key,
                         "seconds": round(time.perf_counter() - t0, 2)})
            if isinstance(model, torch.nn.Module) and step.kind not in (EXPORT, BENCHMARK):
                info.setdefault("params", count_params(model))
            info = json.loads(json.dumps(info))  # what stage.json holds, kept in memory
            atomic.write_json(tmp / "stage.json", info)
            integrity.record(tmp)  # files.json: size + sha256 of each file, checked on reuse
        return model, info

    def models(self) -> Iterator[tuple[Step, torch.nn.Module]]:
        """``(step, model)`` along a finished run, each model rebuilt on the one before
        from the step folders (nothing re-runs).

        Raises:
            EdgesmithError: A step has not finished, or the recipe changed since.
        """
        prev_key, model = None, None
        for step in self.steps:
            key = self._key(step, prev_key)
            info = integrity.read_stage(step.dir) or {}
            if info.get("key") != key:
                raise UserError(f"{step.dir}: step '{step.name}' has not finished with this recipe; "
                                "run `edgesmith run` first")
            integrity.verify(step.dir)  # a damaged file is named, never loaded
            model = self._reload(step, info, model)
            self.results.setdefault(step.name, StepResult(step, model, info, reused=True))
            prev_key = key
            yield step, model

    def reload(self) -> torch.nn.Module:
        """The final model of a finished run, rebuilt from its step folders (nothing re-runs)."""
        *_, (_, model) = self.models()
        return model.eval()

    def write_partial_summary(self) -> None:
        atomic.write_json(self.out / "summary.json", self.summary())

    def _reload(self, step: Step, info: dict, prev_model):
        if step.kind == TEACHER:
            return step_impl.load_teacher(self, info, step.dir)
        if step.kind in (EXPORT, BENCHMARK):
            return prev_model
        spec = stages().get(step.kind)
        model = spec.skeleton(self.ctx, prev_model, step.config, info)
        return load_weights(model, step.dir / "model.safetensors") if spec.weights else model

    def save_model(self, model: torch.nn.Module, stage_dir: Path) -> int:
        path = save_weights(model, stage_dir / "model.safetensors")
        return path.stat().st_size

    # --------------------------------------------------------------- summary
    def summary(self) -> dict:
        infos = [r.info for r in self.results.values()]
        by_kind = {i["kind"]: i for i in infos}
        stages_ = [_stage_entry(i) for i in infos if i["kind"] not in (TEACHER, EXPORT, BENCHMARK)]
        return {
            "schema": SUMMARY_SCHEMA,
            "edgesmith": __version__,
            "recipe": self.recipe.name,
            "task": self.ctx.task.kind if "task" in self.ctx.__dict__ else by_kind[TEACHER].get("task"),
            "device": self.ctx.device,
            "out": str(self.out),
            "teacher": _stage_entry(by_kind[TEACHER]),
            "stages": stages_,
            "exports": by_kind.get(EXPORT, {}).get("exports", []),
            "benchmarks": by_kind.get(BENCHMARK, {}).get("benchmarks", []),
            "bundle": self.__dict__.get("_bundle"),
        }


# how each step kind runs; a recipe stage runs through its registered technique
STEP_RUNS = {TEACHER: step_impl.run_teacher, EXPORT: step_impl.run_export, BENCHMARK: step_impl.run_benchmark}


def _stage_entry(info: dict) -> dict:
    keys = ("name", "kind", "params", "size_bytes", "seconds", "metrics", "path")
    return {k: info.get(k) for k in keys}


def _yaml(obj: dict) -> str:
    import yaml

    return yaml.safe_dump(obj, sort_keys=False)


def run(recipe=None, out: str | Path | None = None, *, overrides: list[str] | None = None,
        device: str | None = None, from_stage: str | None = None, parity_gate: bool | None = None) -> dict:
    """Run a recipe (a path, a shipped recipe name, a dict or a Recipe) end to end
    and return ``summary.json`` as a dict.

    Example:
        >>> import edgesmith
        >>> summary = edgesmith.run("digits-quick", out="runs/digits")  # doctest: +SKIP
    """
    from edgesmith.conf.recipe import Recipe, load_recipe

    if not isinstance(recipe, Recipe):
        recipe = load_recipe(recipe, overrides)
    return Runner(recipe, out, device, from_stage, parity_gate).run()
