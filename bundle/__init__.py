"""Deployment bundles: one package for the manifest (schema and verification),
the writer that turns a finished run into a bundle, the loader that runs one
(with its preprocessing and raw-input decoding), the reference profile and the
drift-telemetry hook. :mod:`edgesmith.runtimes` stays "a file in, numpy out";
this package stands on it.

Example:
    >>> from edgesmith.bundle import load_bundle
    >>> with load_bundle("runs/digits-quick/bundle") as b:  # doctest: +SKIP
    ...     print(b.predict(images).argmax(1))

Importing it is lean: the writer (torch) and the telemetry hook load on first use.
"""

from __future__ import annotations

from edgesmith.bundle.loader import Bundle, load_bundle, raw_inputs
from edgesmith.bundle.manifest import MANIFEST, SCHEMA_VERSION, read_manifest

__all__ = ["MANIFEST", "SCHEMA_VERSION", "Bundle", "DriftMonitor", "load_bundle", "raw_inputs", "read_manifest",
           "write_bundle"]


def __getattr__(name: str):
    """``write_bundle`` and ``DriftMonitor``, imported on first use."""
    if name == "write_bundle":
        from edgesmith.bundle.writer import write_bundle

        return write_bundle
    if name == "DriftMonitor":
        from edgesmith.bundle.telemetry import DriftMonitor

        return DriftMonitor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
