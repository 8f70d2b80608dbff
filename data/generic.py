"""Generic sources that read the user's own files (each needs ``path``):

- ``image-folder``: one subfolder per class (torchvision's ImageFolder layout);
  with ``train/`` and ``test/`` subfolders, the second is the official test split.
- ``npz``: arrays ``x`` and optional ``y`` / ``classes`` (and ``x_test`` /
  ``y_test`` for an official test split). uint8 images are scaled to [0, 1].
- ``text``: ``.txt`` (one text per line) or ``.tsv`` / ``.csv`` with a header row
  (columns ``text_field`` and, when present, ``label_field``).
- ``hf-disk``: a folder written by ``datasets``' ``save_to_disk``.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesmith.data.sources import (
    SOURCES,
    RawData,
    SourceSpec,
    labels_to_index,
    one_line,
    source_path,
)
from edgesmith.errors import DataError

if TYPE_CHECKING:
    from edgesmith.conf.recipe import SourceConfig

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}


def images_to_array(images: list[Any], cfg: SourceConfig, where: str) -> np.ndarray:
    """PIL images (or paths) to float32 (N, C, H, W) in [0, 1]."""
    from PIL import Image

    arrays = []
    for item in images:
        img = Image.open(item) if isinstance(item, (str, Path)) else item
        img = img.convert("L" if cfg.grayscale else "RGB")
        if cfg.image_size:
            img = img.resize((cfg.image_size, cfg.image_size), Image.BILINEAR)
        a = np.asarray(img, dtype=np.uint8)
        arrays.append(a[None] if a.ndim == 2 else a.transpose(2, 0, 1))
    shapes = {a.shape for a in arrays}
    if len(shapes) > 1:
        raise DataError(
            f"{where}: images differ in size {sorted(shapes)[:2]}; set image_size to resize them"
        )
    return np.stack(arrays).astype(np.float32) / 255.0


def _folder_split(root: Path, cfg: SourceConfig) -> RawData:
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(
            f"{root}: no class subfolders; put each class's images in a folder of its own"
        )
    files, labels = [], []
    for i, c in enumerate(classes):
        found = sorted(f for f in (root / c).rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
        files += found
        labels += [i] * len(found)
    if not files:
        raise DataError(
            f"{root}: no images ({', '.join(sorted(IMAGE_SUFFIXES))}) in its class folders"
        )
    x = images_to_array(files, cfg, str(root))
    return RawData("image", x, np.asarray(labels, np.int64), classes)


def _load_image_folder(cfg: SourceConfig) -> dict[str, RawData]:
    root = source_path(cfg)
    if (root / "train").is_dir() and (root / "test").is_dir():
        out = {
            "train": _folder_split(root / "train", cfg),
            "test": _folder_split(root / "test", cfg),
        }
        if out["train"].classes != out["test"].classes:
            raise DataError(
                f"{root}: train/ and test/ have different class folders; make them match"
            )
        return out
    return {"train": _folder_split(root, cfg)}


def _npz_images(x: np.ndarray, where: str) -> np.ndarray:
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim == 4 and x.shape[-1] in (1, 3) and x.shape[1] not in (1, 3):
        x = x.transpose(0, 3, 1, 2)
    elif x.ndim != 4:
        raise DataError(
            f"{where}: x must be (N, H, W), (N, H, W, C) or (N, C, H, W), got shape {x.shape}"
        )
    if x.dtype == np.uint8:
        return np.ascontiguousarray(x, dtype=np.float32) / 255.0
    x = np.ascontiguousarray(x, dtype=np.float32)
    if x.size and (x.min() < 0 or x.max() > 1):
        raise DataError(
            f"{where}: float images must be in [0, 1], found [{x.min():.3g}, {x.max():.3g}]; scale them"
        )
    return x


def _load_npz(cfg: SourceConfig) -> dict[str, RawData]:
    path = source_path(cfg)
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError) as e:
        raise DataError(
            f"{path}: not a readable .npz ({one_line(e)}); save it with numpy.savez"
        ) from None
    if "x" not in arrays:
        raise DataError(
            f"{path}: no array named 'x' (has {', '.join(arrays) or 'none'}); save x=images"
        )
    classes = [str(c) for c in arrays["classes"]] if "classes" in arrays else None
    out = {}
    for split, sx, sy in (("train", "x", "y"), ("test", "x_test", "y_test")):
        if sx not in arrays:
            continue
        x = _npz_images(arrays[sx], f"{path}:{sx}")
        y = arrays.get(sy)
        if y is not None:
            if (
                y.shape != (len(x),)
                or not np.issubdtype(y.dtype, np.integer)
                or (y.size and y.min() < 0)
            ):
                raise DataError(
                    f"{path}:{sy} must be {len(x)} integer labels >= 0, got {y.dtype} {y.shape}"
                )
            y = y.astype(np.int64)
        out[split] = RawData("image", x, y, None)
    labelled = [r.y for r in out.values() if r.y is not None]
    if labelled:
        k = max(int(y.max()) + 1 for y in labelled if y.size)
        if classes is None:
            classes = [str(i) for i in range(k)]
        elif len(classes) < k:
            raise DataError(f"{path}: {len(classes)} classes but labels go up to {k - 1}")
        for r in out.values():
            r.classes = list(classes) if r.y is not None else None
    return out


def _load_text(cfg: SourceConfig) -> dict[str, RawData]:
    path = source_path(cfg)
    raw = path.read_bytes()
    try:
        content = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        content = raw.decode("latin-1")
    if path.suffix.lower() not in (".tsv", ".csv"):
        return {"train": RawData("text", [ln.strip() for ln in content.splitlines() if ln.strip()])}
    rows = list(
        csv.DictReader(
            io.StringIO(content), delimiter="\t" if path.suffix.lower() == ".tsv" else ","
        )
    )
    columns = list(rows[0]) if rows else []
    if cfg.text_field not in columns:
        raise DataError(
            f"{path}: no column '{cfg.text_field}' (has {', '.join(columns) or 'none'}); set text_field"
        )
    keep = [r for r in rows if (r.get(cfg.text_field) or "").strip()]
    texts = [r[cfg.text_field].strip() for r in keep]
    if cfg.label_field and cfg.label_field in columns:
        y, classes = labels_to_index([r.get(cfg.label_field) or "" for r in keep], str(path))
        return {"train": RawData("text", texts, y, classes)}
    return {"train": RawData("text", texts)}


def _load_hf_disk(cfg: SourceConfig) -> dict[str, RawData]:
    path = source_path(cfg)
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"python package 'datasets' is needed to read {path} but is not installed: pip install datasets"
        ) from None
    ds = datasets.load_from_disk(str(path))
    splits = dict(ds) if isinstance(ds, datasets.DatasetDict) else {"train": ds}
    if "train" not in splits:
        raise DataError(
            f"{path}: no 'train' split (has {', '.join(splits)}); save one named 'train'"
        )
    return {s: _hf_split(splits[s], cfg, f"{path}[{s}]") for s in ("train", "test") if s in splits}


def _hf_split(ds: Any, cfg: SourceConfig, where: str) -> RawData:
    cols = list(ds.column_names)
    y, classes = None, None
    if cfg.label_field and cfg.label_field in cols:
        feature = ds.features[cfg.label_field]
        values = list(ds[cfg.label_field])
        if hasattr(feature, "names"):
            y, classes = np.asarray(values, np.int64), list(feature.names)
        else:
            y, classes = labels_to_index(values, where)
    if cfg.text_field in cols:
        return RawData("text", [str(t) for t in ds[cfg.text_field]], y, classes)
    image_col = next((c for c in ("image", "img", "pixel_values") if c in cols), None)
    if image_col is None:
        raise DataError(
            f"{where}: no '{cfg.text_field}' or image column (has {', '.join(cols)}); set text_field"
        )
    return RawData("image", images_to_array(list(ds[image_col]), cfg, where), y, classes)


SOURCES.register("image-folder")(
    SourceSpec(
        _load_image_folder,
        "image",
        needs_path=True,
        description="one subfolder of images per class",
    )
)
SOURCES.register("npz")(
    SourceSpec(_load_npz, "image", needs_path=True, description=".npz with arrays x and optional y")
)
SOURCES.register("text")(
    SourceSpec(
        _load_text,
        "text",
        needs_path=True,
        description=".txt one text a line, or .tsv/.csv with a header",
    )
)
SOURCES.register("hf-disk")(
    SourceSpec(
        _load_hf_disk,
        "any",
        needs_path=True,
        description="a datasets.save_to_disk folder (needs 'datasets')",
    )
)
