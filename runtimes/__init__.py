"""Runtimes: load a model file and run numpy inputs to numpy outputs.

One interface (:class:`Runtime`) over real inference engines, picked by name or
by the file's suffix::

    from edgesmith.runtimes import load

    with load("model.onnx", threads=1) as rt:
        outputs = rt.run({"image": batch})

A deployment bundle (model files + ``edgesmith.json``, preprocessing, telemetry)
is :mod:`edgesmith.bundle`, which stands on these runtimes.

Importing this package stays lean: each runtime module imports its engine
(onnxruntime, torch, ...) only when a model is loaded, so ``name in RUNTIMES``
and ``RUNTIMES.unknown_message(name)`` cost nothing during recipe validation.
"""

from __future__ import annotations

import os
from pathlib import Path

from edgesmith.errors import UserError
from edgesmith.registry import Registry
from edgesmith.runtimes.base import Runtime, TensorSpec
from edgesmith.runtimes.executorch import ExecuTorchRuntime
from edgesmith.runtimes.litert import LiteRTRuntime
from edgesmith.runtimes.onnxruntime import OnnxRuntime
from edgesmith.runtimes.tensorrt import TensorRTRuntime
from edgesmith.runtimes.torch import TorchRuntime
from edgesmith.runtimes.torchscript_lite import TorchScriptLiteRuntime

__all__ = ["RUNTIMES", "Runtime", "TensorSpec", "load", "runtime_for"]

RUNTIMES = Registry[type[Runtime]]("runtime")

# A new runtime subclasses Runtime, imports its engine only inside _load (via
# import_backend), and is registered below; tests/runtimes parametrises over RUNTIMES.
for _cls in (OnnxRuntime, TorchRuntime, LiteRTRuntime, ExecuTorchRuntime, TorchScriptLiteRuntime, TensorRTRuntime):
    RUNTIMES.register(_cls.name)(_cls)
del _cls



def runtime_for(path: str | os.PathLike) -> str:
    """Name of the runtime that loads ``path`` by its suffix.

    Where several registered runtimes take the suffix, the one that declares it in
    ``default_for`` wins, else the first by name.

    Raises:
        EdgesmithError: No registered runtime loads that suffix.
    """
    suffix = Path(path).suffix.lower()
    matches = [name for name, cls in RUNTIMES.items() if suffix in cls.suffixes]
    if matches:
        preferred = [name for name in matches if suffix in RUNTIMES.get(name).default_for]
        return (preferred or matches)[0]
    known = sorted({s for _, cls in RUNTIMES.items() for s in cls.suffixes})
    raise UserError(
        f"{path}: no runtime loads '{suffix or '(no suffix)'}' files; "
        f"pass runtime= one of {', '.join(RUNTIMES)} or use one of: {', '.join(known)}"
    )


def load(
    path: str | os.PathLike,
    runtime: str | None = None,
    threads: int = 1,
    device: str = "cpu",
) -> Runtime:
    """Load a model file in a runtime.

    Args:
        path: Model file (``.onnx``, ``.pt2``, ...).
        runtime: Registered runtime name; ``None`` picks one by the file suffix.
        threads: Intra-op threads.
        device: ``"cpu"`` or ``"cuda"`` where the runtime supports it.

    Returns:
        The loaded :class:`Runtime`; use it as a context manager to close it.

    Raises:
        EdgesmithError: Missing file, unknown runtime or suffix, or a file the
            runtime cannot load (one line each).
        MissingExtraError: The runtime's package is not installed.
    """
    if not Path(path).is_file():
        raise UserError(f"{path}: no such model file")
    cls = RUNTIMES.get(runtime if runtime is not None else runtime_for(path))
    return cls(path, threads=threads, device=device)

