"""The typed plan of a run: the steps a recipe asks for, in order, and what each
step hands the next in memory.

A plan is ``teacher``, then one step per recipe stage, then (when the recipe lists
export formats) ``export`` and ``benchmark``. Each step owns ``DIR/NN-<name>/``; its
content key (:meth:`Step.key`) hashes its own config, the data config, the seed and
the key of the step before, so a resumed run reuses exactly the unchanged prefix.

Steps hand each other a :class:`StepResult` (the model, the step's ``info`` dict and
its folder) in memory; ``stage.json`` is written for resume and for people and is
read back only when a finished step is reused by a later run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgesmith import __version__, atomic

# the steps around the recipe's stages (the stages' kinds are the compress stage registry's)
TEACHER, EXPORT, BENCHMARK = "teacher", "export", "benchmark"


@dataclass(frozen=True)
class Step:
    """One step of a plan.

    Attributes:
        name: Unique name (a stage's ``name`` or its kind); names the folder and ``--from``.
        kind: ``teacher``, ``export``, ``benchmark`` or a registered stage kind.
        index: Position in the plan (the folder's ``NN``).
        dir: The step's folder ``DIR/NN-<name>``.
        config: The stage's config (recipe stages only).
    """

    name: str
    kind: str
    index: int
    dir: Path
    config: Any = None

    @property
    def is_stage(self) -> bool:
        return self.kind not in (TEACHER, EXPORT, BENCHMARK)

    def key(self, recipe: Any, prev_key: str | None) -> str:
        """The step's content key: its config, the data, the seed and the step before's key."""
        payload: dict[str, Any] = {"step": self.name, "kind": self.kind, "prev": prev_key, "version": __version__,
                                   "seed": recipe.seed, "data": recipe.data.to_dict()}
        if self.kind == TEACHER:
            payload["teacher"] = recipe.teacher.to_dict()
            payload["probe"] = recipe.probe.to_dict() if recipe.probe else None
            payload["retrieval"] = getattr(recipe, "retrieval", None)  # every step's metrics include it
            held = _wordnet_heldout_key(recipe)
            if held is not None:  # which synsets the wordnet source and the check leave out (every step follows)
                payload["wordnet_heldout"] = held
        elif self.kind == EXPORT:
            payload["export"] = recipe.export.to_dict()
        elif self.kind == BENCHMARK:
            payload["benchmark"] = recipe.benchmark.to_dict()
        else:
            # every step that runs is enabled: the flag is left out, so adding it changed no key
            payload["config"] = {k: v for k, v in self.config.to_dict().items() if k != "enabled"}
            payload["student"] = recipe.student.to_dict() if recipe.student else None
        return atomic.sha256_json(payload)[:16]


@dataclass
class StepResult:
    """What a finished step hands on: the model after it, its ``info`` (as kept in its
    ``stage.json``) and whether it ran now or was reused from an earlier run."""

    step: Step
    model: Any
    info: dict = field(default_factory=dict)
    reused: bool = False

    @property
    def file(self) -> Path | None:
        """A file stage's artifact (``quantize`` / ``qat``), else None."""
        path = self.info.get("path")
        return self.step.dir.parent / path if path and not path.endswith("model.safetensors") else None


def _wordnet_heldout_key(recipe: Any) -> dict | None:
    """The held-out WordNet split and retrieval pool size, for a recipe that reads the
    ``wordnet`` source or runs the WordNet retrieval check on text; None otherwise (an
    image recipe's keys do not move with it)."""
    from edgesmith.data.sources import SOURCES
    from edgesmith.data.texts import HELDOUT_PER_MILLE
    from edgesmith.models.fidelity import RETRIEVAL_POOL

    names = [s.name for s in recipe.data.sources]
    text = any(n in SOURCES and SOURCES.get(n).kind == "text" for n in names)
    if "wordnet" not in names and not (text and getattr(recipe, "retrieval", None) == "wordnet"):
        return None
    return {"per_mille": HELDOUT_PER_MILLE, "pool": RETRIEVAL_POOL}


def build_plan(recipe: Any, out: Path) -> list[Step]:
    """The steps of ``recipe`` with their folders under ``out``."""
    named = [(TEACHER, TEACHER, None)]
    named += [(c.name or c.kind, c.kind, c) for c in recipe.stage_configs if c.enabled]
    if recipe.export.formats:
        named += [(EXPORT, EXPORT, None), (BENCHMARK, BENCHMARK, None)]
    return [Step(name, kind, i, Path(out) / f"{i:02d}-{name}", config) for i, (name, kind, config) in enumerate(named)]


def final_stage(plan: list[Step]) -> Step:
    """The step whose model the run ships: the last recipe stage, else the teacher."""
    return next((s for s in reversed(plan) if s.is_stage), plan[0])
