"""The deployment bundle of a real (shortened) digits-quick run: the manifest,
every runtime giving the same predictions on held-out digits, refusal of tampered,
missing, escaping or newer-schema bundles, planted export bugs caught by the parity
checks, and ``edgesmith predict`` on real digit images."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from torch import nn

import edgesmith
from edgesmith.atomic import sha256_file, write_json
from edgesmith.bundle import load_bundle
from edgesmith.bundle.loader import MANIFEST
from edgesmith.bundle.writer import write_bundle
from edgesmith.cli import main
from edgesmith.conf.recipe import ExportConfig, load_recipe, resolve_recipe_path
from edgesmith.errors import BundleError, ParityError
from edgesmith.export import get_exporter
from edgesmith.export.base import ExportArtifact, Tolerance
from edgesmith.export.parity import check_bundle_parity, check_parity
from edgesmith.models.tasks import ClassificationTask
from edgesmith.pipeline import integrity
from edgesmith.pipeline.runner import Runner
from edgesmith.runtimes import RUNTIMES

FORMATS = ["onnx", "pt2", "tflite", "executorch", "torchscript-lite"]


@pytest.fixture(scope="module")
def run(tmp_path_factory, edgesmith_cache) -> SimpleNamespace:
    """digits-quick cut to teacher + distill, exporting every CPU format, run once."""
    raw = yaml.safe_load(resolve_recipe_path("digits-quick").read_text())
    raw["teacher"]["train"]["epochs"] = 4
    raw["stages"] = [{**raw["stages"][0], "epochs": 6}]
    raw["export"]["formats"] = FORMATS
    raw["benchmark"]["runtimes"] = []  # measured elsewhere; here only the bundle matters
    out = tmp_path_factory.mktemp("digits") / "run"
    summary = edgesmith.run(raw, out)
    runner = Runner(load_recipe(out / "recipe.resolved.yaml"), out, "cpu")
    model = runner.reload()  # the final model, rebuilt from the run folder alone
    ctx = runner.ctx
    return SimpleNamespace(out=out, summary=summary, bundle=out / "bundle", model=model, task=ctx.task,
                           raw=ctx.raw["eval"], data=ctx.tensors["eval"], precision=raw["export"]["precision"])


@pytest.fixture
def copy(run, tmp_path) -> Path:
    """A private copy of the bundle to damage."""
    return Path(shutil.copytree(run.bundle, tmp_path / "bundle"))


def _manifest(path: Path) -> dict:
    return json.loads((path / MANIFEST).read_text())


def _rehash(path: Path, manifest: dict) -> None:
    """Rewrite the manifest with fresh checksums, as a buggy exporter's bundle would have."""
    for c in manifest["checksums"]:
        f = path / c["path"]
        c.update(size=f.stat().st_size, sha256=sha256_file(f))
    write_json(path / MANIFEST, manifest)


# ------------------------------------------------------------------- manifest
def test_run_writes_a_verified_bundle(run) -> None:
    entry, m = run.summary["bundle"], _manifest(run.bundle)
    assert entry["path"] == "bundle" and entry["manifest_sha256"] == sha256_file(run.bundle / MANIFEST)
    assert all((run.bundle / f).is_file() for f in entry["files"])
    assert entry["formats"] == FORMATS and entry["default_format"] == "onnx"
    assert m["schema_version"] == 1 and m["task"] == "classification"
    assert m["inputs"] == [{"name": "pixel_values", "shape": ["batch", 1, 8, 8], "dtype": "float32", "layout": "NCHW"}]
    assert m["outputs"][0]["meaning"] == "logits" and m["outputs"][0]["shape"] == ["batch", 10]
    pre = m["preprocessing"]
    assert pre["kind"] == "image" and pre["size"] == [8, 8] and pre["channels"] == 1
    assert pre["mean"] == run.task.mean and pre["std"] == run.task.std and 0.2 < pre["mean"][0] < 0.4
    assert m["labels"] == [str(i) for i in range(10)]
    assert m["source"]["recipe"] == "digits-quick" and len(m["source"]["recipe_sha256"]) == 64
    on_disk = sorted(p.relative_to(run.bundle).as_posix() for p in run.bundle.rglob("*") if p.is_file())
    assert sorted([MANIFEST, *(c["path"] for c in m["checksums"])]) == on_disk  # every file hashed
    assert run.precision == {"tflite": "int8", "executorch": "int8"}  # digits-quick's export.precision
    for fmt, e in m["formats"].items():
        assert e["precision"] == run.precision.get(fmt, "fp32") and e["runtime"] in RUNTIMES
        assert e["parity"]["passed"] and e["bundle_parity"]["passed"], (fmt, e["bundle_parity"])
        if e["precision"] == "fp32":
            assert e["bundle_parity"]["agreement"] == 1.0 and e["bundle_parity"]["max_abs_diff"] <= 1e-4
        else:  # int8 through the bundle's own preprocessing (tflite: quantized I/O applied by the runtime)
            # 64 samples: a near-tie flip costs 1.6 points (measured: 0.969, cosine 0.99993, max diff 2.9)
            assert e["bundle_parity"]["agreement"] >= 0.95 and e["bundle_parity"]["cosine"] >= 0.999, e
    assert m["formats"]["tflite"]["static_shapes"] == {"pixel_values": [1, 1, 8, 8]}
    assert m["formats"]["executorch"]["max_batch"] == 64


def test_reference_profile(run) -> None:
    prof = _manifest(run.bundle)["reference_profile"]
    assert prof["split"] == "eval" and prof["samples"] == len(run.raw) == 359 and prof["format"] == "onnx"
    ch = prof["inputs"]["channels"][0]
    x = np.asarray(run.raw.x, np.float64)
    assert ch["mean"] == pytest.approx(x.mean(), abs=1e-6) and ch["std"] == pytest.approx(x.std(), abs=1e-6)
    assert ch["quantiles"]["p00"] == 0.0 and ch["quantiles"]["p100"] == 1.0
    assert sum(ch["histogram"]["fractions"]) == pytest.approx(1.0, abs=1e-5)
    out = prof["outputs"]
    assert set(out["predicted_class"]) == {str(i) for i in range(10)}
    assert sum(out["predicted_class"].values()) == pytest.approx(1.0, abs=1e-5)
    assert sum(out["confidence"]["histogram"]["fractions"]) == pytest.approx(1.0, abs=1e-5)
    assert 0.1 < out["confidence"]["mean"] <= 1.0
    final = run.summary["stages"][-1]["metrics"]["accuracy"]  # PyTorch on the same split
    assert out["accuracy"] == pytest.approx(final, abs=1 / 359 + 1e-9) and out["accuracy"] > 0.8


def test_write_bundle_from_run_dir_reuses_then_rebuilds(run, tmp_path) -> None:
    before = run.summary["bundle"]["manifest_sha256"]
    assert write_bundle(run.out)["manifest_sha256"] == before  # unchanged: kept as is
    moved = tmp_path / "run"
    shutil.copytree(run.out, moved, ignore=shutil.ignore_patterns("bundle"))
    entry = write_bundle(moved)
    with load_bundle(moved / "bundle") as b:
        assert b.format == "onnx"
    old, new = _manifest(run.bundle), _manifest(moved / "bundle")
    assert new["checksums"] == old["checksums"] and new["formats"] == old["formats"]
    assert entry["files"] == run.summary["bundle"]["files"]


def test_bundle_parity_gate_stops_then_warns(run, tmp_path) -> None:
    moved = tmp_path / "run"
    shutil.copytree(run.out, moved, ignore=shutil.ignore_patterns("bundle"))
    meta = next(moved.glob("*-export/stage.json"))
    info = json.loads(meta.read_text())
    info["exports"][0]["parity"]["tolerance"] = {"atol": 0.0, "min_cosine": 1.0 + 1e-9}  # onnx: impossible
    write_json(meta, info)
    integrity.record(meta.parent)  # the edit stands for a stage that wrote this tolerance
    with pytest.raises(ParityError, match=r"^bundle parity: onnx fed raw eval inputs .* --no-parity-gate") as e:
        write_bundle(moved, gate=True)
    assert "\n" not in str(e.value) and not (moved / "bundle").exists()  # nothing half-written
    entry = write_bundle(moved, gate=False)
    m = _manifest(moved / "bundle")
    assert not m["formats"]["onnx"]["bundle_parity"]["passed"] and m["formats"]["pt2"]["bundle_parity"]["passed"]
    assert entry["default_format"] == "pt2"  # the first file that passed both checks
    with load_bundle(moved / "bundle") as b:
        assert b.format == "pt2"


def test_a_file_the_bundle_breaks_fails_the_gate(run, tmp_path, monkeypatch) -> None:
    """A file that loaded in the export step but not from the bundle (the TFLite metadata
    writer once cut off a file's weights) is a failure, not "not loadable here"."""
    import edgesmith.bundle.tflite_metadata as tm

    moved = tmp_path / "run"
    shutil.copytree(run.out, moved, ignore=shutil.ignore_patterns("bundle"))

    def truncating(path, meta, name=tm.NAME):
        data = Path(path).read_bytes()
        Path(path).write_bytes(data[: len(data) // 2])

    monkeypatch.setattr(tm, "write_tflite_metadata", truncating)
    with pytest.raises(ParityError, match=r"^bundle parity: tflite .* the bundle's file no longer loads") as e:
        write_bundle(moved, gate=True)
    assert "\n" not in str(e.value) and not (moved / "bundle").exists()
    write_bundle(moved, gate=False)
    m = _manifest(moved / "bundle")
    assert m["formats"]["tflite"]["bundle_parity"]["reason"].startswith("the bundle's file no longer loads")


# -------------------------------------------------------------- runtimes agree
@pytest.mark.parametrize("fmt", FORMATS)
def test_every_runtime_gives_the_same_predictions(run, fmt: str) -> None:
    runtime = get_exporter(fmt).runtime
    images = np.asarray(run.raw.x)  # real held-out digits, floats in [0, 1], NCHW
    with torch.inference_mode():
        ref = run.model(run.data.inputs[0]).numpy()
    with load_bundle(run.bundle, runtime=runtime) as b:
        assert b.format == fmt and b.runtime.name == runtime and b.formats == FORMATS
        out = b.predict(images)
        as_uint8 = (images * 255).round().astype(np.uint8)
        np.testing.assert_allclose(b.predict(as_uint8), b.predict(as_uint8.astype(np.float32) / 255), atol=1e-6)
        # other batch sizes may take other kernels: equal within float noise
        np.testing.assert_allclose(b.predict(images[:3, 0]), out[:3], atol=1e-5)  # (N, H, W) greyscale
        np.testing.assert_allclose(b.predict(images[0].transpose(1, 2, 0)), out[:1], atol=1e-5)  # HWC
    diff = float(np.abs(out - ref).max())
    agreement = float((out.argmax(1) == ref.argmax(1)).mean())
    print(f"\n{fmt:17s} on {runtime}: max |logit diff| vs PyTorch {diff:.2e}, top-1 agreement {agreement:.4f} "
          f"over {len(out)} held-out digits")
    precision = run.precision.get(fmt, "fp32")
    assert out.shape == (359, 10)
    if precision == "fp32":
        assert diff <= 1e-4 and agreement == 1.0
    else:  # int8 (export.precision): within its tolerance, a few near-ties may flip
        assert diff <= get_exporter(fmt).tolerances[precision].atol and agreement >= 0.97


def test_inputs_that_do_not_fit_are_one_line(run) -> None:
    with load_bundle(run.bundle) as b:
        with pytest.raises(BundleError, match=r"^images of shape \[2, 3, 8, 8\] do not fit this bundle's 1x8x8"):
            b.predict(np.zeros((2, 3, 8, 8), np.float32))
        with pytest.raises(BundleError, match=r"^float images must be in \[0, 1\], these span \[0, 255\]"):
            b.predict(np.linspace(0, 255, 64, dtype=np.float32).reshape(8, 8))
        with pytest.raises(BundleError, match="integer images must be uint8"):
            b.predict(np.zeros((8, 8), np.int64))


# ------------------------------------------------------------------ refusals
def _refused(path: Path, *needles: str) -> str:
    with pytest.raises(BundleError) as e:
        load_bundle(path)
    msg = str(e.value)
    assert "\n" not in msg and all(n in msg for n in needles), msg
    return msg


def test_tampered_file_is_refused(copy: Path) -> None:
    f = copy / "onnx" / "model.onnx"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit, same size
    f.write_bytes(bytes(data))
    _refused(copy, str(f), "sha256 differs", "tampered")


def test_missing_file_is_refused(copy: Path) -> None:
    (copy / "tflite" / "model.tflite").unlink()
    _refused(copy, str(copy / "tflite" / "model.tflite"), "missing from the bundle")


@pytest.mark.parametrize("version", [999, 0, "1", None])
def test_unknown_schema_version_is_refused(copy: Path, version) -> None:
    m = _manifest(copy)
    m["schema_version"] = version
    write_json(copy / MANIFEST, m)
    msg = _refused(copy, str(copy / MANIFEST), f"schema_version {version!r}")
    assert ("newer than this edgesmith reads (1); upgrade edgesmith" in msg) == (version == 999)


@pytest.mark.parametrize("bad", ["../x.onnx", "/etc/passwd", "onnx/../../x.onnx"])
def test_path_escaping_the_bundle_is_refused(copy: Path, bad: str) -> None:
    m = _manifest(copy)
    m["formats"]["onnx"]["path"] = bad
    m["formats"]["onnx"]["files"] = [bad]
    m["checksums"].append({"path": bad, "size": 1, "sha256": "0" * 64})
    write_json(copy / MANIFEST, m)
    _refused(copy, repr(bad), "leaves the bundle")


def test_symlink_out_of_the_bundle_is_refused(copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.onnx"
    shutil.copyfile(copy / "onnx" / "model.onnx", outside)  # same bytes, same sha256
    (copy / "onnx" / "model.onnx").unlink()
    (copy / "onnx" / "model.onnx").symlink_to(outside)
    _refused(copy, str(copy / "onnx" / "model.onnx"), "symlink out of the bundle")


# -------------------------------------------------------- planted export bugs
def test_wrong_normalisation_in_the_bundle_fails_bundle_parity(run, copy: Path) -> None:
    m = _manifest(copy)
    m["preprocessing"]["mean"], m["preprocessing"]["std"] = [0.485], [0.229]  # ImageNet's, not digits'
    write_json(copy / MANIFEST, m)
    with load_bundle(copy) as b:  # the manifest is not hashed: the check has to catch this
        r = check_bundle_parity(b, run.model, run.task, run.raw)
    print(f"\nImageNet mean/std in the bundle: {r}")
    assert not r["passed"] and r["reason"].startswith("max_abs_diff") and r["max_abs_diff"] > 1.0
    assert r["agreement"] < 0.9
    with load_bundle(run.bundle) as b:
        assert check_bundle_parity(b, run.model, run.task, run.raw)["passed"]


def test_swapped_layout_in_the_bundle_fails_bundle_parity(run, copy: Path) -> None:
    m = _manifest(copy)
    m["preprocessing"]["layout"] = "NHWC"  # the file takes NCHW
    write_json(copy / MANIFEST, m)
    with load_bundle(copy) as b:
        r = check_bundle_parity(b, run.model, run.task, run.raw)
    print(f"\nNHWC layout in the bundle: {r['reason']}")
    assert not r["passed"] and r["max_abs_diff"] is None
    assert r["reason"].startswith("the onnx file rejected the bundle's preprocessed inputs"), r["reason"]
    assert "\n" not in r["reason"]


class RawImages(nn.Module):
    """A classifier that takes [0, 1] images and normalises inside the graph."""

    def __init__(self, model: nn.Module, mean: float, std: float, nhwc: bool = False):
        super().__init__()
        self.model, self.mean, self.std, self.nhwc = model, mean, std, nhwc

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        x = pixel_values.permute(0, 3, 1, 2) if self.nhwc else pixel_values
        return self.model((x - self.mean) / self.std)


def _raw_case(run) -> tuple[ClassificationTask, object]:
    task = ClassificationTask(mean=[0.0], std=[1.0])  # identity: the graph normalises
    return task, task.tensors(run.raw)


def test_wrong_normalisation_baked_into_the_graph_fails_parity(run, tmp_path: Path) -> None:
    task, data = _raw_case(run)
    mean, std = run.task.mean[0], run.task.std[0]
    right = RawImages(run.model, mean, std).eval()
    example = (data.inputs[0][:2].clone(),)
    good = get_exporter("onnx")().export(right, example, task, tmp_path / "good", ExportConfig())
    bad = get_exporter("onnx")().export(RawImages(run.model, 0.485, 0.229).eval(), example, task,
                                        tmp_path / "bad", ExportConfig())
    assert check_parity(good, right, task, data)["passed"]
    r = check_parity(bad, right, task, data)
    print(f"\nImageNet mean/std in the graph: {r}")
    assert not r["passed"] and r["reason"].startswith("max_abs_diff") and r["agreement"] < 0.9


def test_swapped_layout_in_the_graph_fails_parity(run, tmp_path: Path) -> None:
    task, data = _raw_case(run)
    nhwc = RawImages(run.model, run.task.mean[0], run.task.std[0], nhwc=True).eval()
    example = (data.inputs[0][:2].permute(0, 2, 3, 1).contiguous(),)  # the file takes NHWC
    art = get_exporter("onnx")().export(nhwc, example, task, tmp_path, ExportConfig())
    nchw = RawImages(run.model, run.task.mean[0], run.task.std[0]).eval()
    r = check_parity(art, nchw, task, data)  # the gate feeds NCHW, as PyTorch takes
    print(f"\nNHWC graph: {r['reason']}")
    assert not r["passed"] and r["max_abs_diff"] is None and "\n" not in r["reason"]
    assert r["reason"].startswith("the onnxruntime runtime rejected the inputs PyTorch takes"), r["reason"]


def test_corrupted_initializer_fails_parity(run, copy: Path) -> None:
    import onnx
    from onnx import numpy_helper

    path = copy / "onnx" / "model.onnx"
    model = onnx.load(str(path))
    init = next(t for t in model.graph.initializer if len(t.dims) == 4)  # the first conv's weight
    w = numpy_helper.to_array(init).copy()
    w.flat[w.size // 2] += 2.0  # one value
    init.CopyFrom(numpy_helper.from_array(w, init.name))
    onnx.save(model, str(path))
    entry = _manifest(copy)["formats"]["onnx"]
    art = ExportArtifact("onnx", "fp32", path, "onnxruntime", Tolerance(**entry["parity"]["tolerance"]), [path])
    r = check_parity(art, run.model, run.task, run.data)
    print(f"\ncorrupted {init.name}: {r}")
    assert not r["passed"] and r["reason"].startswith("max_abs_diff") and r["max_abs_diff"] > 1e-3, r
    _refused(copy, str(path), "sha256 differs")  # as shipped: the checksum catches it
    _rehash(copy, _manifest(copy))  # a bundle built from the corrupt file: parity must
    with load_bundle(copy) as b:
        assert not check_bundle_parity(b, run.model, run.task, run.raw)["passed"]
    assert check_parity(dataclasses.replace(art, path=run.bundle / "onnx" / "model.onnx"),
                        run.model, run.task, run.data)["passed"]


# ----------------------------------------------------------------------- CLI
def test_predict_cli_on_digit_images(run, tmp_path: Path) -> None:
    from PIL import Image

    images = (np.asarray(run.raw.x)[:, 0] * 255).round().astype(np.uint8)
    labels = np.asarray(run.raw.y)
    with load_bundle(run.bundle) as b:
        pred = b.predict(images).argmax(1)
    right = [i for i in range(len(images)) if pred[i] == labels[i]][:4]
    assert len(right) == 4
    for i in right:
        png = tmp_path / f"digit{i}.png"
        Image.fromarray(images[i]).save(png)
        res = CliRunner().invoke(main, ["predict", str(run.bundle), str(png), "--json", "--top-k", "2"])
        assert res.exit_code == 0, res.output
        top = json.loads(res.output)["predictions"][0]["top_k"]
        assert top[0]["class"] == str(labels[i]) and top[0]["probability"] >= top[1]["probability"]
    np.save(tmp_path / "batch.npy", images[:5])
    args = ["predict", str(run.bundle), str(tmp_path / "batch.npy"), "--runtime", "litert", "--top-k", "1"]
    res = CliRunner().invoke(main, [*args, "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["format"] == "tflite on litert"
    assert [p["top_k"][0]["class"] for p in out["predictions"]] == [str(k) for k in pred[:5]]
    table = CliRunner().invoke(main, args)
    assert table.exit_code == 0 and "probability" in table.output and "tflite on litert" in table.output


def test_predict_cli_refuses_a_tampered_bundle(copy: Path, tmp_path: Path) -> None:
    f = copy / "pt2" / "model.pt2"  # not the default format: every file is checked all the same
    data = bytearray(f.read_bytes())
    data[100] ^= 0xFF
    f.write_bytes(bytes(data))
    np.save(tmp_path / "x.npy", np.zeros((8, 8), np.uint8))
    res = CliRunner().invoke(main, ["predict", str(copy), str(tmp_path / "x.npy")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert res.stderr.strip().startswith(f"error: {f}: size or sha256 differs")


def test_load_bundle_import_is_lean() -> None:
    code = ("from edgesmith.bundle import load_bundle; import sys; "
            "print([m for m in ('torch', 'onnxruntime', 'onnx', 'transformers') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_predict_cli_unreadable_input_is_a_user_error(copy: Path, tmp_path: Path) -> None:
    bad = tmp_path / "x.npy"
    bad.write_bytes(b"not numpy")
    for arg, message in ((tmp_path / "missing.png", "no such file"), (bad, "cannot read as a numpy array")):
        res = CliRunner().invoke(main, ["predict", str(copy), str(arg)])
        assert res.exit_code == 2 and "Traceback" not in res.output, res.output
        assert res.stderr.strip().startswith(f"error: {arg}: {message}") and "\n" not in res.stderr.strip()
