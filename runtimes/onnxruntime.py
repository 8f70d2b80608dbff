"""ONNX models on onnxruntime (CPU, or CUDA with the onnxruntime-gpu wheel).

onnxruntime itself is imported when a model is loaded, never when
``edgesmith.runtimes`` is imported.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.errors import EdgesmithError
from edgesmith.runtimes.base import Runtime, TensorSpec, require

# onnxruntime's element type names -> numpy dtype names.
_ORT_DTYPES = {
    "tensor(float)": "float32",
    "tensor(double)": "float64",
    "tensor(float16)": "float16",
    "tensor(bfloat16)": "bfloat16",
    "tensor(int8)": "int8",
    "tensor(int16)": "int16",
    "tensor(int32)": "int32",
    "tensor(int64)": "int64",
    "tensor(uint8)": "uint8",
    "tensor(uint16)": "uint16",
    "tensor(uint32)": "uint32",
    "tensor(uint64)": "uint64",
    "tensor(bool)": "bool",
    "tensor(string)": "str",
}


def _spec(arg: Any) -> TensorSpec:
    dtype = _ORT_DTYPES.get(arg.type, arg.type.removeprefix("tensor(").removesuffix(")"))
    return TensorSpec(arg.name, list(arg.shape), dtype)


def _external_data_files(path: Path) -> list[Path]:
    """Files named by the ``location`` of externally stored tensors, in first-use order."""
    onnx = require("onnx", "core", "reading ONNX external data")
    model = onnx.load(str(path), load_external_data=False)
    found: dict[str, None] = {}

    def note(tensor: Any) -> None:
        if tensor.data_location == onnx.TensorProto.EXTERNAL:
            found.update({e.value: None for e in tensor.external_data if e.key == "location"})

    def walk(graph: Any) -> None:  # initializers, Constant-like attributes, subgraphs
        for t in graph.initializer:
            note(t)
        for node in graph.node:
            for a in node.attribute:
                for t in [a.t, *a.tensors]:
                    note(t)
                for g in [a.g, *a.graphs]:
                    walk(g)

    walk(model.graph)
    return [path.parent / name for name in found]


class OnnxRuntime(Runtime):
    """An ``.onnx`` file in an ``onnxruntime.InferenceSession``.

    The session runs sequentially with ``intra_op_num_threads=threads``,
    ``inter_op_num_threads=1`` and every graph optimisation (``ORT_ENABLE_ALL``).
    ``device="cuda"`` uses ``CUDAExecutionProvider`` and fails with one line when
    the installed onnxruntime has none.

    Attributes:
        session: The ``onnxruntime.InferenceSession``.
        providers: Execution providers the session was asked for.
    """

    name = "onnxruntime"
    suffixes = (".onnx",)
    default_for = (".onnx",)  # other runtimes may take ONNX files too (TensorRT builds from them)
    extra = "core"
    backend = "onnxruntime"
    devices = ("cpu", "cuda")

    def _load(self) -> None:
        ort = self.import_backend()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = self.threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.providers = self._providers(ort)
        self.session = ort.InferenceSession(str(self.path), opts, providers=self.providers)
        self._inputs = [_spec(a) for a in self.session.get_inputs()]
        self._outputs = [_spec(a) for a in self.session.get_outputs()]

    def _providers(self, ort: Any) -> list[str]:
        if self.device == "cpu":
            return ["CPUExecutionProvider"]
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise EdgesmithError(
                f"{self.path}: the installed onnxruntime has no CUDA provider "
                "(pip install onnxruntime-gpu in place of onnxruntime)"
            )
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]

    @property
    def files(self) -> list[Path]:
        """The ``.onnx`` file plus the external data files its tensors name.

        ``torch.onnx.export`` writes weights to ``<model>.onnx.data`` by default,
        so the ``.onnx`` file alone can be a few kB of a many-MB model. Parses
        the model's graph (not its external weights) on first access.
        """
        if "_files" not in self.__dict__:
            self._files = [self.path, *_external_data_files(self.path)]
        return self._files

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        return [np.asarray(o) for o in self.session.run(None, inputs)]

    def close(self) -> None:
        """Drop the session so its memory can be freed."""
        super().close()
        self.__dict__.pop("session", None)
