"""The run cache: trained teachers, teacher targets, static-embedding tables; one
folder for every run on the machine (``EDGESMITH_CACHE``, default
``~/.cache/edgesmith``), keyed by content so a stale entry is never read."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """``$EDGESMITH_CACHE``, else ``~/.cache/edgesmith`` (not created here)."""
    return Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith"))
