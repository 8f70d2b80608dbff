"""Turn an export toolchain's exception (torch.export, litert-torch, ExecuTorch,
TorchScript) into one :class:`~edgesmith.errors.ExportError` line that names the
op or the line of model code that failed and the nearest format that works.

    >>> raise export_error("tflite", model, exc)  # doctest: +SKIP
    ExportError: tflite: data-dependent control flow at model.py:15 (`if x.sum() > 0:`) ...
"""

from __future__ import annotations

import re
import sysconfig
import traceback
from pathlib import Path

from edgesmith.errors import ExportError
from edgesmith.numeric import first_line

# torch.jit.script keeps Python control flow that depends on tensor values.
DATA_DEPENDENT_FIX = (
    "export it as torchscript-lite (scripted, keeps the branch) or rewrite the branch "
    "with torch.where / torch.cond"
)
_DATA_DEPENDENT = (
    "data-dependent",
    "GuardOnDataDependentSymNode",
    "Converting a tensor to a Python",
)
_CALL = re.compile(r'File "([^"]+)", line (\d+), in (\w+)\n\s*(.+)')
_OPS = (  # how the toolchains name the op they stopped at
    re.compile(r"While executing %\S+ : .*?target=(?:torch\.ops\.)?([\w.]+)", re.S),
    re.compile(r"Operator: <EdgeOpOverload: ([\w.]+)>"),
    re.compile(r"Operator (?:torch\._ops\.)?([\w.]+) is not"),
)
_TOOLCHAINS = ("site-packages", "dist-packages", "/torch/", "/executorch/", "/litert_torch/")
# Frames of the exporters themselves and of the standard library are not the model's.
_NOT_MODEL = (str(Path(__file__).resolve().parent), sysconfig.get_paths()["stdlib"])


def is_data_dependent(exc: BaseException | str) -> bool:
    """Whether the failure is Python control flow on a tensor's value."""
    text = f"{type(exc).__name__} {exc}"
    return any(key in text for key in _DATA_DEPENDENT)


def user_frame(exc: BaseException) -> str | None:
    """``file:line (`code`)`` of the model code that raised, if it is outside the toolchains.

    torch.export prints the failing call under "The following call raised this
    error"; lowerings print "While executing %node ... target=op" first.
    """
    text = str(exc)
    calls = [m for m in _CALL.finditer(text) if not any(t in m.group(1) for t in _TOOLCHAINS)]
    if calls:
        file, line, _, code = calls[-1].groups()
        return f"{file.rsplit('/', 1)[-1]}:{line} (`{code.strip()}`)"
    frames = [
        f for f in traceback.extract_tb(exc.__traceback__)
        if not any(t in f.filename for t in _TOOLCHAINS) and not f.filename.startswith(_NOT_MODEL)
    ]
    if frames:
        f = frames[-1]
        return f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} (`{(f.line or '').strip()}`)"
    return None


def failing_op(exc: BaseException) -> str | None:
    """The aten op a lowering or verifier stopped at, when its message names one."""
    text = str(exc)
    for pattern in _OPS:
        if m := pattern.search(text):
            return m.group(1)
    return None


def export_error(fmt: str, model: object, exc: BaseException) -> ExportError:
    """One-line :class:`ExportError` for ``model`` failing to export to ``fmt``."""
    name = type(model).__name__
    where = user_frame(exc)
    if is_data_dependent(exc):
        at = f" at {where}" if where else ""
        fix = DATA_DEPENDENT_FIX if fmt != "torchscript-lite" else (
            "rewrite the branch with torch.where / torch.cond")
        return ExportError(f"{fmt}: {name} has data-dependent control flow{at}, which {fmt} "
                           f"cannot capture ({first_line(exc)}); {fix}")
    op = failing_op(exc)
    loc = " from ".join(p for p in (f"op {op}" if op else None, where) if p)
    at = f" at {loc}" if loc else ""
    return ExportError(f"{fmt}: export of {name} failed{at}: {first_line(exc).rstrip(':')}; "
                       f"try {_nearest(fmt)} instead")


def _nearest(fmt: str) -> str:
    """Where a format's user goes when it cannot take a model (its descriptor says)."""
    from edgesmith.export.formats import FORMATS

    return FORMATS.get(fmt).nearest if fmt in FORMATS else "onnx"
