"""One console and progress style for the whole tool (rich).

On a terminal, progress is a transient bar. Anywhere else (a log file, CI, a pipe)
every task prints plain lines instead: one when it starts, one at most every
``PLAIN_EVERY_S`` seconds while it runs, and one with its count and duration when it
ends, so a log shows what ran and for how long. ``EDGESMITH_QUIET`` (``--quiet``)
silences both, and :func:`log`.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import re
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

console = Console(stderr=True, highlight=False)
PLAIN_EVERY_S = 30.0

# Lines native libraries print straight to file descriptor 2 (no Python logger to
# silence): TFLite's XNNPACK delegate, ExecuTorch's cpuinfo / threadpool, absl, glog,
# oneDNN. Dropped unless --verbose.
NATIVE_NOISE = re.compile(
    r"Created TensorFlow Lite XNNPACK delegate|^\[(cpuinfo_utils|threadpool|program|method)\.cpp:\d+\]"
    r"|All log messages before absl::InitializeLog|^[IWE]\d{4} \d\d:\d\d:\d\d|onednn_verbose|oneDNN custom operations"
    r"|^WARNING: Logging before InitGoogleLogging"
)


def quiet() -> bool:
    return bool(os.environ.get("EDGESMITH_QUIET")) or "pytest" in sys.modules


class PlainProgress:
    """The :class:`rich.progress.Progress` calls the tool makes (``add_task``,
    ``update``, ``advance``), printed as plain lines for a log (see the module doc)."""

    def __init__(self, out: Console, every_s: float = PLAIN_EVERY_S, enabled: bool = True) -> None:
        self.out, self.every_s, self.enabled = out, every_s, enabled
        self.tasks: dict[int, dict[str, Any]] = {}

    def _line(self, text: str) -> None:
        if self.enabled:
            self.out.print(text, markup=False, highlight=False, soft_wrap=True)

    def add_task(self, description: str, total: float | None = None, **_: Any) -> int:
        tid = len(self.tasks)
        now = time.monotonic()
        self.tasks[tid] = {"desc": description, "total": total, "done": 0.0, "start": now, "last": now, "ended": False}
        self._line(f"{description}: started" + (f" ({total:g} steps)" if total else ""))
        return tid

    def update(self, task_id: int, *, advance: float | None = None, completed: float | None = None,
               description: str | None = None, total: float | None = None, **_: Any) -> None:
        t = self.tasks[task_id]
        if description is not None:
            t["desc"] = description
        if total is not None:
            t["total"] = total
        t["done"] = completed if completed is not None else t["done"] + (advance or 0)
        now = time.monotonic()
        if t["total"] and t["done"] >= t["total"]:
            self._end(t)
        elif now - t["last"] >= self.every_s:
            t["last"] = now
            of = f"/{t['total']:g}" if t["total"] else ""
            self._line(f"{t['desc']}: {t['done']:g}{of} after {now - t['start']:.0f} s")

    def advance(self, task_id: int, advance: float = 1) -> None:
        self.update(task_id, advance=advance)

    def _end(self, t: dict[str, Any]) -> None:
        if not t["ended"]:
            t["ended"] = True
            of = f"/{t['total']:g}" if t["total"] else ""
            self._line(f"{t['desc']}: done, {t['done']:g}{of} in {time.monotonic() - t['start']:.1f} s")

    def close(self) -> None:
        for t in self.tasks.values():
            self._end(t)


@contextlib.contextmanager
def progress_bar() -> Iterator[Progress | PlainProgress]:
    """A transient bar on a terminal, plain start / progress / end lines elsewhere."""
    if not console.is_terminal:
        plain = PlainProgress(console, enabled=not quiet())
        try:
            yield plain
        finally:
            plain.close()
        return
    bar = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet(),
    )
    with bar:
        yield bar


def log(msg: str) -> None:
    if not quiet():
        console.print(msg)


def filter_native_noise(pattern: re.Pattern[str] = NATIVE_NOISE) -> bool:
    """Route file descriptor 2 (this process and the workers it starts) through a
    filter that drops the native libraries' chatter (:data:`NATIVE_NOISE`).

    Only for a real stderr (not under a test runner's capture). Returns whether it
    was installed; undone at exit, after the last lines are passed on.
    """
    try:
        if sys.stderr is not sys.__stderr__ or sys.stderr.fileno() != 2:
            return False
    except (AttributeError, OSError, ValueError):
        return False
    sys.stderr.flush()
    read_fd, write_fd = os.pipe()
    real = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as src:
            for line in src:
                if not pattern.search(line.decode("utf-8", "replace").strip()):
                    os.write(real, line)

    thread = threading.Thread(target=pump, name="edgesmith-stderr-filter", daemon=True)
    thread.start()

    def restore() -> None:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        os.dup2(real, 2)  # closes the pipe's last writer in this process: the pump sees EOF
        thread.join(timeout=2)

    atexit.register(restore)
    return True


def size_change(ratio: float) -> str:
    """``fp32 size / new size`` as words: ``2.17x smaller`` or, marked, ``2.20x larger``.

    Example:
        >>> size_change(2.0), size_change(0.5)
        ('2.00x smaller', '[yellow]2.00x larger[/yellow]')
    """
    return f"{ratio:.2f}x smaller" if ratio >= 1 else f"[yellow]{1 / ratio:.2f}x larger[/yellow]"
