"""Benchmarks: latency and memory of a model file in a runtime, each in a fresh process;
the machine fingerprint, a SQLite results store and the HTML dashboard
(:func:`edgesmith.benchmarks.dashboard.render`)."""

from __future__ import annotations

from edgesmith.benchmarks.fingerprint import fingerprint
from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.stats import bootstrap_ci, cv, summarize
from edgesmith.benchmarks.store import ResultsStore

__all__ = ["ResultsStore", "bootstrap_ci", "cv", "fingerprint", "measure", "summarize"]
