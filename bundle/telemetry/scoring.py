"""Settings and scoring of drift statistics, shared by the live monitor and by the
fleet merge (:mod:`edgesmith.bundle.telemetry.fleet`), which re-scores summed
counts with exactly the same rules.

A statistic entry in a report carries what is needed to score it again: its
exact ``counts`` (bin counts, ``[n, sum, sum of squares]`` or ``[outside, total]``)
and its ``reference``. :func:`score` adds ``value``, ``p_value`` and ``status``:

- ``psi`` (histograms): PSI, bootstrap p-value; ``warn`` from ``psi_warn``,
  ``drift`` above ``psi_drift``, each only when ``p < alpha / tests``;
- ``max_psi`` (projections on principal directions): the largest PSI of the group
  and the p-value of that maximum;
- ``shift`` (a mean in reference standard deviations): z-test p-value;
- ``mmd`` (kernel two-sample test on a reservoir): ``drift`` when ``p < alpha / tests``;
- ``saturation`` (live values outside the int8 calibration range): ``recalibrate``
  when the rate exceeds ``saturation_recalibrate`` and, significantly, the
  reference rate.

Under the window's minimum sample every statistic is ``insufficient``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgesmith.bundle.telemetry import stats
from edgesmith.conf.base import Config, RecipeError, at_least, between

STATUSES = ("no_data", "insufficient", "ok", "warn", "drift", "recalibrate")  # rising severity
ALARMS = ("warn", "drift", "recalibrate")


@dataclass
class TelemetryConfig(Config):
    """How a :class:`~edgesmith.bundle.telemetry.DriftMonitor` samples and judges traffic.

    Attributes:
        sample_rate: Fraction of predicted items sampled, in [0, 1].
        window: Sampled items per drift report.
        seed: Seed of the sampling and of the bootstrap / permutation tests.
        alpha: Family-wise false-alarm rate per window, split evenly over the
            window's statistics (Bonferroni).
        power: Power the minimum sample is sized for.
        min_samples: Items a window needs before it may alarm; 0 derives it from
            ``alpha``, ``power`` and ``psi_drift`` (see :mod:`.stats`).
        psi_warn: PSI from which a significant histogram is ``warn``.
        psi_drift: PSI above which a significant histogram is ``drift``.
        shift_warn: Mean shift (reference std units) from which it is ``warn``.
        shift_drift: Mean shift above which it is ``drift``.
        saturation_recalibrate: Fraction of probed values outside their int8
            calibration range above which the model should be recalibrated.
        reservoir: Live embeddings kept per window for the MMD test.
        permutations: Permutations of the MMD test.
        device: Name of this device in reports ("" : the host name).
    """

    sample_rate: float = field(default=0.1, metadata=between(0, 1))
    window: int = field(default=500, metadata=at_least(1))
    seed: int = 0
    alpha: float = field(default=0.01, metadata=between(0, 1, lo_open=True, hi_open=True))
    power: float = field(default=0.8, metadata=between(0, 1, lo_open=True, hi_open=True))
    min_samples: int = field(default=0, metadata=at_least(0))
    psi_warn: float = field(default=0.1, metadata=at_least(0, open_=True))
    psi_drift: float = field(default=0.25, metadata=at_least(0, open_=True))
    shift_warn: float = field(default=0.32, metadata=at_least(0, open_=True))
    shift_drift: float = field(default=0.5, metadata=at_least(0, open_=True))
    saturation_recalibrate: float = field(default=0.01, metadata=between(0, 1, lo_open=True))
    reservoir: int = field(default=200, metadata=at_least(8))
    permutations: int = field(default=200, metadata=at_least(20))
    device: str = ""

    def validate(self) -> None:
        for kind in ("psi", "shift"):
            if getattr(self, f"{kind}_warn") > getattr(self, f"{kind}_drift"):
                raise RecipeError(f"{kind}_warn", f"must be <= {kind}_drift ({getattr(self, f'{kind}_drift')})")

    def level(self, metric: str, value: float) -> str:
        """``ok`` / ``warn`` / ``drift`` of one effect size (``metric``: psi or shift)."""
        v = abs(value)
        warn, drift = getattr(self, f"{metric}_warn"), getattr(self, f"{metric}_drift")
        return "ok" if v < warn else "warn" if v <= drift else "drift"


def minimum_sample(entries: list[dict], cfg: TelemetryConfig, m: int) -> int:
    """The window's minimum sample: ``cfg.min_samples``, or the largest the tests of
    ``entries`` need to detect a ``drift``-sized effect with ``cfg.power``."""
    if cfg.min_samples:
        return cfg.min_samples
    alpha, need = cfg.alpha / max(len(entries), 1), [1]
    for e in entries:
        if e["metric"] in ("psi", "max_psi"):
            refs = e["reference"] if e["metric"] == "max_psi" else [e["reference"]]
            a = alpha / len(refs)
            mm = e.get("reference_samples") or m
            need += [stats.required_samples(len(r), cfg.psi_drift, a, cfg.power, mm) or 10 * mm for r in refs]
        elif e["metric"] == "shift":
            need.append(stats.shift_samples(cfg.shift_drift, alpha, cfg.power))
    return int(max(need))


def score(entry: dict, n: int, m: int, cfg: TelemetryConfig, tests: int, min_n: int, seed: int) -> dict:
    """``entry`` with ``value``, ``p_value`` and ``status`` set from its ``counts``.

    Args:
        entry: A statistic with ``name``, ``metric``, ``counts`` and ``reference``.
        n: Items in the window; m: items in the reference profile.
        tests: Statistics tested in the window (the Bonferroni divisor).
        min_n: The window's minimum sample.
        seed: Seed of the bootstrap.
    """
    alpha = cfg.alpha / max(tests, 1)
    m = int(entry.get("reference_samples") or m)
    metric, counts, ref = entry["metric"], entry.get("counts"), entry.get("reference")
    detail: dict[str, Any] = {}
    if metric == "psi":
        c = np.asarray(counts, float)
        value = stats.psi(c, np.asarray(ref, float))
        p = stats.psi_pvalue(value, np.asarray(ref, float), n, m, seed)
        level = cfg.level("psi", value)
    elif metric == "max_psi":
        per = [stats.psi(np.asarray(c, float), np.asarray(r, float)) for c, r in zip(counts, ref, strict=True)]
        value = max(per)
        p = stats.max_psi_pvalue(value, [np.asarray(r, float) for r in ref], n, m, seed)
        level, detail = cfg.level("psi", value), {"per_direction": [round(v, 4) for v in per]}
    elif metric == "shift":
        k, s, s2 = (float(a) for a in counts)
        mean = s / k if k else math.nan
        std = math.sqrt(max(s2 / k - mean * mean, 0.0)) if k else math.nan
        ref_mean, ref_std = ref
        scale = max(ref_std, 1e-3 * abs(ref_mean), 1e-12)  # unit-norm embeddings: no alarm on rounding
        value = (mean - ref_mean) / scale
        p = stats.normal_pvalue(value * math.sqrt(max(k, 1)))
        level, detail = cfg.level("shift", value), {"mean": mean, "std": std}
    elif metric == "mmd":
        value, p = float(entry["value"]), float(entry["p_value"])
        level = "drift"
    elif metric == "saturation":
        outside, total = (float(a) for a in counts)
        value = outside / total if total else 0.0
        p = stats.binomial_excess_pvalue(value * n, n, max(float(ref), 1e-4))
        level = "recalibrate" if value > max(cfg.saturation_recalibrate, 2 * float(ref)) else "ok"
    else:
        raise ValueError(f"unknown drift metric {metric!r}")
    status = "insufficient" if n < min_n else level if p < alpha else "ok"
    return {**entry, "value": round(float(value), 6), "p_value": round(float(p), 6), "status": status, **detail}


def worst(entries: list[dict]) -> dict | None:
    """The statistic that sets a report's status: the most severe, then the largest score."""
    return max(entries, key=lambda e: (STATUSES.index(e["status"]), -e.get("p_value", 1.0)), default=None)
