"""Where fetched data lives, shared by the fetch step and the loaders (kept apart
from :mod:`edgesmith.data.fetch` so loading never imports the fetch code)."""

from __future__ import annotations

import os
from pathlib import Path

# VADER domain -> ground-truth file of hutto_ICWSM_2014 (TSV: id, mean valence, text)
VADER_FILES = {
    "movie": "movieReviewSnippets_GroundTruth.txt",
    "amazon": "amazonReviewSnippets_GroundTruth.txt",
    "tweets": "tweets_GroundTruth.txt",
    "nyt": "nytEditorialSnippets_GroundTruth.txt",
}


def data_root() -> Path:
    """``$EDGESMITH_DATA``, or ``~/.cache/edgesmith/data``."""
    return Path(os.environ.get("EDGESMITH_DATA") or "~/.cache/edgesmith/data").expanduser()


def vader_dir() -> Path:
    """The extracted VADER TSVs: ``<data root>/vader``."""
    return data_root() / "vader"
