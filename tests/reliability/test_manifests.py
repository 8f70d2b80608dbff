"""A malformed manifest or a bad input is one BundleError / DataError line (issue 16, items 7, 8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from edgesmith.bundle import load_bundle, raw_inputs, read_manifest
from edgesmith.errors import BundleError, DataError

MALFORMED = {  # the six, the zero std, and neighbours
    "formats-as-list": (lambda m: m.update(formats=list(m["formats"])), "'formats' must be a non-empty mapping"),
    "checksum-without-path": (lambda m: m["checksums"][0].pop("path"), r"'checksums\[0\].path' is missing"),
    "checksums-as-dict": (lambda m: m.update(checksums={"a": 1}), "'checksums' must be a list"),
    "no-preprocessing": (lambda m: m.pop("preprocessing"), "'preprocessing' must be a mapping"),
    "no-inputs": (lambda m: m.pop("inputs"), "'inputs' must be a non-empty list"),
    "fewer-labels": (lambda m: m.update(labels=m["labels"][:3]), "'labels' has 3 names for 10 classes"),
    "std-zero": (lambda m: m["preprocessing"].update(std=[0]), "'preprocessing.std' must be > 0"),
    "std-nan": (lambda m: m["preprocessing"].update(std=[float("nan")]), "'preprocessing.std' must be a list"),
    "mean-string": (lambda m: m["preprocessing"].update(mean="0.5"), "'preprocessing.mean' must be a list"),
    "size-negative": (lambda m: m["preprocessing"].update(size=[-8, 8]), "'preprocessing.size'"),
    "bad-sha": (lambda m: m["checksums"][0].update(sha256="xyz"), "64-hex-digit sha256"),
    "format-no-runtime": (lambda m: next(iter(m["formats"].values())).pop("runtime"), "needs a string 'path'"),
    "outputs-empty": (lambda m: m.update(outputs=[]), "'outputs' must be a non-empty list"),
    "meaning-unknown": (lambda m: m["outputs"][0].update(meaning="scores"), "'outputs\\[0\\].meaning'"),
    "labels-not-strings": (lambda m: m.update(labels=list(range(10))), "'labels' must be a list of class names"),
    "max-batch-zero": (lambda m: next(iter(m["formats"].values())).update(max_batch=0), "max_batch"),
}


def write_malformed(tiny_run: Path, dst: Path, name: str) -> Path:
    bundle = shutil.copytree(tiny_run / "bundle", dst)
    manifest = json.loads((bundle / "edgesmith.json").read_text())
    MALFORMED[name][0](manifest)
    (bundle / "edgesmith.json").write_text(json.dumps(manifest))
    return bundle


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_manifest_is_one_line(tiny_run, tmp_path, name):
    bundle = write_malformed(tiny_run, tmp_path / "b", name)
    with pytest.raises(BundleError, match=MALFORMED[name][1]) as e:
        read_manifest(bundle)
    assert "\n" not in str(e.value) and e.value.exit_code == 2


def test_nan_and_inf_pixels_are_refused(tiny_run):
    with load_bundle(tiny_run / "bundle", "onnxruntime") as b:
        x = np.full((1, 8, 8), 0.5, np.float32)
        assert b.predict(x).shape == (1, 10)
        for bad in (np.nan, np.inf):
            x[0, 3, 3] = bad
            with pytest.raises(BundleError, match="NaN or infinite"):
                b.predict(x)


IMAGE = {"preprocessing": {"kind": "image", "channels": 1, "size": [8, 8]}}
TEXT = {"preprocessing": {"kind": "text"}}


def test_text_input_rule(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "reviews.txt").write_text("good film\n\nbad film\n")
    assert raw_inputs("reviews.txt", TEXT) == ["good film", "bad film"]
    assert raw_inputs("reviews.txt", TEXT, text=True) == ["reviews.txt"]  # --text: the string itself
    assert raw_inputs("a lovely film", TEXT) == ["a lovely film"]
    cases = {
        "revews.txt": "no such file",  # a mistyped path is not predicted as text
        "data/reviews": "no such file",
        str(tmp_path): "is a folder",
        "x" * 100_001: None,  # --text bound
    }
    for arg, msg in cases.items():
        with pytest.raises(DataError, match=msg or "at most 100,000") as e:
            raw_inputs(arg, TEXT, text=msg is None)
        assert "\n" not in str(e.value)
    with pytest.raises(DataError, match="at most 100,000"):
        raw_inputs("y " * 60_000, TEXT)  # a 120k-character argument: no OSError from the file system
    (tmp_path / "img.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    (tmp_path / "photo").write_bytes(b"\xff\xd8\xff\xe0" + bytes(100))
    (tmp_path / "blob.bin").write_bytes(b"abc\x00def")
    (tmp_path / "latin1.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "empty.txt").write_text("\n \n")
    for name, msg in {"img.png": "is an image", "photo": "is an image", "blob.bin": "is a binary file",
                      "latin1.txt": "not UTF-8 text", "empty.txt": "no text in it"}.items():
        with pytest.raises(DataError, match=msg):
            raw_inputs(name, TEXT)
    with pytest.raises(DataError, match="--text: this bundle takes images"):
        raw_inputs("hello", IMAGE, text=True)


def test_array_inputs(tmp_path):
    np.savez(tmp_path / "empty.npz")
    with pytest.raises(DataError, match="holds no arrays"):
        raw_inputs(str(tmp_path / "empty.npz"), IMAGE)
    np.save(tmp_path / "zero.npy", np.zeros((0, 8, 8), np.float32))
    with pytest.raises(DataError, match="array is empty"):
        raw_inputs(str(tmp_path / "zero.npy"), IMAGE)
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(DataError, match="cannot read as a numpy array"):
        raw_inputs(str(tmp_path / "obj.npy"), IMAGE)  # pickles are never loaded
    (tmp_path / "trunc.npy").write_bytes((tmp_path / "zero.npy").read_bytes()[:20])
    with pytest.raises(DataError, match="cannot read as a numpy array"):
        raw_inputs(str(tmp_path / "trunc.npy"), IMAGE)
