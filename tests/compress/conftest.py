"""Tiny models of the three families every compression technique is tested on:
a plain ``nn.Sequential``, a residual CNN and a BERT-style encoder (the real MiniLM
with WordNet texts for the data-aware techniques: ``minilm_on_wordnet`` in tests/conftest.py)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from edgesmith.models.tasks import ClassificationTask, EmbeddingTask, TensorSet


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models train many times faster on one thread on a shared 2-core box."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


class TinyResNet(nn.Module):
    """stem -> one residual block (coupled channels) -> strided conv -> pool -> fc."""

    def __init__(self, width: int = 8, num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.conv1 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.down = nn.Sequential(nn.Conv2d(width, 2 * width, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(2 * width), nn.ReLU())
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        x = torch.relu(x + self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x))))))
        return self.fc(self.down(x).mean((2, 3)))


def _randomize_bn(model: nn.Module) -> nn.Module:
    """Non-trivial BatchNorm statistics, so that eval outputs depend on them."""
    g = torch.Generator().manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


@pytest.fixture
def mlp() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 4)).eval()


@pytest.fixture
def mlp_data() -> tuple[ClassificationTask, TensorSet]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(128, 16, generator=g)
    return ClassificationTask([0.0], [1.0]), TensorSet((x,), torch.randint(0, 4, (128,), generator=g))


@pytest.fixture
def resnet() -> TinyResNet:
    torch.manual_seed(0)
    return _randomize_bn(TinyResNet())


@pytest.fixture
def image_data() -> tuple[ClassificationTask, TensorSet]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 1, 8, 8, generator=g)
    return ClassificationTask([0.0], [1.0]), TensorSet((x,), torch.randint(0, 10, (64,), generator=g))


BERT = {"vocab_size": 100, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
        "intermediate_size": 64, "max_position_embeddings": 32}


@pytest.fixture
def bert():
    from transformers import BertConfig, BertModel

    from edgesmith.models.encoder import SentenceEncoder

    torch.manual_seed(0)
    config = BertConfig(**BERT, attn_implementation="eager")
    return SentenceEncoder(BertModel(config, add_pooling_layer=False)).eval()


@pytest.fixture
def text_data() -> tuple[EmbeddingTask, TensorSet]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1, BERT["vocab_size"], (32, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[::2, 8:] = 0
    return EmbeddingTask(tokenizer=None, max_length=16), TensorSet((ids, mask))


