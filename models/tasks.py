"""A task says how a model family is fed and judged: classification (images ->
logits, accuracy and top-1 agreement) or embedding (token ids -> sentence
vectors, cosine to the teacher). The pipeline, distillation and exporters only
talk to models through a task."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn


@dataclass
class TensorSet:
    """Model inputs (a tuple of equal-length tensors) and optional labels."""

    inputs: tuple[torch.Tensor, ...]
    labels: torch.Tensor | None = None
    texts: list[str] | None = None
    aux: torch.Tensor | None = None  # e.g. cached teacher outputs, sliced with the inputs

    def __len__(self) -> int:
        return int(self.inputs[0].shape[0])

    def take(self, idx: torch.Tensor | slice) -> TensorSet:
        return TensorSet(
            tuple(t[idx] for t in self.inputs),
            None if self.labels is None else self.labels[idx],
            aux=None if self.aux is None else self.aux[idx],
        )

    def to(self, device: str) -> TensorSet:
        def move(t):
            return None if t is None else t.to(device)

        return TensorSet(tuple(t.to(device) for t in self.inputs), move(self.labels), aux=move(self.aux))

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None):
        n = len(self)
        order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
        for i in range(0, n, batch_size):
            yield self.take(order[i : i + batch_size])


class Task:
    kind: str
    input_names: list[str]
    output_names: list[str]

    def tensors(self, raw) -> TensorSet:
        raise NotImplementedError

    def prepare(self, inputs: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, ...]:
        """Per-batch trimming (e.g. padding) before a forward pass."""
        return inputs

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        raise NotImplementedError

    @torch.inference_mode()
    def predict(self, model: nn.Module, data: TensorSet, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
        """Run ``model`` over ``data`` in eval mode; returns outputs on the CPU."""
        was_training = model.training
        model.eval()
        order = self.length_order(data)
        ordered = data if order is None else data.take(order)
        outs = []
        for b in ordered.batches(batch_size):
            inputs = tuple(t.to(device) for t in self.prepare(b.inputs))
            outs.append(model(*inputs).float().cpu())
        model.train(was_training)
        if not outs:
            return torch.empty(0)
        out = torch.cat(outs)
        if order is not None:
            out = out[torch.argsort(order)]
        return out

    def length_order(self, data: TensorSet) -> torch.Tensor | None:
        """An order that batches similar lengths together (None: keep order)."""
        return None

    def metrics(self, outputs: torch.Tensor, teacher_outputs: torch.Tensor | None, labels: torch.Tensor | None) -> dict:
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """Preprocessing facts for the bundle manifest and summary."""
        return {"task": self.kind}


@dataclass
class ClassificationTask(Task):
    """Images in [0, 1], normalised by per-channel ``mean``/``std``."""

    mean: list[float]
    std: list[float]
    classes: list[str] | None = None
    kind: str = "classification"
    input_names: list[str] = field(default_factory=lambda: ["pixel_values"])
    output_names: list[str] = field(default_factory=lambda: ["logits"])

    def tensors(self, raw) -> TensorSet:
        x = torch.as_tensor(np.asarray(raw.x, dtype=np.float32))
        mean = torch.tensor(self.mean).view(1, -1, 1, 1)
        std = torch.tensor(self.std).view(1, -1, 1, 1)
        y = None if raw.y is None else torch.as_tensor(np.asarray(raw.y, dtype=np.int64))
        return TensorSet(((x - mean) / std,), y)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {"pixel_values": {0: "batch"}, "logits": {0: "batch"}}

    def metrics(self, outputs, teacher_outputs, labels) -> dict:
        pred = outputs.argmax(-1)
        m: dict[str, float] = {}
        if labels is not None:
            m["accuracy"] = float((pred == labels).float().mean())
        if teacher_outputs is not None:
            m["teacher_agreement"] = float((pred == teacher_outputs.argmax(-1)).float().mean())
        return m

    def describe(self) -> dict[str, Any]:
        return {"task": self.kind, "mean": self.mean, "std": self.std, "classes": self.classes}


@dataclass
class EmbeddingTask(Task):
    """Texts tokenised to ``max_length``; outputs are sentence embeddings."""

    tokenizer: Any
    max_length: int = 128
    kind: str = "embedding"
    input_names: list[str] = field(default_factory=lambda: ["input_ids", "attention_mask"])
    output_names: list[str] = field(default_factory=lambda: ["embeddings"])

    def tensors(self, raw) -> TensorSet:
        texts = list(raw.x)
        enc = self.tokenizer(
            texts, padding="longest", truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        y = None if raw.y is None else torch.as_tensor(np.asarray(raw.y, dtype=np.int64))
        return TensorSet((enc["input_ids"], enc["attention_mask"]), y, texts)

    def length_order(self, data: TensorSet) -> torch.Tensor | None:
        return torch.argsort(data.inputs[1].sum(1), stable=True)

    def prepare(self, inputs):
        ids, mask = inputs
        n = int(mask.sum(1).max()) if mask.numel() else 1
        return ids[:, :n], mask[:, :n]

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        return {
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            "embeddings": {0: "batch"},
        }

    def metrics(self, outputs, teacher_outputs, labels) -> dict:
        if teacher_outputs is None:
            return {}
        from edgesmith.models.fidelity import cosine_stats

        return cosine_stats(outputs, teacher_outputs)

    def describe(self) -> dict[str, Any]:
        return {"task": self.kind, "max_length": self.max_length, "tokenizer": type(self.tokenizer).__name__}


def fit_probe_head(train_emb: np.ndarray, train_y: np.ndarray, C: float = 1.0):
    """A logistic-regression head on frozen embeddings: the one protocol used to
    score sentiment (or any label) for every model and runtime alike."""
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=C, max_iter=2000).fit(train_emb, train_y)
