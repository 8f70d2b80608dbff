"""``torch.export`` programs (``.pt2``): what the PyTorch runtime loads in a
fresh process, with the same dynamic axes as the other formats."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from edgesmith import atomic
from edgesmith.errors import ExportError
from edgesmith.export.base import ExportArtifact, Exporter


def dynamic_shapes_for(task, dynamic: bool):
    if not dynamic:
        return None
    dims: dict[str, torch.export.Dim] = {}
    out = []
    for name in task.input_names:
        axes = task.dynamic_axes().get(name, {})
        out.append({ax: dims.setdefault(label, torch.export.Dim(label, min=1 if label == "batch" else 2, max=4096 if label == "batch" else 512))
                    for ax, label in axes.items()})
    return tuple(out)


def with_input_names(model: torch.nn.Module, names: list[str]) -> torch.nn.Module:
    """Wrap ``model`` so its forward arguments carry the task's input names,
    which ``torch.export`` turns into the program's placeholder names."""
    if not all(n.isidentifier() for n in names):
        raise ExportError(f"pt2: input names must be identifiers, got {names}")
    args = ", ".join(names)
    scope: dict = {}
    exec(f"def forward(self, {args}):\n    return self.model({args})\n", scope)  # noqa: S102
    wrapper = type("Named" + type(model).__name__, (torch.nn.Module,), {"forward": scope["forward"]})()
    wrapper.model = model
    return wrapper


class Pt2Exporter(Exporter):
    name = "pt2"

    def export(self, model, example_inputs, task, out_dir: Path, config) -> ExportArtifact:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / "model.pt2"
        tmp = out_dir / ".model.tmp.pt2"  # torch warns unless the name ends in .pt2
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                program = torch.export.export(with_input_names(model.eval().cpu(), task.input_names),
                                              tuple(example_inputs),
                                              dynamic_shapes=dynamic_shapes_for(task, config.dynamic_batch))
                torch.export.save(program, str(tmp))
        except Exception as e:  # noqa: BLE001
            tmp.unlink(missing_ok=True)
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise ExportError(f"pt2: torch.export of {type(model).__name__} failed: {first}") from None
        tmp.replace(path)
        atomic.write_json(out_dir / "export.json", {"format": "pt2"})
        return ExportArtifact("pt2", "fp32", path, self.runtime, self.tolerances["fp32"], [path])
