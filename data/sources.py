"""Data sources: the in-memory form of a data set (:class:`RawData`) and the
registry of loaders that produce it, by name (``fashion-mnist``, ``vader``,
``npz``, ...).

A loader takes a :class:`~edgesmith.conf.recipe.SourceConfig` and returns
``{"train": RawData}``, plus ``{"test": RawData}`` when the set has an official
test split. :func:`load_source` is the one entry point: it looks the loader up
and applies ``limit``.

    >>> from edgesmith.conf.recipe import SourceConfig
    >>> parts = load_source(SourceConfig("digits", limit=100))
    >>> len(parts["train"]), parts["train"].x.shape[1:]
    (100, (1, 8, 8))

Loaders of the named real sets cache what they read (keyed on the config values
that change the result), so their arrays are read-only; :meth:`RawData.subset`
returns writable copies.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from edgesmith.errors import DataError
from edgesmith.registry import Registry

if TYPE_CHECKING:
    from edgesmith.conf.recipe import SourceConfig

__all__ = ["RawData", "SourceSpec", "SOURCES", "load_source"]

LIMIT_SEED = 0  # the fixed permutation used to cap a split to ``limit``


@dataclass
class RawData:
    """A data set in memory.

    Images: ``x`` is float32 ``(N, C, H, W)`` in [0, 1]. Text: ``x`` is a list of
    strings. ``y`` is int64 ``(N,)`` indexing ``classes``, or None when unlabelled.
    """

    kind: Literal["image", "text"]
    x: np.ndarray | list[str]
    y: np.ndarray | None = None
    classes: list[str] | None = None
    # rows added by a source's ``repeat`` come last: copy_of[j] is the row that the j-th of them
    # copies (so a hold-out can leave every copy of a held-out row out); None when nothing repeats
    copy_of: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("image", "text"):
            raise ValueError(f"kind must be 'image' or 'text', got {self.kind!r}")
        if self.kind == "image" and (not isinstance(self.x, np.ndarray) or self.x.ndim != 4):
            raise ValueError("image data must be an (N, C, H, W) array")
        if self.y is not None and len(self.y) != len(self.x):
            raise ValueError(f"{len(self.x)} inputs but {len(self.y)} labels")

    def __len__(self) -> int:
        return len(self.x)

    def subset(self, indices: Sequence[int] | np.ndarray) -> RawData:
        """The examples at ``indices``, in that order (a copy)."""
        idx = np.asarray(indices, dtype=np.int64)
        if self.kind == "text":
            x: np.ndarray | list[str] = [self.x[i] for i in idx]
        else:
            x = self.x[idx]
        y = None if self.y is None else self.y[idx]
        return RawData(self.kind, x, y, None if self.classes is None else list(self.classes))


@dataclass(frozen=True)
class SourceSpec:
    """How to load one named source and what it yields."""

    loader: Callable[[SourceConfig], dict[str, RawData]]
    kind: str  # "image", "text", or "any" when the files decide
    needs_path: bool = False
    domains: list[str] | None = None
    official_test: bool = False
    description: str = ""


SOURCES: Registry[SourceSpec] = Registry("data source")


def load_source(cfg: SourceConfig) -> dict[str, RawData]:
    """Load one source: ``{"train": ...}`` and, if it has one, ``{"test": ...}``.

    ``cfg.limit`` caps every split to a fixed seed-0 random subset (kept in file
    order), so a capped sorted-by-label set still has every class.
    """
    parts = SOURCES.get(cfg.name).loader(cfg)
    out = {}
    for split, raw in parts.items():
        if len(raw) == 0:
            raise DataError(f"source '{cfg.name}' gave an empty '{split}' split; check its files")
        out[split] = cap(raw, cfg.limit)
    return out


def cap(raw: RawData, limit: int | None) -> RawData:
    """At most ``limit`` examples: a seed-0 permutation's prefix, in file order."""
    if limit is None or limit >= len(raw):  # fresh lists, never the cached ones
        x = list(raw.x) if raw.kind == "text" else raw.x
        return RawData(raw.kind, x, raw.y, None if raw.classes is None else list(raw.classes))
    idx = np.sort(np.random.default_rng(LIMIT_SEED).permutation(len(raw))[:limit])
    return raw.subset(idx)


# --------------------------------------------------------------------------- helpers for loaders


def readonly(raw: RawData) -> RawData:
    """Mark a cached set's arrays read-only, so no caller can change the cache."""
    for a in (raw.x, raw.y):
        if isinstance(a, np.ndarray):
            a.flags.writeable = False
    return raw


def existing_dir(path: str | Path, fix: str) -> Path:
    """``path`` as a directory, or a one-line DataError naming it and ``fix``."""
    p = Path(path).expanduser()
    if not p.is_dir():
        raise DataError(f"{p} not found: {fix}")
    return p


def package_dir(module: str, what: str, fix: str) -> Path:
    """The folder of installed package ``module``, found without importing it (some
    packages' ``__init__`` pull in heavy or broken dependencies), or a one-line DataError
    saying ``what`` is not installed and ``fix``."""
    import importlib.util

    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"{what} is not installed: {fix}")
    return Path(list(spec.submodule_search_locations)[0])


def source_path(cfg: SourceConfig) -> Path:
    """The path a generic source reads (validated to exist)."""
    if not cfg.path:
        raise DataError(f"source '{cfg.name}' needs a path to read from")
    p = Path(cfg.path).expanduser()
    if not p.exists():
        raise DataError(f"{p} not found: fix the path of source '{cfg.name}'")
    return p


def one_line(e: BaseException) -> str:
    """The first line of an exception's message (some span several lines)."""
    lines = str(e).strip().splitlines()
    return lines[0].rstrip(":") if lines else type(e).__name__


def labels_to_index(values: Sequence[object], where: str) -> tuple[np.ndarray, list[str]]:
    """Map raw labels to int64 indices and class names.

    Integer labels (or strings of integers) ``0..K-1`` keep their values, with
    classes ``"0".."K-1"``; any other labels are sorted and numbered.
    """
    if len(values) == 0:
        return np.zeros(0, np.int64), []
    ints = [_as_int(v) for v in values]
    if all(i is not None for i in ints):
        return np.asarray(ints, np.int64), [str(i) for i in range(max(ints) + 1)]
    names = sorted({str(v).strip() for v in values})
    if "" in names:
        raise DataError(
            f"{where}: some rows have an empty label; fill them or drop the label column"
        )
    index = {n: i for i, n in enumerate(names)}
    return np.asarray([index[str(v).strip()] for v in values], np.int64), names


def _as_int(v: object) -> int | None:
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return int(v) if v >= 0 else None
    s = str(v).strip()
    return int(s) if s.isdigit() else None


# Registers every loader; at the bottom because those modules import the names above.
from edgesmith.data import generic, images, texts  # noqa: E402, F401
