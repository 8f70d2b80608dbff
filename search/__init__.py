"""Multi-objective search over a recipe's ``search:`` block, measured on the target
(``edgesmith search RECIPE``): Optuna in this process or Ray Tune trials on a cluster,
trials sharing finished stages by content key, latency through one timing queue per
target. See :mod:`edgesmith.search.study`."""

from __future__ import annotations

from typing import Any

__all__ = ["search"]


def search(*args: Any, **kwargs: Any) -> dict:
    """Run or resume a search; see :func:`edgesmith.search.study.search`."""
    from edgesmith.search.study import search as _search

    return _search(*args, **kwargs)
