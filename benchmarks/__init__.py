"""Benchmarks: latency and memory of a model file in a runtime, each in a fresh process,
here or on a device target (:mod:`edgesmith.benchmarks.targets`: ssh, adb); the machine
fingerprint, a SQLite results store, the HTML dashboard
(:func:`edgesmith.benchmarks.dashboard.render`) and the flagship comparison
(``python -m edgesmith.benchmarks.studies.flagships``)."""

from __future__ import annotations

from edgesmith.benchmarks.fingerprint import fingerprint
from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.stats import bootstrap_ci, cv, summarize
from edgesmith.benchmarks.store import ResultsStore

__all__ = ["ResultsStore", "bootstrap_ci", "cv", "fingerprint", "measure", "summarize"]
