"""ExecuTorch programs (``.pte``) on the ExecuTorch runtime (``executorch.runtime``).

executorch (and the torch it needs for tensors) is imported when a model is
loaded, never when ``edgesmith.runtimes`` is imported.

Names and dynamic dims come from the ``edgesmith_io`` constant method that
edgesmith's exporter writes into the program; a ``.pte`` without it gets
``input_0, ...`` / ``output_0, ...`` and the planned (upper-bound) sizes. A
program plans memory for its upper bounds: a larger dim than planned, or a
static dim of another size, is one error line before ExecuTorch is called.

The XNNPACK threadpool is process-wide: loading a second program with another
``threads`` value changes it for the first one too.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from typing import Any

import numpy as np

from edgesmith.errors import EdgesmithError
from edgesmith.runtimes.base import Runtime, TensorSpec

# ExecuTorch ScalarType codes -> numpy dtype names (those a .pte input/output can have).
_SCALAR_TYPES = {0: "uint8", 1: "int8", 2: "int16", 3: "int32", 4: "int64", 5: "float16",
                 6: "float32", 7: "float64", 11: "bool", 15: "bfloat16"}
_IO_KEY = "edgesmith_io"  # edgesmith.export.signature.IO_KEY (runtimes do not import export/)


def _planned(info: Any) -> tuple[list[int], str]:
    return [int(d) for d in info.sizes()], _SCALAR_TYPES.get(int(info.dtype()), str(info.dtype()))


class ExecuTorchRuntime(Runtime):
    """A ``.pte`` program's ``forward`` method run with ``Method.execute``.

    Attributes:
        program: The ``executorch.runtime.Program``.
        method: Its loaded ``forward`` ``Method``.
    """

    name = "executorch"
    suffixes = (".pte",)
    extra = "mobile"
    backend = "executorch.runtime"

    def _load(self) -> None:
        et = self.import_backend()
        with contextlib.suppress(ImportError, AttributeError):  # absent in some builds: keep defaults
            lib = importlib.import_module("executorch.extension.pybindings.portable_lib")
            if lib._threadpool_get_thread_count() != self.threads:
                lib._unsafe_reset_threadpool(self.threads)
        self._torch = importlib.import_module("torch")
        from edgesmith.runtimes.validate import probe_in_child

        def load_program():  # full flatbuffer verification: a damaged program is an error, not an abort
            verification = getattr(et, "Verification", None)
            if verification is None:
                return et.Runtime.get().load_program(self.path)
            return et.Runtime.get().load_program(self.path, verification=verification.InternalConsistency)

        probe_in_child(self.path, self.name, lambda: load_program().load_method("forward"))
        self.program = load_program()
        if "forward" not in self.program.method_names:
            raise EdgesmithError(f"{self.path}: the {self.name} program has no 'forward' method "
                                 f"(it has: {', '.join(sorted(self.program.method_names))})")
        self.method = self.program.load_method("forward")
        meta = self.method.metadata
        self._bounds = [_planned(meta.input_tensor_meta(i)) for i in range(meta.num_inputs())]
        out_planned = [_planned(meta.output_tensor_meta(i)) for i in range(meta.num_outputs())]
        io = self._io_spec()
        self._has_io = bool(io) and len(io["inputs"]) == len(self._bounds) and len(
            io["outputs"]) == len(out_planned)
        if self._has_io:
            self._inputs = [TensorSpec(e["name"], e["shape"], e["dtype"]) for e in io["inputs"]]
            self._outputs = [TensorSpec(e["name"], e["shape"], e["dtype"]) for e in io["outputs"]]
        else:
            self._inputs = [TensorSpec(f"input_{i}", s, d) for i, (s, d) in enumerate(self._bounds)]
            self._outputs = [TensorSpec(f"output_{i}", s, d) for i, (s, d) in enumerate(out_planned)]

    def _io_spec(self) -> dict | None:
        if _IO_KEY not in self.program.method_names:
            return None
        (text,) = self.program.load_method(_IO_KEY).execute([])
        return json.loads(text)

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        tensors = []
        for spec, (bound, _) in zip(self._inputs, self._bounds, strict=True):
            a = np.ascontiguousarray(inputs[spec.name])
            self._check_shape(spec, bound, a.shape)
            tensors.append(torch.from_numpy(a))
        outs = self.method.execute(tensors)
        # Outputs may alias the method's planned memory, which the next call overwrites: copy.
        return [np.array(o.numpy() if hasattr(o, "numpy") else o, copy=True) for o in outs]

    def _check_shape(self, spec: TensorSpec, bound: list[int], shape: tuple[int, ...]) -> None:
        # With the io spec an int dim is static and must match; a labelled dim (or any dim
        # of a program without the spec) may be anything up to its planned bound.
        dims = spec.shape if self._has_io else [None] * len(bound)
        if len(shape) == len(bound) and all(
            n == d if isinstance(d, int) else n <= b for n, b, d in zip(shape, bound, dims, strict=True)
        ):
            return
        want = [d if isinstance(d, int) else f"{d or 'dim'}<={b}" for d, b in zip(dims, bound, strict=True)]
        raise EdgesmithError(
            f"{self.path}: the {self.name} run failed: input '{spec.name}' has shape {list(shape)} "
            f"but the program takes [{', '.join(map(str, want))}] (memory is planned for these "
            "bounds at export; re-export with larger bounds)"
        )

    def close(self) -> None:
        """Drop the method and program so their memory can be freed."""
        super().close()
        for attr in ("method", "program"):
            self.__dict__.pop(attr, None)
