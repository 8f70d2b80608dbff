"""Shared helpers for the data tests, handed out by the ``dh`` fixture (so no
test module imports another file): skips for the real sets whose package is
absent, and tiny generic files written to a temporary folder."""

from __future__ import annotations

import importlib.util
import types
from pathlib import Path

import numpy as np
import pytest

from edgesmith.data.images import FASHION_DIR
from edgesmith.data.paths import vader_dir
from edgesmith.data.texts import FORTUNES_DIR, WORDNET_DIR


def _vader_there() -> bool:
    from edgesmith.data.fetch import vader_present

    return vader_present(vader_dir())


NEEDS = {
    "fashion-mnist": (
        lambda: FASHION_DIR.is_dir(),
        "Debian package dataset-fashion-mnist not installed",
    ),
    "digits": (
        lambda: importlib.util.find_spec("sklearn") is not None,
        "scikit-learn not installed",
    ),
    "animal-mnist": (
        lambda: importlib.util.find_spec("animal_mnist") is not None,
        "animal-mnist not installed (python -m edgesmith.data.fetch)",
    ),
    "photos": (
        lambda: importlib.util.find_spec("skimage") is not None,
        "scikit-image not installed (pip install 'edgesmith[vision]')",
    ),
    "vader": (_vader_there, "VADER data not fetched (python -m edgesmith.data.fetch)"),
    "fortunes": (lambda: FORTUNES_DIR.is_dir(), "Debian package fortunes not installed"),
    "wordnet": (lambda: WORDNET_DIR.is_dir(), "Debian package wordnet-base not installed"),
    "hf-disk": (
        lambda: importlib.util.find_spec("datasets") is not None,
        "python package 'datasets' not installed",
    ),
}


def need(name: str) -> None:
    """Skip the calling test when the named set's package is absent."""
    ok, why = NEEDS[name]
    if not ok():
        pytest.skip(why)


def write_npz(path: Path, n: int = 12, test: int = 0, shape=(6, 5), classes=3) -> Path:
    """uint8 images whose first two pixels encode the example's id (unique)."""

    def make(count: int, start: int) -> tuple[np.ndarray, np.ndarray]:
        ids = np.arange(start, start + count)
        x = np.zeros((count, *shape), np.uint8)
        x[:, 0, 0], x[:, 0, 1] = ids // 256, ids % 256
        return x, (ids % classes).astype(np.int64)

    arrays = {}
    arrays["x"], arrays["y"] = make(n, 0)
    if test:
        arrays["x_test"], arrays["y_test"] = make(test, n)
    np.savez(path, **arrays)
    return path


def image_ids(x: np.ndarray) -> set[int]:
    """The ids that :func:`write_npz` encoded, read back from [0, 1] floats."""
    px = np.rint(x[:, 0, 0, :2] * 255).astype(int)
    return set((px[:, 0] * 256 + px[:, 1]).tolist())


def write_image_folder(root: Path, classes=("cat", "dog"), per_class=3, size=(6, 4)) -> Path:
    from PIL import Image

    for ci, c in enumerate(classes):
        (root / c).mkdir(parents=True)
        for i in range(per_class):
            a = np.full((size[1], size[0], 3), 40 * ci + i, np.uint8)
            Image.fromarray(a).save(root / c / f"{i}.png")
    return root


@pytest.fixture
def dh() -> types.SimpleNamespace:
    """The helpers above: ``dh.need("vader")``, ``dh.write_npz(path)``, ..."""
    return types.SimpleNamespace(
        NEEDS=NEEDS,
        need=need,
        write_npz=write_npz,
        image_ids=image_ids,
        write_image_folder=write_image_folder,
    )
