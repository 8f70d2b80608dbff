"""Drift telemetry: watch a shipped model by comparing a sample of its live traffic
with the ``reference_profile`` its bundle carries.

A :class:`DriftMonitor` rides on a :class:`~edgesmith.bundle.loader.Bundle`. Each
``predict`` call draws which of its items to sample (a seeded Bernoulli process,
``sample_rate``; an unsampled call costs a lock and an integer compare) and adds the
sampled items' statistics to the current window: per-channel pixel histograms or
the token-length histogram of the inputs; the predicted-class distribution and the
top-softmax-confidence histogram (classifiers), or, for encoders, projections on
the reference's principal directions, the cosine to its centroid and a kernel
two-sample test (:mod:`.embedding`); for a static int8 file, the fraction of
activations outside their calibration range (:mod:`.calibration`). Every
``window`` sampled items it emits a report to a JSON-lines sink that spools
through outages (:mod:`.sink`) and/or a callback. Reports hold only window
aggregates (exact counts, quantile sketches), never an input, and merge across
devices and time (:mod:`.fleet`)::

    from edgesmith.bundle import load_bundle
    from edgesmith.bundle.telemetry import DriftMonitor

    monitor = DriftMonitor(sample_rate=0.05, window=500, sink="drift.jsonl")
    with load_bundle("runs/digits-quick/bundle", telemetry=monitor) as bundle:
        bundle.predict(images)          # reports appended every 500 sampled images
        print(monitor.report()["status"])  # the current window, on demand

Each statistic carries an effect size and a p-value (:mod:`.stats`); a window
alarms only once it holds its minimum sample and the test is significant at
``alpha`` split over its statistics (:mod:`.scoring`). Statuses, in rising
severity: ``no_data``, ``insufficient``, ``ok``, ``warn``, ``drift``, ``recalibrate``.
"""

from __future__ import annotations

from edgesmith.bundle.telemetry.monitor import REPORT_SCHEMA, DriftMonitor, make_monitor
from edgesmith.bundle.telemetry.scoring import ALARMS, STATUSES, TelemetryConfig
from edgesmith.bundle.telemetry.sink import JsonlSink, read_reports
from edgesmith.bundle.telemetry.stats import (
    PSI_EPSILON,
    QUANTILES,
    UNIT_BINS,
    bin_index,
    histogram,
    psi,
    required_samples,
    softmax,
    summary,
    token_length_edges,
)

__all__ = ["ALARMS", "PSI_EPSILON", "QUANTILES", "REPORT_SCHEMA", "STATUSES", "UNIT_BINS", "DriftMonitor",
           "JsonlSink", "TelemetryConfig", "bin_index", "histogram", "make_monitor", "psi", "read_reports",
           "required_samples", "softmax", "summary", "token_length_edges"]
