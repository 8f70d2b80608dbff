"""Where drift reports go, and how they are read back, without losing one.

:class:`JsonlSink` appends one JSON line per report. When the file cannot be
written (its directory removed, a full disk, a read-only mount) reports go to a
bounded on-disk spool (segment files in ``spool_dir``, at most ``spool_bytes``)
and, if the spool cannot be written either, to a bounded in-memory queue
(``memory_reports``). Delivery is retried at most every ``retry_s`` seconds on the
next report, and by :meth:`JsonlSink.flush`; the spool is delivered oldest first.
Only when a bound is hit are the oldest reports dropped, and counted
(:attr:`JsonlSink.dropped`): memory never grows past the in-memory bound.

Each append checks the file's last byte: after a torn write (a crash or a full
disk mid-line) the next report starts on a new line instead of being glued onto
the truncated one. :func:`read_reports` skips and counts such lines.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np

from edgesmith.errors import DataError

log = logging.getLogger(__name__)
REPORT_PREFIX = "edgesmith.drift/"


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else str(v)


def dumps(report: dict) -> str:
    """One report as one JSON line (with its newline)."""
    return json.dumps(report, separators=(",", ":"), default=_plain) + "\n"


def default_spool_dir(path: Path) -> Path:
    """``~/.cache/edgesmith/spool/<hash of the sink path>``: another directory than the sink's."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:16]
    return Path(os.environ.get("EDGESMITH_CACHE") or "~/.cache/edgesmith").expanduser() / "spool" / key


class JsonlSink:
    """A JSON-lines report file that spools while it cannot be written.

    Args:
        path: The JSON-lines file.
        spool_dir: Folder of the on-disk spool (default :func:`default_spool_dir`).
        spool_bytes: Bound of the on-disk spool; beyond it the oldest segment is dropped.
        segment_reports: Reports per spool segment file.
        memory_reports: Bound of the in-memory queue used when the spool fails too.
        retry_s: Least time between delivery attempts during an outage.
    """

    def __init__(self, path: str | os.PathLike, spool_dir: str | os.PathLike | None = None, *,
                 spool_bytes: int = 64 << 20, segment_reports: int = 256, memory_reports: int = 1000,
                 retry_s: float = 1.0):
        self.path = Path(path)
        self.spool_dir = Path(spool_dir) if spool_dir is not None else default_spool_dir(self.path)
        self.spool_bytes, self.segment_reports, self.retry_s = spool_bytes, segment_reports, retry_s
        self.memory: deque[str] = deque()
        self.memory_reports = memory_reports
        self.delivered = self.spooled = self.dropped = self.failures = 0
        self._lock = threading.Lock()
        self._segments: deque[list] = deque()  # [path, lines, bytes], oldest first
        self._seq, self._last_try, self._down = 0, 0.0, False
        self._adopt_spool()

    # ------------------------------------------------------------ public
    @property
    def pending(self) -> int:
        """Reports spooled or queued, not yet delivered."""
        return sum(s[1] for s in self._segments) + len(self.memory)

    @property
    def spool_size(self) -> int:
        """Bytes in the on-disk spool."""
        return sum(s[2] for s in self._segments)

    def write(self, report: dict) -> None:
        """Deliver ``report`` now, or spool it; never raises."""
        line = dumps(report)
        with self._lock:
            if not self.pending:
                try:
                    self._append(line.encode())
                    self.delivered += 1
                    return
                except OSError as e:
                    self._outage(e)
            self._spool(line)
            if time.monotonic() - self._last_try >= self.retry_s:
                self._deliver()

    def flush(self) -> bool:
        """Try to deliver everything pending now; True when nothing is left."""
        with self._lock:
            self._deliver()
            return not self.pending

    def counters(self) -> dict[str, int]:
        """``delivered``, ``pending``, ``spooled``, ``dropped``, ``failures``, ``spool_bytes``."""
        return {"delivered": self.delivered, "pending": self.pending, "spooled": self.spooled,
                "dropped": self.dropped, "failures": self.failures, "spool_bytes": self.spool_size}

    # ----------------------------------------------------------- private
    def _outage(self, e: OSError) -> None:
        self.failures += 1
        self._last_try = time.monotonic()
        if not self._down:  # one warning per outage, not one per report
            self._down = True
            log.warning("drift telemetry: cannot append to %s (%s); spooling reports to %s", self.path,
                        e.strerror or e, self.spool_dir)

    def _append(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(fd).st_size
            if size and os.pread(fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # never glue a report onto a torn line
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
        finally:
            os.close(fd)

    def _spool(self, line: str) -> None:
        data = line.encode()
        try:
            seg = self._segments[-1] if self._segments else None
            if seg is None or seg[1] >= self.segment_reports or not seg[0].exists():
                self.spool_dir.mkdir(parents=True, exist_ok=True)
                self._seq += 1
                seg = [self.spool_dir / f"{time.time_ns():020d}-{self._seq:06d}.jsonl", 0, 0]
                self._segments.append(seg)
            with open(seg[0], "ab", buffering=0) as f:
                f.write(data)
            seg[1] += 1
            seg[2] += len(data)
            self.spooled += 1
            while self.spool_size > self.spool_bytes and len(self._segments) > 1:
                old = self._segments.popleft()
                self.dropped += old[1]
                old[0].unlink(missing_ok=True)
        except OSError:
            if self._segments and self._segments[-1][1] == 0:
                self._segments.pop()
            self.memory.append(line)
            self.spooled += 1
            while len(self.memory) > self.memory_reports:
                self.memory.popleft()
                self.dropped += 1

    def _deliver(self) -> None:
        self._last_try = time.monotonic()
        try:
            while self._segments:
                seg = self._segments[0]
                data = seg[0].read_bytes() if seg[0].exists() else b""
                lines = [ln + b"\n" for ln in data.split(b"\n") if ln.strip()]
                if lines:
                    self._append(b"".join(lines))
                self.delivered += len(lines)
                self._segments.popleft()
                seg[0].unlink(missing_ok=True)
            if self.memory:
                self._append("".join(self.memory).encode())
                self.delivered += len(self.memory)
                self.memory.clear()
            if self._down:
                log.warning("drift telemetry: %s writable again; spooled reports delivered", self.path)
            self._down = False
        except OSError as e:
            self._outage(e)

    def _adopt_spool(self) -> None:
        """Segments left by an earlier process are delivered first."""
        if not self.spool_dir.is_dir():
            return
        for p in sorted(self.spool_dir.glob("*.jsonl")):
            data = p.read_bytes()
            self._segments.append([p, data.count(b"\n"), len(data)])


def read_reports(path: str | os.PathLike) -> tuple[list[dict], dict[str, int]]:
    """The drift reports of a JSON-lines file, and counts of what was skipped:
    ``truncated`` (a last line cut off mid-report, or a line torn by a failed
    write) and ``garbage`` (lines that are not JSON drift reports).

    Raises:
        DataError: The file cannot be read, is empty, or holds no drift report (one line).
    """
    path = Path(path)
    reports, skipped = [], {"truncated": 0, "garbage": 0}
    try:
        f = open(path, "rb")
    except OSError as e:
        raise DataError(f"{path}: cannot read drift reports ({e.strerror})") from None
    with f:
        for raw in f:  # streamed: a large file is never held whole
            complete = raw.endswith(b"\n")
            text = raw.strip()
            if not text:
                continue
            try:
                rep = json.loads(text)
            except (json.JSONDecodeError, UnicodeDecodeError):
                looks_cut = text.startswith(b"{") and not text.endswith(b"}")
                skipped["truncated" if (not complete or looks_cut) else "garbage"] += 1
                continue
            if isinstance(rep, dict) and str(rep.get("schema", "")).startswith(REPORT_PREFIX):
                reports.append(rep)
            else:
                skipped["garbage"] += 1
    if not reports:
        what = "is empty" if not any(skipped.values()) else \
            f"holds no drift report ({skipped['truncated']} truncated, {skipped['garbage']} other lines skipped)"
        raise DataError(f"{path}: {what}; pass the JSON-lines file a DriftMonitor sink wrote")
    return reports, skipped
