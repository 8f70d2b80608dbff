"""The recipe's ``search:`` block: ranges over recipe key paths and the objectives a
multi-objective search (``edgesmith search RECIPE``) trades off::

    search:
      trials: 24
      space:
        stages.prune.sparsity: {low: 0.3, high: 0.8}
        student.kwargs.hidden: {choices: [16, 32, 64]}
        stages.distill.epochs: {low: 1, high: 4, int: true}
      objectives:
        - {metric: accuracy}                                  # maximised
        - {metric: latency, target: cpu, runtime: onnxruntime} # p50, minimised
        - {metric: size}                                       # bytes of the measured file
      start:                                                   # optional: tried first
        - {stages.prune.sparsity: 0.5, student.kwargs.hidden: 32}

A key path is what ``--set`` takes (``stages.<name or kind>.<field>``). The block is
checked when the recipe loads, against the recipe itself: an unknown path, an empty
range, a value the recipe refuses, an objective the task cannot measure or a runtime
the recipe does not export fail in one line, before any training.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from edgesmith.conf.base import Config, RecipeError, at_least

# metric -> (optuna direction, unit shown in tables)
METRICS = {"accuracy": ("maximize", ""), "cosine": ("maximize", ""), "latency": ("minimize", "ms"),
           "size": ("minimize", "bytes"), "memory": ("minimize", "MB")}


@dataclass
class ParamConfig(Config):
    """One searched key: a numeric range (``low``/``high``, ``int``, ``step``, ``log``) or ``choices``."""

    low: float | None = None
    high: float | None = None
    int: bool = False
    step: float | None = field(default=None, metadata=at_least(0, open_=True))
    log: bool = False
    choices: list[Any] | None = None

    def validate(self) -> None:
        if self.choices is not None:
            if not self.choices:
                raise RecipeError("choices", "empty list: give at least one value")
            if self.low is not None or self.high is not None:
                raise RecipeError("choices", "give either choices or low/high, not both")
            return
        if self.low is None or self.high is None:
            raise RecipeError("low", "give low and high (a range) or choices (a list)")
        if self.low >= self.high:
            raise RecipeError("high", f"empty range: low {self.low:g} must be below high {self.high:g}")
        if self.log and self.low <= 0:
            raise RecipeError("low", "a log range needs low > 0")
        if self.int and (self.low != int(self.low) or self.high != int(self.high)):
            raise RecipeError("low", "an int range needs whole-number low and high")

    def values(self) -> list[Any]:
        """The values whose recipes are checked at load: the choices, or both ends."""
        if self.choices is not None:
            return list(self.choices)
        return [int(self.low), int(self.high)] if self.int else [self.low, self.high]


@dataclass
class ObjectiveConfig(Config):
    """``accuracy`` / ``cosine`` (quality, maximised), ``latency`` (p50 ms), ``size`` (bytes of
    the measured file) or ``memory`` (peak RSS MB), all of the final model's file for
    ``runtime`` measured on ``target`` (default: the search's)."""

    metric: Literal["accuracy", "cosine", "latency", "size", "memory"]
    target: str | None = None
    runtime: str | None = None

    @property
    def direction(self) -> str:
        return METRICS[self.metric][0]

    def label(self) -> str:
        return self.metric if self.metric in ("accuracy", "cosine", "size") else \
            f"{self.metric}[{self.target}/{self.runtime}]"


@dataclass
class SearchConfig(Config):
    """A multi-objective search over recipe keys (see the module docstring)."""

    space: dict[str, ParamConfig]
    objectives: list[ObjectiveConfig] = field(default_factory=lambda: [
        ObjectiveConfig("accuracy"), ObjectiveConfig("latency"), ObjectiveConfig("size")])
    trials: int = field(default=24, metadata=at_least(1))
    sampler: Literal["nsga2", "tpe"] = "nsga2"
    population: int = field(default=8, metadata=at_least(2))
    seed: int = 0
    target: str = "cpu"
    runtime: str = "onnxruntime"
    threads: int = field(default=1, metadata=at_least(1))
    batch: int = field(default=1, metadata=at_least(1))
    iterations: int = field(default=100, metadata=at_least(5))
    min_seconds: float = field(default=0.5, metadata=at_least(0))
    train_threads: int = field(default=1, metadata=at_least(1))
    references: bool = True
    shipped: bool = False  # also run the recipe as written and measure its final file as a reference point
    # points tried first, before the sampler's own (key path -> value; a key left out is sampled):
    # a known-good recipe, or values a user wants on the same plot
    start: list[dict[str, Any]] = field(default_factory=list)

    def validate(self) -> None:
        from edgesmith.benchmarks.targets import TARGETS, scheme
        from edgesmith.runtimes import RUNTIMES

        if not self.space:
            raise RecipeError("space", "empty: name at least one recipe key path to search")
        if not self.objectives:
            raise RecipeError("objectives", "give at least one objective")
        for i, o in enumerate(self.objectives):
            o.target = o.target or self.target
            o.runtime = o.runtime or self.runtime
            if scheme(o.target) not in TARGETS:
                raise RecipeError(f"objectives[{i}].target", f"unknown target {o.target!r}; use cpu, cuda, "
                                                             "ssh://user@host[:port] or adb://SERIAL")
            if o.runtime not in RUNTIMES:
                raise RecipeError(f"objectives[{i}].runtime", RUNTIMES.unknown_message(o.runtime))
        labels = [o.label() for o in self.objectives]
        if len(set(labels)) != len(labels):
            raise RecipeError("objectives", f"an objective is listed twice ({', '.join(labels)})")
        for i, point in enumerate(self.start):
            for path, v in point.items():
                key = f"start[{i}].{path}"
                if path not in self.space:
                    raise RecipeError(key, f"not a key of search.space ({', '.join(self.space)})")
                p = self.space[path]
                if p.choices is not None and not any(_same(v, c) for c in p.choices):
                    raise RecipeError(key, f"{v!r} is not one of its choices {p.choices}")
                if p.choices is None and not (isinstance(v, (int, float)) and p.low <= v <= p.high
                                              and (not p.int or v == int(v))):
                    raise RecipeError(key, f"{v!r} is outside its range [{p.low:g}, {p.high:g}]"
                                           f"{' (whole numbers)' if p.int else ''}")

    def check_against(self, recipe: Any) -> None:
        """Check every key path and objective against ``recipe`` (a Recipe without its search)."""
        from edgesmith.conf.recipe import Recipe, apply_override
        from edgesmith.data.sources import SOURCES
        from edgesmith.export import format_for_runtime

        base = recipe.to_dict()
        base.pop("search", None)
        for path, param in self.space.items():
            key = f"search.space.{path}"
            _check_path(recipe, path, key)
            for v in param.values():
                raw = _plain_copy(base)
                try:
                    apply_override(raw, f"{path}={_yaml_value(v)}")
                    Recipe.from_dict(raw)
                except RecipeError as e:
                    raise RecipeError(key, f"value {v!r} gives an invalid recipe ({e})") from None
        kinds = {SOURCES.get(s.name).kind for s in recipe.data.sources}
        text = kinds == {"text"}
        for i, o in enumerate(self.objectives):
            key = f"search.objectives[{i}]"
            if o.metric == "cosine" and not text:
                raise RecipeError(f"{key}.metric", "cosine (to the teacher's embeddings) needs an embedding "
                                                   "task; this recipe's data are images: use accuracy")
            if o.metric == "accuracy" and text and recipe.probe is None:
                raise RecipeError(f"{key}.metric", "accuracy of an embedding model needs a 'probe:' block "
                                                   "in the recipe; add one or use cosine")
            if o.metric in ("latency", "memory", "size"):
                fmt = format_for_runtime(o.runtime)
                if fmt not in recipe.export.formats:
                    raise RecipeError(f"{key}.runtime", f"runtime {o.runtime} runs the {fmt} file, which "
                                                        f"export.formats ({', '.join(recipe.export.formats) or 'none'}) "
                                                        f"does not make; add {fmt} to export.formats")


def _same(a: Any, b: Any) -> bool:
    import json

    return json.dumps(a) == json.dumps(b)


def _plain_copy(d: Any) -> Any:
    import copy

    return copy.deepcopy(d)


def _yaml_value(v: Any) -> str:
    import json

    return json.dumps(v)  # JSON is YAML: lists, numbers and strings read back as given


def _check_path(recipe: Any, path: str, key: str) -> None:
    """Walk ``path`` through the recipe's config objects: every segment must name a field
    (or a stage by name or kind); only a free-form mapping (``kwargs``, ``precision``) may
    gain a new key."""
    import dataclasses
    import re

    segs = [m.group(1) if m.group(1) is not None else int(m.group(2))
            for m in re.finditer(r"([^.\[\]]+)|\[(\d+)\]", path)]
    node: Any = recipe
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if node is recipe and seg == "stages":
            node = recipe.stage_configs
            continue
        if isinstance(node, list):
            if isinstance(seg, str):
                match = [c for c in node if seg in (getattr(c, "name", None), getattr(c, "kind", None))]
                if not match:
                    names = [getattr(c, "name", None) or getattr(c, "kind", "?") for c in node]
                    raise RecipeError(key, f"unknown key path: no stage '{seg}' (stages: {', '.join(names)})")
                node = match[0]
            elif seg >= len(node):
                raise RecipeError(key, f"unknown key path: index {seg} is out of range ({len(node)} entries)")
            else:
                node = node[seg]
        elif dataclasses.is_dataclass(node):
            names = [f.name for f in dataclasses.fields(node)]
            if seg not in names:
                import difflib

                close = difflib.get_close_matches(str(seg), names, n=1)
                hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(names)}"
                raise RecipeError(key, f"unknown key path at '{seg}'; {hint}")
            node = getattr(node, seg)
        elif isinstance(node, dict):
            if seg not in node and not last:
                raise RecipeError(key, f"unknown key path: '{seg}' is not set in the recipe")
            node = node.get(seg)
        else:
            raise RecipeError(key, f"unknown key path: '{segs[i - 1]}' holds a value, not keys")
