"""Summary statistics of latency samples, with bootstrap confidence intervals."""

from __future__ import annotations

import numpy as np

CI_LEVEL = 0.95


def bootstrap_ci(
    samples: np.ndarray, q: float, n_boot: int = 1000, seed: int = 0, level: float = CI_LEVEL
) -> tuple[float, float]:
    """Percentile-bootstrap confidence interval of the ``q``-quantile (``q`` in 0..100).

    Each bootstrap replicate is the quantile of ``n`` draws with replacement
    from the samples. Only the two order statistics that numpy's linear
    interpolation reads are drawn, from their exact distribution: for ``n``
    uniform draws ``U``, the k-th smallest is ``Beta(k, n - k + 1)`` and the
    gap to the next is ``(1 - U_(k)) * Beta(1, n - k)``; a draw ``U`` picks the
    sorted sample at ``floor(n * U)``. That is the resampling bootstrap in
    distribution (tested against it), at O(n log n + n_boot) cost, so 100k
    samples take milliseconds.

    Args:
        samples: Observations (e.g. latencies in ms).
        q: Percentile in ``[0, 100]``, as for ``np.percentile``.
        n_boot: Bootstrap replicates.
        seed: Seed of the random generator (results are reproducible).
        level: Coverage of the interval.

    Returns:
        ``(lo, hi)`` bounds of the interval.

    Example:
        >>> lo, hi = bootstrap_ci(np.random.default_rng(1).exponential(size=2000), 50)
        >>> bool(lo < np.log(2) < hi)
        True
    """
    x = np.sort(np.asarray(samples, dtype=np.float64).ravel())
    n = x.size
    if n == 0:
        raise ValueError("bootstrap_ci() needs at least one sample")
    if not 0 <= q <= 100:
        raise ValueError(f"bootstrap_ci(): q must be in [0, 100], got {q}")
    if n == 1:
        return float(x[0]), float(x[0])
    h = (n - 1) * q / 100.0
    lo_i = min(int(np.floor(h)), n - 1)
    frac = h - lo_i
    rng = np.random.default_rng(seed)
    k = lo_i + 1  # 1-based rank of the lower order statistic
    u_k = rng.beta(k, n - k + 1, size=n_boot)
    below = x[np.minimum((n * u_k).astype(np.int64), n - 1)]
    if k < n and frac > 0:
        u_next = u_k + (1.0 - u_k) * rng.beta(1, n - k, size=n_boot)
        above = x[np.minimum((n * u_next).astype(np.int64), n - 1)]
        stat = below + frac * (above - below)
    else:
        stat = below
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(stat, [tail, 100 - tail])
    return float(lo), float(hi)


def cv(values: np.ndarray | list[float]) -> float:
    """Coefficient of variation: sample standard deviation (ddof=1) over the mean.

    Example:
        >>> round(cv([9.0, 10.0, 11.0]), 3)
        0.1
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size < 2:
        raise ValueError("cv() needs at least two values")
    mean = float(x.mean())
    if mean == 0:
        raise ValueError("cv() is undefined for a mean of zero")
    return float(x.std(ddof=1) / abs(mean))


def summarize(samples_ms: np.ndarray) -> dict[str, float | int | list[float] | None]:
    """Summarise latency samples in milliseconds.

    Percentiles use numpy's default linear interpolation; ``std`` is the
    population standard deviation. ``throughput_per_s`` is ``1000 / mean``:
    runs per second, i.e. samples per second at batch 1 (the caller scales it
    by the batch size); ``None`` if every sample is zero. ``p50_ci`` and
    ``p99_ci`` are 95% bootstrap intervals (:func:`bootstrap_ci`).

    Args:
        samples_ms: One latency per run, in milliseconds.

    Returns:
        ``mean, p50, p90, p99, min, max, std, n, throughput_per_s, p50_ci,
        p99_ci`` as plain Python numbers and ``[lo, hi]`` lists (JSON-ready).

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
        "p50_ci": list(bootstrap_ci(x, 50)),
        "p99_ci": list(bootstrap_ci(x, 99)),
    }


# Differences under this fraction of the faster p50 are never called a change: run-to-run
# noise on a shared CPU is a few percent.
CHANGE_MARGIN = 0.05


def harness_overhead_ms(*rows: dict | None) -> float | None:
    """The largest harness overhead recorded in the rows' ``protocol`` (``overhead_ms``:
    the p50 of a no-op model fed the same inputs through the same timing loop), or
    None when none was measured."""
    found = [((r or {}).get("protocol") or {}).get("overhead_ms") for r in rows]
    found = [float(v) for v in found if v is not None]
    return max(found) if found else None


def compare_latency(
    before: dict, after: dict, overhead_ms: float | None = None, margin: float = CHANGE_MARGIN
) -> str:
    """Whether ``after`` is ``"slower"``, ``"faster"`` or the ``"same"`` as ``before``.

    The one rule for every "slower"/"faster" flag: a difference counts only when the p50s
    differ by more than ``margin`` of the faster one, their 95% p50 confidence intervals
    (``p50_ci``) are disjoint (when both have one; a device tool's mean has none), and the
    gap exceeds the harness overhead (``overhead_ms``), below which two files are timed at
    the timing loop's own floor.

    Args:
        before: A latency dict (:func:`summarize`): ``p50`` and optionally ``p50_ci``.
        after: The same for the other measurement.
        overhead_ms: Harness overhead (:func:`harness_overhead_ms`); None: not measured.
        margin: Smallest relative difference that counts.

    Example:
        >>> a, b = {"p50": 0.020, "p50_ci": [0.019, 0.021]}, {"p50": 0.030, "p50_ci": [0.029, 0.031]}
        >>> compare_latency(a, b), compare_latency(a, b, overhead_ms=0.015), compare_latency(b, a)
        ('slower', 'same', 'faster')
    """
    p_a, p_b = before.get("p50"), after.get("p50")
    if not p_a or not p_b:
        return "same"
    slow, fast = (after, before) if p_b > p_a else (before, after)
    ci_s, ci_f = slow.get("p50_ci"), fast.get("p50_ci")
    apart = not (ci_s and ci_f) or ci_s[0] > ci_f[1]
    gap = slow["p50"] - fast["p50"]
    if gap > margin * fast["p50"] and apart and gap > (overhead_ms or 0.0):
        return "slower" if p_b > p_a else "faster"
    return "same"
