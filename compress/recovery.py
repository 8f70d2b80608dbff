"""What pruning and low-rank factorization share: recovery fine-tuning with
knowledge distillation (from the run's teacher, else from the model as it was
before compression), the gradual sparsity schedule, and size measurement.

Example:
    >>> [round(s, 4) for s in cubic_schedule(0.8, 4)]  # Zhu & Gupta: fast early, slow late
    [0.4625, 0.7, 0.7875, 0.8]
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import torch
from torch import nn

from edgesmith.compress.distill import augmented_logit_kd_loss, embedding_kd_loss, logit_kd_loss
from edgesmith.compress.targets import teacher_outputs
from edgesmith.compress.train import fit
from edgesmith.errors import RecipeError
from edgesmith.models import count_params
from edgesmith.models.io import state_bytes
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["cubic_schedule", "model_sizes", "KDRecovery"]


def cubic_schedule(final: float, steps: int) -> list[float]:
    """Target sparsity after each of ``steps`` pruning steps (Zhu & Gupta, 2017):
    ``s_t = s_f * (1 - (1 - t / n) ** 3)``; the last step reaches ``final`` exactly."""
    return [final * (1 - (1 - t / steps) ** 3) for t in range(1, steps + 1)]


def model_sizes(model: nn.Module) -> dict[str, int]:
    """Parameters, dense safetensors bytes and gzip bytes of those (where
    unstructured zeros show up)."""
    data = state_bytes(model)
    return {"params": count_params(model), "bytes": len(data),
            "gzip_bytes": len(gzip.compress(data, compresslevel=6, mtime=0))}


class KDRecovery:
    """Fine-tunes a compressed model towards ``reference``'s outputs.

    The reference outputs on ``train`` (and ``val``) are computed once, so a
    gradual schedule pays for them once; with ``cache_dir`` they are read from the
    teacher-target cache the distillation stage filled (:mod:`edgesmith.compress.targets`). Classifiers use logit KD mixed with the
    hard labels (``alpha``); sentence encoders use cosine + MSE embedding KD.

    With ``config.augment`` (classifiers), each batch is augmented and the reference is
    asked about the augmented images, as in distillation.

    Args:
        reference: the teacher (or the uncompressed model); not modified.
        config: a stage config with ``epochs``, ``lr``, ``batch_size``,
            ``temperature``, ``alpha``, ``augment`` and ``name``.
    """

    def __init__(self, reference: nn.Module, config: Any, task: Task, train: TensorSet | None,
                 val: TensorSet | None = None, *, device: str = "cpu", seed: int = 0,
                 cache_dir: Path | None = None):
        self.config, self.task, self.device, self.seed = config, task, device, seed
        self.enabled = config.epochs > 0 and train is not None and len(train) > 0
        self.train = self.val = self.val_ref = None
        self.augment = list(getattr(config, "augment", None) or [])
        if self.augment and task.kind != "classification":
            raise RecipeError("augment", f"augments images for the logit KD of a classifier, not a {task.kind} "
                                         "model; set it to []")
        if not self.enabled:
            return
        self.reference = reference = reference.to(device).eval()
        self.gen = torch.Generator().manual_seed(seed + 3)
        # with augment the reference is asked about each augmented batch: no outputs on the originals
        aux = None if self.augment else teacher_outputs(reference, task, train, device=device, cache_dir=cache_dir)
        self.train = TensorSet(train.inputs, train.labels, aux=aux)
        if val is not None and len(val):
            self.val, self.val_ref = val, teacher_outputs(reference, task, val, device=device, cache_dir=cache_dir)

    def loss(self, model: nn.Module, batch: TensorSet) -> torch.Tensor:
        if self.augment:
            return augmented_logit_kd_loss(model, self.reference, batch, self.config, self.gen)
        out = model(*batch.inputs)
        if self.task.kind == "classification":
            return logit_kd_loss(out, batch.aux, batch.labels, self.config.temperature, self.config.alpha)
        return embedding_kd_loss(out, batch.aux, 1.0, 1.0)

    def score(self, model: nn.Module) -> float:
        """Agreement with the reference on ``val`` (top-1 agreement or mean cosine)."""
        m = self.task.metrics(self.task.predict(model, self.val, device=self.device), self.val_ref, self.val.labels)
        return m.get("teacher_agreement", m.get("cosine_to_teacher", 0.0))

    def __call__(self, model: nn.Module, step: int | None = None) -> dict[str, Any] | None:
        """Fine-tune ``model`` in place; returns a JSON-able record (None when disabled)."""
        if not self.enabled:
            return None
        c = self.config
        desc = f"{c.name or c.kind} recovery" + (f" {step}" if step is not None else "")
        res = fit(model, self.task, self.train, self.loss, epochs=c.epochs, lr=c.lr, batch_size=c.batch_size,
                  schedule="cosine", validate=self.score if self.val is not None else None,
                  device=self.device, seed=self.seed + (step or 0), desc=desc,
                  precision=getattr(c, "precision", "fp32"), dropout=getattr(c, "dropout", None))
        return {"step": step, "epochs_run": res.epochs_run, "best_val": res.best_score,
                "seconds": round(res.seconds, 2), "samples_per_s": round(res.samples_per_s, 1),
                "precision": res.precision, "dropout": getattr(c, "dropout", None)}
