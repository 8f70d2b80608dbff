"""The bundle manifest (``edgesmith.json``): its schema version, path safety and the
size and sha256 of every file, checked before any file reaches a native runtime."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath
from typing import Any

from edgesmith.atomic import sha256_file
from edgesmith.errors import BundleError

SCHEMA_VERSION = 1
MANIFEST = "edgesmith.json"


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
    from edgesmith.bundle.schema import check_manifest

    check_manifest(manifest, path)  # every field's shape, before any is used
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


