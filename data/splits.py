"""Deterministic, disjoint splits: ``train`` / ``calibration`` / ``eval``.

Every source is loaded and the sources are concatenated. When
``splits.eval_from == "official"`` and every source has an official test split,
``eval`` is (a seeded subset of) the official test data and ``train`` and
``calibration`` come from the train data; otherwise all data is pooled and
``eval`` is carved out of the pool first, then ``calibration``, then ``train``.

Sizes: an int is a count, a float a fraction of the pool it is carved from
(the official test data for ``eval`` in the official case). ``train: None`` is
"the rest"; ``eval: None`` is 20% of the pool, or all the official test data.
Identical texts are kept once (the first), and official-test texts are removed
from the train data, so held-out text is really held out. A source with
``repeat: N`` has each of its train examples N times in ``train`` (after the
split, so no copy reaches ``eval`` or ``calibration``).

    >>> from edgesmith.conf.recipe import DataConfig, SourceConfig, SplitsConfig
    >>> s = build_splits(DataConfig([SourceConfig("digits")], SplitsConfig(calibration=100)))
    >>> {k: len(v) for k, v in s.items()}
    {'train': 1338, 'calibration': 100, 'eval': 359}
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import numpy as np

from edgesmith.data.sources import RawData, load_source
from edgesmith.errors import DataError

if TYPE_CHECKING:
    from edgesmith.conf.recipe import DataConfig, ProbeConfig

log = logging.getLogger(__name__)

DEFAULT_EVAL_FRACTION = 0.2


def build_splits(cfg: DataConfig, held_out: set[str] | None = None) -> dict[str, RawData]:
    """Load ``cfg.sources`` and split them into ``train``, ``calibration``, ``eval``.

    ``held_out``: texts no split may contain (the probe's train and test snippets,
    so a recipe may distil on the rest of the probe's source as unlabelled text)."""
    loaded = [(src.name, load_source(src)) for src in cfg.sources]
    named = [(name, raw) for name, parts in loaded for raw in parts.values()]
    keep_labels = _label_policy(named)
    sizes = cfg.splits
    rng = np.random.default_rng(cfg.seed)
    official = sizes.eval_from == "official" and all("test" in parts for _, parts in loaded)
    if sizes.eval_from == "official" and not official:
        log.info("not every source has an official test split: eval is carved from the pooled data")

    if official:
        train_pool = _concat([(n, p["train"]) for n, p in loaded], keep_labels)
        origin = _origin(loaded, "train")
        test = _concat([(n, p["test"]) for n, p in loaded], keep_labels)
        if test.kind == "text":
            test = dedup(test, exclude=held_out)
            keep = _first_of_each(train_pool.x, exclude=set(test.x) | (held_out or set()))
            train_pool, origin = _kept(train_pool, keep), origin[keep]
        n_eval = _count("eval", sizes.eval, len(test), len(test), "official test examples")
        eval_idx = rng.permutation(len(test))[:n_eval]
        pool, used = train_pool, 0
        what = "train examples (official test held out)"
    else:
        pool = _concat([(n, p[s]) for n, p in loaded for s in p], keep_labels)
        origin = _origin(loaded, None)
        if pool.kind == "text":
            keep = _first_of_each(pool.x, exclude=held_out)
            pool, origin = _kept(pool, keep), origin[keep]
        default_eval = round(DEFAULT_EVAL_FRACTION * len(pool))
        n_eval = _count("eval", sizes.eval, len(pool), default_eval, "pooled examples")
        used = n_eval
        what = "pooled examples"

    perm = rng.permutation(len(pool))
    n_cal = _count("calibration", sizes.calibration, len(pool), None, what)
    left = len(pool) - used - n_cal
    if left < 0:
        raise DataError(_too_many("calibration", n_cal, len(pool) - used, what, used))
    n_train = _count("train", sizes.train, len(pool), left, what)
    if n_train > left:
        raise DataError(_too_many("train", n_train, left, what, used, n_cal))
    cal_idx = perm[used : used + n_cal]
    train_idx = perm[used + n_cal : used + n_cal + n_train]
    if not official:
        test, eval_idx = pool, perm[:n_eval]
    # a source's repeat: its train rows again, after all the others
    copy_of = np.concatenate([np.zeros(0, np.int64)] + [np.flatnonzero(origin[train_idx] == i)
                             for i, src in enumerate(cfg.sources) for _ in range(src.repeat - 1)])
    train = pool.subset(np.concatenate([train_idx, train_idx[copy_of]]))
    if len(copy_of):
        log.info("train: %d examples repeated (sources with repeat > 1)", len(copy_of))
        train.copy_of = copy_of
    out = {
        "train": train,
        "calibration": pool.subset(cal_idx),
        "eval": test.subset(eval_idx),
    }
    log.info("splits: %s", ", ".join(f"{k} {len(v)}" for k, v in out.items()))
    return out


def load_probe(cfg: ProbeConfig, seed: int) -> tuple[RawData, RawData]:
    """A labelled source split at random (not stratified) into disjoint probe
    train / test sets of ``cfg.train`` and ``cfg.test`` examples."""
    name = cfg.source.name
    parts = load_source(cfg.source)
    named = [(name, p) for p in parts.values()]
    if not _label_policy(named):
        raise DataError(
            f"probe source '{name}' has no labels; a probe needs a labelled source such as vader"
        )
    raw = _concat(named, keep_labels=True)
    if raw.kind == "text":
        raw = dedup(raw)
    need = cfg.train + cfg.test
    if need > len(raw):
        raise DataError(
            f"probe asks for {cfg.train} train + {cfg.test} test examples but source '{name}' has "
            f"only {len(raw)}; lower probe.train / probe.test"
        )
    perm = np.random.default_rng(seed).permutation(len(raw))
    train, test = raw.subset(perm[: cfg.train]), raw.subset(perm[cfg.train : need])
    if len(np.unique(train.y)) < 2:
        raise DataError(f"probe train set from '{name}' has a single class; raise probe.train")
    return train, test


def dedup(raw: RawData, exclude: set[str] | None = None) -> RawData:
    """Keep the first of identical texts, dropping any in ``exclude`` too."""
    return _kept(raw, _first_of_each(raw.x, exclude))


def _origin(loaded: list[tuple[str, dict[str, RawData]]], split: str | None) -> np.ndarray:
    """The source (its index in the recipe) of each row of the sources' ``split``
    concatenated as :func:`_concat` does (``None``: every split of each source)."""
    return np.concatenate([np.full(len(raw), i, dtype=np.int64) for i, (_, parts) in enumerate(loaded)
                           for s, raw in parts.items() if split in (None, s)])


def _first_of_each(texts: list[str], exclude: set[str] | None = None) -> list[int]:
    """Indices of the first of identical texts, none of them in ``exclude``."""
    seen = set(exclude or ())
    keep = []
    for i, t in enumerate(texts):
        if t not in seen:
            seen.add(t)
            keep.append(i)
    return keep


def _kept(raw: RawData, keep: list[int]) -> RawData:
    if len(keep) == len(raw):
        return raw
    log.info("dropped %d duplicate or held-out texts of %d", len(raw) - len(keep), len(raw))
    return raw.subset(keep)


def _count(split: str, size: int | float | None, pool: int, default: int | None, what: str) -> int:
    """Resolve a size (count, fraction of ``pool`` or None) to a count, checked."""
    if size is None:
        assert default is not None
        n = default
    elif isinstance(size, float):
        n = int(round(size * pool))
    else:
        n = int(size)
    if n <= 0 and size is None:
        raise DataError(
            f"split '{split}' is empty: no {what} are left for it; shrink the other splits"
        )
    if n <= 0:
        raise DataError(
            f"split '{split}' is empty ({size!r} of {pool} {what}); ask for more examples"
        )
    if n > pool:
        raise DataError(
            f"split '{split}' asks for {n} examples but only {pool} {what} are available"
        )
    return n


def _too_many(split: str, n: int, left: int, what: str, used: int, n_cal: int | None = None) -> str:
    taken = f"eval takes {used}" if used else ""
    if n_cal is not None:
        taken += (", " if taken else "") + f"calibration takes {n_cal}"
    return (
        f"split '{split}' asks for {n} examples but only {left} of the {what} are left"
        f"{f' ({taken})' if taken else ''}; lower the split sizes"
    )


def _label_policy(named: list[tuple[str, RawData]]) -> bool:
    """Whether the concatenation keeps labels; raises for mixes that cannot work."""
    first_name, first = named[0]
    for name, raw in named[1:]:
        if raw.kind != first.kind:
            raise DataError(
                f"sources '{first_name}' ({first.kind}) and '{name}' ({raw.kind}) are of different kinds; "
                "use sources of one kind"
            )
    labelled = [(n, r) for n, r in named if r.y is not None]
    if len(labelled) == len(named) and all(r.classes == first.classes for _, r in named):
        return True
    if first.kind == "text":
        log.info("text sources differ in labels: they are used as unlabelled text")
        return False
    if not labelled:
        return False
    other = next(((n, r) for n, r in named if r.y is None or r.classes != labelled[0][1].classes))
    raise DataError(
        f"image sources '{labelled[0][0]}' and '{other[0]}' have different classes "
        f"({labelled[0][1].classes} vs {other[1].classes}); combine sources with the same classes"
    )


def _concat(named: list[tuple[str, RawData]], keep_labels: bool) -> RawData:
    first_name, first = named[0]
    if first.kind == "text":
        x: np.ndarray | list[str] = [t for _, r in named for t in r.x]
    else:
        for name, r in named[1:]:
            if r.x.shape[1:] != first.x.shape[1:]:
                raise DataError(
                    f"sources '{first_name}' and '{name}' have different image shapes "
                    f"({first.x.shape[1:]} vs {r.x.shape[1:]}); set image_size and grayscale to match"
                )
        x = np.concatenate([r.x for _, r in named]) if len(named) > 1 else first.x
    if not keep_labels:
        return RawData(first.kind, x)
    y = np.concatenate([r.y for _, r in named]) if len(named) > 1 else first.y
    return RawData(first.kind, x, y, list(first.classes or []))
