"""Atomic writes replace regular files only (issue 16, item 6)."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from edgesmith import atomic
from edgesmith.errors import PathError


def test_symlink_keeps_its_link_and_the_target_is_replaced(tmp_path):
    target = tmp_path / "real.json"
    target.write_text("old")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    atomic.write_text(link, "new")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert target.read_text() == "new"
    dangling = tmp_path / "dangling.csv"
    dangling.symlink_to(tmp_path / "later.csv")
    atomic.write_text(dangling, "a,b\n")
    assert dangling.is_symlink() and (tmp_path / "later.csv").read_text() == "a,b\n"


def test_fifo_reader_gets_the_bytes_and_the_fifo_stays(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()))
    reader.start()
    atomic.write_json(fifo, {"rows": 3})
    reader.join(10)
    assert got == [b'{\n  "rows": 3\n}\n']
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)


def test_character_device_is_streamed_not_replaced():
    before = os.stat("/dev/null")
    atomic.write_text("/dev/null", "discarded")
    after = os.stat("/dev/null")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_folder_is_refused_in_one_line(tmp_path):
    with pytest.raises(PathError, match="is a folder; pass a file path") as e:
        atomic.write_text(tmp_path, "x")
    assert e.value.exit_code == 2
    assert not list(tmp_path.iterdir()), "no temporary file left behind"


def test_block_device_is_refused_without_opening_it():
    devices = [p for p in Path("/dev").glob("*") if not p.is_symlink() and p.exists() and stat.S_ISBLK(p.stat().st_mode)]
    if not devices:
        pytest.skip("no block device here")
    with pytest.raises(PathError, match="is a block device"):
        atomic._special(devices[0])  # the check alone: never write to a disk in a test


def test_cli_results_export_to_fifo_and_symlink(tmp_path):
    from click.testing import CliRunner

    from edgesmith.cli import main

    db = tmp_path / "r.db"
    fifo = tmp_path / "out.json"
    os.mkfifo(fifo)
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(Path(fifo).read_bytes()))
    reader.start()
    r = CliRunner().invoke(main, ["results", str(db), "--export", str(fifo)])
    reader.join(10)
    assert r.exit_code == 0, r.output
    assert b'"app": "edgesmith"' in got[0] and stat.S_ISFIFO(os.stat(fifo).st_mode)
    link = tmp_path / "link.csv"
    link.symlink_to(tmp_path / "real.csv")
    r = CliRunner().invoke(main, ["results", str(db), "--export", str(link)])
    assert r.exit_code == 0 and link.is_symlink() and (tmp_path / "real.csv").read_text().startswith("id,uid")
    r = CliRunner().invoke(main, ["results", str(db), "--export", str(tmp_path)])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "is a folder" in r.stderr
