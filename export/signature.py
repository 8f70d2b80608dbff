"""What a mobile exporter writes down about a model's inputs and outputs.

``.tflite``, ``.pte`` and ``.ptl`` files do not all keep PyTorch's argument
names or say which dimensions are dynamic, so the exporters here record an
``io`` spec (names, shapes with dynamic dims as labels such as ``"batch"``,
dtypes) inside the file, and the matching runtime reads it back::

    {"inputs": [{"name": "pixel_values", "shape": ["batch", 1, 8, 8], "dtype": "float32"}],
     "outputs": [{"name": "logits", "shape": ["batch", 10], "dtype": "float32"}]}
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn

IO_KEY = "edgesmith_io"  # the constant method (.pte) / extra file stem (.ptl) holding the spec


def flat_outputs(out: Any) -> list[torch.Tensor]:
    """Tensor leaves of a nested output (tensor, tuple, list, dict, HF ``ModelOutput``)."""
    if out is None:
        return []
    if isinstance(out, Mapping):
        return [leaf for v in out.values() for leaf in flat_outputs(v)]
    if isinstance(out, tuple | list):
        return [leaf for v in out for leaf in flat_outputs(v)]
    return [out]


class NamedOutputs(nn.Module):
    """Wrap ``model`` so it returns ``{name: tensor}`` for the task's output names.

    Converters that name signature outputs by dict key (litert-torch) then carry
    the task's names. When the model returns a different number of tensors than
    names are given, the flat tuple is returned unchanged.
    """

    def __init__(self, model: nn.Module, names: Sequence[str]):
        super().__init__()
        self.model = model
        self.names = list(names)

    def forward(self, *args: torch.Tensor) -> dict[str, torch.Tensor] | tuple[torch.Tensor, ...]:
        flat = flat_outputs(self.model(*args))
        if len(flat) == len(self.names):
            return dict(zip(self.names, flat, strict=True))
        return tuple(flat)


def output_names(task: Any, count: int) -> list[str]:
    """The task's output names when they fit ``count`` outputs, else ``output_0, ...``."""
    names = list(getattr(task, "output_names", []))
    return names if len(names) == count else [f"output_{i}" for i in range(count)]


def tensor_entry(name: str, shape: Sequence[Any], dtype: torch.dtype, labels: Mapping) -> dict:
    """One spec entry; a dim is an int, or a label from ``labels`` (axis -> label or symbol -> label)."""
    dims: list[int | str] = []
    for ax, d in enumerate(shape):
        if ax in labels:
            dims.append(str(labels[ax]))
        elif isinstance(d, int):
            dims.append(int(d))
        else:
            dims.append(str(labels.get(str(d), d)))
    return {"name": name, "shape": dims, "dtype": str(dtype).removeprefix("torch.")}


def example_spec(task: Any, inputs: Sequence[torch.Tensor], outputs: Sequence[torch.Tensor],
                 dynamic: bool) -> dict[str, list[dict]]:
    """The io spec of a model from one example run: the task's dynamic axes are labelled
    (when ``dynamic``), every other dim is the example's size."""
    axes = task.dynamic_axes() if dynamic else {}
    out_names = output_names(task, len(outputs))
    return {
        "inputs": [tensor_entry(n, t.shape, t.dtype, axes.get(n, {}))
                   for n, t in zip(task.input_names, inputs, strict=True)],
        "outputs": [tensor_entry(n, t.shape, t.dtype, axes.get(n, {0: "batch"} if dynamic else {}))
                    for n, t in zip(out_names, outputs, strict=True)],
    }


def plain_inputs(inputs: Sequence[torch.Tensor]) -> tuple[torch.Tensor, ...]:
    """Detached, contiguous copies. A view into a larger tensor (a sliced padded batch)
    makes ``torch.export`` guard on the base's width (``sequence != 32``), which then
    violates a dynamic ``sequence`` range that includes that width."""
    return tuple(t.detach().clone(memory_format=torch.contiguous_format) for t in inputs)


def static_example(task: Any, inputs: Sequence[torch.Tensor], batch: int = 1) -> tuple[torch.Tensor, ...]:
    """The example cut to ``batch`` rows and, on axes the task calls ``"sequence"``,
    zero-padded (or cut) to ``task.max_length``: the shapes a static-shape format is
    exported with. Only the shapes matter to the converter, not the padded values."""
    axes = task.dynamic_axes()
    length = getattr(task, "max_length", None)
    out = []
    for name, t in zip(task.input_names, inputs, strict=True):
        t = t[:batch]
        for ax, label in axes.get(name, {}).items():
            if label == "sequence" and length:
                n = t.shape[ax]
                if n < length:
                    pad = list(t.shape)
                    pad[ax] = length - n
                    t = torch.cat([t, torch.zeros(pad, dtype=t.dtype)], dim=ax)
                else:
                    t = t.narrow(ax, 0, length)
        out.append(t.contiguous())
    return tuple(out)
