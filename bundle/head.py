"""A text bundle's task head: the probe a run trained on the final model's frozen
embeddings (logistic regression) shipped as a small ONNX file, ``head/model.onnx``,
so ``edgesmith predict BUNDLE "text"`` prints a label, not 384 floats::

    edgesmith predict runs/minilm-sentiment/bundle "a warm, funny film"

The manifest's ``head`` entry names the file, its labels, its input (the bundle's
embedding output) and what it was trained on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np


def head_onnx(coef: np.ndarray, intercept: np.ndarray, path: str | os.PathLike, input_name: str = "embedding"
              ) -> Path:
    """Write ``logits = x @ coef.T + intercept`` as ONNX. A binary logistic regression
    (one row of ``coef``) becomes two logits ``[0, z]``, so softmax gives its probabilities."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    coef, intercept = np.asarray(coef, np.float32), np.asarray(intercept, np.float32).ravel()
    if coef.shape[0] == 1:
        coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.concatenate([[0.0], intercept]).astype(np.float32)
    x = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, ["batch", coef.shape[1]])
    y = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", coef.shape[0]])
    node = helper.make_node("Gemm", [input_name, "coef", "intercept"], ["logits"], transB=1)
    graph = helper.make_graph([node], "head", [x], [y], [numpy_helper.from_array(coef, "coef"),
                                                         numpy_helper.from_array(intercept, "intercept")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return Path(path)


def run_head(root: Path, head: dict[str, Any], embeddings: np.ndarray) -> np.ndarray:
    """The head's logits for ``embeddings`` (onnxruntime)."""
    from edgesmith.bundle.manifest import MANIFEST, safe_path
    from edgesmith.runtimes import load

    with load(safe_path(root, head["path"], root / MANIFEST), "onnxruntime") as rt:
        return np.asarray(rt.run({rt.inputs[0].name: np.asarray(embeddings, np.float32)})[0])
