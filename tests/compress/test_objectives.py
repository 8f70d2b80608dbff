"""The optional distillation terms: zero where student and teacher agree, positive
where they differ, off by default (the loss is then the embedding loss alone)."""

from __future__ import annotations

import copy

import pytest
import torch

from edgesmith.compress.distill import DistillConfig, distill
from edgesmith.compress.objectives import attention_kd_loss, contrastive_kd_loss
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
