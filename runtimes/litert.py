"""TFLite models on LiteRT (``ai_edge_litert.interpreter.Interpreter``, XNNPACK on the CPU).

ai-edge-litert is imported when a model is loaded, never when
``edgesmith.runtimes`` is imported.

Names: inputs and outputs are listed in the model's tensor order and named by
the (single) signature's keys when there is one (edgesmith's exporter makes
these the task's names), else by tensor name. A feed whose names match none of
the model's, with as many arrays as the model has inputs (a third-party file
with ``args_0``-style names), is taken in order.

Shapes: a dimension the file declares dynamic (``-1`` in its shape signature)
is resized on demand (``resize_tensor_input`` + ``allocate_tensors``). A model
converted with static shapes (litert-torch can only do that) takes any batch
that is a multiple of its exported batch: the runtime runs it one exported
batch at a time and concatenates the outputs, which holds for models whose
samples are independent (every inference model edgesmith exports). Any other
shape mismatch is one error line.

Quantized inputs and outputs: a fully int8 file (edgesmith's ``int8`` TFLite
export) takes int8 tensors with a scale and zero point. Such an input is
declared ``float32`` here and quantized on the way in; such an output is
dequantized to float32 on the way out, so the file runs like its float parent
(``quantized_io`` lists the parameters an app must apply itself).

Delegation: :meth:`LiteRTRuntime.delegation` counts the model's nodes that the
XNNPACK delegate (applied when the Interpreter is created) took over, from the
delegate nodes the interpreter added and the subgraph each one replaced.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from edgesmith.errors import EdgesmithError
from edgesmith.runtimes.base import Runtime, TensorSpec


def _signature_names(interpreter: Any) -> tuple[dict[int, str], dict[int, str]]:
    """Tensor index -> signature key, for inputs and outputs of a single-signature model."""
    sigs = interpreter.get_signature_list()
    if len(sigs) != 1:
        return {}, {}
    runner = interpreter.get_signature_runner(next(iter(sigs)))
    ins = {d["index"]: n for n, d in runner.get_input_details().items()}
    outs = {d["index"]: n for n, d in runner.get_output_details().items()}
    del runner  # it holds a reference that would block resize_tensor_input
    return ins, outs


def _quantized(detail: dict) -> bool:
    """An integer tensor with a scale: int8/uint8 activations, not token ids."""
    scale, _ = detail.get("quantization", (0.0, 0))
    return scale != 0 and np.dtype(detail["dtype"]).kind in "iu"


def _spec(detail: dict, names: dict[int, str]) -> TensorSpec:
    shape = [None if int(d) < 0 else int(d) for d in detail.get("shape_signature", detail["shape"])]
    dtype = "float32" if _quantized(detail) else np.dtype(detail["dtype"]).name
    return TensorSpec(names.get(detail["index"], detail["name"]), shape, dtype)


def _quantize(a: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    info = np.iinfo(detail["dtype"])
    return np.clip(np.round(a / scale) + zero, info.min, info.max).astype(detail["dtype"])


def _dequantize(q: np.ndarray, detail: dict) -> np.ndarray:
    scale, zero = detail["quantization"]
    return ((q.astype(np.float32) - zero) * np.float32(scale)).astype(np.float32)


def delegated_nodes(ops: list[dict]) -> tuple[list[dict], list[set[int]]]:
    """The original nodes of ``Interpreter._get_ops_details()`` and, per DELEGATE
    node, the indices of the nodes it replaced: those producing its outputs, back
    through every tensor that is not one of its inputs."""
    nodes = [op for op in ops if op["op_name"] != "DELEGATE"]
    producer = {int(t): op["index"] for op in nodes for t in op["outputs"]}
    by_index = {op["index"]: op for op in nodes}
    parts = []
    for op in ops:
        if op["op_name"] != "DELEGATE":
            continue
        boundary, seen = {int(t) for t in op["inputs"]}, set()
        stack = [int(t) for t in op["outputs"]]
        while stack:
            t = stack.pop()
            n = producer.get(t)
            if t in boundary or n is None or n in seen:
                continue
            seen.add(n)
            stack.extend(int(i) for i in by_index[n]["inputs"] if int(i) >= 0)
        parts.append(seen)
    return nodes, parts


class LiteRTRuntime(Runtime):
    """A ``.tflite`` file in an ai-edge-litert ``Interpreter`` with ``num_threads=threads``.

    Attributes:
        interpreter: The ``ai_edge_litert.interpreter.Interpreter``.
    """

    name = "litert"
    suffixes = (".tflite",)
    extra = "tflite"
    backend = "ai_edge_litert.interpreter"

    def _load(self) -> None:
        lite = self.import_backend()
        self.interpreter = lite.Interpreter(model_path=str(self.path), num_threads=self.threads)
        self.interpreter.allocate_tensors()
        in_names, out_names = _signature_names(self.interpreter)
        self._in_details = self.interpreter.get_input_details()
        self._out_details = self.interpreter.get_output_details()
        self._inputs = [_spec(d, in_names) for d in self._in_details]
        self._outputs = [_spec(d, out_names) for d in self._out_details]
        self._signature = [tuple(int(x) for x in d.get("shape_signature", d["shape"]))
                           for d in self._in_details]
        self._current = [tuple(int(x) for x in d["shape"]) for d in self._in_details]

    def _check(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        names = [s.name for s in self._inputs]
        if len(inputs) == len(names) and not set(inputs) & set(names):
            inputs = dict(zip(names, inputs.values(), strict=True))  # by order (module docstring)
        return super()._check(inputs)

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        arrays = [np.ascontiguousarray(inputs[s.name]) for s in self._inputs]
        shapes = [a.shape for a in arrays]
        if shapes == self._current:
            return self._invoke(arrays)
        if all(self._resizable(sig, shape) for sig, shape in zip(self._signature, shapes, strict=True)):
            self._resize(shapes)
            return self._invoke(arrays)
        batch = self._chunk_batch(shapes)
        if batch is None:
            i = next(i for i, s in enumerate(shapes) if s != self._current[i])
            raise EdgesmithError(
                f"{self.path}: the {self.name} run failed: input '{self._inputs[i].name}' has shape "
                f"{list(shapes[i])} but the model takes {list(self._current[i])} (static shapes, as "
                f"exported; only the batch may be a multiple of {self._current[i][0] if self._current[i] else 1})"
            )
        chunks = [self._invoke([a[i : i + batch] for a in arrays]) for i in range(0, shapes[0][0], batch)]
        return [np.concatenate(parts) for parts in zip(*chunks, strict=True)]

    @staticmethod
    def _resizable(signature: tuple[int, ...], shape: tuple[int, ...]) -> bool:
        return len(signature) == len(shape) and all(s in (-1, n) for s, n in zip(signature, shape, strict=True))

    def _resize(self, shapes: list[tuple[int, ...]]) -> None:
        for detail, shape, current in zip(self._in_details, shapes, self._current, strict=True):
            if shape != current:
                self.interpreter.resize_tensor_input(detail["index"], list(shape), strict=True)
        self.interpreter.allocate_tensors()
        self._current = list(shapes)
        self._out_details = self.interpreter.get_output_details()

    def _chunk_batch(self, shapes: list[tuple[int, ...]]) -> int | None:
        """The static batch to run ``shapes`` in, when only their common batch differs from it."""
        if not shapes or any(not s or not c for s, c in zip(shapes, self._current, strict=True)):
            return None
        batch, n = self._current[0][0], shapes[0][0]
        same = all(s[0] == n and c[0] == batch and s[1:] == c[1:]
                   for s, c in zip(shapes, self._current, strict=True))
        return batch if same and batch > 0 and n % batch == 0 else None

    def _invoke(self, arrays: list[np.ndarray]) -> list[np.ndarray]:
        for detail, a in zip(self._in_details, arrays, strict=True):
            self.interpreter.set_tensor(detail["index"], _quantize(a, detail) if _quantized(detail) else a)
        self.interpreter.invoke()
        return [_dequantize(self.interpreter.get_tensor(d["index"]), d) if _quantized(d)
                else self.interpreter.get_tensor(d["index"]) for d in self._out_details]

    @property
    def quantized_io(self) -> dict[str, dict[str, Any]]:
        """``{name: {dtype, scale, zero_point}}`` of each int8/uint8 input and output."""
        specs = zip(self._in_details + self._out_details, self._inputs + self._outputs, strict=True)
        return {s.name: {"dtype": np.dtype(d["dtype"]).name, "scale": float(d["quantization"][0]),
                         "zero_point": int(d["quantization"][1])} for d, s in specs if _quantized(d)}

    def delegation(self) -> dict[str, Any]:
        """Nodes run by the XNNPACK delegate vs by LiteRT's built-in kernels.

        Returns:
            ``backend``, ``delegate_partitions``, ``delegated_ops``, ``fallback_ops``,
            ``total_ops``, ``coverage`` (delegated / total) and the op-name histograms
            of both sides.
        """
        nodes, parts = delegated_nodes(self.interpreter._get_ops_details())
        inside = set().union(*parts)
        delegated = Counter(op["op_name"] for op in nodes if op["index"] in inside)
        fallback = Counter(op["op_name"] for op in nodes if op["index"] not in inside)
        total = len(nodes)
        return {"backend": "TfLiteXNNPackDelegate", "delegate_partitions": len(parts),
                "delegated_ops": len(inside), "fallback_ops": total - len(inside), "total_ops": total,
                "coverage": round(len(inside) / total, 4) if total else None,
                "fallback_op_histogram": dict(fallback.most_common()),
                "delegated_op_histogram": dict(delegated.most_common())}

    def close(self) -> None:
        """Drop the interpreter so its memory can be freed."""
        super().close()
        self.__dict__.pop("interpreter", None)
