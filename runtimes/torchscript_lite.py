"""TorchScript lite-interpreter files (``.ptl``, classic PyTorch Mobile) in torch's
mobile interpreter (``torch.jit.mobile._load_for_lite_interpreter``).

torch is imported when a model is loaded, never when ``edgesmith.runtimes`` is
imported. Names, shapes and dtypes come from the ``extra/edgesmith_io.json``
file edgesmith's exporter writes into the archive; for a ``.ptl`` without it
the names are read from the TorchScript ``forward`` schema (a ``.ptl`` holds
both) and shapes and dtypes are unknown (no cast is applied).

``torch.set_num_threads`` is process-wide, as for the torch runtime, and
``close()`` restores the count the process had before the load.
"""

from __future__ import annotations

import json
import zipfile
from typing import Any

import numpy as np

from edgesmith.runtimes.base import Runtime, TensorSpec

_IO_FILE = "/extra/edgesmith_io.json"  # edgesmith.export.signature.IO_KEY + ".json"


def _flatten(out: Any) -> list[Any]:
    if out is None:
        return []
    if isinstance(out, dict):
        return [leaf for v in out.values() for leaf in _flatten(v)]
    if isinstance(out, tuple | list):
        return [leaf for v in out for leaf in _flatten(v)]
    return [out]


def read_io_spec(path: Any) -> dict | None:
    """The io spec stored in a ``.ptl`` archive, or ``None``."""
    with zipfile.ZipFile(path) as z:
        name = next((n for n in z.namelist() if n.endswith(_IO_FILE)), None)
        return json.loads(z.read(name)) if name else None


class TorchScriptLiteRuntime(Runtime):
    """A ``.ptl`` file in the lite interpreter, run under ``torch.no_grad()``.

    Attributes:
        module: The loaded ``LiteScriptModule``.
    """

    name = "torchscript-lite"
    suffixes = (".ptl",)
    extra = "core"
    backend = "torch"

    def _load(self) -> None:
        torch = self.import_backend()
        from torch.jit.mobile import _load_for_lite_interpreter

        self._threads_before = torch.get_num_threads()  # restored by close()
        torch.set_num_threads(self.threads)
        self._torch = torch
        self.module = _load_for_lite_interpreter(str(self.path))
        io = read_io_spec(self.path)
        if io:
            self._inputs = [TensorSpec(e["name"], e["shape"], e["dtype"]) for e in io["inputs"]]
            self._outputs = [TensorSpec(e["name"], e["shape"], e["dtype"]) for e in io["outputs"]]
        else:
            args = torch.jit.load(str(self.path)).forward.schema.arguments[1:]
            self._inputs = [TensorSpec(a.name, [], "unknown") for a in args]
            self._outputs = []

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        args = [torch.from_numpy(np.ascontiguousarray(inputs[s.name])) for s in self._inputs]
        with torch.no_grad():
            out = self.module(*args)
        return [leaf.detach().numpy() if hasattr(leaf, "detach") else np.asarray(leaf) for leaf in _flatten(out)]

    def close(self) -> None:
        """Drop the module so its memory can be freed."""
        super().close()
        if "_threads_before" in self.__dict__:
            self._torch.set_num_threads(self.__dict__.pop("_threads_before"))
        self.__dict__.pop("module", None)
