"""Deployment bundles: a folder of model files plus ``edgesmith.json``, loaded with
the preprocessing the model was trained with, after every file's sha256 is checked.

An app needs nothing but this module and a runtime::

    from edgesmith.runtimes import load_bundle

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

from edgesmith.atomic import sha256_file
from edgesmith.errors import BundleError, EdgesmithError
from edgesmith.registry import Registry
from edgesmith.runtimes.base import Runtime

if TYPE_CHECKING:
    from edgesmith.runtimes.telemetry import DriftMonitor

SCHEMA_VERSION = 1
MANIFEST = "edgesmith.json"


# ----------------------------------------------------------------- manifest
def safe_path(root: Path, rel: Any, manifest: Path) -> Path:
    """``root / rel`` for a manifest path that stays inside ``root``, else BundleError."""
    p = PurePosixPath(str(rel))
    if not isinstance(rel, str) or not rel or p.is_absolute() or "\\" in rel or ".." in p.parts \
            or (p.parts and ":" in p.parts[0]):
        raise BundleError(f"{manifest}: file path {rel!r} leaves the bundle (absolute or '..'); refusing to load")
    path = root.joinpath(*p.parts)
    if not path.resolve().is_relative_to(root.resolve()):
        raise BundleError(f"{path}: a symlink out of the bundle (to {path.resolve()}); refusing to load")
    return path


def read_manifest(root: str | os.PathLike, verify: bool = True) -> dict:
    """Parse ``root/edgesmith.json``, check its schema and paths and (``verify``) every
    file's size and sha256.

    Raises:
        BundleError: Missing or malformed manifest, unknown schema version, a path
            leaving the bundle, or a missing or changed file (one line, naming it).
    """
    root = Path(root)
    path = root / MANIFEST
    if not path.is_file():
        raise BundleError(f"{path}: no bundle manifest here; build one with `edgesmith run`")
    try:
        manifest = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise BundleError(f"{path}: not valid JSON ({e})") from None
    version = manifest.get("schema_version") if isinstance(manifest, dict) else None
    if type(version) is not int or not 1 <= version <= SCHEMA_VERSION:
        newer = type(version) is int and version > SCHEMA_VERSION
        raise BundleError(
            f"{path}: schema_version {version!r} is "
            + (f"newer than this edgesmith reads ({SCHEMA_VERSION}); upgrade edgesmith" if newer
               else f"unknown; this edgesmith reads schema_version 1 to {SCHEMA_VERSION}")
        )
    checksums = {c["path"]: c for c in manifest.get("checksums", [])}
    for c in checksums.values():
        safe_path(root, c["path"], path)
    for fmt, entry in manifest.get("formats", {}).items():
        for rel in [entry.get("path"), *entry.get("files", [])]:
            safe_path(root, rel, path)
            if rel not in checksums:
                raise BundleError(f"{path}: {fmt} file {rel!r} has no sha256 in the manifest; refusing to load")
    tokenizer = (manifest.get("preprocessing") or {}).get("tokenizer")
    if tokenizer is not None:  # the tokenizer reads whatever its folder holds: all of it must be hashed
        folder = safe_path(root, tokenizer, path)
        for f in sorted(folder.rglob("*")) if folder.is_dir() else []:
            if f.is_file() and f.relative_to(root).as_posix() not in checksums:
                raise BundleError(f"{f}: not listed in {MANIFEST} (the tokenizer would read it); refusing to load")
    if verify:
        for c in checksums.values():
            verify_file(root, c, path)
    return manifest


def verify_file(root: Path, entry: dict, manifest: Path) -> None:
    """Check one ``checksums`` entry against the file on disk."""
    f = safe_path(root, entry["path"], manifest)
    if not f.is_file():
        raise BundleError(f"{f}: missing from the bundle (listed in {MANIFEST}); rebuild it with `edgesmith run`")
    if f.stat().st_size != entry.get("size") or sha256_file(f) != entry.get("sha256"):
        raise BundleError(f"{f}: size or sha256 differs from {MANIFEST} (tampered with or corrupted); "
                          "rebuild the bundle")


# ------------------------------------------------------------ preprocessing
PREPROCESSING: Registry[type] = Registry("bundle preprocessing kind")


@PREPROCESSING.register("image")
class ImageInputs:
    """Raw images to the model's normalised input: ``(x - mean) / std``.

    Takes float images in [0, 1] or uint8 images (0-255, scaled by ``uint8_scale``),
    as ``(H, W)`` (one channel), ``(C, H, W)``, ``(H, W, C)``, ``(N, H, W)`` (one
    channel), ``(N, C, H, W)`` or ``(N, H, W, C)``; returns the manifest's layout.
    """

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

    def __init__(self, spec: dict, input_names: list[str], root: Path, static: dict | None = None):
        from edgesmith.runtimes.base import require

        transformers = require("transformers", "hf", "text bundles")
        folder = safe_path(root, spec["tokenizer"], root / MANIFEST)
        self.tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        self.max_length = int(spec["max_length"])
        self.names = list(input_names)
        seq = [s[1] for s in (static or {}).values() if len(s) == 2]
        self.pad_to = int(seq[0]) if seq else None

    def lengths(self, texts: list[str]) -> np.ndarray:
        """Tokens per text after truncation (special tokens included)."""
        return self(texts)[self.names[1]].sum(1) if len(self.names) > 1 else np.array([])

    def __call__(self, raw: Any) -> dict[str, np.ndarray]:
        texts = [raw] if isinstance(raw, str) else [str(t) for t in raw]
        padding = "max_length" if self.pad_to else "longest"
        enc = self.tokenizer(texts, padding=padding, truncation=True,
                             max_length=self.pad_to or self.max_length, return_tensors="np")
        return {n: np.asarray(enc[n], dtype=np.int64) for n in self.names}


# ------------------------------------------------------------------- bundle
class Bundle:
    """A verified bundle with one format's file loaded in its runtime.

    Attributes:
        path: The bundle folder.
        manifest: The parsed ``edgesmith.json``.
        format: The format being run (a key of ``manifest["formats"]``).
        runtime: The loaded :class:`~edgesmith.runtimes.Runtime`.
        labels: Class names, or None (embedding models, unlabelled data).
        telemetry: The :class:`~edgesmith.runtimes.telemetry.DriftMonitor` sampling
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
            self.telemetry.observe(raw_inputs, result)
        return result

    def monitor(self, telemetry: DriftMonitor | bool | str | os.PathLike = True, **settings: Any) -> DriftMonitor:
        """Attach a drift monitor to ``predict`` (:mod:`edgesmith.runtimes.telemetry`).

        Args:
            telemetry: A ``DriftMonitor``, True (default settings, reports kept in
                ``monitor.reports``) or a JSON-lines file to append reports to.
            **settings: ``TelemetryConfig`` fields (``sample_rate``, ``window``, ...).

        Raises:
            BundleError: The manifest has no usable ``reference_profile``.
        """
        from edgesmith.runtimes.telemetry import make_monitor

        self.telemetry = make_monitor(telemetry, **settings).attach(self)
        return self.telemetry

    def close(self) -> None:
        self.runtime.close()

    def __enter__(self) -> Bundle:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Bundle({str(self.path)!r}, format={self.format!r}, runtime={self.runtime.name!r})"


def pick_format(manifest: dict, runtime: str | None, where: Path) -> str:
    """The format to run: the first whose runtime is ``runtime``, or (None) the first
    that passed both parity checks, else the first."""
    formats = manifest.get("formats") or {}
    if not formats:
        raise BundleError(f"{where}: the bundle holds no model file")
    if runtime is None:
        ok = [f for f, e in formats.items() if _passed(e)]
        return (ok or list(formats))[0]
    for fmt, e in formats.items():
        if e.get("runtime") == runtime:
            return fmt
    have = ", ".join(sorted({e.get("runtime", "?") for e in formats.values()}))
    raise BundleError(f"{where}: no file for runtime '{runtime}' in this bundle; it has: {have}")


def _passed(entry: dict) -> bool:
    return all((entry.get(k) or {}).get("passed", False) for k in ("parity", "bundle_parity"))


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
