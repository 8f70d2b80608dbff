"""This machine: each point in a fresh local worker process (CPU or CUDA)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.targets.base import Target


class LocalTarget(Target):
    """``cpu`` or ``cuda``: :func:`edgesmith.benchmarks.latency.measure` on this machine."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.device = url

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
        r = measure(
            model,
            runtime,
            inputs,
            threads=threads,
            device=self.device,
            warmup=warmup,
            iterations=iterations,
            min_seconds=min_seconds,
        )
        r.pop("eval_outputs", None)
        return r
