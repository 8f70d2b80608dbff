"""compress.train.fit: the ``dropout`` training key (every dropout layer at the given rate
while it trains, the model's own rates back afterwards)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesmith.compress.train import fit
from edgesmith.models.tasks import ClassificationTask, TensorSet


@pytest.mark.parametrize("dropout", [None, 0.0, 0.25])
def test_dropout_sets_every_layer_while_training_and_is_restored(dropout):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 64), nn.Dropout(0.5), nn.Linear(64, 32), nn.Dropout1d(0.5), nn.Linear(32, 3))
    zeros: list[float] = []  # the share of activations each dropout layer zeroed, per training step
    for m in (net[1], net[3]):
        m.register_forward_hook(lambda mod, args, out: zeros.append(
            float(((out == 0) & (args[0] != 0)).float().mean())) if mod.training else None)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 8, generator=g), torch.randint(0, 3, (256,), generator=g)
    task = ClassificationTask([0.0], [1.0], ["a", "b", "c"])
    fit(net, task, TensorSet((x,), y), lambda m, b: nn.functional.cross_entropy(m(*b.inputs), b.labels),
        epochs=2, lr=1e-3, batch_size=64, dropout=dropout)
    expected = 0.5 if dropout is None else dropout
    assert len(zeros) == 2 * 2 * 4 and abs(sum(zeros) / len(zeros) - expected) < 0.03, zeros
    assert net[1].p == net[3].p == 0.5  # the model's own rates again
