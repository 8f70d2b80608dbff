"""Named real text sets, all offline: VADER's human-rated sentiment snippets
(fetched from the vaderSentiment sdist), and two unlabelled English corpora from
Debian packages: ``fortunes`` and WordNet's glosses (``wordnet``, less the
held-out synsets of :func:`wordnet_heldout`)."""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgesmith.data.paths import VADER_FILES, vader_dir
from edgesmith.data.sources import SOURCES, RawData, SourceSpec, existing_dir, readonly
from edgesmith.errors import DataError

if TYPE_CHECKING:
    from edgesmith.conf.recipe import SourceConfig

log = logging.getLogger(__name__)

VADER_CLASSES = ["negative", "positive"]
FORTUNES_DIR = Path("/usr/share/games/fortunes")
# ascii-art is pictures drawn with characters: whitespace-normalised, it is noise.
FORTUNES_SKIP = {"ascii-art"}
FORTUNES_MAX_CHARS = 400
WORDNET_DIR = Path("/usr/share/wordnet")
WORDNET_POS = ("noun", "verb", "adj", "adv")


def _decode(raw: bytes) -> str:
    """UTF-8 (BOM tolerated); Latin-1 for files that are not valid UTF-8."""
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# --------------------------------------------------------------------------- vader


@functools.lru_cache(maxsize=8)
def _vader_file(path: str) -> tuple[list[str], np.ndarray, int]:
    """(texts, mean valences, malformed lines skipped) of one ground-truth TSV."""
    texts, valence, bad = [], [], 0
    for line in _decode(Path(path).read_bytes()).splitlines():
        parts = line.split("\t", 2)
        if not line.strip():
            continue
        try:
            v = float(parts[1])
            text = parts[2].strip()
        except (IndexError, ValueError):
            bad += 1
            continue
        if not text or not np.isfinite(v):
            bad += 1
            continue
        texts.append(text)
        valence.append(v)
    if bad:
        log.warning("%s: skipped %d malformed lines", path, bad)
    return texts, np.asarray(valence, np.float64), bad


@functools.lru_cache(maxsize=4)
def _vader(root: str, domains: tuple[str, ...]) -> RawData:
    d = Path(root)
    texts: list[str] = []
    labels = []
    for dom in domains:
        f = d / VADER_FILES[dom]
        if not f.is_file():
            raise DataError(
                f"VADER data not found in {d}: run `python -m edgesmith.data.fetch` (or ./setup.sh)"
            )
        t, v, _ = _vader_file(str(f))
        texts += t
        labels.append((v > 0).astype(np.int64))
    return readonly(RawData("text", texts, np.concatenate(labels), list(VADER_CLASSES)))


def _load_vader(cfg: SourceConfig) -> dict[str, RawData]:
    """Label 1 ("positive") when the raters' mean valence is > 0, else 0: the few
    snippets rated exactly 0 (383 of 23,703) count as negative."""
    domains = tuple(cfg.domain) if cfg.domain else tuple(VADER_FILES)
    for dom in domains:
        if dom not in VADER_FILES:
            raise DataError(f"vader: unknown domain {dom!r}; choose from {', '.join(VADER_FILES)}")
    return {"train": _vader(str(Path(cfg.path).expanduser() if cfg.path else vader_dir()), domains)}


# --------------------------------------------------------------------------- fortunes

_OVERSTRIKE = re.compile(r"[^\x08\n]\x08")  # nroff bold / underline: "_\bX", "X\bX" -> "X"
_FORTUNE_SEP = re.compile(r"^%[ \t]*$", re.MULTILINE)


def fortune_entries(text: str) -> list[str]:
    """Split a fortune file on ``%`` lines; whitespace-normalised, empties dropped."""
    while "\x08" in text:  # also "___\b\b\bword": one character per backspace, innermost first
        text, n = _OVERSTRIKE.subn("", text)
        if not n:
            text = text.replace("\x08", "")
    entries = (" ".join(e.split()) for e in _FORTUNE_SEP.split(text))
    return [e for e in entries if e]


@functools.lru_cache(maxsize=1)
def _fortunes(root: str) -> RawData:
    d = existing_dir(root, "run ./setup.sh (installs Debian package fortunes)")
    files = [
        f for f in sorted(d.iterdir())
        if f.is_file() and not f.is_symlink() and f.suffix not in (".dat", ".u8") and f.name not in FORTUNES_SKIP
    ]  # fmt: skip
    texts = []
    for f in files:
        texts += [
            e for e in fortune_entries(_decode(f.read_bytes())) if len(e) <= FORTUNES_MAX_CHARS
        ]
    if not texts:
        raise DataError(
            f"{d}: no fortune files found: run ./setup.sh (installs Debian package fortunes)"
        )
    return readonly(RawData("text", texts))


def _load_fortunes(cfg: SourceConfig) -> dict[str, RawData]:
    return {"train": _fortunes(str(cfg.path or FORTUNES_DIR))}


# --------------------------------------------------------------------------- wordnet

_QUOTED = re.compile(r'"([^"]*)"')


def split_gloss(gloss: str) -> tuple[str, list[str]]:
    """A WordNet gloss to (definition, example sentences).

    ``cause to be calm; "The patient must be sedated"`` gives ``("cause to be
    calm", ["The patient must be sedated"])``. Attributions after a quote
    (``"..." - Shakespeare``) are dropped.
    """
    examples = [e.strip() for e in _QUOTED.findall(gloss) if e.strip()]
    masked = _QUOTED.sub("\x00", gloss)
    defs = [p.strip() for p in masked.split(";") if p.strip() and "\x00" not in p]
    if not defs:  # e.g. 'to be a menacing indication of something:"..."'
        head = masked.split("\x00", 1)[0].strip(" ;:-")
        defs = [head] if head else []
    definition = "; ".join(defs).replace('"', "").strip()
    return definition, examples


# Held-out synsets: never in the ``wordnet`` source (so never in a distillation or
# vocabulary corpus); their example sentences and glosses make the retrieval check
# (:func:`wordnet_heldout`). Chosen by a hash of the synset id, so the split is the
# same on every machine and for every recipe: 6% of the synsets that have an example
# sentence (1,973 of 32,923 in WordNet 3.0). 1.5% (499) left a share of the teacher's
# R@1 uncertain by about 8.5 points either way; 1,973 queries halve that. The 1.5%
# are a subset of them (the same hash, a lower threshold).
HELDOUT_PER_MILLE = 60


def heldout_synset(synset_id: str) -> bool:
    """Whether synset ``synset_id`` (``"noun:00001740"``) is held out of the ``wordnet`` source."""
    return int(hashlib.sha256(synset_id.encode()).hexdigest()[:8], 16) % 1000 < HELDOUT_PER_MILLE


@functools.lru_cache(maxsize=1)
def _wordnet_synsets(root: str) -> tuple[tuple[str, str, tuple[str, ...]], ...]:
    """``(synset id, definition, example sentences)`` of every synset, in file order."""
    d = existing_dir(root, "run ./setup.sh (installs Debian package wordnet-base)")
    synsets = []
    for pos in WORDNET_POS:
        f = d / f"data.{pos}"
        if not f.is_file():
            raise DataError(f"{f} not found: run ./setup.sh (installs Debian package wordnet-base)")
        for line in _decode(f.read_bytes()).splitlines():
            # licence header lines start with two spaces; synset lines carry " | gloss"
            if line.startswith("  ") or " | " not in line:
                continue
            definition, exs = split_gloss(line.split(" | ", 1)[1])
            synsets.append((f"{pos}:{line.split(' ', 1)[0]}", definition, tuple(exs)))
    return tuple(synsets)


def _is_heldout(synset: tuple[str, str, tuple[str, ...]]) -> bool:
    return bool(synset[1] and synset[2]) and heldout_synset(synset[0])


@functools.lru_cache(maxsize=1)
def _wordnet(root: str) -> RawData:
    synsets = _wordnet_synsets(root)
    held = {t for s in synsets if _is_heldout(s) for t in (s[1], *s[2])}
    kept = [s for s in synsets if not _is_heldout(s)]
    definitions = [s[1] for s in kept if s[1] and s[1] not in held]
    examples = [e for s in kept for e in s[2] if e not in held]
    return readonly(RawData("text", definitions + examples))


def wordnet_heldout(root: str | Path | None = None) -> list[tuple[str, str]]:
    """``(example sentence, definition)`` of each held-out synset (its first example),
    in file order: the texts the ``wordnet`` source never gives out.

    Raises:
        DataError: WordNet is not installed (one line naming the fix).
    """
    synsets = _wordnet_synsets(str(root or WORDNET_DIR))
    return [(s[2][0], s[1]) for s in synsets if _is_heldout(s)]


def _load_wordnet(cfg: SourceConfig) -> dict[str, RawData]:
    return {"train": _wordnet(str(cfg.path or WORDNET_DIR))}


SOURCES.register("vader")(
    SourceSpec(
        _load_vader,
        "text",
        domains=list(VADER_FILES),
        description="human-rated sentiment (VADER, ICWSM 2014): movie, amazon, tweets, nyt; "
        "label positive if mean valence > 0",
    )
)
SOURCES.register("fortunes")(
    SourceSpec(_load_fortunes, "text", description="Debian fortunes, unlabelled English text")
)
SOURCES.register("wordnet")(
    SourceSpec(
        _load_wordnet,
        "text",
        description="WordNet 3.0 glosses and example sentences (Debian wordnet-base)",
    )
)
