"""PyTorch eager on a ``torch.export`` program saved with ``torch.export.save`` (``.pt2``).

This is the reference runtime the others are compared with. torch is imported
when a model is loaded, never when ``edgesmith.runtimes`` is imported.

``torch.set_num_threads`` is process-wide: loading a second ``.pt2`` model with
another ``threads`` value changes it for the first one too; ``close()`` gives
the process back the count it had before the load.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesmith.errors import EdgesmithError
from edgesmith.runtimes.base import Runtime, TensorSpec

if TYPE_CHECKING:
    import torch


def _dim(d: Any) -> int | str:
    return d if isinstance(d, int) else str(d)


def _spec(name: str, val: Any) -> TensorSpec:
    """Spec of a placeholder/output from its ``meta["val"]`` (a FakeTensor or a constant)."""
    shape = getattr(val, "shape", None)
    dtype = getattr(val, "dtype", None)
    if shape is None or dtype is None:  # a constant (int, float, bool)
        return TensorSpec(name, [], np.asarray(val).dtype.name)
    return TensorSpec(name, [_dim(d) for d in shape], str(dtype).removeprefix("torch."))


def _quiet_load(torch: Any, path: str | os.PathLike) -> Any:
    """``torch.export.load`` without the traceback it logs before raising on a bad file."""
    logger = logging.getLogger("torch.export")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return torch.export.load(str(path))
    finally:
        logger.setLevel(level)


def _flatten(out: Any) -> list[Any]:
    """Leaves of a nested output (tensor, tuple, list, dict, HF ``ModelOutput``), Nones dropped."""
    if out is None:
        return []
    if isinstance(out, Mapping):  # ModelOutput is an OrderedDict that omits its None fields
        return [leaf for v in out.values() for leaf in _flatten(v)]
    if isinstance(out, tuple | list):
        return [leaf for v in out for leaf in _flatten(v)]
    return [out]


class TorchRuntime(Runtime):
    """A ``.pt2`` exported program run in PyTorch eager under ``torch.inference_mode()``.

    Input names and shapes come from the program's user-input placeholders;
    dynamic dimensions are their symbol names (e.g. ``"s77"``). Outputs are the
    program's outputs flattened (tuples, dicts and ``ModelOutput`` alike) into
    a list of numpy arrays.

    Attributes:
        program: The loaded ``torch.export.ExportedProgram``.
        module: The runnable ``torch.nn.Module`` (``program.module()``).
    """

    name = "torch"
    suffixes = (".pt2",)
    extra = "core"
    backend = "torch"
    devices = ("cpu", "cuda")

    @classmethod
    def import_backend(cls) -> ModuleType:
        """Import torch and the ``.pt2`` deserialiser it would otherwise import on first load.

        The deserialiser costs seconds and about 150 MB; importing it here keeps
        a benchmark's ``load_rss_mb`` about the model rather than the library.
        """
        torch = super().import_backend()
        for module in ("torch._export.serde.serialize", "torch.export.pt2_archive._package"):
            with contextlib.suppress(ImportError):  # private paths: a speed-up, not a need
                importlib.import_module(module)
        return torch

    def _load(self) -> None:
        torch = self.import_backend()
        if self.device == "cuda" and not torch.cuda.is_available():
            raise EdgesmithError(
                f"{self.path}: device 'cuda' asked for but torch.cuda.is_available() is False "
                "(no GPU, or a CPU-only torch build)"
            )
        self._threads_before = torch.get_num_threads()  # restored by close()
        torch.set_num_threads(self.threads)
        self.program = _quiet_load(torch, self.path)
        if self.device == "cuda":
            from torch.export.passes import move_to_device_pass

            self.program = move_to_device_pass(self.program, "cuda")
        self.module = self.program.module()
        self._torch = torch
        self._in_spec = self.program.module_call_graph[0].signature.in_spec
        nodes = {n.name: n for n in self.program.graph.nodes}
        sig = self.program.graph_signature
        user_in = [s for s in sig.input_specs if s.kind.name == "USER_INPUT"]
        # One entry per flat user input: a tensor name to feed, or a constant baked in.
        self._flat: list[tuple[str, Any]] = []
        self._inputs: list[TensorSpec] = []
        for s in user_in:
            if hasattr(s.arg, "value"):  # ConstantArgument (a Python scalar or None)
                self._flat.append(("const", s.arg.value))
            else:
                self._flat.append(("tensor", s.arg.name))
                self._inputs.append(_spec(s.arg.name, nodes[s.arg.name].meta.get("val")))
        self._outputs = [
            _spec(s.arg.name, nodes[s.arg.name].meta.get("val") if s.arg.name in nodes else None)
            for s in sig.output_specs
            if s.kind.name == "USER_OUTPUT"
        ]

    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        torch = self._torch
        flat = [
            torch.from_numpy(np.ascontiguousarray(inputs[v])).to(self.device)
            if kind == "tensor"
            else v
            for kind, v in self._flat
        ]
        args, kwargs = torch.utils._pytree.tree_unflatten(flat, self._in_spec)
        with torch.inference_mode():
            out = self.module(*args, **kwargs)
        return [_to_numpy(leaf) for leaf in _flatten(out)]

    def close(self) -> None:
        """Drop the program and module so their memory can be freed."""
        super().close()
        if "_threads_before" in self.__dict__:
            self._torch.set_num_threads(self.__dict__.pop("_threads_before"))
        for attr in ("module", "program"):
            self.__dict__.pop(attr, None)


def _to_numpy(x: torch.Tensor | Any) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        return (x.float() if str(x.dtype) == "torch.bfloat16" else x).numpy()  # numpy has no bf16
    return np.asarray(x)
