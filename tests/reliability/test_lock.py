"""One run per run folder; a killed run's lock and leftovers do not block the next (issue 16, items 3, 4)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgesmith.errors import PathError
from edgesmith.pipeline import lock

HOLD = """
import sys, time
from edgesmith.pipeline.lock import run_lock
with run_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


def _holder(out: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                         env={**os.environ, "EDGESMITH_QUIET": "1"})
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_run_stops_with_the_holders_pid_and_a_killed_holders_lock_is_taken_over(tmp_path, monkeypatch):
    lines: list[str] = []
    monkeypatch.setattr(lock, "log", lines.append)
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        t0 = time.perf_counter()
        with pytest.raises(PathError, match=rf"already running \(pid {holder.pid}\)") as e:
            with lock.run_lock(out):
                pass
        assert time.perf_counter() - t0 < 1, "refused at once, not after waiting"
        assert e.value.exit_code == 2 and "\n" not in str(e.value)
    finally:
        holder.send_signal(signal.SIGKILL)  # a crash: the lock file stays, with the dead pid in it
        holder.wait()
    assert (out / lock.LOCK).read_text().split() == [str(holder.pid)]
    (out / ".00-teacher.k2j3.tmp").mkdir()
    (out / ".00-teacher.k2j3.tmp" / "model.safetensors").write_bytes(b"half")
    (out / ".01-distill.old").mkdir()
    (out / ".recipe.resolved.yaml.abc.tmp").write_text("half")
    (out / "bundle").mkdir()
    (out / "bundle" / ".edgesmith.json.x.tmp").write_text("{")
    (out / "keep.tmp").write_text("not ours: no leading dot")
    with lock.run_lock(out):
        assert (out / lock.LOCK).read_text().split() == [str(os.getpid())]
    assert any(f"pid {holder.pid}" in ln and "taking over" in ln for ln in lines)
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK, "bundle", "keep.tmp"]
    assert list((out / "bundle").iterdir()) == []
    assert (out / lock.LOCK).read_text() == "", "released cleanly: no pid left behind"


def test_out_that_is_a_file_is_one_line_exit_2(tmp_path):
    f = tmp_path / "a-file"
    f.write_text("x")
    with pytest.raises(PathError, match="is a file, not a run folder") as e:
        with lock.run_lock(f):
            pass
    assert e.value.exit_code == 2
    with pytest.raises(PathError, match="a parent of it is a file"):
        with lock.run_lock(f / "sub"):
            pass
    assert f.read_text() == "x"


def test_cli_run_into_a_locked_folder_exits_2_before_any_work(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from edgesmith.cli import main

    out = tmp_path / "run"
    holder = _holder(out)
    try:
        r = CliRunner().invoke(main, ["run", "digits-quick", "--out", str(out)])
    finally:
        holder.kill()
        holder.wait()
    assert r.exit_code == 2, r.output
    assert r.stderr.strip().splitlines() == [f"error: {out}: already running (pid {holder.pid}); wait for it to "
                                             "finish or pass another --out"]
    assert sorted(p.name for p in out.iterdir()) == [lock.LOCK]
