"""The one interface every runtime implements: numpy in, numpy out.

A runtime only loads and runs a model file, so an app can use it alone, with no
recipe, pipeline or CLI behind it::

    from edgesmith.runtimes import load

    with load("model.onnx", threads=2) as rt:
        print([s.name for s in rt.inputs])
        (logits,) = rt.run({"image": image})
"""

from __future__ import annotations

import importlib
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, TracebackType
from typing import ClassVar

import numpy as np

from edgesmith.errors import EdgesmithError, MissingExtraError, UserError
from edgesmith.numeric import first_line


@dataclass
class TensorSpec:
    """Name, shape and numpy dtype name of one model input or output.

    A dynamic dimension is a string (its symbolic name, e.g. ``"batch"``) or
    ``None`` when the runtime gives it no name.
    """

    name: str
    shape: list[int | str | None]
    dtype: str


def require(module: str, extra: str, what: str = "") -> ModuleType:
    """Import an optional package, or raise :class:`MissingExtraError` naming the extra."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        if (e.name or "").split(".")[0] != module.split(".")[0]:
            raise  # the package is there but one of its own imports is broken
        raise MissingExtraError(module, extra, what) from e


class Runtime(ABC):
    """A loaded model file that runs numpy inputs to numpy outputs.

    Subclasses set ``name``, ``suffixes``, ``extra``, ``backend`` (the package
    they wrap; imported only when a model is loaded, never when edgesmith is) and
    ``devices`` when they run on more than the CPU, and implement :meth:`_load`
    (which sets ``_inputs`` and ``_outputs``) and :meth:`_run`. Construction checks the
    file and turns any loading failure into a one-line :class:`EdgesmithError`.

    Args:
        path: Model file.
        threads: Intra-op threads the runtime may use.
        device: ``"cpu"`` or, where the runtime supports it, ``"cuda"``.
    """

    name: ClassVar[str]
    suffixes: ClassVar[tuple[str, ...]]
    extra: ClassVar[str]
    backend: ClassVar[str]
    # suffixes this runtime loads by default when several registered runtimes take them
    default_for: ClassVar[tuple[str, ...]] = ()
    devices: ClassVar[tuple[str, ...]] = ("cpu",)

    def __init__(self, path: str | os.PathLike, threads: int = 1, device: str = "cpu"):
        self.path = Path(path)
        if not self.path.is_file():
            raise UserError(f"{self.path}: no such model file")
        if int(threads) < 1:
            raise UserError(f"{self.name}: threads must be at least 1, got {threads}")
        if device not in self.devices:
            raise UserError(
                f"{self.name}: unknown device '{device}'; choose one of: {', '.join(self.devices)}"
            )
        self.threads, self.device = int(threads), device
        self.closed = False
        from edgesmith.runtimes.validate import check_container

        try:
            check_container(self.path)  # a damaged or foreign file never reaches the native runtime
        except EdgesmithError as e:
            raise EdgesmithError(f"{self.path}: the {self.name} runtime cannot load it: "
                                 f"{str(e).removeprefix(f'{self.path}: ')}") from None
        try:
            self._load()
        except EdgesmithError:
            raise
        except Exception as e:
            raise EdgesmithError(
                f"{self.path}: the {self.name} runtime cannot load it: {first_line(e)}"
            ) from e

    @classmethod
    def import_backend(cls) -> ModuleType:
        """Import the package this runtime wraps, or raise :class:`MissingExtraError`."""
        return require(cls.backend, cls.extra, f"the {cls.name} runtime")

    @abstractmethod
    def _load(self) -> None:
        """Open ``self.path`` with ``self.threads`` and ``self.device``."""

    @abstractmethod
    def _run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run checked, dtype-cast inputs; return outputs in declared order."""

    @property
    def inputs(self) -> list[TensorSpec]:
        """Model inputs, in the order the model declares them (``_load`` sets ``_inputs``);
        a dynamic dim is its label (``"batch"``) or None where the file gives it none."""
        return self._inputs

    @property
    def outputs(self) -> list[TensorSpec]:
        """Model outputs, in the order :meth:`run` returns them (``_load`` sets ``_outputs``)."""
        return self._outputs

    @property
    def files(self) -> list[Path]:
        """Every file the model consists of (the model file plus any weight files it names)."""
        return [self.path]

    def run(self, inputs: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Run the model once.

        Args:
            inputs: One array per declared input name. Integer arrays are cast
                to the declared integer dtype and float arrays to the declared
                float dtype, so int32 token ids or float64 data work.

        Returns:
            One numpy array per output, in :attr:`outputs` order.

        Raises:
            EdgesmithError: An input is missing or unknown, or the runtime
                rejected the inputs (one line, with the runtime's reason).
        """
        if self.closed:
            raise EdgesmithError(f"{self.path}: the {self.name} runtime was closed")
        feeds = self._check(inputs)
        try:
            return self._run(feeds)
        except EdgesmithError:
            raise
        except Exception as e:
            raise EdgesmithError(f"{self.path}: the {self.name} run failed: {first_line(e)}") from e

    def warmup(self, inputs: dict[str, np.ndarray], n: int = 10) -> None:
        """Run the model ``n`` times and discard the outputs."""
        for _ in range(n):
            self.run(inputs)

    def close(self) -> None:
        """Release the loaded model; :meth:`run` then raises. Subclasses drop their handles too."""
        self.closed = True

    def __enter__(self) -> Runtime:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r}, threads={self.threads}, device={self.device!r})"

    def _check(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        wanted = self.__dict__.get("_wanted")
        if wanted is None:  # name -> numpy dtype (None: no numpy equivalent), built once
            wanted = self._wanted = {s.name: _np_dtype(s.dtype) for s in self.inputs}
        if inputs.keys() != wanted.keys():
            missing = [n for n in wanted if n not in inputs]
            unknown = [n for n in inputs if n not in wanted]
            what = "; ".join(
                f"{label} input(s) {', '.join(names)}"
                for label, names in (("missing", missing), ("unknown", unknown))
                if names
            )
            raise EdgesmithError(
                f"{self.path}: {what}; the model takes {', '.join(wanted) or 'no inputs'}"
            )
        feeds = {}
        for name, want in wanted.items():
            a = inputs[name]
            if not isinstance(a, np.ndarray):
                a = np.asarray(a)
            feeds[name] = a if want is None or a.dtype == want else cast_to(a, want)
        return feeds


def _np_dtype(name: str) -> np.dtype | None:
    try:
        return np.dtype(name)
    except TypeError:
        return None


def cast_to(array: np.ndarray, want: np.dtype) -> np.ndarray:
    """Cast ``array`` to ``want`` when both are integers or both are floats, else leave it."""
    if array.dtype == want:
        return array
    kinds = {array.dtype.kind, want.kind}
    return array.astype(want) if kinds <= {"i", "u"} or kinds == {"f"} else array
