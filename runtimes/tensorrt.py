"""Serialized TensorRT engines (``.engine`` / ``.plan``) on a CUDA device.

TensorRT and torch (for device buffers and the CUDA stream) are imported when
an engine is loaded. There is no CPU path: ``device`` must be ``"cuda"``; on a
machine without NVIDIA's stack, loading fails with one line naming the extra.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from edgesmith.errors import EdgesmithError
from edgesmith.runtimes.base import Runtime, TensorSpec, require


class TensorRTRuntime(Runtime):
    """A TensorRT engine in one execution context with its first optimisation profile.

    Inputs are copied to the GPU, shapes set on the context (dynamic dims must
    lie within the engine's profile), ``execute_async_v3`` runs on torch's
    current CUDA stream, and outputs are copied back as numpy arrays.
    ``threads`` has no effect (the work runs on the GPU).
    """

    name = "tensorrt"
    suffixes = (".engine", ".plan")
    extra = "tensorrt"
    backend = "tensorrt"
    devices = ("cuda",)

    def __init__(self, path, threads: int = 1, device: str = "cuda"):
        super().__init__(path, threads, "cuda" if device == "cpu" else device)

    def _load(self) -> None:
        trt = self.import_backend()
        torch = require("torch", "core", "TensorRT device buffers")
        if not torch.cuda.is_available():
            raise EdgesmithError(f"{self.path}: TensorRT needs a CUDA device and none is visible")
        self._trt, self._torch = trt, torch
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise EdgesmithError(
                f"{self.path}: TensorRT could not deserialize the engine (built by another "
                "TensorRT version or for another GPU? rebuild it with trtexec.sh)"
            )
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        is_input = {n: self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT for n in names}
        self._inputs = [self._spec(n) for n in names if is_input[n]]
        self._outputs = [self._spec(n) for n in names if not is_input[n]]

    def _spec(self, name: str) -> TensorSpec:
        shape = [None if d < 0 else int(d) for d in self.engine.get_tensor_shape(name)]
        dtype = np.dtype(self._trt.nptype(self.engine.get_tensor_dtype(name))).name
        return TensorSpec(name, shape, dtype)

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        keep: list[Any] = []  # device tensors must outlive the launch
        for spec in self._inputs:
            t = torch.from_numpy(np.ascontiguousarray(inputs[spec.name])).cuda()
            keep.append(t)
            self.context.set_input_shape(spec.name, tuple(t.shape))
            self.context.set_tensor_address(spec.name, t.data_ptr())
        outs = []
        for spec in self._outputs:
            shape = tuple(self.context.get_tensor_shape(spec.name))
            o = torch.empty(shape, dtype=getattr(torch, spec.dtype), device="cuda")
            self.context.set_tensor_address(spec.name, o.data_ptr())
            outs.append(o)
        stream = torch.cuda.current_stream()
        if not self.context.execute_async_v3(stream.cuda_stream):
            raise EdgesmithError(f"{self.path}: TensorRT execution failed (see TensorRT's log)")
        stream.synchronize()
        return [o.cpu().numpy() for o in outs]

    def close(self) -> None:
        for attr in ("context", "engine", "_runtime"):
            self.__dict__.pop(attr, None)
        super().close()
