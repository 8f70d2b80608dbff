"""Vocabulary pruning: keep only the token embedding rows a domain corpus uses.

A WordPiece tokenizer (BERT, MiniLM) and the model's token embedding table are
cut down together to the special tokens, the tokens the corpus's tokenization
produces (``min_count`` times or more) and any ``keep`` tokens, in their old
order. The new tokenizer's ids index the new, smaller table, so no id-remapping
layer is added to the model: the tokenizer carries the change.

WordPiece splits greedily (longest vocabulary match first), so on a vocabulary
that is a subset of the old one a word whose pieces were all kept is split the
same way: every text whose tokens are all kept gets the same tokens (new ids),
and the pruned model's outputs on it are the original model's. A text with a
dropped token gets ``[UNK]`` for that word, or a split into other kept pieces;
:func:`oov_rates` measures how often.

The token table may be an ``nn.Embedding`` or a low-rank one factorized by
:mod:`edgesmith.compress.lowrank` (``Sequential(Embedding(vocab, r), Linear(r, d))``).

Example:
    >>> small, tok, report = prune_vocab(model, tokenizer, texts)  # doctest: +SKIP
    >>> report["vocab_before"], report["vocab_after"]  # doctest: +SKIP
    (30522, 13173)
"""

from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from edgesmith.compress.stage import in_stage, register_stage
from edgesmith.conf.base import RecipeError, at_least
from edgesmith.conf.stage import StageConfig
from edgesmith.errors import StageError
from edgesmith.models import count_params

__all__ = ["VocabConfig", "prune_vocab", "kept_token_ids", "prune_tokenizer", "prune_embeddings",
           "vocab_shell", "oov_rates", "covered_texts"]


@dataclass
class VocabConfig(StageConfig):
    """Vocabulary pruning settings.

    ``corpus`` picks the texts that define the vocabulary in a pipeline run:
    ``train`` (the train split), ``all`` (train, calibration and eval splits: the
    eval split's OOV rate is then 0 by construction) or ``sources`` (every text of
    ``data.sources`` except the eval split, which stays held out). ``path`` adds a
    UTF-8 text file, one text per line. The probe's texts are never used.
    """

    kind = "vocab"
    corpus: Literal["train", "all", "sources"] = "train"
    path: str | None = None
    min_count: int = field(default=1, metadata=at_least(1))
    keep: list[str] = field(default_factory=list)
    keep_characters: bool = False  # keep every single-character piece: rare words split into letters, not [UNK]
    embeddings: str | None = None  # module name of the token table; default: the model's get_input_embeddings()

    def validate(self) -> None:
        from pathlib import Path

        if self.path is not None and not Path(self.path).expanduser().is_file():
            raise RecipeError("path", f"no such file '{self.path}'; give a text file, one text per line")


def prune_vocab(model: nn.Module, tokenizer: Any, texts: Sequence[str], config: VocabConfig | None = None,
                ) -> tuple[nn.Module, Any, dict[str, Any]]:
    """Prune ``model``'s token table and ``tokenizer`` to the tokens ``texts`` use.

    Returns ``(model, tokenizer, report)``; the inputs are not modified. The report
    holds the vocabulary and parameter counts before and after, the corpus's size,
    ``corpus_texts_covered`` (texts whose tokens were all kept: every one when
    ``min_count`` is 1) and ``corpus_identical`` (the new tokenizer reproduces the
    old tokenization of each covered text, with new ids; checked here).

    Raises:
        RecipeError: an empty corpus, no token table, an unknown ``keep`` token, or a
            ``min_count`` that keeps no token.
        StageError: a tokenizer that is not a fast WordPiece one.
    """
    config = config or VocabConfig()
    name, table = find_token_table(model, config.embeddings)
    _check_tokenizer(tokenizer)
    if table.num_embeddings != len(tokenizer):
        raise RecipeError("embeddings", f"'{name}' has {table.num_embeddings} rows but the tokenizer has "
                                        f"{len(tokenizer)} tokens; they must match")
    kept, counts = kept_token_ids(tokenizer, texts, config.min_count, config.keep, config.keep_characters)
    new_tok = prune_tokenizer(tokenizer, kept)
    remap = {old: new for new, old in enumerate(kept)}
    old_ids = tokenizer(list(texts), add_special_tokens=True)["input_ids"]
    new_ids = new_tok(list(texts), add_special_tokens=True)["input_ids"]
    covered = [(a, b) for a, b in zip(old_ids, new_ids, strict=True) if all(i in remap for i in a)]
    identical = all([remap[i] for i in a] == b for a, b in covered)
    if not identical:
        raise StageError("vocab: the pruned tokenizer splits a corpus text whose tokens were all kept differently "
                         "from the original; please report this (the tokenizer may not be plain WordPiece)")
    pad = tokenizer.pad_token_id
    out = prune_embeddings(model, kept, name, None if pad is None else remap.get(pad))
    before, after = count_params(model), count_params(out)
    return out, new_tok, {
        "embeddings": name, "width": table.embedding_dim, "vocab_before": len(tokenizer), "vocab_after": len(kept),
        "kept_special": len(set(tokenizer.all_special_ids)), "kept_extra": len(config.keep),
        "corpus_texts": len(texts), "corpus_texts_covered": len(covered), "corpus_tokens": sum(counts.values()),
        "corpus_distinct": len(counts),
        "min_count": config.min_count, "keep_characters": config.keep_characters,
        "rows_dropped": len(tokenizer) - len(kept), "params_before": before, "params_after": after,
        "padding_idx": None if pad is None else remap.get(pad), "corpus_identical": identical,
    }


def find_token_table(model: nn.Module, name: str | None = None) -> tuple[str, nn.Embedding]:
    """``(name, table)`` of the token embedding: the module ``name`` (an ``nn.Embedding`` or a
    factorized ``Sequential(Embedding, Linear)``), by default ``get_input_embeddings()`` of the
    Hugging Face model inside; ``table`` is the ``nn.Embedding`` indexed by token ids."""
    if name is None:
        inner = getattr(model, "encoder", model)
        getter = getattr(inner, "get_input_embeddings", None) or getattr(model, "get_input_embeddings", None)
        try:
            found = getter() if getter is not None else None
        except NotImplementedError:
            found = None
        name = next((n for n, m in model.named_modules() if found is not None and m is found), None)
        if name is None:
            raise RecipeError("embeddings", f"{type(model).__name__} has no word embeddings found by "
                                            "get_input_embeddings(); name the token table's module")
    try:
        m = model.get_submodule(name)
    except AttributeError:
        raise RecipeError("embeddings", f"no module '{name}' in {type(model).__name__}") from None
    table = m[0] if isinstance(m, nn.Sequential) and len(m) and isinstance(m[0], nn.Embedding) else m
    if not isinstance(table, nn.Embedding):
        raise RecipeError("embeddings", f"'{name}' is a {type(m).__name__}, not a token table (an nn.Embedding "
                                        "or a factorized Sequential(Embedding, Linear))")
    tied = [n for n, p in model.named_parameters(remove_duplicate=False) if p is table.weight]
    if len(tied) > 1:
        raise RecipeError("embeddings", f"'{name}' shares its weight with {tied[1]}; untie it before pruning")
    return name, table


def _check_tokenizer(tokenizer: Any) -> dict:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise StageError(f"vocab: tokenizer {type(tokenizer).__name__} is not a fast (Rust) tokenizer; "
                         "vocabulary pruning needs a fast WordPiece tokenizer")
    state = json.loads(backend.to_str())
    kind = (state.get("model") or {}).get("type")
    if kind != "WordPiece":
        raise StageError(f"vocab: tokenizer {type(tokenizer).__name__} uses a {kind} model; vocabulary "
                         "pruning supports WordPiece (BERT-style) tokenizers only")
    return state


def kept_token_ids(tokenizer: Any, texts: Iterable[str], min_count: int = 1, keep: Sequence[str] = (),
                   keep_characters: bool = False) -> tuple[list[int], Counter]:
    """Sorted ids to keep, and the corpus's token counts (special tokens not counted).

    Kept: every special token, each token ``texts`` produce at least ``min_count``
    times (untruncated), each ``keep`` token, and with ``keep_characters`` every
    single-character piece (``a``, ``##a``)."""
    texts = [t for t in texts if t and t.strip()]
    if not texts:
        raise RecipeError("corpus", "holds no text; give texts the vocabulary is built from")
    special = set(tokenizer.all_special_ids)
    counts: Counter = Counter()
    for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]:
        counts.update(i for i in ids if i not in special)
    frequent = {i for i, c in counts.items() if c >= min_count}
    if not frequent:
        top = max(counts.values(), default=0)
        raise RecipeError("min_count", f"{min_count} keeps no corpus token (the most frequent appears {top} "
                                       f"times); lower min_count")
    vocab = tokenizer.get_vocab()
    extra = set()
    for i, tok in enumerate(keep):
        if tok not in vocab:
            raise RecipeError(f"keep[{i}]", f"'{tok}' is not a token of the tokenizer's vocabulary")
        extra.add(vocab[tok])
    if keep_characters:
        extra |= {i for t, i in vocab.items() if len(t.removeprefix("##")) == 1}
    return sorted(special | frequent | extra), counts


def prune_tokenizer(tokenizer: Any, kept: Sequence[int]) -> Any:
    """A tokenizer of the same class whose vocabulary is ``kept`` (old ids), in that
    order: old id ``kept[j]`` becomes ``j``. Normalizer, pre-tokenizer, decoder,
    special tokens and post-processor are kept (their ids remapped)."""
    from tokenizers import Tokenizer

    state = _check_tokenizer(tokenizer)
    remap = {old: new for new, old in enumerate(kept)}
    missing = [t for t in tokenizer.all_special_tokens if tokenizer.convert_tokens_to_ids(t) not in remap]
    if missing:
        raise RecipeError("keep", f"special token {missing[0]} must be kept")
    by_id = {i: t for t, i in state["model"]["vocab"].items()}
    state["model"]["vocab"] = {by_id[old]: new for old, new in remap.items() if old in by_id}
    state["added_tokens"] = [{**a, "id": remap[a["id"]]} for a in state.get("added_tokens") or [] if a["id"] in remap]
    if state.get("padding"):
        state["padding"]["pad_id"] = remap.get(state["padding"].get("pad_id"), 0)
    state["post_processor"] = _remap_ids(state.get("post_processor"), remap)
    backend = Tokenizer.from_str(json.dumps(state))
    skip = ("name_or_path", "vocab_file", "tokenizer_file", "tokenizer_object", "added_tokens_decoder")
    kwargs = {k: v for k, v in tokenizer.init_kwargs.items() if k not in skip}
    return type(tokenizer)(tokenizer_object=backend, **kwargs)


def _remap_ids(node: Any, remap: dict[int, int]) -> Any:
    """The post-processor's state with token ids remapped (TemplateProcessing's
    ``ids``, BertProcessing's ``[token, id]`` pairs, nested Sequences)."""
    if isinstance(node, dict):
        out = {}
        for k, v in node.items():
            if k == "ids" and isinstance(v, list):
                out[k] = [remap[i] for i in v]
            elif k in ("sep", "cls") and isinstance(v, list) and len(v) == 2 and isinstance(v[1], int):
                out[k] = [v[0], remap[v[1]]]
            else:
                out[k] = _remap_ids(v, remap)
        return out
    if isinstance(node, list):
        return [_remap_ids(v, remap) for v in node]
    return node


def prune_embeddings(model: nn.Module, kept: Sequence[int], name: str | None = None,
                     padding_idx: int | None = None) -> nn.Module:
    """A copy of ``model`` whose token table holds only the rows ``kept`` (in that order)."""
    name, table = find_token_table(model, name)
    out = vocab_shell(model, len(kept), name, padding_idx)
    with torch.no_grad():
        find_token_table(out, name)[1].weight.copy_(table.weight[torch.as_tensor(list(kept))])
    return out


def vocab_shell(model: nn.Module, num_tokens: int, name: str | None = None,
                padding_idx: int | None = None) -> nn.Module:
    """A copy of ``model`` with a ``num_tokens``-row token table (weights not set): the
    structure a saved vocab stage's weights load into. A Hugging Face config inside
    gets the new ``vocab_size`` and ``pad_token_id``."""
    name, _ = find_token_table(model, name)
    out = copy.deepcopy(model)
    m = out.get_submodule(name)
    old = m[0] if isinstance(m, nn.Sequential) else m
    new = nn.Embedding(num_tokens, old.embedding_dim, padding_idx=padding_idx, max_norm=old.max_norm,
                       norm_type=old.norm_type, scale_grad_by_freq=old.scale_grad_by_freq, sparse=old.sparse,
                       device=old.weight.device, dtype=old.weight.dtype)
    if isinstance(m, nn.Sequential):
        m[0] = new
    else:
        out.set_submodule(name, new)
    for holder in (out, getattr(out, "encoder", None)):  # a HF model, or one wrapped by SentenceEncoder
        config = getattr(holder, "config", None)
        if hasattr(config, "vocab_size"):
            config.vocab_size = num_tokens
            if hasattr(config, "pad_token_id"):
                config.pad_token_id = padding_idx
            break
    return out


def oov_rates(tokenizer: Any, pruned: Any, texts: Sequence[str]) -> dict[str, Any]:
    """How the pruned tokenizer treats ``texts`` compared with the original:

    - ``dropped_token_rate``: share of the original tokens whose id was dropped;
    - ``unk_rate`` (and ``unk_rate_before``): share of tokens that are ``[UNK]``;
    - ``texts_changed``: share of texts tokenized differently (other pieces or ``[UNK]``).

    Counts are of untruncated tokens, special tokens excluded."""
    texts = list(texts)
    if not texts:
        return {"texts": 0}
    vocab = pruned.get_vocab()
    old_enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    new_enc = pruned(texts, add_special_tokens=False)["input_ids"]
    old_tokens = [tokenizer.convert_ids_to_tokens(e) for e in old_enc]
    new_tokens = [pruned.convert_ids_to_tokens(e) for e in new_enc]
    n_old, n_new = sum(map(len, old_tokens)), sum(map(len, new_tokens))
    unk = tokenizer.unk_token

    def share(a: int, b: int) -> float:
        return round(a / b, 6) if b else 0.0

    return {
        "texts": len(texts), "tokens": n_old,
        "dropped_token_rate": share(sum(t not in vocab for ts in old_tokens for t in ts), n_old),
        "unk_rate_before": share(sum(t == unk for ts in old_tokens for t in ts), n_old),
        "unk_rate": share(sum(t == unk for ts in new_tokens for t in ts), n_new),
        "texts_changed": share(sum(a != b for a, b in zip(old_tokens, new_tokens, strict=True)), len(texts)),
    }


def covered_texts(tokenizer: Any, pruned: Any, texts: Iterable[str]) -> list[str]:
    """The ``texts`` whose original tokens were all kept in ``pruned``: it tokenizes them
    the same way, so the pruned model's outputs on them are the original model's."""
    texts = list(texts)
    vocab = pruned.get_vocab()
    enc = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [t for t, ids in zip(texts, enc, strict=True)
            if all(tok in vocab for tok in tokenizer.convert_ids_to_tokens(ids))]


# --------------------------------------------------------- the recipe stage
@register_stage(VocabConfig, skeleton=lambda ctx, prev_model, cfg, info: _vocab_skeleton(ctx, prev_model, cfg, info),
                feeds_teacher=False, switches_tokenizer=True)
def run_vocab_stage(ctx, cfg: VocabConfig, model, stage_dir):
    """Prune the token table and the tokenizer to the corpus's tokens; save the tokenizer
    (``tokenizer/``, what the bundle ships) and switch the run to it."""
    from edgesmith.errors import StageError
    from edgesmith.progress import log

    name = cfg.name or cfg.kind
    index = next(i for i, c in enumerate(ctx.recipe.stage_configs) if c is cfg)
    if ctx.tokenizer is None:
        raise StageError(f"stages[{index}] ({name}): the model takes no text (no tokenizer); "
                         "vocabulary pruning is for text encoders")
    texts = _vocab_corpus(ctx, cfg)
    try:
        small, tokenizer, report = in_stage(ctx, cfg, prune_vocab, model, ctx.tokenizer, texts, cfg)
    except StageError as e:
        raise StageError(f"stages[{index}] ({name}): {str(e).removeprefix('vocab: ')}") from None
    # the pruned model on the new ids vs the model it came from on the original ids, on corpus texts
    original, sample = ctx.tokenizer, _Texts(covered_texts(ctx.tokenizer, tokenizer, texts)[:256])
    before = ctx.task.predict(model, ctx.task.tensors(sample), device=ctx.device) if sample.x else None
    tokenizer.save_pretrained(str(stage_dir / "tokenizer"))
    ctx.use_tokenizer(tokenizer, name)
    if before is not None:
        after = ctx.task.predict(small, ctx.task.tensors(sample), device=ctx.device)
        report["corpus_max_abs_diff"] = float((before - after).abs().max())
    texts_of = {"eval": list(ctx.raw["eval"].x)}
    if ctx.probe is not None:
        texts_of["probe"] = [t for part in ctx.probe for t in part.texts]
    report["oov"] = {k: oov_rates(original, tokenizer, v) for k, v in texts_of.items()}
    report["oov"]["eval"]["in_corpus"] = cfg.corpus == "all"
    log(f"  vocabulary {report['vocab_before']} -> {report['vocab_after']} tokens ({cfg.corpus}: "
        f"{len(texts)} texts), params {report['params_before'] / 1e6:.2f} M -> {report['params_after'] / 1e6:.2f} M; "
        + ", ".join(f"{k}: {v['dropped_token_rate']:.2%} of tokens dropped, {v['texts_changed']:.1%} of texts "
                    f"tokenized differently" for k, v in report["oov"].items()))
    return small, {**report, "corpus": cfg.corpus, "tokenizer": "tokenizer"}


class _Texts:
    """Raw text data as ``task.tensors`` reads it."""

    def __init__(self, texts: list[str]):
        self.x, self.y = texts, None


def _vocab_corpus(ctx, cfg: VocabConfig) -> list[str]:
    """The texts that define the vocabulary (never the probe's; ``sources`` holds the eval split out)."""
    from pathlib import Path

    raw = ctx.raw
    if cfg.corpus == "sources":
        from edgesmith.data.sources import load_source

        held_out = set(raw["eval"].x) | ctx.probe_texts
        texts = [t for s in ctx.recipe.data.sources for part in load_source(s).values() for t in part.x
                 if t not in held_out]
    else:
        splits = ["train"] if cfg.corpus == "train" else ["train", "calibration", "eval"]
        texts = [t for k in splits for t in raw[k].x]
    if cfg.path is not None:
        texts += [t for t in Path(cfg.path).expanduser().read_text(encoding="utf-8").splitlines() if t.strip()]
    return texts


def _vocab_skeleton(ctx, prev_model, cfg: VocabConfig, info):
    """The pruned table's shape from ``info``; the run switches to the stage's saved tokenizer."""
    from pathlib import Path

    from transformers import AutoTokenizer

    folder = ctx.out / Path(info["path"]).parent / info["tokenizer"]
    ctx.use_tokenizer(AutoTokenizer.from_pretrained(str(folder), local_files_only=True), cfg.name or cfg.kind)
    return vocab_shell(prev_model, info["vocab_after"], info["embeddings"], info["padding_idx"])
