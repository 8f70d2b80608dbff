"""The pipeline runner: teacher -> stages -> export (+ parity gate) -> benchmark.

Each step writes its folder ``DIR/NN-<step>/`` atomically with a ``stage.json``
holding a content key (hash of its config and of its input's key). A re-run
skips every step whose key is unchanged, so a crashed or interrupted run
resumes where it stopped; ``from_stage`` forces a re-run from a step on.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from edgesmith import __version__, atomic
from edgesmith.errors import UserError
from edgesmith.models import count_params
from edgesmith.models.io import load_weights, save_weights
from edgesmith.pipeline.context import RunContext
from edgesmith.pipeline.report import stage_result_line
from edgesmith.progress import log

SUMMARY_SCHEMA = 1


def resolve_device(device: str | None) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {device}: no CUDA device is available here; use --device cpu")
    return device


class Runner:
    def __init__(self, recipe, out: str | Path | None = None, device: str | None = None,
                 from_stage: str | None = None, parity_gate: bool | None = None):
        self.recipe = recipe
        self.out = Path(out or Path("runs") / recipe.name)
        self.ctx = RunContext(recipe, self.out, resolve_device(device))
        self.parity_gate = recipe.export.parity.gate if parity_gate is None else parity_gate
        self.steps = self._plan()
        names = [s["name"] for s in self.steps]
        if from_stage is not None and from_stage not in names:
            raise UserError(f"--from {from_stage}: no such stage; stages are: {', '.join(names)}")
        self.force_from = names.index(from_stage) if from_stage else None

    def _plan(self) -> list[dict]:
        steps = [{"name": "teacher", "kind": "teacher"}]
        steps += [{"name": c.name or c.kind, "kind": c.kind, "config": c} for c in self.recipe.stage_configs]
        if self.recipe.export.formats:
            steps.append({"name": "export", "kind": "export"})
            steps.append({"name": "benchmark", "kind": "benchmark"})
        for i, s in enumerate(steps):
            s["dir"] = self.out / f"{i:02d}-{s['name']}"
        return steps

    # ------------------------------------------------------------------ keys
    def _key(self, step: dict, prev_key: str | None) -> str:
        r = self.recipe
        payload: dict[str, Any] = {"step": step["name"], "kind": step["kind"], "prev": prev_key,
                                   "version": __version__, "seed": r.seed, "data": r.data.to_dict()}
        if step["kind"] == "teacher":
            payload["teacher"] = r.teacher.to_dict()
            payload["probe"] = r.probe.to_dict() if r.probe else None
        elif step["kind"] == "export":
            payload["export"] = r.export.to_dict()
        elif step["kind"] == "benchmark":
            payload["benchmark"] = r.benchmark.to_dict()
        else:
            payload["config"] = step["config"].to_dict()
            payload["student"] = r.student.to_dict() if r.student else None
        return atomic.sha256_json(payload)[:16]

    def _done(self, step: dict, key: str, index: int) -> dict | None:
        meta = step["dir"] / "stage.json"
        if self.force_from is not None and index >= self.force_from:
            return None
        if meta.exists():
            info = json.loads(meta.read_text())
            if info.get("key") == key:
                return info
        return None

    # ------------------------------------------------------------------- run
    def run(self) -> dict:
        from edgesmith.pipeline import steps as step_impl

        self.out.mkdir(parents=True, exist_ok=True)
        atomic.write_text(self.out / "recipe.resolved.yaml", _yaml(self.recipe.to_dict()))
        prev_key, model, infos = None, None, []
        for i, step in enumerate(self.steps):
            key = self._key(step, prev_key)
            info = self._done(step, key, i)
            if info is not None:
                log(f"[dim]{step['dir'].name}: unchanged, reusing[/dim]")
                model = self._reload(step, info, model)
            else:
                log(f"[bold cyan]{step['dir'].name}[/bold cyan]")
                t0 = time.perf_counter()
                with atomic.atomic_dir(step["dir"]) as tmp:
                    model, info = getattr(step_impl, f"run_{step['kind']}", step_impl.run_stage)(
                        self, step, model, tmp)
                    info.update({"name": step["name"], "kind": step["kind"], "key": key,
                                 "seconds": round(time.perf_counter() - t0, 2)})
                    if isinstance(model, torch.nn.Module) and step["kind"] not in ("export", "benchmark"):
                        info.setdefault("params", count_params(model))
                    atomic.write_json(tmp / "stage.json", info)
                info = json.loads((step["dir"] / "stage.json").read_text())
                log(stage_result_line(info))
            infos.append(info)
            self._infos = infos
            prev_key = key
            if step["kind"] == "export":
                step_impl.raise_on_failed_parity(self, info)
        if any(s["kind"] == "export" for s in self.steps):  # last: DIR/bundle/ from the exports
            from edgesmith.bundle.writer import write_bundle
            from edgesmith.errors import BundleError

            try:
                self._bundle = write_bundle(self, model)
            except BundleError as e:  # e.g. every export failed: the run's other results still stand
                log(f"[yellow]warning: no bundle: {e}[/yellow]")
                self._bundle = {"error": str(e)}
        summary = self.summary(infos)
        atomic.write_json(self.out / "summary.json", summary)
        return summary

    def reload(self) -> torch.nn.Module:
        """The final model of a finished run, rebuilt from its step folders (nothing re-runs).

        Raises:
            EdgesmithError: A step has not finished, or the recipe changed since.
        """
        prev_key, model = None, None
        for step in self.steps:
            key = self._key(step, prev_key)
            meta = step["dir"] / "stage.json"
            info = json.loads(meta.read_text()) if meta.exists() else {}
            if info.get("key") != key:
                raise UserError(f"{step['dir']}: step '{step['name']}' has not finished with this recipe; "
                                     "run `edgesmith run` first")
            model = self._reload(step, info, model)
            prev_key = key
        return model.eval()

    def write_partial_summary(self) -> None:
        atomic.write_json(self.out / "summary.json", self.summary(self._infos))

    def _reload(self, step: dict, info: dict, prev_model):
        from edgesmith.pipeline import steps as step_impl

        if step["kind"] == "teacher":
            return step_impl.load_teacher(self, info, step["dir"])
        if step["kind"] in ("export", "benchmark"):
            return prev_model
        from edgesmith.pipeline.stages import STAGES

        spec = STAGES.get(step["kind"])
        model = spec.skeleton(self.ctx, prev_model, step["config"], info)
        return load_weights(model, step["dir"] / "model.safetensors") if spec.weights else model

    def save_model(self, model: torch.nn.Module, stage_dir: Path) -> int:
        path = save_weights(model, stage_dir / "model.safetensors")
        return path.stat().st_size

    # --------------------------------------------------------------- summary
    def summary(self, infos: list[dict]) -> dict:
        by_kind = {i["kind"]: i for i in infos}
        stages = [_stage_entry(i) for i in infos if i["kind"] not in ("teacher", "export", "benchmark")]
        return {
            "schema": SUMMARY_SCHEMA,
            "edgesmith": __version__,
            "recipe": self.recipe.name,
            "task": self.ctx.task.kind if "task" in self.ctx.__dict__ else by_kind["teacher"].get("task"),
            "device": self.ctx.device,
            "out": str(self.out),
            "teacher": _stage_entry(by_kind["teacher"]),
            "stages": stages,
            "exports": by_kind.get("export", {}).get("exports", []),
            "benchmarks": by_kind.get("benchmark", {}).get("benchmarks", []),
            "bundle": self.__dict__.get("_bundle"),
        }


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
