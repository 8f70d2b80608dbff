"""Container checks before a native runtime sees a file.

A native runtime handed a damaged or foreign file may abort the whole process
(ExecuTorch raises SIGABRT on random bytes) instead of raising. So every runtime
first calls :func:`check_container`, which reads the file's container with
Python only and raises one :class:`EdgesmithError` line when it is not what the
suffix promises: an ONNX protobuf that does not parse or has no graph; a TFLite
or ExecuTorch flatbuffer without its identifier, with a root offset past the end
or (``.pte``) segments past the end; a TorchScript-lite or ``.pt2`` zip that is
not a zip or fails its CRCs; an empty file of any format.

For a format whose runtime cannot be trusted to fail safely even on a file that
passes these checks (ExecuTorch), :func:`probe_in_child` loads it first in a
forked child process: a crash there becomes an error line here.
"""

from __future__ import annotations

import os
import struct
import time
import warnings
import zipfile
from collections.abc import Callable
from pathlib import Path

from edgesmith.atomic import sha256_file
from edgesmith.errors import EdgesmithError

_probed: set[tuple[str, str]] = set()  # (runtime, sha256) already loaded safely in a child


def _bad(path: Path, fmt: str, why: str) -> EdgesmithError:
    return EdgesmithError(f"{path}: not a valid {fmt} file ({why}); re-export it or restore the original")


def _flatbuffer(path: Path, fmt: str, ident: Callable[[bytes], bool]) -> tuple[bytes, int]:
    """The first 40 bytes and the size of a flatbuffer file whose identifier and root offset make sense."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(40)
    if size < 16:
        raise _bad(path, fmt, f"{size} bytes, too short for a flatbuffer")
    if not ident(head[4:8]):
        raise _bad(path, fmt, f"file identifier {head[4:8]!r} is not the {fmt} one")
    (root,) = struct.unpack_from("<I", head, 0)
    if not 8 <= root <= size - 4:
        raise _bad(path, fmt, f"root table offset {root} lies outside its {size} bytes (truncated?)")
    return head, size


def _tflite(path: Path) -> None:
    _flatbuffer(path, "TFLite", lambda i: i == b"TFL3")


def _pte(path: Path) -> None:
    head, size = _flatbuffer(path, "ExecuTorch", lambda i: i[:2] == b"ET" and i[2:].isdigit())
    if head[8:12] == b"eh00" and len(head) >= 40:  # extended header: program and segment sizes
        length, program, seg_base, seg_size = struct.unpack_from("<IQQQ", head, 12)
        if length >= 32 and (program > size or (seg_size and seg_base + seg_size > size)):
            raise _bad(path, "ExecuTorch", f"its header promises {max(program, seg_base + seg_size)} bytes, "
                                           f"the file has {size} (truncated)")


def _zip(path: Path, fmt: str) -> None:
    if not zipfile.is_zipfile(path):
        raise _bad(path, fmt, "not a zip archive")
    try:
        with zipfile.ZipFile(path) as z:
            broken = z.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as e:
        raise _bad(path, fmt, f"damaged zip: {e}") from None
    if broken is not None:
        raise _bad(path, fmt, f"member {broken!r} fails its CRC")


def _varint(f, what: str) -> int:
    shift = value = 0
    while True:
        b = f.read(1)
        if not b:
            raise ValueError(f"{what} ends inside a number")
        value |= (b[0] & 0x7F) << shift
        if b[0] < 0x80:
            return value
        shift += 7
        if shift > 63:
            raise ValueError(f"{what}: a number longer than 10 bytes")


def _onnx(path: Path) -> None:
    """Walk the ModelProto's top-level fields (without parsing the graph, so no memory is
    spent): every field must be well formed and end inside the file, and the IR version
    (field 1) and the graph (field 7) must be there."""
    size, seen = path.stat().st_size, set()
    try:
        with open(path, "rb") as f:
            while f.tell() < size:
                key = _varint(f, "a field key")
                number, wire = key >> 3, key & 7
                if number == 0 or wire not in (0, 1, 2, 5):
                    raise ValueError(f"bad field key {key} at byte {f.tell()}")
                if wire == 0:
                    _varint(f, f"field {number}")
                else:
                    n = {1: 8, 5: 4}.get(wire) or _varint(f, f"field {number}'s length")
                    if f.tell() + n > size:
                        raise ValueError(f"field {number} runs {f.tell() + n - size} bytes past the end (truncated?)")
                    f.seek(n, 1)
                seen.add(number)
    except ValueError as e:
        raise _bad(path, "ONNX", f"protobuf does not parse: {e}") from None
    if not {1, 7} <= seen:
        raise _bad(path, "ONNX", "no IR version or no graph")


CHECKS: dict[str, Callable[[Path], None]] = {
    ".onnx": _onnx,
    ".tflite": _tflite,
    ".pte": _pte,
    ".ptl": lambda p: _zip(p, "TorchScript-lite"),
    ".pt2": lambda p: _zip(p, "torch.export (.pt2)"),
}


def check_container(path: str | os.PathLike) -> None:
    """Raise :class:`EdgesmithError` (one line) when ``path`` is empty or its container
    does not match its suffix. Suffixes without a check pass when non-empty."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise EdgesmithError(f"{path}: empty file (0 bytes); re-export it or restore the original")
    check = CHECKS.get(path.suffix.lower())
    if check is not None:
        check(path)


def probe_in_child(path: str | os.PathLike, runtime: str, load: Callable[[], object],
                   timeout: float = 30.0) -> None:
    """Run ``load`` in a forked child first; raise :class:`EdgesmithError` when the child
    dies of a signal (the runtime aborted on the file). An ordinary exception in the
    child is left for the caller's own load to raise. A file that loaded safely once
    (same content) is not probed again in this process. No-op where fork is unavailable.
    """
    if not hasattr(os, "fork"):
        return
    path = Path(path)
    key = (runtime, sha256_file(path))  # streamed: no copy of the file in memory
    if key in _probed:
        return
    with warnings.catch_warnings():  # the child only loads one file and exits; it never touches other threads' state
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # child: load, report by exit status only
        code = 3
        try:
            import faulthandler

            faulthandler.disable()  # a crash here is reported by the parent in one line, not as a dump
            os.dup2(os.open(os.devnull, os.O_WRONLY), 2)  # the runtime's crash noise stays out of the terminal
            load()
            code = 0
        except BaseException:  # noqa: BLE001 - any Python-level failure is for the parent's own load to report
            code = 3
        os._exit(code)
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:  # a stuck child proves nothing either way: stop it, trust the checks
            os.kill(pid, 9)
            os.waitpid(pid, 0)
            return
        time.sleep(0.005)
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        raise EdgesmithError(f"{path}: the {runtime} runtime crashed loading it (signal {sig}); the file is damaged "
                             "or not made for this runtime: re-export it or restore the original")
    if os.WEXITSTATUS(status) == 0:
        _probed.add(key)
