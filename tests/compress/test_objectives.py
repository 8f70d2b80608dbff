"""The optional distillation terms: zero where student and teacher agree, positive
where they differ, off by default (the loss is then the embedding loss alone)."""

from __future__ import annotations

import copy

import pytest
import torch

from edgesmith.compress.distill import DistillConfig, distill
from edgesmith.compress.lowrank import LowRankConfig
from edgesmith.compress.objectives import attention_kd_loss, contrastive_kd_loss
from edgesmith.compress.prune import PruneConfig
from edgesmith.compress.recovery import KDRecovery
from edgesmith.conf.base import RecipeError


def test_contrastive_term():
    g = torch.Generator().manual_seed(0)
    t = torch.randn(8, 16, generator=g)
    assert float(contrastive_kd_loss(t * 3, t, 0.05)) == pytest.approx(0.0, abs=1e-6)  # scale-free
    assert float(contrastive_kd_loss(torch.randn(8, 16, generator=g), t, 0.05)) > 0.1
    assert float(contrastive_kd_loss(t[:2], t[:2], 0.05)) == 0.0  # too few texts for relations


def test_attention_term(bert, text_data):
    _, data = text_data
    ids, mask = data.inputs
    same = copy.deepcopy(bert)
    emb, loss = attention_kd_loss(same, bert, ids, mask)
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-6)
    torch.testing.assert_close(emb, bert(ids, mask))
    with torch.no_grad():
        for p in same.parameters():
            p.add_(0.05 * torch.randn_like(p))
    assert float(attention_kd_loss(same, bert, ids, mask)[1].detach()) > 1e-4


def test_terms_train_and_are_checked(bert, text_data):
    task, data = text_data
    student = copy.deepcopy(bert)
    with torch.no_grad():
        for p in student.parameters():
            p.add_(0.05 * torch.randn_like(p))
    cfg = DistillConfig(epochs=2, lr=1e-3, batch_size=8, val_fraction=0, contrastive_weight=0.5, attention_weight=1.0)
    _, fit = distill(student, bert, cfg, task, data)
    assert fit.history[-1]["loss"] < fit.history[0]["loss"], fit.history
    with pytest.raises(RecipeError, match="attention_weight"):
        distill(torch.nn.Linear(2, 2), bert, DistillConfig(attention_weight=1.0), task, data)
    with pytest.raises(RecipeError, match="contrastive_weight"):
        distill(student, bert, DistillConfig(loss="hidden", contrastive_weight=1.0), task, data)


def _asks_about_augmented_batches(teacher, data, train) -> None:
    """``train()`` (2 epochs, batch 16, ``augment: [shift]``) runs ``teacher`` on every
    training batch, shifted, and on nothing else (no targets on the originals)."""
    seen = []
    hook = teacher.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    try:
        train()
    finally:
        hook.remove()
    online = [x for x in seen if x.shape[0] == 16]  # the training batches
    assert len(online) == 2 * 64 // 16 == len(seen), len(seen)
    originals = {tuple(x.flatten().tolist()) for x in data.inputs[0]}
    shifted = sum(tuple(x.flatten().tolist()) not in originals for batch in online for x in batch)
    assert shifted >= 64, shifted  # most batches are shifted (a (0, 0) shift has probability 1/25 per batch)


def test_augmented_distillation_asks_the_teacher_about_the_augmented_images(resnet, image_data, bert, text_data):
    """``augment`` (classifiers): targets on the unaugmented images would not fit, so each
    training batch is shifted and the teacher is run on exactly what the student sees."""
    task, data = image_data
    student = copy.deepcopy(resnet)  # before the hook, which a copy would carry
    cfg = DistillConfig(epochs=2, lr=1e-3, batch_size=16, val_fraction=0, augment=["shift"])
    fits = []
    _asks_about_augmented_batches(resnet, data, lambda: fits.append(distill(student, resnet, cfg, task, data)[1]))
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in fits[0].history)
    with pytest.raises(RecipeError, match="augment"):
        distill(copy.deepcopy(bert), bert, DistillConfig(augment=["shift"]), *text_data)


def test_augmented_recovery_asks_the_reference_about_the_augmented_images(resnet, image_data, bert, text_data):
    """Prune and low-rank KD recovery take the same ``augment`` as distillation."""
    task, data = image_data
    model = copy.deepcopy(resnet)
    cfg = PruneConfig(epochs=2, lr=1e-3, batch_size=16, augment=["shift"])
    records = []
    _asks_about_augmented_batches(resnet, data,
                                  lambda: records.append(KDRecovery(resnet, cfg, task, data)(model)))
    assert records[0]["epochs_run"] == 2
    with pytest.raises(RecipeError, match="augment"):
        KDRecovery(bert, LowRankConfig(rank=4, augment=["hflip"]), *text_data)
