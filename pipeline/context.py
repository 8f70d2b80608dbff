"""Run-wide state shared by the stages: the recipe, the data (loaded once), the
task, the teacher and its cached outputs, the probe.

A ``vocab`` stage switches the tokenizer (:meth:`RunContext.use_tokenizer`): from
it on ``task``, ``tensors`` and ``probe`` use the pruned vocabulary, while the
teacher and the stages before it are evaluated through :meth:`RunContext.view`,
which keeps the original one."""

from __future__ import annotations

import copy
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from edgesmith.errors import EdgesmithError
from edgesmith.models.tasks import (
    ClassificationTask,
    EmbeddingTask,
    Task,
    TensorSet,
    fit_probe_head,
)


class RunContext:
    def __init__(self, recipe, out: Path, device: str):
        self.recipe = recipe
        self.out = Path(out)
        self.device = device
        self.teacher: torch.nn.Module | None = None
        self._before: RunContext | None = None  # the teacher's view, once a vocab stage switched tokenizers
        self._before_names: set[str] = set()
        self._switched_by: str | None = None
        self.tokenizer = None
        self._teacher_eval: torch.Tensor | None = None
        self._teacher_hits: torch.Tensor | None = None
        self._heads: dict[str, object] = {}

    # ------------------------------------------------------------- tokenizer
    @property
    def tokenizer(self):
        """The tokenizer texts are fed with: the teacher's, or from a ``vocab`` stage on,
        its pruned one (``task``, ``tensors`` and ``probe`` follow it)."""
        return self._tokenizer

    @tokenizer.setter
    def tokenizer(self, value) -> None:
        # the teacher step sets the tokenizer its model came with; when the teacher is
        # rebuilt after a vocab stage switched (a benchmark reloading steps), it stays in the teacher's view
        if self._before is None:
            self._tokenizer = value

    def use_tokenizer(self, tokenizer, stage: str) -> None:
        """Feed texts through ``tokenizer`` from stage ``stage`` on (a vocab stage's pruned
        one); the teacher and the stages before keep theirs (see :meth:`view`)."""
        if self._switched_by not in (None, stage):
            raise EdgesmithError(f"stage '{stage}': the vocabulary was already pruned by '{self._switched_by}'; "
                                 "a recipe prunes it once")
        if self._before is None:
            names = ["teacher", *(c.name or c.kind for c in self.recipe.stage_configs)]
            self.raw  # noqa: B018 - loaded once, shared with the teacher's view
            self._before = copy.copy(self)  # keeps what it has cached, computes the rest with its tokenizer
            self._before_names = set(names[: names.index(stage)])
        if self._switched_by is None:
            for k in ("task", "tensors", "probe", "retrieval"):
                self.__dict__.pop(k, None)
        self._switched_by, self._tokenizer = stage, tokenizer

    def view(self, name: str) -> RunContext:
        """The context whose tokenizer step ``name``'s model reads (``teacher`` or a stage
        name): the original one for the teacher and the stages before a vocab stage."""
        return self._before if self._before is not None and name in self._before_names else self

    # ------------------------------------------------------------------ data
    @cached_property
    def raw(self) -> dict:
        from edgesmith.data import build_splits

        return build_splits(self.recipe.data, held_out=self.probe_texts or None)

    @cached_property
    def probe_raw(self) -> tuple | None:
        """The probe's (train, test) texts and labels, untokenized; None without a probe."""
        if self.recipe.probe is None:
            return None
        from edgesmith.data import load_probe

        return load_probe(self.recipe.probe, self.recipe.seed)

    @cached_property
    def probe_texts(self) -> set[str]:
        """Every probe text (train and test): no data split, distillation or vocabulary sees them,
        so a recipe may distil on the rest of the probe's source as unlabelled in-domain text."""
        return {t for part in self.probe_raw or () for t in part.x}

    @property
    def is_text(self) -> bool:
        return self.raw["train"].kind == "text"

    @cached_property
    def image_shape(self) -> tuple[int, int]:
        """(in_channels, image_size) of the image data."""
        x = self.raw["train"].x
        return int(x.shape[1]), int(x.shape[-1])

    @cached_property
    def num_classes(self) -> int | None:
        tr = self.raw["train"]
        if tr.classes:
            return len(tr.classes)
        if tr.y is not None:
            return int(max(int(tr.y.max()), int(self.raw["eval"].y.max()) if self.raw["eval"].y is not None else 0) + 1)
        return None

    @cached_property
    def task(self) -> Task:
        d = self.recipe.data
        if self.tokenizer is not None:
            return EmbeddingTask(self.tokenizer, d.max_length)
        x = self.raw["train"].x
        mean = d.mean or [float(x[:, c].mean()) for c in range(x.shape[1])]
        std = d.std or [float(x[:, c].std()) for c in range(x.shape[1])]
        return ClassificationTask([round(m, 6) for m in mean], [round(s, 6) for s in std], self.raw["train"].classes)

    @cached_property
    def tensors(self) -> dict[str, TensorSet]:
        return {k: self.task.tensors(v) for k, v in self.raw.items()}

    def train_val(self, fraction: float) -> tuple[TensorSet, TensorSet | None]:
        """Deterministic hold-out of the train split for validation. Rows a source's
        ``repeat`` added are never held out, and follow their original: a held-out row's
        copies leave the training part too, so the validation is as without ``repeat``."""
        train, copy_of = self.tensors["train"], self.raw["train"].copy_of
        n = len(train) - (0 if copy_of is None else len(copy_of))  # the rows before any copy
        n_val = int(round(n * fraction))
        if n_val == 0:
            return train, None
        order = torch.randperm(n, generator=torch.Generator().manual_seed(self.recipe.seed))
        keep = order[n_val:]
        if copy_of is not None:
            held = torch.zeros(n, dtype=torch.bool)
            held[order[:n_val]] = True
            keep = torch.cat([keep, n + torch.nonzero(~held[torch.from_numpy(copy_of)]).flatten()])
        return train.take(keep), train.take(order[:n_val])

    # ---------------------------------------------------------------- models
    def new_student(self) -> torch.nn.Module:
        from edgesmith.models import build_student

        torch.manual_seed(self.recipe.seed)  # same student initialisation on every (re-)run
        c, s = (None, None) if self.is_text else self.image_shape
        texts = list(self.raw["train"].x) if self.is_text else None
        return build_student(self.recipe.student, self.teacher, self.num_classes, c, s, self.tokenizer, texts)

    def example_inputs(self, n: int = 2) -> tuple[torch.Tensor, ...]:
        """The first ``n`` eval samples, prepared as model inputs (what exporters trace with)."""
        # fresh contiguous tensors: torch.export guards a sliced view's sizes against
        # its parent's storage (a seq-64 parent caps the dynamic axis at 63)
        return tuple(t.clone() for t in self.task.prepare(self.tensors["eval"].take(slice(0, n)).inputs))

    def calibration_inputs(self, n: int, batch_size: int = 16) -> list[tuple[torch.Tensor, ...]]:
        """The first ``n`` calibration samples, prepared like :meth:`example_inputs`, in batches."""
        data = self.tensors["calibration"]
        data = data.take(slice(0, min(n, len(data))))
        return [tuple(t.clone() for t in self.task.prepare(b.inputs)) for b in data.batches(batch_size)]
    @property
    def targets_cache(self) -> Path:
        """Where the teacher's outputs on the training data are cached, by content
        (:mod:`edgesmith.compress.targets`): shared by the stages and by re-runs."""
        from edgesmith.cache import cache_root

        return cache_root() / "targets"

    def teacher_eval_outputs(self) -> torch.Tensor:
        if self._teacher_eval is None:
            view = self.view("teacher")
            self._teacher_eval = view.task.predict(self.teacher, view.tensors["eval"], device=self.device)
        return self._teacher_eval

    # ------------------------------------------------------------ evaluation
    @cached_property
    def probe(self) -> tuple[TensorSet, TensorSet] | None:
        if self.probe_raw is None:
            return None
        return tuple(self.task.tensors(part) for part in self.probe_raw)

    @cached_property
    def retrieval(self) -> tuple[TensorSet, TensorSet] | None:
        """(queries, documents) of the held-out retrieval check, tokenized; None when the
        recipe turns it off, the model takes no text or WordNet is not installed."""
        if self.recipe.retrieval is None or self.tokenizer is None:
            return None
        from edgesmith.data.sources import RawData
        from edgesmith.data.texts import wordnet_heldout
        from edgesmith.errors import DataError
        from edgesmith.progress import log

        try:
            pairs = wordnet_heldout()
        except DataError as e:
            log(f"[yellow]retrieval check skipped: {e}[/yellow]")
            return None
        return tuple(self.task.tensors(RawData("text", [p[i] for p in pairs])) for i in (0, 1))

    def evaluate(self, model: torch.nn.Module, name: str, is_teacher: bool = False) -> dict:
        """Quality on the held-out eval split (cosine to the teacher: mean and 5th
        percentile), the probe's accuracy and the held-out retrieval recall, if any."""
        if self.view(name) is not self:
            return self.view(name).evaluate(model, name, is_teacher)
        outs = self.task.predict(model, self.tensors["eval"], device=self.device)
        teacher_outs = None if is_teacher else self.teacher_eval_outputs()
        metrics = self.task.metrics(outs, teacher_outs, self.tensors["eval"].labels)
        if self.probe is not None:
            metrics["accuracy"] = self.probe_metrics(model, name)
        if self.retrieval is not None:
            queries, docs = (self.task.predict(model, t, device=self.device) for t in self.retrieval)
            metrics.update(self.retrieval_metrics(queries, docs, is_teacher))
        return metrics

    def retrieval_metrics(self, queries: torch.Tensor, docs: torch.Tensor, is_teacher: bool = False) -> dict:
        """R@1 and R@10 of a model's outputs on the held-out retrieval check and, for a
        student, its R@1 as a share of the teacher's on the same queries with the share's
        paired 95% interval (on a few hundred queries it spans several points, which a
        reader must see)."""
        from edgesmith.models.fidelity import paired_share, recall_at, retrieval_ranks

        rank = retrieval_ranks(queries, docs)
        out = recall_at(rank)
        if is_teacher:
            if self._teacher_hits is None:
                self._teacher_hits = rank < 1
            return out
        teacher_hits = self.teacher_retrieval_hits()
        if teacher_hits is not None and teacher_hits.any():
            share = paired_share((rank < 1).numpy(), teacher_hits.numpy())
            out.update({"retrieval_r1_vs_teacher": share["share"], "retrieval_r1_vs_teacher_lo": share["share_lo"],
                        "retrieval_r1_vs_teacher_hi": share["share_hi"]})
        return out

    def teacher_retrieval_hits(self) -> torch.Tensor | None:
        """Per held-out retrieval query, whether the teacher ranks its own document first
        (computed once a run); None without a retrieval check or a teacher."""
        if self._teacher_hits is None:
            view = self.view("teacher")
            if view.retrieval is None or self.teacher is None:
                return None
            from edgesmith.models.fidelity import retrieval_ranks

            queries, docs = (view.task.predict(self.teacher, t, device=self.device) for t in view.retrieval)
            self._teacher_hits = retrieval_ranks(queries, docs) < 1
        return self._teacher_hits

    def probe_head(self, model: torch.nn.Module, name: str):
        """The logistic-regression head on ``model``'s frozen embeddings."""
        if self.view(name) is not self:
            return self.view(name).probe_head(model, name)
        if name not in self._heads:
            tr = self.probe[0]
            emb = self.task.predict(model, tr, device=self.device).numpy()
            self._heads[name] = fit_probe_head(emb, tr.labels.numpy(), self.recipe.probe.C)
        return self._heads[name]

    def probe_metrics(self, model: torch.nn.Module, name: str) -> float:
        if self.view(name) is not self:
            return self.view(name).probe_metrics(model, name)
        tr, te = self.probe
        head = self.probe_head(model, name)
        emb = self.task.predict(model, te, device=self.device).numpy()
        return float((head.predict(emb) == te.labels.numpy()).mean())

    def score_outputs(self, outputs: np.ndarray, name: str, model: torch.nn.Module, on: str) -> float | None:
        """Accuracy of runtime ``outputs`` computed on the split ``on``."""
        if on == "probe":
            head = self.probe_head(model, name)
            return float((head.predict(outputs) == self.probe[1].labels.numpy()[: len(outputs)]).mean())
        labels = self.tensors["eval"].labels
        if labels is None:
            return None
        return float((outputs.argmax(-1) == labels.numpy()[: len(outputs)]).mean())
