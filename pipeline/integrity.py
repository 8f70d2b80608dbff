"""What a finished stage folder holds, and the check that it still holds it.

When a stage's folder is written, :func:`record` lists every file in it with its
size and sha256 in ``files.json`` (``stage.json`` included). A re-run reuses the
folder only when :func:`reusable` finds ``stage.json`` readable, its content key
unchanged and every listed file present with the same size and sha256, and no
file added. A damaged folder (truncated export, zero-byte weights, garbage
``stage.json``) is never reused: the stage is recomputed, with one log line
naming the file. :func:`verify` raises instead, for readers that cannot
recompute (``Runner.reload``).
"""

from __future__ import annotations

import json
from pathlib import Path

from edgesmith import atomic
from edgesmith.errors import EdgesmithError
from edgesmith.progress import log

FILES = "files.json"
SCHEMA = 1


def record(folder: Path) -> dict:
    """Write ``folder/files.json``: size and sha256 of every other file in ``folder``."""
    files = {p.relative_to(folder).as_posix(): {"size": p.stat().st_size, "sha256": atomic.sha256_file(p)}
             for p in sorted(folder.rglob("*")) if p.is_file() and p.name != FILES}
    listing = {"schema": SCHEMA, "files": files}
    atomic.write_json(folder / FILES, listing)
    return listing


def damage(folder: Path) -> str | None:
    """None when ``folder`` holds exactly what its ``files.json`` lists, else why not (one phrase)."""
    listing_path = folder / FILES
    try:
        listing = json.loads(listing_path.read_text())
        files = listing["files"]
        if listing.get("schema") != SCHEMA or not isinstance(files, dict):
            raise ValueError("unknown schema")
    except FileNotFoundError:
        return f"{listing_path} is missing (folder written by an older edgesmith or damaged)"
    except (OSError, ValueError, KeyError, TypeError, UnicodeDecodeError):
        return f"{listing_path} is unreadable"
    for rel, want in files.items():
        path = folder / rel
        if not isinstance(want, dict) or not path.is_file():
            return f"{path} is missing"
        if path.stat().st_size != want.get("size") or atomic.sha256_file(path) != want.get("sha256"):
            return f"{path} differs from what the stage wrote (size or sha256)"
    extra = [p for p in folder.rglob("*") if p.is_file() and p.name != FILES
             and p.relative_to(folder).as_posix() not in files]
    if extra:
        return f"{extra[0]} was not written by the stage"
    return None


def read_stage(folder: Path) -> dict | None:
    """``folder/stage.json`` as a dict, or None when missing or unreadable."""
    try:
        info = json.loads((folder / "stage.json").read_text())
    except (OSError, ValueError, UnicodeDecodeError):
        return None
    return info if isinstance(info, dict) else None


def reusable(folder: Path, key: str) -> dict | None:
    """The stage's info when ``folder`` finished with content key ``key`` and is intact;
    else None (logging why when the folder exists but is damaged)."""
    if not (folder / "stage.json").exists():
        return None
    info = read_stage(folder)
    if info is None:
        log(f"[yellow]{folder / 'stage.json'} is unreadable; recomputing {folder.name}[/yellow]")
        return None
    if info.get("key") != key:
        return None
    why = damage(folder)
    if why is not None:
        log(f"[yellow]{why}; recomputing {folder.name}[/yellow]")
        return None
    return info


def verify(folder: Path) -> None:
    """Raise :class:`EdgesmithError` naming the damaged file and the fix."""
    why = damage(folder)
    if why is not None:
        raise EdgesmithError(f"{why}; run `edgesmith run` again to recompute {folder.name}")
