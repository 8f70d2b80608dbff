"""Knowledge distillation: logit KD (Hinton et al.) for classifiers and
embedding KD (cosine + MSE) for sentence encoders, with the teacher's outputs
computed once for every epoch (and, with ``targets_cache``, once for every stage
and re-run: :mod:`edgesmith.compress.targets`).

Example:
    >>> student = distill(student, teacher, DistillConfig(epochs=2), task, train, val)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from edgesmith.compress.objectives import attention_kd_loss, contrastive_kd_loss
from edgesmith.compress.stage import in_stage, register_stage
from edgesmith.compress.targets import teacher_outputs
from edgesmith.compress.train import FitResult, TrainingKeys, augment_images, fit
from edgesmith.conf.base import RecipeError, at_least, between
from edgesmith.conf.stage import StageConfig
from edgesmith.models.tasks import Task, TensorSet


@dataclass
class DistillConfig(StageConfig, TrainingKeys):
    kind = "distill"
    loss: Literal["auto", "logit", "embedding", "hidden"] = "auto"
    epochs: int = field(default=3, metadata=at_least(0))  # 0: keep the student as built (a static table)
    lr: float = field(default=1e-3, metadata=at_least(0, open_=True))
    batch_size: int = field(default=64, metadata=at_least(1))
    weight_decay: float = field(default=0.01, metadata=at_least(0))
    schedule: Literal["onecycle", "cosine", "constant"] = "onecycle"
    patience: int | None = field(default=None, metadata=at_least(1))
    temperature: float = field(default=4.0, metadata=at_least(0, open_=True))
    alpha: float = field(default=0.9, metadata=between(0, 1))
    cosine_weight: float = field(default=1.0, metadata=at_least(0))
    hidden_weight: float = field(default=1.0, metadata=at_least(0))
    mse_weight: float = field(default=1.0, metadata=at_least(0))
    val_fraction: float = field(default=0.05, metadata=between(0, 0.5))
    # stronger objectives for sentence encoders (compress/objectives.py), off by default
    contrastive_weight: float = field(default=0.0, metadata=at_least(0))
    contrastive_temperature: float = field(default=0.05, metadata=at_least(0, open_=True))
    attention_weight: float = field(default=0.0, metadata=at_least(0))
    # classifiers: augment each batch (as a teacher's ``train.augment``) and run the teacher on the
    # augmented images, so the student matches it on more than the cached training images
    augment: list[Literal["hflip", "shift"]] = field(default_factory=list)

    def validate(self) -> None:
        if self.cosine_weight == 0 and self.mse_weight == 0:
            raise RecipeError("cosine_weight", "cosine_weight and mse_weight cannot both be 0")


def logit_kd_loss(student_logits, teacher_logits, labels, temperature: float, alpha: float) -> torch.Tensor:
    t = temperature
    kd = F.kl_div(F.log_softmax(student_logits / t, -1), F.log_softmax(teacher_logits / t, -1),
                  reduction="batchmean", log_target=True) * t * t
    if labels is None or alpha >= 1:
        return kd
    return alpha * kd + (1 - alpha) * F.cross_entropy(student_logits, labels)


def augmented_logit_kd_loss(model: nn.Module, teacher: nn.Module, batch: TensorSet, config,
                            gen: torch.Generator) -> torch.Tensor:
    """Logit KD on an augmented copy of ``batch`` (``config.augment``), the teacher asked about
    the same augmented images (its cached outputs belong to the originals)."""
    x = augment_images(batch.inputs[0], config.augment, gen)
    with torch.no_grad():
        target = teacher(x)
    return logit_kd_loss(model(x), target, batch.labels, config.temperature, config.alpha)


def embedding_kd_loss(student_emb, teacher_emb, cosine_weight: float, mse_weight: float) -> torch.Tensor:
    cos = 1 - F.cosine_similarity(student_emb, teacher_emb, dim=-1).mean()
    mse = ((student_emb - teacher_emb) ** 2).sum(-1).mean()
    return cosine_weight * cos + mse_weight * mse


def layer_map(n_student: int, n_teacher: int) -> list[int]:
    """Uniform student -> teacher layer map (TinyBERT): student block ``j`` learns
    teacher hidden state ``(j + 1) * n_teacher // n_student``; the last blocks align."""
    return [(j + 1) * n_teacher // n_student for j in range(n_student)]


def hidden_kd_loss(student, teacher, ids, mask, teacher_emb, config) -> torch.Tensor:
    """Embedding KD plus masked MSE between mapped hidden states (same width)."""
    s_emb, s_hidden = student.forward_with_hidden(ids, mask)
    with torch.no_grad():
        _, t_hidden = teacher.forward_with_hidden(ids, mask)
    if s_hidden[-1].shape[-1] != t_hidden[-1].shape[-1]:
        raise RecipeError("loss", "'hidden' needs equal hidden widths in student and teacher; use 'embedding'")
    m = mask.unsqueeze(-1).to(s_hidden[-1].dtype)
    denom = m.sum() * s_hidden[-1].shape[-1]
    mapping = layer_map(len(s_hidden) - 1, len(t_hidden) - 1)
    hid = sum(((s_hidden[j + 1] - t_hidden[t]) ** 2 * m).sum() / denom for j, t in enumerate(mapping)) / len(mapping)
    return embedding_kd_loss(s_emb, teacher_emb, config.cosine_weight, config.mse_weight) + config.hidden_weight * hid


def distill(
    student: nn.Module,
    teacher: nn.Module,
    config: DistillConfig,
    task: Task,
    train: TensorSet,
    val: TensorSet | None = None,
    *,
    device: str = "cpu",
    checkpoint_dir: Path | None = None,
    seed: int = 0,
    targets_cache: Path | None = None,
) -> tuple[nn.Module, FitResult]:
    """Train ``student`` to match ``teacher`` on ``train``; returns the student
    with its best weights on ``val`` (teacher agreement / cosine). The teacher's
    outputs are read from ``targets_cache`` when it holds them
    (:func:`~edgesmith.compress.targets.teacher_outputs`)."""
    loss_kind = config.loss if config.loss != "auto" else ("logit" if task.kind == "classification" else "embedding")
    if loss_kind == "logit" and task.kind != "classification":
        raise RecipeError("loss", f"'logit' needs a classifier; this is a {task.kind} model: use 'embedding'")
    if loss_kind in ("embedding", "hidden") and task.kind != "embedding":
        raise RecipeError("loss", f"'{loss_kind}' needs a sentence encoder; this is a {task.kind} model: use 'logit'")
    if loss_kind == "hidden" and not all(hasattr(m, "forward_with_hidden") for m in (student, teacher)):
        raise RecipeError("loss", "'hidden' needs SentenceEncoder student and teacher; use 'embedding'")
    if (config.contrastive_weight or config.attention_weight) and loss_kind != "embedding":
        raise RecipeError("contrastive_weight" if config.contrastive_weight else "attention_weight",
                          f"adds to the 'embedding' loss, not '{loss_kind}'; set loss: embedding or set it to 0")
    if config.attention_weight and not all(hasattr(m, "forward_with_hidden") for m in (student, teacher)):
        raise RecipeError("attention_weight", "needs transformer student and teacher (SentenceEncoder); set it to 0")
    if config.augment and loss_kind != "logit":
        raise RecipeError("augment", f"augments images for the 'logit' loss of a classifier, not '{loss_kind}'; "
                                     "set it to []")
    if config.epochs == 0:
        return student.eval(), FitResult(None, 0, 0)
    teacher.to(device).eval()
    # the teacher's outputs, computed once and reused every epoch; with ``augment`` it is asked
    # about each augmented batch instead, so outputs on the originals would go unused
    targets = None if config.augment else teacher_outputs(teacher, task, train, device=device,
                                                             cache_dir=targets_cache)
    cached = TensorSet(train.inputs, train.labels, aux=targets)
    gen = torch.Generator().manual_seed(seed + 2)

    def loss_fn(model: nn.Module, batch: TensorSet) -> torch.Tensor:
        if config.augment:
            return augmented_logit_kd_loss(model, teacher, batch, config, gen)
        if loss_kind == "hidden":
            return hidden_kd_loss(model, teacher, *batch.inputs, batch.aux, config)
        if config.attention_weight:
            out, attention = attention_kd_loss(model, teacher, *batch.inputs)
        else:
            out, attention = model(*batch.inputs), 0.0
        if loss_kind == "logit":
            return logit_kd_loss(out, batch.aux, batch.labels, config.temperature, config.alpha)
        loss = embedding_kd_loss(out, batch.aux, config.cosine_weight, config.mse_weight)
        if config.contrastive_weight:
            loss = loss + config.contrastive_weight * contrastive_kd_loss(out, batch.aux, config.contrastive_temperature)
        return loss + config.attention_weight * attention

    validate = None
    if val is not None and len(val):
        val_teacher = teacher_outputs(teacher, task, val, device=device, cache_dir=targets_cache)

        def validate(model: nn.Module) -> float:
            m = task.metrics(task.predict(model, val, device=device), val_teacher, val.labels)
            return m.get("teacher_agreement", m.get("cosine_to_teacher", 0.0))

    result = fit(
        student, task, cached, loss_fn,
        epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
        weight_decay=config.weight_decay, schedule=config.schedule, patience=config.patience,
        validate=validate, checkpoint_dir=checkpoint_dir, device=device, seed=seed,
        desc=config.name or "distill", precision=config.precision, dropout=config.dropout,
    )
    return student, result


# --------------------------------------------------------- the recipe stage
@register_stage(DistillConfig, skeleton=lambda ctx, prev_model, cfg, info: ctx.new_student())
def run_distill_stage(ctx, cfg: DistillConfig, model, stage_dir):
    """A new student (``ctx.new_student()``) distilled from the run's teacher."""
    student = ctx.new_student()
    train, val = ctx.train_val(cfg.val_fraction)
    student, fit = in_stage(ctx, cfg, distill, student, ctx.teacher, cfg, ctx.task, train, val,
                            device=ctx.device, checkpoint_dir=stage_dir, seed=ctx.recipe.seed,
                            targets_cache=ctx.targets_cache)
    (stage_dir / "best.safetensors").unlink(missing_ok=True)
    return student, {"fit": {"epochs_run": fit.epochs_run, "best_epoch": fit.best_epoch,
                             "best_val": fit.best_score, "history": fit.history,
                             "samples_per_s": round(fit.samples_per_s, 1), "precision": fit.precision}}
