"""Mergeable quantile sketches of a window's per-item scalars (confidence, token
length, embedding norm and centroid cosine, pixel mean): Apache DataSketches KLL
(``datasketches``, extra ``telemetry``), serialized base64 in the report beside
its exact count. Two sketches merge into one of the union of their streams with
the same rank-error bound (about 1.65% at ``k = 200``); below ``k`` items a
sketch is exact. Without ``datasketches`` reports carry exact counts only.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from edgesmith.errors import MissingExtraError

K = 200
SKETCH_QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def _kll():
    try:
        from datasketches import kll_floats_sketch
    except ImportError:
        return None
    return kll_floats_sketch


def available() -> bool:
    """True when ``datasketches`` imports."""
    return _kll() is not None


def new() -> Any:
    """An empty KLL sketch, or None without ``datasketches``."""
    kll = _kll()
    return kll(K) if kll is not None else None


def update(sketch: Any, values: np.ndarray) -> None:
    if sketch is not None and len(values):
        sketch.update(np.asarray(values, np.float32))


def dump(sketch: Any) -> dict:
    """``{"n", "kll" (base64), "quantiles"}`` of a sketch."""
    if sketch.is_empty():
        return {"n": 0, "kll": base64.b64encode(sketch.serialize()).decode()}
    qs = sketch.get_quantiles(list(SKETCH_QUANTILES))
    return {"n": int(sketch.n), "kll": base64.b64encode(sketch.serialize()).decode(),
            "quantiles": {f"p{round(q * 100):02d}": round(float(v), 6) for q, v in zip(SKETCH_QUANTILES, qs,
                                                                                      strict=True)}}


def load(entry: dict) -> Any:
    """The sketch of a :func:`dump` entry.

    Raises:
        MissingExtraError: ``datasketches`` is not installed.
        ValueError: The bytes are not a KLL float sketch.
    """
    kll = _kll()
    if kll is None:
        raise MissingExtraError("datasketches", "telemetry", "merging drift sketches")
    return kll.deserialize(base64.b64decode(entry["kll"]))


def merged(entries: list[dict]) -> dict:
    """One :func:`dump` entry of the union of several."""
    out = new() if entries else None
    if out is None:
        raise MissingExtraError("datasketches", "telemetry", "merging drift sketches")
    for e in entries:
        out.merge(load(e))
    return dump(out)
