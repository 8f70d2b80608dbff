"""The shape of ``edgesmith.json``, checked before anything in it is used: a bundle
with a malformed manifest is one :class:`BundleError` line naming the field, never
a ``KeyError`` deep in ``predict`` nor inputs silently made ``inf`` by a zero std.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from edgesmith.errors import BundleError

_SHA256 = re.compile(r"[0-9a-f]{64}")


def _num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _int(v: Any, lo: int = 0) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= lo


def check_manifest(manifest: dict, where: Path) -> None:
    """Raise :class:`BundleError` naming the first malformed field of ``manifest``."""

    def bad(field: str, want: str) -> BundleError:
        return BundleError(f"{where}: field '{field}' {want}; the manifest is damaged: rebuild the bundle "
                           "with `edgesmith run`")

    checksums = manifest.get("checksums")
    if not isinstance(checksums, list):
        raise bad("checksums", "must be a list of {path, size, sha256}")
    for i, c in enumerate(checksums):
        if not isinstance(c, dict) or not isinstance(c.get("path"), str):
            raise bad(f"checksums[{i}].path", "is missing or not a string")
        if not _int(c.get("size")) or not isinstance(c.get("sha256"), str) or not _SHA256.fullmatch(c["sha256"]):
            raise bad(f"checksums[{i}]", "needs an integer size and a 64-hex-digit sha256")
    formats = manifest.get("formats")
    if not isinstance(formats, dict) or not formats:
        raise bad("formats", "must be a non-empty mapping of format to file entry")
    for fmt, e in formats.items():
        if not isinstance(e, dict) or not isinstance(e.get("path"), str) or not isinstance(e.get("runtime"), str):
            raise bad(f"formats.{fmt}", "needs a string 'path' and 'runtime'")
        if not isinstance(e.get("files", []), list) or not all(isinstance(f, str) for f in e.get("files", [])):
            raise bad(f"formats.{fmt}.files", "must be a list of paths")
        if e.get("max_batch") is not None and not _int(e["max_batch"], 1):
            raise bad(f"formats.{fmt}.max_batch", "must be a positive integer or null")
    for key in ("inputs", "outputs"):
        items = manifest.get(key)
        if not isinstance(items, list) or not items or not all(
                isinstance(t, dict) and isinstance(t.get("name"), str) for t in items):
            raise bad(key, "must be a non-empty list of tensors with a 'name'")
    if manifest["outputs"][0].get("meaning") not in ("logits", "sentence_embedding"):
        raise bad("outputs[0].meaning", "must be 'logits' or 'sentence_embedding'")
    _check_preprocessing(manifest.get("preprocessing"), bad)
    labels = manifest.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
            raise bad("labels", "must be a list of class names or null")
        width = (manifest["outputs"][0].get("shape") or [None])[-1]
        if manifest["outputs"][0]["meaning"] == "logits" and _int(width, 1) and len(labels) != width:
            raise bad("labels", f"has {len(labels)} names for {width} classes")


def _check_preprocessing(pre: Any, bad) -> None:
    if not isinstance(pre, dict) or pre.get("kind") not in ("image", "text"):
        raise bad("preprocessing", "must be a mapping with kind 'image' or 'text'")
    if pre["kind"] == "text":
        if not isinstance(pre.get("tokenizer"), str) or not _int(pre.get("max_length"), 1):
            raise bad("preprocessing", "needs a 'tokenizer' folder and a positive 'max_length'")
        return
    c = pre.get("channels")
    if not _int(c, 1):
        raise bad("preprocessing.channels", "must be a positive integer")
    size = pre.get("size")
    if not isinstance(size, list) or len(size) != 2 or not all(_int(s, 1) for s in size):
        raise bad("preprocessing.size", "must be [height, width] in positive integers")
    for k in ("mean", "std"):
        v = pre.get(k)
        if not isinstance(v, list) or len(v) not in (1, c) or not all(_num(x) for x in v):
            raise bad(f"preprocessing.{k}", f"must be a list of 1 or {c} finite numbers")
    if any(x <= 0 for x in pre["std"]):
        raise bad("preprocessing.std", "must be > 0 (a zero std makes every input infinite)")
    if "uint8_scale" in pre and not (_num(pre["uint8_scale"]) and pre["uint8_scale"] > 0):
        raise bad("preprocessing.uint8_scale", "must be a positive number")
    if pre.get("layout", "NCHW") not in ("NCHW", "NHWC"):
        raise bad("preprocessing.layout", "must be 'NCHW' or 'NHWC'")
