"""The recipe: the whole run in one validated object. YAML files in
``conf/recipes/`` load into exactly these dataclasses, which the Python API takes
too, so there is no second config language."""

from __future__ import annotations

import copy
import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from edgesmith.conf import yaml_safe
from edgesmith.conf.archs import check_arch, check_name
from edgesmith.conf.base import LATER, Config, RecipeError, at_least, between
from edgesmith.conf.search import SearchConfig
from edgesmith.errors import UserError

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"
DEFAULT_RECIPE = "minilm-sentiment"


@dataclass
class SourceConfig(Config):
    """One data source: a named real data set or a generic file source."""

    name: str
    path: str | None = None
    limit: int | None = field(default=None, metadata=at_least(1))
    domain: list[str] | None = None
    text_field: str = "text"
    label_field: str | None = "label"
    image_size: int | None = field(default=None, metadata=at_least(1))
    grayscale: bool = False
    # the train split holds each of this source's examples this many times (a domain weighted up,
    # such as the task's own unlabelled text in a large corpus); eval and calibration hold each once
    repeat: int = field(default=1, metadata={**at_least(1), **LATER})

    def validate(self) -> None:
        from edgesmith.data.sources import SOURCES

        if self.name not in SOURCES:
            raise RecipeError("name", SOURCES.unknown_message(self.name))
        spec = SOURCES.get(self.name)
        if spec.needs_path and not self.path:
            raise RecipeError("path", f"source '{self.name}' needs a path to read from")
        if self.path and not Path(os.path.expanduser(self.path)).exists():
            raise RecipeError("path", f"no such file or directory '{self.path}'; fix the path")
        if self.domain is not None and spec.domains is not None:
            for i, d in enumerate(self.domain):
                if d not in spec.domains:
                    raise RecipeError(
                        f"domain[{i}]", f"unknown domain {d!r}; choose from {', '.join(spec.domains)}"
                    )


@dataclass
class SplitsConfig(Config):
    """Sizes of the splits: a count (int) or a fraction of the pool (float in (0, 1])."""

    train: int | float | None = None
    calibration: int | float = 256
    eval: int | float | None = None
    eval_from: Literal["official", "pool"] = "official"

    def validate(self) -> None:
        for k in ("train", "calibration", "eval"):
            v = getattr(self, k)
            if v is None:
                continue
            if isinstance(v, float) and not 0 < v <= 1:
                raise RecipeError(k, f"a fraction must be in (0, 1], got {v}")
            if isinstance(v, int) and v < 1:
                raise RecipeError(k, f"a count must be >= 1, got {v}")


@dataclass
class DataConfig(Config):
    sources: list[SourceConfig]
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    seed: int = 0
    max_length: int = field(default=128, metadata=between(8, 512))
    mean: list[float] | None = None
    std: list[float] | None = None

    def validate(self) -> None:
        if not self.sources:
            raise RecipeError("sources", "needs at least one source")
        if self.std is not None and any(s <= 0 for s in self.std):
            raise RecipeError("std", "every std must be > 0")


@dataclass
class TrainConfig(Config):
    """Supervised training (the teacher's ``train:`` block)."""

    epochs: int = field(default=4, metadata=at_least(1))
    lr: float = field(default=3e-3, metadata=at_least(0, open_=True))
    batch_size: int = field(default=128, metadata=at_least(1))
    weight_decay: float = field(default=5e-4, metadata=at_least(0))
    label_smoothing: float = field(default=0.0, metadata=between(0, 1, hi_open=True))
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    augment: list[Literal["hflip", "shift"]] = field(default_factory=list)
    patience: int | None = field(default=None, metadata=at_least(1))
    val_fraction: float = field(default=0.05, metadata=between(0, 0.5))


@dataclass
class TeacherConfig(Config):
    source: Literal["torchvision", "hf", "package", "factory", "train"]
    arch: str | None = None
    weights: str | None = None
    path: str | None = None
    package: str | None = None
    factory: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    num_classes: int | None = field(default=None, metadata=at_least(2))
    in_channels: int | None = field(default=None, metadata=at_least(1))
    pooling: Literal["mean", "cls"] = "mean"
    normalize_embeddings: bool = True
    train: TrainConfig | None = None

    def validate(self) -> None:
        need = {
            "torchvision": ["arch"],
            "hf": ["path"],
            "package": ["package"],
            "factory": ["factory"],
            "train": ["arch", "train"],
        }[self.source]
        for k in need:
            if getattr(self, k) in (None, ""):
                raise RecipeError(k, f"required when source is '{self.source}'")
        if self.source == "factory" and not re.fullmatch(r"[\w.]+:\w+", self.factory or ""):
            raise RecipeError("factory", f"must look like 'package.module:function', got {self.factory!r}")
        for k in ("weights", "path"):
            v = getattr(self, k)
            if v and not Path(os.path.expanduser(v)).exists():
                raise RecipeError(k, f"no such file or directory '{v}'; fix the path")
        if self.source == "train" and self.train is None:
            raise RecipeError("train", "required when source is 'train'")
        if self.source in ("train", "torchvision"):
            check_arch(self.arch, self.kwargs, self.num_classes, self.in_channels)


@dataclass
class StudentConfig(Config):
    """The student: an architecture, or a rule that derives it from the teacher."""

    arch: str | None = None
    kwargs: dict[str, Any] = field(default_factory=dict)
    rule: Literal["keep-every", "keep-layers"] | None = None
    keep_every: int = field(default=2, metadata=at_least(1))
    keep_layers: list[int] | None = None
    init_from_teacher: bool = True

    def validate(self) -> None:
        if (self.arch is None) == (self.rule is None):
            raise RecipeError("arch", "give exactly one of 'arch' or 'rule'")
        if self.rule == "keep-layers" and not self.keep_layers:
            raise RecipeError("keep_layers", "required when rule is 'keep-layers'")
        if self.arch is not None:
            check_arch(self.arch, self.kwargs)


@dataclass
class ProbeConfig(Config):
    """Downstream check for embedding models: a logistic-regression head trained
    on the frozen embeddings, scored the same way for teacher and student."""

    source: SourceConfig
    train: int = field(default=2000, metadata=at_least(10))
    test: int = field(default=2000, metadata=at_least(10))
    C: float = field(default=1.0, metadata=at_least(0, open_=True))


@dataclass
class ParityConfig(Config):
    """The export parity gate. ``min_cosine``, ``min_agreement`` (top-1) and ``min_top5``
    (the PyTorch model's top-1 among the file's five highest) tighten or loosen the gate of
    quantized files (int8, int8-dynamic); None keeps the precision's tier (cosine 0.99) and
    leaves agreement unjudged. For classifiers: ``{min_agreement: 0.99, min_top5: 1.0}``."""

    gate: bool = True
    samples: int = field(default=64, metadata=at_least(1))
    min_cosine: float | None = field(default=None, metadata=between(0, 1))
    min_agreement: float | None = field(default=None, metadata=between(0, 1))
    min_top5: float | None = field(default=None, metadata=between(0, 1))

    def tolerance(self, precision: str, tier: Any) -> Any:
        """``tier`` (a :class:`~edgesmith.export.base.Tolerance`) with this gate's floors
        where ``precision`` is quantized; unchanged otherwise."""
        if not precision.startswith("int8"):
            return tier
        floors = {k: getattr(self, k) for k in ("min_cosine", "min_agreement", "min_top5")
                  if getattr(self, k) is not None}
        return dataclasses.replace(tier, **floors)


@dataclass
class ExportConfig(Config):
    """What to export. ``precision`` maps a format to ``fp32``, ``fp16`` or ``int8``
    (formats not named export fp32; int8 is calibrated on the calibration split);
    a format must support the precision (its exporter's ``tolerances``). TensorRT
    has ``tensorrt_precision``; an int8 ONNX comes from a ``quantize`` stage.
    ``int8-dynamic`` (tflite, executorch): int8 weights, activations quantized at
    run time, no calibration; for transformer encoders. Each such precision resolves
    to a quantization preset's :class:`~edgesmith.compress.quantize.config.QuantConfig`
    (:meth:`quant_config`), the config type the ``quantize`` stage uses too.

    ``seq_len``: token models only: the sequence length a static-shape format
    (tflite) is exported at and the bound of a bounded-dynamic one (executorch);
    None: the longer of ``data.max_length`` and ``benchmark.seq_len``, so the
    benchmark's inputs fit every file. Shorter inputs are padded to it."""

    formats: list[str] = field(default_factory=lambda: ["onnx"])
    opset: int = field(default=18, metadata=between(13, 23))
    dynamic_batch: bool = True
    precision: dict[str, Literal["fp32", "fp16", "int8", "int8-dynamic"]] = field(default_factory=dict)
    tensorrt_precision: Literal["fp32", "fp16", "int8"] = "fp16"
    seq_len: int | None = field(default=None, metadata=between(1, 512))
    parity: ParityConfig = field(default_factory=ParityConfig)
    # the bundle ships a quantized file even where the benchmark measured it slower than its
    # fp32 parent on its runtime (default: the faster fp32 file is shipped, and the manifest says why)
    force_quantized: bool = False

    def validate(self) -> None:
        from edgesmith.export import FORMATS

        for i, f in enumerate(self.formats):
            if f not in FORMATS:
                raise RecipeError(f"formats[{i}]", FORMATS.unknown_message(f))
        for fmt, p in self.precision.items():
            key = f"precision.{fmt}"
            if fmt not in FORMATS:
                raise RecipeError(key, FORMATS.unknown_message(fmt))
            if fmt == "tensorrt":
                raise RecipeError(key, "set the engine's precision with export.tensorrt_precision instead")
            supported = list(FORMATS.get(fmt).tolerances)
            if p not in supported:
                hint = "; for an int8 ONNX add a 'quantize' stage" if fmt == "onnx" else ""
                raise RecipeError(key, f"the {fmt} exporter does not export {p}; choose one of: "
                                       f"{', '.join(supported)}{hint}")

    def quant_config(self, fmt: str) -> Any:
        """The :class:`~edgesmith.compress.quantize.config.QuantConfig` that
        ``precision[fmt]`` resolves to (e.g. tflite int8: the ``xnnpack`` preset), or
        None for fp32."""
        from edgesmith.export.formats import quant_config

        return quant_config(fmt, self.precision.get(fmt, "fp32"))


@dataclass
class BenchmarkConfig(Config):
    # target strings of the registry in edgesmith.benchmarks.targets: cpu, cuda, ssh://user@host[:port], adb[://SERIAL]
    targets: list[str] = field(default_factory=lambda: ["cpu"])
    runtimes: list[str] = field(default_factory=lambda: ["torch", "onnxruntime"])
    threads: int = field(default=1, metadata=at_least(1))
    batch: int = field(default=1, metadata=at_least(1))
    warmup: int = field(default=10, metadata=at_least(0))
    iterations: int = field(default=100, metadata=at_least(5))
    min_seconds: float = field(default=1.0, metadata=at_least(0))
    seq_len: int | None = field(default=None, metadata=between(1, 512))
    eval_samples: int | None = field(default=None, metadata=at_least(1))
    # "final": the teacher and the final model; "all": every stage that changes the weights too,
    # so that a stage slower than the one before it is caught where it happens
    stages: Literal["final", "all"] = "final"
    # a quantized final file and its fp32 parent timed again in this many interleaved rounds
    # (int8, fp32, int8, ...): the bundle's slower-file rule reads the pairs (0: one timing each)
    paired_rounds: int = field(default=3, metadata=at_least(0))

    def validate(self) -> None:
        from edgesmith.benchmarks.targets import check_target
        from edgesmith.errors import UserError
        from edgesmith.runtimes import RUNTIMES

        for i, r in enumerate(self.runtimes):
            if r not in RUNTIMES:
                raise RecipeError(f"runtimes[{i}]", RUNTIMES.unknown_message(r))
        if not self.targets:
            raise RecipeError("targets", "needs at least one target, e.g. [cpu]")
        for i, t in enumerate(self.targets):
            try:
                check_target(t)
            except UserError as e:
                raise RecipeError(f"targets[{i}]", str(e).removeprefix(f"--target {t}: ")) from None


@dataclass
class Recipe(Config):
    name: str
    teacher: TeacherConfig
    data: DataConfig
    description: str = ""
    seed: int = 0
    student: StudentConfig | None = None
    probe: ProbeConfig | None = None
    stages: list[dict[str, Any]] = field(default_factory=list)
    # text encoders: the held-out retrieval check run for the teacher and every stage
    # (WordNet: a held-out synset's example sentence must find its own gloss); null: none
    retrieval: Literal["wordnet"] | None = "wordnet"
    export: ExportConfig = field(default_factory=ExportConfig)
    benchmark: BenchmarkConfig = field(default_factory=BenchmarkConfig)
    search: SearchConfig | None = None  # what `edgesmith search` explores; `edgesmith run` ignores it

    def validate(self) -> None:
        from edgesmith.compress.stage import stages

        STAGES = stages()

        check_name("name", self.name)  # the run folder and the teacher cache are named after it
        parsed, seen = [], set()
        for i, raw in enumerate(self.stages):
            key = f"stages[{i}]"
            if hasattr(raw, "to_dict"):
                raw = raw.to_dict()
            if not isinstance(raw, dict):
                raise RecipeError(key, "expected a mapping with a 'kind' key")
            raw = dict(raw)
            kind = raw.pop("kind", None)
            if kind is None:
                raise RecipeError(f"{key}.kind", "required key is missing")
            if kind not in STAGES:
                raise RecipeError(f"{key}.kind", STAGES.unknown_message(kind))
            cfg = STAGES.get(kind).config.from_dict(raw, key)
            name = cfg.name or kind
            check_name(f"{key}.name", name)  # names the stage's folder
            if name in seen:
                raise RecipeError(f"{key}.name", f"stage name '{name}' is used twice; give each a unique name")
            seen.add(name)
            parsed.append(cfg)
        # the order rules hold for the stages that run (``enabled``), by their place in the recipe
        passing = [i for i, c in enumerate(parsed) if c.enabled and not STAGES.get(c.kind).weights]
        later = [i for i, c in enumerate(parsed)
                 if c.enabled and STAGES.get(c.kind).weights and passing and i > passing[0]]
        if later:
            kind = parsed[passing[0]].kind
            raise RecipeError(f"stages[{passing[0]}].kind", f"a '{kind}' stage passes the model on unchanged, so "
                              f"stages[{later[0]}] ({parsed[later[0]].kind}) after it would make its file stale; "
                              f"move '{kind}' to the end")
        _check_vocab_order(parsed)
        if any(c.kind == "distill" and c.enabled for c in parsed) and self.student is None:
            raise RecipeError("student", "a 'distill' stage needs a student")
        if self.export.seq_len is not None and self.export.seq_len < self.data.max_length:
            raise RecipeError("export.seq_len", f"{self.export.seq_len} is shorter than data.max_length "
                                                f"({self.data.max_length}), so tokenized inputs would not fit the "
                                                f"exported files; raise it or leave it out")
        object.__setattr__(self, "stage_configs", parsed)
        if self.search is not None:
            self.search.check_against(self)

    def to_dict(self) -> dict[str, Any]:
        d = super().to_dict()
        d["stages"] = [{"kind": c.kind, **c.to_dict()} for c in self.stage_configs]
        return d


def _check_vocab_order(parsed: list) -> None:
    """A stage that prunes the vocabulary changes the run's token ids, but the teacher
    reads the original ones: every stage that runs the teacher (KD) comes before it."""
    from edgesmith.compress.stage import stages

    STAGES = stages()

    switches = [i for i, c in enumerate(parsed) if c.enabled and STAGES.get(c.kind).switches_tokenizer]
    if len(switches) > 1:
        raise RecipeError(f"stages[{switches[1]}].kind", f"stages[{switches[0]}] already prunes the vocabulary; "
                                                         "prune it once")
    late = [i for i, c in enumerate(parsed)
            if c.enabled and switches and i > switches[0] and STAGES.get(c.kind).feeds_teacher]
    if late:
        vocab, other = parsed[switches[0]], parsed[late[0]]
        raise RecipeError(f"stages[{late[0]}].kind", f"'{other.name or other.kind}' runs the teacher on the run's "
                          f"token ids, which the '{vocab.name or vocab.kind}' stage (stages[{switches[0]}]) before "
                          f"it maps to a pruned vocabulary; move '{vocab.name or vocab.kind}' after it")


# --------------------------------------------------------------------------- loading


def resolve_recipe_path(recipe: str | os.PathLike | None) -> Path:
    """A path, or the name of a shipped recipe (``digits-quick``)."""
    if recipe is None:
        recipe = DEFAULT_RECIPE
    p = Path(os.path.expanduser(str(recipe)))
    if p.exists():
        return p
    shipped = RECIPES_DIR / f"{recipe}.yaml"
    if shipped.exists() and os.sep not in str(recipe):
        return shipped
    names = ", ".join(sorted(q.stem for q in RECIPES_DIR.glob("*.yaml")))
    raise UserError(f"{recipe}: no such recipe file; give a path or one of: {names}")


def load_recipe(recipe: str | os.PathLike | dict | None = None, overrides: list[str] | None = None) -> Recipe:
    """Load, override (``stages.distill.epochs=1``) and validate a recipe."""
    from edgesmith.plugins import load_plugins

    load_plugins()  # EDGESMITH_PLUGINS may add stage kinds, formats and runtimes a recipe names
    if isinstance(recipe, dict):
        raw, label = copy.deepcopy(recipe), "<recipe>"
    else:
        path = resolve_recipe_path(recipe)
        label = _display(path)
        try:
            raw = yaml_safe.load_file(path)  # refuses folders, binary, non-UTF-8, duplicate keys, alias bombs
        except RecipeError as e:
            raise e.with_file(label) from None
        if not isinstance(raw, dict):
            raise RecipeError("", "a recipe must be a YAML mapping at the top level", label)
    set_keys: dict[str, str] = {}  # resolved key path -> the --set that wrote it
    for ov in overrides or []:
        try:
            set_keys[apply_override(raw, ov)] = ov
        except RecipeError as e:
            raise e.with_file(f"--set {ov}") from None
    try:
        return Recipe.from_dict(raw)
    except RecipeError as e:  # a bad value a --set wrote is blamed on that --set, not the file
        ov = next((o for k, o in set_keys.items() if e.key == k or e.key.startswith((k + ".", k + "["))), None)
        raise e.with_file(f"--set {ov}" if ov else label) from None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        try:
            return "conf/recipes/" + str(path.resolve().relative_to(RECIPES_DIR))
        except ValueError:
            return str(path)


_SEG = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def apply_override(raw: dict, override: str) -> str:
    """Apply ``a.b[0].c=value`` (value parsed as YAML) to the raw recipe dict.
    In ``stages`` a segment may be a stage's name or kind: ``stages.distill.lr=1e-4``.
    Returns the key path it wrote, with stage names resolved (``stages[0].lr``)."""

    if "=" not in override:
        raise RecipeError("", "expected KEY=VALUE")
    key, _, text = override.partition("=")
    try:
        value = yaml_safe.loads(text)
    except RecipeError as e:
        if not e.message.startswith("invalid YAML"):
            raise RecipeError("--set", f"{key}: {e.message}") from None
        value = text
    segs = [m.group(1) if m.group(1) is not None else int(m.group(2)) for m in _SEG.finditer(key)]
    if not segs:
        raise RecipeError("", "empty key")
    node: Any = raw
    walked = ""
    for i, seg in enumerate(segs):
        last = i == len(segs) - 1
        if isinstance(node, list):
            if isinstance(seg, str):
                idx = next(
                    (j for j, s in enumerate(node) if isinstance(s, dict) and seg in (s.get("name"), s.get("kind"))),
                    None,
                )
                if idx is None:
                    raise RecipeError(f"{walked}.{seg}", f"no entry named '{seg}' in {walked}")
                seg = idx
            if seg >= len(node):
                raise RecipeError(f"{walked}[{seg}]", f"index out of range ({len(node)} entries)")
            walked += f"[{seg}]"
            if last:
                node[seg] = value
            else:
                node = node[seg]
        elif isinstance(node, dict):
            walked = f"{walked}.{seg}" if walked else str(seg)
            if last:
                node[seg] = value
            else:
                if node.get(seg) is None:
                    node[seg] = {}
                node = node[seg]
        else:
            raise RecipeError(walked, f"cannot set a key inside a {type(node).__name__}")
    return walked
