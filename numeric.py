"""Numeric helpers shared by the stages, exporters, runtimes and benchmarks: one
definition each of the comparisons every report uses (mean cosine, SQNR, the
quality metric a task is judged by) and of an error's first line.

Example:
    >>> import numpy as np
    >>> round(mean_cosine(np.ones((2, 3)), 2 * np.ones((2, 3))), 6)
    1.0
    >>> sqnr_db(np.ones(4), np.ones(4))
    inf
"""

from __future__ import annotations

import numpy as np


def mean_cosine(ref: np.ndarray, out: np.ndarray) -> float:
    """Mean over rows of the cosine between ``ref`` and ``out`` (each flattened per row, float64)."""
    r = np.asarray(ref, np.float64).reshape(len(ref), -1)
    o = np.asarray(out, np.float64).reshape(len(out), -1)
    return float(np.mean(np.sum(r * o, 1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-12)))


def sqnr_db(ref: np.ndarray, out: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio ``10 log10(sum ref^2 / sum (ref-out)^2)`` in dB."""
    ref, out = np.asarray(ref, np.float64), np.asarray(out, np.float64)
    noise = float(np.sum((ref - out) ** 2))
    signal = float(np.sum(ref**2))
    return float("inf") if noise == 0 else float(10 * np.log10(max(signal, 1e-30) / noise))


def finite_or_none(x: float, digits: int = 2) -> float | None:
    """``x`` rounded, or None for NaN / inf (JSON-safe)."""
    return round(x, digits) if np.isfinite(x) else None


def quality_metric(task_kind: str) -> str:
    """The metric a model of this task kind is judged by: ``cosine_to_teacher`` for
    embedding models, ``accuracy`` for classifiers."""
    return "cosine_to_teacher" if task_kind == "embedding" else "accuracy"


def first_line(exc: BaseException | str) -> str:
    """The first non-empty line of an exception message (or string), else the exception's type name."""
    for line in str(exc).splitlines():
        if line.strip():
            return line.strip()
    return type(exc).__name__ if isinstance(exc, BaseException) else ""
