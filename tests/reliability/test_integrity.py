"""A damaged stage folder is recomputed, never reused or shipped (issue 16, items 1, 2, 4)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from rel_helpers import TINY, copy_run, model_files

import edgesmith
from edgesmith.errors import EdgesmithError
from edgesmith.pipeline import integrity


def _stage(tmp_path: Path) -> Path:
    d = tmp_path / "03-stage"
    (d / "onnx").mkdir(parents=True)
    (d / "onnx" / "model.onnx").write_bytes(b"x" * 100)
    (d / "model.safetensors").write_bytes(b"w" * 50)
    (d / "stage.json").write_text(json.dumps({"key": "k1", "kind": "prune"}))
    integrity.record(d)
    return d


def test_record_lists_every_file_with_size_and_sha256(tmp_path):
    d = _stage(tmp_path)
    files = json.loads((d / "files.json").read_text())["files"]
    assert sorted(files) == ["model.safetensors", "onnx/model.onnx", "stage.json"]
    assert files["onnx/model.onnx"] == {"size": 100, "sha256": hashlib.sha256(b"x" * 100).hexdigest()}
    assert integrity.reusable(d, "k1") == {"key": "k1", "kind": "prune"}
    assert integrity.reusable(d, "other-key") is None


@pytest.mark.parametrize("damage", ["truncate", "zero", "flip", "delete", "extra", "garbage-stage-json",
                                    "stage-json-list", "delete-files-json", "garbage-files-json"])
def test_any_damage_makes_the_folder_unusable(tmp_path, damage):
    d = _stage(tmp_path)
    onnx = d / "onnx" / "model.onnx"
    {
        "truncate": lambda: onnx.write_bytes(b"x" * 10),
        "zero": lambda: (d / "model.safetensors").write_bytes(b""),
        "flip": lambda: onnx.write_bytes(b"y" + b"x" * 99),  # same size, other content
        "delete": onnx.unlink,
        "extra": lambda: (d / "onnx" / "model.onnx.data").write_bytes(b"planted"),
        "garbage-stage-json": lambda: (d / "stage.json").write_bytes(b"\x00\xff{not json"),
        "stage-json-list": lambda: (d / "stage.json").write_text("[1, 2]"),
        "delete-files-json": (d / "files.json").unlink,
        "garbage-files-json": lambda: (d / "files.json").write_text('{"schema": 1, "files": 3}'),
    }[damage]()
    assert integrity.reusable(d, "k1") is None
    with pytest.raises(EdgesmithError, match="run `edgesmith run` again") as e:
        integrity.verify(d)
    assert "\n" not in str(e.value)


def test_damaged_stages_are_recomputed_to_identical_files_and_leftovers_removed(tiny_run, tmp_path, monkeypatch):
    from edgesmith.pipeline import lock

    lines: list[str] = []
    monkeypatch.setattr(integrity, "log", lines.append)
    monkeypatch.setattr(lock, "log", lines.append)
    out = copy_run(tiny_run, tmp_path / "run")
    export = next(out.glob("*-export"))
    onnx = next(export.glob("onnx/*.onnx"))
    ref = model_files(out)
    onnx.write_bytes(onnx.read_bytes()[:100])  # issue 16 item 1: a truncated export in a finished run
    (out / "01-distill" / "model.safetensors").write_bytes(b"")  # item 2: zero-byte weights
    (out / "00-teacher" / "eval_outputs.safetensors").write_bytes(b"garbage")  # item 2
    (out / "00-teacher" / "stage.json").write_bytes(b"\x00garbage")  # item 2
    (out / ".01-distill.x1y2.tmp").mkdir()  # item 4: leftovers of a killed run
    (out / ".bundle.abc.tmp").mkdir()
    (out / ".summary.json.q.tmp").write_text("{")
    edgesmith.run("digits-quick", out, overrides=TINY, device="cpu")
    text = "\n".join(lines)
    assert "00-teacher/stage.json is unreadable; recomputing 00-teacher" in text
    assert "01-distill/model.safetensors differs from what the stage wrote" in text
    assert f"{onnx.relative_to(out.parent)} differs from what the stage wrote" in text
    assert "removed 3 temporary file(s)" in text
    assert not [p for p in out.iterdir() if p.name.endswith((".tmp", ".old"))]
    now = model_files(out)
    differ = sorted(k for k in ref if now.get(k) != ref[k])
    assert not differ and now.keys() == ref.keys(), f"recomputed files differ from the undamaged run: {differ}"
    bundle_onnx = next((out / "bundle" / "onnx").glob("*.onnx"))
    assert bundle_onnx.read_bytes() == onnx.read_bytes() and len(onnx.read_bytes()) > 100
    manifest = json.loads((out / "bundle" / "edgesmith.json").read_text())
    assert all(e["bundle_parity"]["passed"] for e in manifest["formats"].values())


def test_reload_names_the_damaged_file(tiny_run, tmp_path):
    from edgesmith.conf.recipe import load_recipe
    from edgesmith.pipeline.runner import Runner

    out = copy_run(tiny_run, tmp_path / "run")
    (out / "01-distill" / "model.safetensors").write_bytes(b"")
    runner = Runner(load_recipe("digits-quick", TINY), out, "cpu")
    with pytest.raises(EdgesmithError, match=r"01-distill/model.safetensors differs .* recompute 01-distill"):
        runner.reload()
