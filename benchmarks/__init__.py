"""Benchmarks: latency and memory of a model file in a runtime, each in a fresh process."""

from __future__ import annotations

from edgesmith.benchmarks.latency import measure
from edgesmith.benchmarks.stats import summarize

__all__ = ["measure", "summarize"]
