"""Base of every pipeline stage's config."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from edgesmith.conf.base import Config


@dataclass
class StageConfig(Config):
    """``kind`` names the technique (registry key); ``name`` is unique in a recipe
    (default: the kind) and names the stage's folder and ``--set`` path. ``enabled: false``
    keeps the stage in the recipe but leaves it out of the run (``--set
    stages.vocab.enabled=false``; a search may toggle it)."""

    kind: ClassVar[str] = ""
    name: str | None = None
    enabled: bool = True
