"""One run per run folder.

:func:`run_lock` holds an exclusive ``flock`` on ``DIR/.edgesmith.lock`` (which
records the holder's pid) for the whole run. The kernel drops the lock when its
process dies, however it dies, so a lock left by a killed run is stale by
construction and the next run takes it over (saying so). A second live run into
the same folder stops at once with one line: ``already running (pid N)``.

Holding the lock, the run removes what a killed run left behind: temporary stage
and bundle folders (``.NN-stage.*.tmp``, ``.bundle.*.tmp``), half-replaced
folders (``.NN-stage.old``) and temporary files of atomic writes (``.name.*.tmp``).
No live writer can own them: every writer of the folder holds the lock.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from edgesmith.errors import PathError
from edgesmith.progress import log

LOCK = ".edgesmith.lock"


def _holder(path: Path) -> str:
    try:
        pid = path.read_text().split()[0]
    except (OSError, IndexError, UnicodeDecodeError):
        return "another process"
    return f"pid {pid}" if pid.isdigit() else "another process"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def leftovers(out: Path) -> list[Path]:
    """Temporary folders and files that a killed run left in ``out`` (and its bundle)."""
    found = []
    for folder in (out, out / "bundle"):
        if folder.is_dir() and not folder.is_symlink():
            found += [p for p in folder.iterdir()
                      if p.name.startswith(".") and (p.name.endswith(".tmp") or p.name.endswith(".old"))]
    return sorted(found)


def clean(out: Path) -> list[Path]:
    """Remove :func:`leftovers`; return what was removed."""
    removed = leftovers(out)
    for p in removed:
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
    if removed:
        log(f"[dim]removed {len(removed)} temporary file(s) left by an interrupted run: "
            f"{', '.join(p.name for p in removed[:3])}{' ...' if len(removed) > 3 else ''}[/dim]")
    return removed


@contextlib.contextmanager
def run_lock(out: str | os.PathLike) -> Iterator[Path]:
    """Hold the run folder ``out`` (created if needed) for one run.

    Raises:
        PathError: ``out`` is a file, or a live run holds the folder.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PathError(f"--out {out}: is a file, not a run folder; pass a folder path")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise PathError(f"--out {out}: a parent of it is a file; pass a folder path") from None
    except PermissionError:
        raise PathError(f"--out {out}: no permission to create it; pass a writable folder") from None
    path = out / LOCK
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    held = False
    try:
        previous = _holder(path)
        if not _try_lock(fd):
            raise PathError(f"{out}: already running ({previous}); wait for it to finish or pass "
                                 "another --out")
        held = True
        if previous.startswith("pid ") and int(previous[4:]) != os.getpid():
            log(f"[dim]{path}: taking over the lock of an earlier run ({previous}) that ended "
                "without releasing it[/dim]")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        clean(out)
        yield out
    finally:
        if held:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # an empty lock file: released cleanly
        os.close(fd)  # closing drops the flock


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows: no flock; fall back to the recorded pid being alive
        try:
            pid = int(os.read(fd, 32).split()[0])
        except (ValueError, IndexError, OSError):
            return True
        return pid == os.getpid() or not _pid_alive(pid)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
