"""Deployment bundles: a folder of model files plus ``edgesmith.json``, loaded with
the preprocessing the model was trained with, after every file's sha256 is checked.

An app needs nothing but this module and a runtime::

    from edgesmith.bundle import load_bundle

    with load_bundle("runs/digits-quick/bundle", runtime="onnxruntime") as bundle:
        logits = bundle.predict(images)  # uint8 (N, H, W) or floats in [0, 1]
        print([bundle.labels[i] for i in logits.argmax(1)])

Loading refuses, with one line naming the file, a bundle whose manifest has an
unknown or newer ``schema_version``, lists a path that leaves the bundle
(absolute, ``..`` or a symlink out), or whose files are missing or differ from
their recorded size and sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from types import TracebackType
from typing import TYPE_CHECKING, Any

import numpy as np

from edgesmith.bundle.manifest import (  # noqa: F401
    MANIFEST,
    SCHEMA_VERSION,
    pick_format,
    read_manifest,
    safe_path,
    verify_file,
)
from edgesmith.errors import BundleError, DataError, EdgesmithError
from edgesmith.registry import Registry
from edgesmith.runtimes.base import Runtime

if TYPE_CHECKING:
    from edgesmith.bundle.telemetry import DriftMonitor



# ------------------------------------------------------------ preprocessing
PREPROCESSING: Registry[type] = Registry("bundle preprocessing kind")


@PREPROCESSING.register("image")
class ImageInputs:
    """Raw images to the model's normalised input: ``(x - mean) / std``.

    Takes float images in [0, 1] or uint8 images (0-255, scaled by ``uint8_scale``),
    as ``(H, W)`` (one channel), ``(C, H, W)``, ``(H, W, C)``, ``(N, H, W)`` (one
    channel), ``(N, C, H, W)`` or ``(N, H, W, C)``; returns the manifest's layout.
    """

    task_kind = "classification"

    @staticmethod
    def describe(ctx: Any, folder: Path) -> dict:
        """The manifest's ``preprocessing`` entry for a run's image model."""
        from edgesmith.bundle.conventions import image_conventions

        c = ctx.image_shape[0]
        h, w = (int(d) for d in ctx.raw["train"].x.shape[-2:])
        return {"kind": "image", "layout": "NCHW", "channels": c, "size": [h, w], "mean": ctx.task.mean,
                "std": ctx.task.std, "input_range": [0.0, 1.0], "uint8_scale": 1 / 255,
                "formula": "(x - mean[c]) / std[c], x in [0, 1] (uint8 * uint8_scale)",
                "conventions": image_conventions(ctx.raw["train"].x, c)}

    def __init__(self, spec: dict, input_names: list[str], root: Path, static: dict | None = None):
        self.name = input_names[0]
        self.channels = int(spec["channels"])
        self.size = tuple(int(s) for s in spec["size"])
        self.layout = spec.get("layout", "NCHW")
        self.scale = float(spec.get("uint8_scale", 1 / 255))
        self.mean = np.asarray(spec["mean"], np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(spec["std"], np.float32).reshape(1, -1, 1, 1)

    def nchw(self, raw: Any) -> np.ndarray:
        """``raw`` as float32 ``(N, C, H, W)`` in [0, 1]."""
        x = np.asarray(raw)
        c, (h, w) = self.channels, self.size
        if x.dtype.kind in "iub" and x.dtype != np.uint8:
            raise BundleError(f"integer images must be uint8 (0-255), got {x.dtype}; "
                              "or pass floats in [0, 1]")
        shape = x.shape
        if x.ndim == 2 and c == 1 and shape == (h, w):
            x = x[None, None]
        elif x.ndim == 3 and shape == (c, h, w):
            x = x[None]
        elif x.ndim == 3 and shape == (h, w, c):
            x = x.transpose(2, 0, 1)[None]
        elif x.ndim == 3 and c == 1 and shape[1:] == (h, w):
            x = x[:, None]
        elif x.ndim == 4 and shape[1:] == (c, h, w):
            pass
        elif x.ndim == 4 and shape[1:] == (h, w, c):
            x = x.transpose(0, 3, 1, 2)
        else:
            raise BundleError(f"images of shape {list(shape)} do not fit this bundle's {c}x{h}x{w} input "
                              "(NCHW, NHWC, CHW, HWC or HW); resize them first")
        if x.dtype == np.uint8:  # divided, as the data sources do, so uint8 and x / 255 agree exactly
            return x.astype(np.float32) / np.float32(1 / self.scale)
        x = x.astype(np.float32)
        if x.size and not np.isfinite(x).all():
            raise BundleError(f"images hold {int((~np.isfinite(x)).sum())} NaN or infinite value(s); "
                              "pass finite floats in [0, 1] or uint8")
        if x.size and (float(x.min()) < -0.01 or float(x.max()) > 1.01):
            raise BundleError(f"float images must be in [0, 1], these span [{float(x.min()):g}, {float(x.max()):g}]; "
                              "divide by 255 or pass uint8")
        return x

    def __call__(self, raw: Any) -> dict[str, np.ndarray]:
        x = (self.nchw(raw) - self.mean) / self.std
        if self.layout == "NHWC":
            x = x.transpose(0, 2, 3, 1)
        return {self.name: np.ascontiguousarray(x, dtype=np.float32)}


@PREPROCESSING.register("text")
class TextInputs:
    """Strings to token ids and attention mask with the bundle's own tokenizer files,
    truncated to ``max_length``; padded to the longest text, or to a static-shape
    file's sequence length."""

    task_kind = "embedding"

    @staticmethod
    def describe(ctx: Any, folder: Path) -> dict:
        """The manifest's ``preprocessing`` entry for a run's text model (saves its tokenizer)."""
        ctx.tokenizer.save_pretrained(str(folder / "tokenizer"))
        return {"kind": "text", "tokenizer": "tokenizer", "tokenizer_class": type(ctx.tokenizer).__name__,
                "max_length": ctx.task.max_length, "truncation": True,
                "padding": "longest in the batch, or a static-shape file's sequence length"}

    def __init__(self, spec: dict, input_names: list[str], root: Path, static: dict | None = None):
        folder = safe_path(root, spec["tokenizer"], root / MANIFEST)
        self.max_length = int(spec["max_length"])
        self.names = list(input_names)
        seq = [s[1] for s in (static or {}).values() if len(s) == 2]
        self.pad_to = int(seq[0]) if seq else None
        self.fast = _fast_tokenizer(folder)  # `tokenizers` alone: no transformers import (seconds)
        if self.fast is None:
            from edgesmith.runtimes.base import require

            transformers = require("transformers", "hf", "text bundles")
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Tokens per text after truncation (special tokens included)."""
        return self(texts)[self.names[1]].sum(1) if len(self.names) > 1 else np.array([])

    def __call__(self, raw: Any) -> dict[str, np.ndarray]:
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
        if self.fast is not None:
            tok, pad_id, pad_token = self.fast
            tok.enable_truncation(self.pad_to or self.max_length)
            tok.enable_padding(pad_id=pad_id, pad_token=pad_token, length=self.pad_to)
            enc = tok.encode_batch(texts)
            arrays = {"input_ids": [e.ids for e in enc], "attention_mask": [e.attention_mask for e in enc],
                      "token_type_ids": [e.type_ids for e in enc]}
            return {n: np.asarray(arrays[n], dtype=np.int64) for n in self.names}
        padding = "max_length" if self.pad_to else "longest"
        enc = self.tokenizer(texts, padding=padding, truncation=True,
                             max_length=self.pad_to or self.max_length, return_tensors="np")
        return {n: np.asarray(enc[n], dtype=np.int64) for n in self.names}


def preprocessing_for(task_kind: str) -> type:
    """The preprocessing class whose inputs a model of ``task_kind`` takes."""
    for _, cls in PREPROCESSING.items():
        if cls.task_kind == task_kind:
            return cls
    raise BundleError(f"no bundle preprocessing for a {task_kind} model; known: "
                      f"{', '.join(cls.task_kind for _, cls in PREPROCESSING.items())}")
def _fast_tokenizer(folder: Path) -> tuple[Any, int, str] | None:
    """``(tokenizers.Tokenizer, pad id, pad token)`` from a saved tokenizer's
    ``tokenizer.json``, or None (no such file, or no ``tokenizers`` package)."""
    if not (folder / "tokenizer.json").is_file():
        return None
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    pad = "[PAD]"
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        f = folder / name
        if f.is_file():
            value = json.loads(f.read_text()).get("pad_token")
            pad = (value.get("content") if isinstance(value, dict) else value) or pad
            break
    pad_id = tok.token_to_id(pad)
    return tok, 0 if pad_id is None else pad_id, pad


# ------------------------------------------------------------------- bundle
class Bundle:
    """A verified bundle with one format's file loaded in its runtime.

    Attributes:
        path: The bundle folder.
        manifest: The parsed ``edgesmith.json``.
        format: The format being run (a key of ``manifest["formats"]``).
        runtime: The loaded :class:`~edgesmith.runtimes.Runtime`.
        labels: Class names, or None (embedding models, unlabelled data).
        telemetry: The :class:`~edgesmith.bundle.telemetry.DriftMonitor` sampling
            ``predict`` calls, or None.
    """

    def __init__(self, path: Path, manifest: dict, fmt: str, runtime: Runtime):
        self.path, self.manifest, self.format, self.runtime = path, manifest, fmt, runtime
        entry = manifest["formats"][fmt]
        spec = manifest["preprocessing"]
        names = [i["name"] for i in manifest["inputs"]]
        self.preprocess = PREPROCESSING.get(spec["kind"])(spec, names, path, entry.get("static_shapes"))
        self.max_batch = entry.get("max_batch")
        self.labels: list[str] | None = manifest.get("labels")
        self.telemetry: DriftMonitor | None = None

    @property
    def formats(self) -> list[str]:
        """Every format the bundle holds, in manifest order."""
        return list(self.manifest["formats"])

    def predict(self, raw_inputs: Any) -> np.ndarray:
        """Preprocess ``raw_inputs`` as the manifest says and run them; returns the
        first output (logits or embeddings), one row per input.

        Raises:
            BundleError: Inputs that do not fit the bundle (one line).
            EdgesmithError: The runtime rejected them.
        """
        feeds = self.preprocess(raw_inputs)
        n = len(next(iter(feeds.values())))
        step = self.max_batch or n or 1
        outs = [self.runtime.run({k: v[i : i + step] for k, v in feeds.items()})[0] for i in range(0, n, step)]
        result = np.concatenate(outs) if outs else np.empty((0,), np.float32)
        if self.telemetry is not None:
            self.telemetry.observe(raw_inputs, result, feeds)
        return result

    def monitor(self, telemetry: DriftMonitor | bool | str | os.PathLike = True, **settings: Any) -> DriftMonitor:
        """Attach a drift monitor to ``predict`` (:mod:`edgesmith.bundle.telemetry`).

        Args:
            telemetry: A ``DriftMonitor``, True (default settings, reports kept in
                ``monitor.reports``) or a JSON-lines file to append reports to.
            **settings: ``TelemetryConfig`` fields (``sample_rate``, ``window``, ...).

        Raises:
            BundleError: The manifest has no usable ``reference_profile``.
        """
        from edgesmith.bundle.telemetry import make_monitor

        self.telemetry = make_monitor(telemetry, **settings).attach(self)
        return self.telemetry

    def close(self) -> None:
        if self.telemetry is not None:
            self.telemetry.close()  # a last try to deliver spooled drift reports
        self.runtime.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, format={self.format!r}, runtime={self.runtime.name!r})"


def load_bundle(path: str | os.PathLike, runtime: str | None = None, threads: int = 1,
                device: str = "cpu", telemetry: DriftMonitor | bool | str | os.PathLike | None = None) -> Bundle:
    """Verify a bundle folder and load one of its files.

    Args:
        path: The bundle folder (``DIR/bundle``) or its ``edgesmith.json``.
        runtime: Runtime to run in (``onnxruntime``, ``litert``, ...); None takes the
            first format that passed parity.
        threads: Intra-op threads.
        device: ``"cpu"`` or ``"cuda"`` where the runtime supports it.
        telemetry: Drift monitoring of ``predict`` (see :meth:`Bundle.monitor`): a
            ``DriftMonitor``, True, or a JSON-lines report file; None/False: off.

    Raises:
        BundleError: Tampered, missing or escaping files, an unknown schema, or
            telemetry asked of a bundle without a reference profile.
    """
    from edgesmith.runtimes import load

    root = Path(path)
    if root.name == MANIFEST:
        root = root.parent
    manifest = read_manifest(root)
    fmt = pick_format(manifest, runtime, root / MANIFEST)
    entry = manifest["formats"][fmt]
    model = safe_path(root, entry["path"], root / MANIFEST)
    try:
        rt = load(model, runtime or entry.get("runtime"), threads=threads, device=device)
    except BundleError:
        raise
    except EdgesmithError as e:
        raise BundleError(str(e)) from e
    bundle = Bundle(root, manifest, fmt, rt)
    if telemetry is not None and telemetry is not False:
        try:
            bundle.monitor(telemetry)
        except BaseException:
            bundle.close()
            raise
    return bundle


# -------------------------------------------------------------- raw inputs
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
MAX_TEXT_CHARS = 100_000  # one literal text; a text file may hold many lines
MAX_TEXT_FILE_BYTES = 64 << 20
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _is_file(arg: str) -> bool:
    try:
        return Path(arg).is_file()
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL: not a file
        return False


def _is_dir(arg: str) -> bool:
    try:
        return Path(arg).is_dir()
    except (OSError, ValueError):
        return False


def _looks_like_path(arg: str) -> bool:
    return "/" in arg or "\\" in arg or (" " not in arg and PurePosixPath(arg).suffix.lower() in
                                           (".txt", ".npy", ".npz", ".csv", ".jsonl", ".json", *IMAGE_SUFFIXES))


def raw_inputs(arg: str, manifest: dict, text: bool = False):
    """INPUT as the bundle's raw inputs (an unreadable INPUT is a :class:`DataError`: exit 2).

    Image bundles: an image file or a .npy/.npz array. Text bundles: with
    ``text=True`` (``--text``), ``arg`` itself is the one input; otherwise an existing
    file (UTF-8 text, one input per non-empty line, or a .npy/.npz of strings), and
    an ``arg`` that names no file is taken as the text itself only when it does not
    look like a path (no ``/`` or ``\\``, no file suffix such as ``.txt``). Folders,
    binary files and images are refused as text; a literal text is at most
    :data:`MAX_TEXT_CHARS` characters."""
    import numpy as np

    is_text = manifest["preprocessing"]["kind"] == "text"
    if text and not is_text:
        raise DataError("--text: this bundle takes images; pass an image, .npy or .npz file")
    if text or (is_text and not _is_file(arg) and not _looks_like_path(arg) and not _is_dir(arg)):
        if len(arg) > MAX_TEXT_CHARS:
            raise DataError(f"INPUT: {len(arg):,} characters; at most {MAX_TEXT_CHARS:,} for one text "
                            "(put longer inputs in a file, one per line)")
        if not arg.strip():
            raise DataError("INPUT: empty text; pass the text to predict")
        return [arg]
    path = Path(arg)
    if _is_dir(arg):
        raise DataError(f"{arg}: is a folder; pass a file" + (" or --text TEXT" if is_text else ""))
    if not _is_file(arg):
        what = "a text file, or --text TEXT for a literal string" if is_text else \
            "an image, .npy or .npz for this image bundle"
        raise DataError(f"{arg}: no such file ({what})")
    suffix = path.suffix.lower()
    if suffix in (".npy", ".npz"):
        try:
            data = np.load(path, allow_pickle=False)
            if suffix == ".npz":
                if not data.files:
                    raise DataError(f"{path}: the .npz holds no arrays")
                data = data["x"] if "x" in data.files else data[data.files[0]]
        except DataError:
            raise
        except (OSError, ValueError, EOFError, KeyError) as e:
            raise DataError(f"{path}: cannot read as a numpy array ({e})") from None
        if data.size == 0:
            raise DataError(f"{path}: the array is empty")
        return [str(t) for t in data] if is_text else data
    if is_text:
        return _text_lines(path)
    if suffix in IMAGE_SUFFIXES:
        from PIL import Image, UnidentifiedImageError

        pre = manifest["preprocessing"]
        try:
            img = Image.open(path).convert("L" if pre["channels"] == 1 else "RGB")
        except (OSError, UnidentifiedImageError, ValueError) as e:
            raise DataError(f"{path}: cannot read as an image ({e})") from None
        h, w = pre["size"]
        if img.size != (w, h):
            img = img.resize((w, h), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8)
    raise DataError(f"{path}: unsupported input for an image bundle; pass an image, .npy or .npz")


def _text_lines(path: Path) -> list[str]:
    """The non-empty lines of a UTF-8 text file; refuses images, binary and huge files."""
    size = path.stat().st_size
    if size > MAX_TEXT_FILE_BYTES:
        raise DataError(f"{path}: {size:,} bytes; at most {MAX_TEXT_FILE_BYTES:,} for a text input file")
    data = path.read_bytes()
    if path.suffix.lower() in IMAGE_SUFFIXES or data.startswith(_IMAGE_MAGIC):
        raise DataError(f"{path}: is an image; this bundle takes text (a UTF-8 file, one input per line)")
    if b"\0" in data[:65536]:
        raise DataError(f"{path}: is a binary file; this bundle takes text (a UTF-8 file, one input per line)")
    try:
        content = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                        "save it as UTF-8") from None
    lines = [ln.strip() for ln in content.splitlines() if ln.strip()]
    if not lines:
        raise DataError(f"{path}: no text in it")
    return lines
