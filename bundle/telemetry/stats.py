"""The statistics of drift telemetry: binning, the population stability index, and
the significance and power that decide when a score may raise an alarm.

The profile writer (:mod:`edgesmith.bundle.profile`) and the monitor bin with the
same helpers, so both sides count alike.

**Significance.** A PSI is an effect size, not a test: two samples of one
distribution score ``PSI ~ (1/n + 1/m) * chi2(k - 1)`` (``n`` live items, ``m``
reference items, ``k`` bins), so a 14-item window scores 0.6 on 10 bins by chance.
Every PSI therefore carries a p-value: the fraction of PSIs at least as large
among :data:`NULL_DRAWS` windows of the same size drawn from the reference
histogram itself (a multinomial parametric bootstrap that includes the
reference's own sampling noise and the empty-bin floor). Items are the unit of
the draw: a 64-pixel image counts once, which overstates the noise of a
pixel histogram and keeps the test conservative.

**Minimum sample.** :func:`required_samples` is the smallest window for which the
chi-square test on ``k`` bins detects a true PSI of ``effect`` (the ``drift``
threshold) with probability ``power`` at level ``alpha``; the power of
``n * PSI`` under the alternative comes from Patnaik's approximation of the
noncentral chi-square. With the defaults (10 bins, PSI 0.25, alpha 0.01 split over
three statistics, power 0.8) that is 101 items against an exact reference, 112
against the 1,000-item profile an export writes and 140 against a 359-item one. Below it a window is ``insufficient``: no alarm.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
UNIT_BINS = np.linspace(0.0, 1.0, 11)  # pixel values and confidences: 10 equal bins over [0, 1]
PSI_EPSILON = 1e-4  # floor of a bin's fraction: an empty bin scores as 0.01%, not log(0)
NULL_DRAWS = 400  # bootstrap windows per p-value: the smallest p-value is 1/401
_NORMAL = NormalDist()


# --------------------------------------------------------------- binning
def summary(values: np.ndarray) -> dict[str, Any]:
    """Mean, std and :data:`QUANTILES` of a 1-D array."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        return {"count": 0}
    q = np.quantile(v, QUANTILES)
    return {"count": int(v.size), "mean": float(v.mean()), "std": float(v.std()),
            "quantiles": {f"p{round(p * 100):02d}": float(x) for p, x in zip(QUANTILES, q, strict=True)}}


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The bin of each value: ``edges[i] <= v < edges[i + 1]``, the last bin closed,
    values outside the edges clipped into the end bins (as :func:`histogram` counts)."""
    edges = np.asarray(edges, dtype=np.float64)
    idx = np.searchsorted(edges, np.asarray(values, dtype=np.float64), side="right") - 1
    return np.clip(idx, 0, len(edges) - 2)


def histogram(values: np.ndarray, edges: np.ndarray) -> dict[str, list]:
    """Fractions per bin (the last bin closed, outliers clipped in), with the bin edges."""
    counts = np.bincount(bin_index(np.ravel(values), edges), minlength=len(edges) - 1)
    total = max(int(counts.sum()), 1)
    return {"edges": [round(float(e), 6) for e in edges], "fractions": [round(int(c) / total, 6) for c in counts]}


def token_length_edges(max_length: int) -> np.ndarray:
    """Token-length bin edges: 0, powers of two below ``max_length``, ``max_length``."""
    return np.asarray([0] + [2**i for i in range(1, 16) if 2**i < max_length] + [max_length], float)


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax of ``(N, K)`` logits, in float64."""
    z = np.asarray(logits, dtype=np.float64)
    z = np.exp(z - z.max(1, keepdims=True))
    return z / z.sum(1, keepdims=True)


def psi(live: np.ndarray, reference: np.ndarray, eps: float = PSI_EPSILON) -> float:
    """Population stability index of two distributions over the same bins (counts or
    fractions; each is normalised, then floored at ``eps``)."""
    p, q = (np.asarray(a, dtype=np.float64) for a in (live, reference))
    p, q = (np.maximum(a / max(a.sum(), 1e-300), eps) for a in (p, q))
    return float(np.sum((p - q) * np.log(p / q)))


def _psi_rows(p: np.ndarray, q: np.ndarray, eps: float = PSI_EPSILON) -> np.ndarray:
    p = np.maximum(p / np.maximum(p.sum(-1, keepdims=True), 1e-300), eps)
    q = np.maximum(q / np.maximum(q.sum(-1, keepdims=True), 1e-300), eps)
    return np.sum((p - q) * np.log(p / q), -1)


# ----------------------------------------------------------- significance
def psi_null(references: list[np.ndarray], n: int, m: int, seed: int = 0, draws: int = NULL_DRAWS) -> np.ndarray:
    """``(draws, len(references))`` PSIs of ``n``-item windows drawn from each reference
    histogram, scored against an ``m``-item redraw of that reference."""
    rng = np.random.default_rng(seed)
    out = np.empty((draws, len(references)))
    for j, ref in enumerate(references):
        q = np.maximum(np.asarray(ref, dtype=np.float64), 0)
        q = q / q.sum() if q.sum() > 0 else np.full(len(q), 1 / len(q))
        live = rng.multinomial(max(int(n), 1), q, size=draws).astype(np.float64)
        base = rng.multinomial(int(m), q, size=draws).astype(np.float64) if m > 0 else np.tile(q, (draws, 1))
        out[:, j] = _psi_rows(live, base)
    return out


def tail_pvalue(null: np.ndarray, observed: float) -> float:
    """P(null >= observed) from Monte Carlo draws: ``(1 + k) / (1 + B)``; beyond every
    draw, the normal tail of the draws' mean and std (capped at ``1 / (1 + B)``), so a
    large effect can pass a Bonferroni-split level below the draws' resolution."""
    null = np.asarray(null, dtype=np.float64)
    k = int(np.sum(null >= observed - 1e-12))
    if k:
        return float((1 + k) / (1 + len(null)))
    z = (observed - null.mean()) / max(float(null.std()), 1e-12)
    return float(min(1 / (1 + len(null)), 0.5 * math.erfc(z / math.sqrt(2))))


def psi_pvalue(value: float, reference: np.ndarray, n: int, m: int, seed: int = 0) -> float:
    """P(PSI >= ``value``) for an ``n``-item window of the reference distribution."""
    return tail_pvalue(psi_null([reference], n, m, seed)[:, 0], value)


def max_psi_pvalue(value: float, references: list[np.ndarray], n: int, m: int, seed: int = 0) -> float:
    """P(max PSI over several histograms >= ``value``), each drawn independently
    (the projections on principal directions are uncorrelated)."""
    return tail_pvalue(psi_null(references, n, m, seed).max(1), value)


def normal_pvalue(z: float) -> float:
    """Two-sided p-value of a standard-normal score."""
    return float(math.erfc(abs(z) / math.sqrt(2))) if math.isfinite(z) else 0.0


def binomial_excess_pvalue(hits: float, n: float, p0: float) -> float:
    """One-sided p-value of ``hits`` or more of ``n`` at rate ``p0`` (normal
    approximation with continuity correction; exact 1.0 / 0.0 at the ends)."""
    if n <= 0 or hits <= n * p0:
        return 1.0
    p0 = min(max(p0, 1e-6), 1 - 1e-6)
    z = (hits - 0.5 - n * p0) / math.sqrt(n * p0 * (1 - p0))
    return float(0.5 * math.erfc(z / math.sqrt(2)))


# ------------------------------------------------------------------ power
def chi2_sf(x: float, df: float) -> float:
    """Survival function of chi-square (Wilson-Hilferty cube-root approximation)."""
    if x <= 0:
        return 1.0
    a = 2 / (9 * df)
    z = ((x / df) ** (1 / 3) - (1 - a)) / math.sqrt(a)
    return 0.5 * math.erfc(z / math.sqrt(2))


def chi2_isf(p: float, df: float) -> float:
    """The value a chi-square exceeds with probability ``p`` (Wilson-Hilferty)."""
    a = 2 / (9 * df)
    return df * max(1 - a + _NORMAL.inv_cdf(1 - p) * math.sqrt(a), 0.0) ** 3


def chi2_power(n: int, df: int, effect: float, alpha: float, m: int = 0) -> float:
    """Power of the chi-square test on ``df + 1`` bins to detect a true PSI ``effect``
    with an ``n``-item window and an ``m``-item reference (0: exact reference)."""
    scale = 1 / n + (1 / m if m else 0.0)
    lam = effect / scale
    rho, nu = (df + 2 * lam) / (df + lam), (df + lam) ** 2 / (df + 2 * lam)  # Patnaik
    return chi2_sf(chi2_isf(alpha, df) / rho, nu)


def required_samples(bins: int, effect: float, alpha: float, power: float = 0.8, m: int = 0) -> int | None:
    """The minimum window: the fewest items for which a true PSI of ``effect`` over
    ``bins`` bins is detected with probability ``power`` at level ``alpha``; None
    when even an infinite window cannot (the ``m``-item reference is too noisy).

    Example:
        >>> required_samples(10, 0.25, 0.01 / 3)
        101
    """
    df = max(bins - 1, 1)
    if m and chi2_power(10**7, df, effect, alpha, m) < power:
        return None
    lo, hi = 1, 10**7
    while lo < hi:
        mid = (lo + hi) // 2
        if chi2_power(mid, df, effect, alpha, m) >= power:
            hi = mid
        else:
            lo = mid + 1
    return lo


def shift_samples(shift: float, alpha: float, power: float = 0.8) -> int:
    """The fewest items for a two-sided z-test to detect a mean shift of ``shift``
    reference standard deviations with probability ``power`` at level ``alpha``."""
    z = _NORMAL.inv_cdf(1 - alpha / 2) + _NORMAL.inv_cdf(power)
    return math.ceil((z / shift) ** 2)
