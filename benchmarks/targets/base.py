"""The interface every benchmark target implements."""

from __future__ import annotations

import os
from types import TracebackType
from typing import Any, ClassVar

import numpy as np


class Target:
    """Runs measurements of one model file somewhere.

    Use as a context manager: :meth:`prepare` stages the model once (a copy to a
    remote host, a push to a phone), :meth:`measure` runs one point, and
    :meth:`close` removes what was staged.

    Attributes:
        url: The target string as given (recorded as each row's ``target``).
        options: Keyword options the constructor takes (CLI flags by the same name).
        takes_inputs: Whether :meth:`measure` feeds the given inputs (``False``: the
            target's own tool synthesises them, e.g. LiteRT's ``benchmark_model``).
        device: The ``device`` passed to runtimes (``cpu`` or ``cuda``).
        suffixes: The model file suffixes the target runs (``None``: whatever a runtime loads).
    """

    options: ClassVar[tuple[str, ...]] = ()
    takes_inputs: ClassVar[bool] = True
    suffixes: ClassVar[tuple[str, ...] | None] = None  # model file suffixes it runs (None: any)

    def __init__(self, url: str) -> None:
        self.url = url
        self.device = "cpu"

    def prepare(self, model: str | os.PathLike) -> None:
        """Stage ``model`` for the measurements that follow (no-op by default).

        Never raises for an unreachable target: the failure is kept and every
        :meth:`measure` then returns it as its ``error``.
        """

    def measure(
        self,
        model: str | os.PathLike,
        runtime: str | None,
        inputs: dict[str, np.ndarray],
        threads: int = 1,
        warmup: int = 10,
        iterations: int = 100,
        min_seconds: float = 1.0,
    ) -> dict[str, Any]:
        """One measurement, in the shape of :func:`edgesmith.benchmarks.latency.measure`;
        ``error`` is set (one line) instead of raising."""
        raise NotImplementedError

    def close(self) -> None:
        """Remove what :meth:`prepare` staged (best effort)."""

    def __enter__(self) -> Target:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def last_line(text: str) -> str:
    """The last non-empty line of a tool's output, stripped ('' if none)."""
    lines = [ln.strip() for ln in text.replace("\r", "").splitlines() if ln.strip()]
    return lines[-1] if lines else ""
