"""Summary statistics of latency samples."""

from __future__ import annotations

import numpy as np


def summarize(samples_ms: np.ndarray) -> dict[str, float | int | None]:
    """Summarise latency samples in milliseconds.

    Percentiles use numpy's default linear interpolation; ``std`` is the
    population standard deviation. ``throughput_per_s`` is ``1000 / mean``:
    runs per second, i.e. samples per second at batch 1 (the caller scales it
    by the batch size); ``None`` if every sample is zero.

    Args:
        samples_ms: One latency per run, in milliseconds.

    Returns:
        ``mean, p50, p90, p99, min, max, std, n, throughput_per_s`` as plain
        Python numbers (JSON-ready).

    Example:
        >>> summarize(np.arange(1, 101))["p90"]
        90.1
    """
    x = np.asarray(samples_ms, dtype=np.float64).ravel()
    if x.size == 0:
        raise ValueError("summarize() needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise ValueError("summarize() got a NaN or infinite sample")
    p50, p90, p99 = np.percentile(x, [50, 90, 99])
    mean = float(x.mean())
    return {
        "mean": mean,
        "p50": float(p50),
        "p90": float(p90),
        "p99": float(p99),
        "min": float(x.min()),
        "max": float(x.max()),
        "std": float(x.std()),
        "n": int(x.size),
        "throughput_per_s": 1000.0 / mean if mean > 0 else None,
    }
