"""int8 on a real mobile CNN: MobileNetV2 (ImageNet weights, torchvision's architecture)
on held-out natural photos, every int8 format against its fp32 model, and against
onnxruntime's own ``quantize_static`` defaults on the same calibration data.

Data: the ``photos`` source (:mod:`edgesmith.data.images`): random crops of real photos
shipped in scikit-image and scikit-learn; calibration crops come from 9 photos, the
test crops from 9 others (no scene on both sides). ImageNet mean/std normalisation is
applied outside the model, as a bundle's preprocessing does.

Judged as the parity gate judges a classifier (:func:`edgesmith.export.parity.compare`):
top-1 agreement with the fp32 model, top-5 agreement (the fp32 top-1 among the file's five
highest) and logit cosine, on every test crop and on the crops where fp32 itself is sure
(top-1 probability >= 0.5: on the rest two classes are close and any rounding flips them).
Variants:

- ONNX (onnxruntime): ``quantize_static`` defaults (QDQ, per-tensor weights, min/max),
  the same with ``per_channel=True``; our ``x86`` preset (7-bit weights) and with 8-bit
  weights; ``x86-vnni`` (8-bit weights, percentile 99.99 activation ranges) alone, after
  bias correction, after clip-aware ReLU6 cross-layer equalization and bias correction
  (:mod:`edgesmith.compress.quantize.transforms`);
- TFLite and ExecuTorch ``int8`` (pt2e, XNNPACK quantizer, as ``export.precision`` makes
  them), of the model as is and after bias correction;
- optionally (``--qat-epochs N``) QAT with KD from the fp32 model on the train-photo crops.

Run: ``python -m edgesmith.benchmarks.studies.mobilenet_int8 [--out results.json]``
(about 10 minutes on 2 cores). Needs the ``vision`` extra and the weights
(``python -m edgesmith.data.fetch``).
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from edgesmith.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD

MEAN = np.array(IMAGENET_MEAN, np.float32)[:, None, None]
STD = np.array(IMAGENET_STD, np.float32)[:, None, None]
SURE = 0.5  # fp32 top-1 probability above which a crop counts as unambiguous


def load_model() -> torch.nn.Module:
    from edgesmith.models.mobilenet import mobilenet_v2_imagenet

    return mobilenet_v2_imagenet().eval()


def judge(ref: np.ndarray, out: np.ndarray, sure: np.ndarray) -> dict[str, Any]:
    """Top-1 / top-5 agreement and logit cosine of ``out`` vs ``ref``, on every row and
    on the rows where ``sure``."""
    from edgesmith.export.parity import agreements
    from edgesmith.numeric import mean_cosine

    row: dict[str, Any] = {}
    for tag, idx in (("", slice(None)), ("sure_", sure)):
        r, o = ref[idx].astype(np.float64), out[idx].astype(np.float64)
        top1, top5 = agreements(r, o)
        row.update({f"{tag}top1": round(top1, 4), f"{tag}top5": round(top5, 4),
                    f"{tag}cosine": round(mean_cosine(r, o), 5)})
    row["flips"] = int((ref.argmax(1) != out.argmax(1)).sum())
    return row


def _batches(x: np.ndarray, size: int) -> list[np.ndarray]:
    return [x[i:i + size] for i in range(0, len(x), size)]


def _ort(path: Path, x: np.ndarray) -> np.ndarray:
    from edgesmith.benchmarks.studies.ptq import _run

    return _run(path, [{"pixel_values": b} for b in _batches(x, 40)])


def _runtime(path: Path, runtime: str, x: np.ndarray) -> np.ndarray:
    from edgesmith.runtimes import load

    with load(path, runtime, threads=1) as rt:
        return np.concatenate([np.asarray(rt.run({"pixel_values": x[i:i + 1]})[0], np.float32)
                               for i in range(len(x))])


def onnx_rows(model: torch.nn.Module, task: Any, calib: np.ndarray, test: np.ndarray, tmp: Path,
              transformed: dict[str, torch.nn.Module]) -> tuple[list[dict], np.ndarray, Path]:
    """fp32 ONNX, onnxruntime's defaults, and our preset's variants."""
    from edgesmith.benchmarks.studies.ptq import _export
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.compress.quantize.ort import onnxruntime_defaults

    example = (torch.from_numpy(calib[:2]),)
    fp32 = _export(model, example, task, tmp / "fp32")
    ref = _ort(fp32, test)
    sure = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy() >= SURE
    rows = [{"format": "onnx", "variant": "fp32", "file": fp32, **judge(ref, ref, sure)}]
    feeds = [{"pixel_values": b} for b in _batches(calib, 16)]
    for per_channel in (False, True):
        q = onnxruntime_defaults(fp32, tmp / f"ort-defaults-pc{int(per_channel)}.onnx", feeds, per_channel)
        rows.append({"format": "onnx", "variant": "onnxruntime quantize_static defaults"
                     + (" + per_channel" if per_channel else ""), "file": q, **judge(ref, _ort(q, test), sure)})
    plans = [("x86 preset (7-bit weights, min/max)", "x86", {}, None),
             ("x86, 8-bit weights", "x86", {"reduce_range": False}, None),
             ("x86-vnni preset (8-bit weights, percentile 99.99)", "x86-vnni", {}, None),
             ("x86-vnni, bias correction", "x86-vnni", {}, "BC"),
             ("x86-vnni, CLE (ReLU6-aware) + BC", "x86-vnni", {}, "CLE + BC")]
    for name, target, overrides, source in plans:
        src = fp32 if source is None else _export(transformed[source], example, task, tmp / source.replace(" ", ""))
        q = tmp / f"{len(rows)}.int8.onnx"
        cfg = preset(target, calibration_samples=len(calib), min_sqnr_db=None, **overrides)
        quantize_onnx(src, q, cfg, feeds)
        rows.append({"format": "onnx", "variant": name, "file": q, **judge(ref, _ort(q, test), sure)})
    return rows, ref, fp32


def qat_row(model: torch.nn.Module, task: Any, train: np.ndarray, test: np.ndarray, ref: np.ndarray, tmp: Path,
            epochs: int, lr: float) -> dict:
    """QAT (pt2e XNNPACK fake quantization, per-channel weights) with pure KD from the fp32
    model (``alpha`` 1: the photo labels are not ImageNet classes) on every train-photo crop,
    the best epoch by agreement on a tenth of them; exported to ONNX QDQ like the ``qat`` stage."""
    from edgesmith.benchmarks.studies.ptq import _EXPORT
    from edgesmith.compress.quantize.qat import QatConfig, qat
    from edgesmith.export import get_exporter
    from edgesmith.export.pt2 import dynamic_shapes_for
    from edgesmith.models.tasks import TensorSet

    x = torch.from_numpy(train)
    labels = torch.zeros(len(x), dtype=torch.long)
    n_val = len(x) // 10
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
    val, fit = perm[:n_val], perm[n_val:]
    cfg = QatConfig(epochs=epochs, lr=lr, batch_size=32, alpha=1.0, per_channel=True, val_fraction=0.1)
    t0 = time.perf_counter()
    converted, result = qat(model, model, cfg, task, TensorSet((x[fit],), labels[fit]), TensorSet((x[val],), labels[val]),
                            (x[:2].clone(),), dynamic_shapes=dynamic_shapes_for(task, True), seed=0)
    path = get_exporter("onnx")().export(converted, (x[:2].clone(),), task, tmp / "qat", _EXPORT).path
    sure = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy() >= SURE
    return {"format": "onnx", "variant": f"QAT (pt2e XNNPACK, KD from fp32, {epochs} epochs, lr {lr:g})",
            "file": path, "train_s": round(time.perf_counter() - t0, 1), **judge(ref, _ort(path, test), sure)}


def mobile_rows(model: torch.nn.Module, task: Any, calib: np.ndarray, test: np.ndarray, ref: np.ndarray,
                tmp: Path, transformed: dict[str, torch.nn.Module], formats: list[str]) -> list[dict]:
    """TFLite / ExecuTorch int8 (pt2e, 64 calibration crops as the export does) of the
    model as is and after bias correction, scored in their own runtimes."""
    from edgesmith.export import get_exporter

    sure = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy() >= SURE
    calibration = [(torch.from_numpy(b),) for b in _batches(calib[:64], 16)]
    example = (torch.from_numpy(calib[:1]),)
    rows = []
    for fmt in formats:
        for name, m in (("pt2e XNNPACK int8", model), ("pt2e XNNPACK int8, bias correction", transformed["BC"])):
            cfg = SimpleNamespace(opset=18, dynamic_batch=False, precision={fmt: "int8"}, seq_len=None)
            t0 = time.perf_counter()
            try:
                art = get_exporter(fmt)().export(copy.deepcopy(m), example, task, tmp / f"{fmt}-{len(rows)}", cfg,
                                                 calibration=calibration)
            except Exception as e:  # noqa: BLE001 - a study row records the failure
                rows.append({"format": fmt, "variant": name, "error": str(e).splitlines()[0][:200]})
                continue
            out = _runtime(art.path, art.runtime, test)
            rows.append({"format": fmt, "variant": name, "file": art.path, "export_s": round(time.perf_counter() - t0, 1),
                         **judge(ref, out, sure)})
    return rows


@torch.no_grad()
def diagnose(model: torch.nn.Module, calib: np.ndarray, test: np.ndarray) -> list[dict]:
    """Where the int8 error comes from, in PyTorch fake quantization of the BatchNorm-folded
    model: weights only (8-bit per-channel, 7-bit, + bias correction) and activations only
    (uint8 per-tensor min/max ranges at the output of every conv block and residual block)."""
    from torchvision.models.mobilenetv2 import InvertedResidual
    from torchvision.ops.misc import Conv2dNormActivation

    from edgesmith.compress.quantize.transforms import WeightQuant, correct_bias, equalize

    folded, _ = equalize(model, iterations=0)
    x_cal, x_test = torch.from_numpy(calib), torch.from_numpy(test)
    run = lambda m, x: torch.cat([m(x[i:i + 40]) for i in range(0, len(x), 40)]).numpy()  # noqa: E731
    ref = run(folded, x_test)
    sure = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy() >= SURE

    def weights_only(m: torch.nn.Module, scheme: WeightQuant) -> torch.nn.Module:
        m = copy.deepcopy(m)
        for layer in m.modules():
            if isinstance(layer, (torch.nn.Conv2d, torch.nn.Linear)):
                layer.weight.copy_(scheme.fake_quantize(layer.weight))
        return m

    w8, w7 = WeightQuant(True, True, False), WeightQuant(True, True, True)
    bc = correct_bias(folded, [(x_cal[i:i + 32],) for i in range(0, len(x_cal), 32)], w8)[0]
    rows = [{"what": "weights only, 8-bit per-channel", **judge(ref, run(weights_only(folded, w8), x_test), sure)},
            {"what": "weights only, 7-bit per-channel (the x86 preset's reduce_range)",
             **judge(ref, run(weights_only(folded, w7), x_test), sure)},
            {"what": "weights only, 8-bit + bias correction", **judge(ref, run(weights_only(bc, w8), x_test), sure)}]
    ranges: dict[int, list[torch.Tensor]] = {}
    calibrating = [True]

    def fake_quant(mod, _inputs, y):
        key = id(mod)
        if calibrating[0]:
            lo, hi = y.amin().clamp(max=0), y.amax().clamp(min=0)
            old = ranges.get(key)
            ranges[key] = [lo, hi] if old is None else [torch.minimum(old[0], lo), torch.maximum(old[1], hi)]
            return y
        lo, hi = ranges[key]
        scale = (hi - lo) / 255
        zero = torch.round(-lo / scale)
        return (torch.clamp(torch.round(y / scale) + zero, 0, 255) - zero) * scale

    act = copy.deepcopy(folded)
    points = [m for m in act.modules() if isinstance(m, (Conv2dNormActivation, InvertedResidual))]
    points += [[c for c in m.conv if isinstance(c, torch.nn.Conv2d)][-1] for m in act.modules()
               if isinstance(m, InvertedResidual)]  # each linear bottleneck's projection
    for m in points:
        m.register_forward_hook(fake_quant)
    run(act, x_cal)
    calibrating[0] = False
    rows.append({"what": f"activations only, uint8 per-tensor min/max at {len(points)} block outputs",
                 **judge(ref, run(act, x_test), sure)})
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    ap.add_argument("--calibration", type=int, default=128, help="calibration crops (of 360)")
    ap.add_argument("--formats", nargs="*", default=["tflite", "executorch"])
    ap.add_argument("--latency", action="store_true", help="time fp32 vs each int8 ONNX file run for run")
    ap.add_argument("--qat-epochs", type=int, default=0, help="add a QAT row (0: none)")
    ap.add_argument("--qat-lr", type=float, default=1e-5)
    ap.add_argument("--diagnose", action="store_true",
                    help="add weights-only / activations-only fake-quantization rows (where the error is)")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from edgesmith.benchmarks.fingerprint import fingerprint
    from edgesmith.compress.quantize.transforms import WeightQuant, correct_bias, equalize
    from edgesmith.conf.recipe import SourceConfig
    from edgesmith.data.sources import load_source
    from edgesmith.models.tasks import ClassificationTask

    t_start = time.perf_counter()
    parts = load_source(SourceConfig("photos"))
    rng = np.random.default_rng(0)
    calib = ((parts["train"].x[np.sort(rng.permutation(len(parts["train"]))[:args.calibration])] - MEAN) / STD)
    test = (parts["test"].x - MEAN) / STD
    model = load_model()
    task = ClassificationTask(mean=MEAN.ravel().tolist(), std=STD.ravel().tolist(),
                              classes=[str(i) for i in range(1000)])
    batches = [(torch.from_numpy(b),) for b in _batches(calib, 32)]
    eq, cle = equalize(model, example_inputs=batches[0], calibration=batches)
    weights = WeightQuant(per_channel=True, symmetric=True, reduce_range=False)
    transformed = {"BC": correct_bias(model, batches, weights)[0], "CLE + BC": correct_bias(eq, batches, weights)[0]}
    with tempfile.TemporaryDirectory(prefix="edgesmith-mnv2-") as d:
        tmp = Path(d)
        rows, ref, fp32 = onnx_rows(model, task, calib, test, tmp, transformed)
        rows += mobile_rows(model, task, calib, test, ref, tmp, transformed, args.formats)
        if args.qat_epochs:
            rows.append(qat_row(model, task, (parts["train"].x - MEAN) / STD, test, ref, tmp, args.qat_epochs,
                                args.qat_lr))
        if args.latency:
            from edgesmith.benchmarks.paired import compare_files

            one = {"pixel_values": test[:1]}
            for r in rows:
                if r.get("format") == "onnx" and r["variant"] != "fp32":
                    p = compare_files(r["file"], fp32, "onnxruntime", one, pairs=100, min_seconds=1.0)
                    r["p50_ratio_vs_fp32"] = p.get("ratio")
                    r["p50_ms"] = (p.get("a_ms") or {}).get("p50")
                    r["fp32_p50_ms"] = (p.get("b_ms") or {}).get("p50")
                    r["speed"] = p.get("verdict")
        for r in rows:
            f = r.pop("file", None)
            if f is not None:
                r["size_bytes"] = Path(f).stat().st_size
    sure = torch.softmax(torch.from_numpy(ref), 1).amax(1).numpy() >= SURE
    diagnosis = diagnose(model, calib, test) if args.diagnose else None
    result = {
        "what": "MobileNetV2 (torchvision, ImageNet weights) int8 vs fp32 on held-out natural photo crops",
        "host": {**fingerprint(), "threads": 1},
        "data": {"calibration_crops": len(calib), "test_crops": len(test), "test_sure_crops": int(sure.sum()),
                 "sure": f"fp32 top-1 probability >= {SURE}"},
        "cle": {"pairs": len(cle["pairs"]), "relu6_pairs": sum("ReLU6" in p["between"] for p in cle["pairs"]),
                "skipped": len(cle["skipped"])},
        "rows": rows, "where_the_error_is": diagnosis, "seconds": round(time.perf_counter() - t_start, 1),
    }
    print(f"{len(test)} test crops ({int(sure.sum())} where fp32 is sure), {len(calib)} calibration crops; "
          f"CLE: {result['cle']}")
    print(f"{'format':<11}{'variant':<56}{'top-1':>7}{'top-5':>7}{'cosine':>9}{'sure top-1':>11}")
    for r in rows:
        if "error" in r:
            print(f"{r['format']:<11}{r['variant']:<56} failed: {r['error']}")
            continue
        print(f"{r['format']:<11}{r['variant']:<56}{r['top1']:>7.2%}{r['top5']:>7.2%}{r['cosine']:>9.4f}"
              f"{r['sure_top1']:>11.2%}")
    for r in diagnosis or []:
        print(f"{'pytorch':<11}{r['what']:<56}{r['top1']:>7.2%}{r['top5']:>7.2%}{r['cosine']:>9.4f}"
              f"{r['sure_top1']:>11.2%}")
    if args.out:
        from edgesmith.atomic import write_json

        write_json(args.out, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
