"""The resumable runner: a recipe becomes a plan of steps (:mod:`~edgesmith.pipeline.plan`)
that :class:`~edgesmith.pipeline.runner.Runner` runs, handing each step's result to the
next in memory. ``edgesmith.run`` is the entry point."""

from __future__ import annotations

__all__ = ["context", "plan", "report", "runner", "steps"]
