"""When QAT pays: a MobileNet-style (depthwise-separable) CNN on sklearn digits,
quantized to int8 with per-tensor weight scales.

Trained as is, this small net quantizes well even per tensor (its depthwise
filters have similar ranges), so PTQ loses nothing and there is nothing for QAT
to recover. The known failure of per-tensor PTQ on MobileNets is depthwise
filters whose BatchNorm-folded ranges differ by orders of magnitude from channel
to channel (the reason cross-layer equalization exists; Nagel et al. 2019,
"Data-Free Quantization"). :func:`imbalance_channels` reproduces it without
changing the function: depthwise channel ``i`` is scaled by ``s_i``
(log-uniform in ``[1/spread, spread]``, fixed seed) through its BatchNorm's gamma
and beta, and the next pointwise conv's input channel ``i`` by ``1/s_i``; exact
because the depthwise activation is ReLU (positively homogeneous; ReLU6 is not).
The script asserts that both fp32 models give the same logits.

For each fp32 model ("as trained", "imbalanced") it builds, in onnxruntime:
- PTQ: onnxruntime static QDQ int8 (``x86`` preset: 7-bit weights, min/max
  ranges), per-tensor weights, calibrated on 256 train images; and, for
  reference, the same with per-channel weights;
- QAT: pt2e fake quantization (per-tensor weights too), fine-tuned with KD from
  that fp32 model (:func:`edgesmith.compress.quantize.qat.qat`), exported to ONNX QDQ;
and prints one table: accuracy, drop vs fp32, output SQNR vs fp32 on the test
split, file and weight sizes and p50 latency (batch 1, 1 thread), and the share of the per-tensor
PTQ drop that QAT recovers (target: at least half).

Run: ``python -m edgesmith.benchmarks.studies.qat`` (about six minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from torch import nn

from edgesmith.models.mobilenet import depthwise_range_ratio, imbalance_channels, mobilenet_digits
from edgesmith.models.tasks import ClassificationTask, TensorSet


def _data(seed: int) -> tuple[ClassificationTask, TensorSet, TensorSet]:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.images / 16.0, dtype=torch.float32)[:, None]
    y = torch.tensor(d.target)
    task = ClassificationTask(mean=[float(x.mean())], std=[float(x.std())], classes=[str(i) for i in range(10)])
    x = (x - x.mean()) / x.std()
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    n_train = int(0.75 * len(x))
    tr, te = perm[:n_train], perm[n_train:]
    return task, TensorSet((x[tr],), y[tr]), TensorSet((x[te],), y[te])


def _train_fp32(model: nn.Module, task, train: TensorSet, epochs: int, seed: int) -> None:
    from edgesmith.compress.train import fit

    fit(model, task, train, lambda m, b: nn.functional.cross_entropy(m(*b.inputs), b.labels),
        epochs=epochs, lr=3e-3, batch_size=64, weight_decay=0.0, schedule="onecycle", seed=seed, desc="fp32")


def _ort_logits(path: Path, test: TensorSet) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {"pixel_values": test.inputs[0].numpy()})[0]


def _weight_bytes(path: Path) -> int:
    """Bytes of the initializers: the QAT file is mostly the dynamo exporter's per-node
    metadata (stack traces), which the file size alone would charge to quantization."""
    import onnx

    return sum(len(t.raw_data) or t.ByteSize() for t in onnx.load(str(path)).graph.initializer)


def _variant(label: str, model: nn.Module, args, task, train: TensorSet, test: TensorSet, tmp: Path) -> dict:
    """fp32, PTQ per-tensor, PTQ per-channel and QAT per-tensor ONNX files of ``model``."""
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.compress.quantize.qat import QatConfig, qat
    from edgesmith.export import get_exporter
    from edgesmith.export.pt2 import dynamic_shapes_for

    exporter, export_cfg = get_exporter("onnx")(), SimpleNamespace(opset=18, dynamic_batch=True)
    example = (test.inputs[0][:2].clone(),)
    tmp = tmp / label
    rows: dict[str, dict] = {}
    fp32 = exporter.export(model, example, task, tmp / "fp32", export_cfg).path
    rows["fp32"] = {"path": fp32}
    calib = [{"pixel_values": train.inputs[0][i:i + 64].numpy()} for i in range(0, 256, 64)]
    for name, per_channel in (("PTQ per-tensor", False), ("PTQ per-channel", True)):
        t0 = time.perf_counter()
        path = tmp / f"{name.replace(' ', '-')}.onnx"
        quantize_onnx(fp32, path, preset("x86", per_channel=per_channel, calibration_samples=256,
                                         min_sqnr_db=-1e9), calib)
        rows[name] = {"path": path, "seconds": time.perf_counter() - t0}
    t0 = time.perf_counter()
    n_val = len(train) // 10
    cfg = QatConfig(epochs=args.qat_epochs, lr=args.qat_lr, per_channel=False, alpha=0.9, val_fraction=0.1)
    converted, fit = qat(model, model, cfg, task, train.take(slice(n_val, None)), train.take(slice(0, n_val)),
                         example, dynamic_shapes=dynamic_shapes_for(task, True), seed=args.seed)
    rows["QAT per-tensor"] = {"path": exporter.export(converted, example, task, tmp / "qat", export_cfg).path,
                              "seconds": time.perf_counter() - t0, "fit": fit}
    return rows


def _score(rows: dict[str, dict], test: TensorSet) -> float | None:
    """Accuracy, drop, SQNR vs fp32, size and p50 for each row; the recovered share."""
    from edgesmith.benchmarks.latency import measure
    from edgesmith.numeric import sqnr_db

    one = {"pixel_values": test.inputs[0][:1].numpy()}
    ref = _ort_logits(rows["fp32"]["path"], test)
    for row in rows.values():
        logits = _ort_logits(row["path"], test)
        row["accuracy"] = float((logits.argmax(1) == test.labels.numpy()).mean())
        row["sqnr_db"] = sqnr_db(ref, logits)
        row["size_bytes"] = row["path"].stat().st_size
        row["weight_bytes"] = _weight_bytes(row["path"])
        lat = measure(row["path"], "onnxruntime", one, threads=1, warmup=20, iterations=500, min_seconds=1.0)
        row["p50_ms"] = (lat.get("latency_ms") or {}).get("p50")
        del row["path"]
    base = rows["fp32"]["accuracy"]
    for row in rows.values():
        row["drop_points"] = round(100 * (base - row["accuracy"]), 2)
    ptq_drop, qat_drop = rows["PTQ per-tensor"]["drop_points"], rows["QAT per-tensor"]["drop_points"]
    return (ptq_drop - qat_drop) / ptq_drop if ptq_drop > 0 else None


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32-epochs", type=int, default=30)
    ap.add_argument("--qat-epochs", type=int, default=5)
    ap.add_argument("--qat-lr", type=float, default=5e-4)
    ap.add_argument("--spread", type=float, default=30.0, help="depthwise channel scales in [1/spread, spread]")
    args = ap.parse_args(argv)

    torch.manual_seed(args.seed)
    task, train, test = _data(args.seed)
    model = mobilenet_digits()
    t0 = time.perf_counter()
    _train_fp32(model, task, train, args.fp32_epochs, args.seed)
    model.eval()
    t_fp32 = time.perf_counter() - t0
    skewed = imbalance_channels(model, args.spread, args.seed).eval()
    with torch.no_grad():
        a, b = model(test.inputs[0]), skewed(test.inputs[0])
    diff = float((a - b).abs().max())
    assert diff < 1e-4 * max(1.0, float(a.abs().max())), f"imbalance_channels changed the logits by {diff}"
    assert torch.equal(a.argmax(1), b.argmax(1)), "imbalance_channels changed a prediction"
    variants = {"as trained": model, "imbalanced": skewed}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, m in variants.items():
            rows = _variant(label, m, args, task, train, test, Path(tmp))
            results[label] = {"rows": rows, "recovered": _score(rows, test),
                              "depthwise_range_ratio": depthwise_range_ratio(m)}

    print(f"\nMobileNet-style CNN ({sum(p.numel() for p in model.parameters()):,} params) on sklearn digits: "
          f"{len(train)} train / {len(test)} test images; fp32 training {t_fp32:.0f} s; "
          f"QAT {args.qat_epochs} epochs at lr {args.qat_lr:g}")
    print(f"imbalanced = as trained with depthwise channels scaled log-uniformly in [1/{args.spread:g}, "
          f"{args.spread:g}] (seed {args.seed}), compensated in the pointwise convs: "
          f"fp32 logits max |diff| {diff:.2e}, same predictions")
    print(f"{'fp32 model':<11} {'model':<16} {'accuracy':>9} {'drop (pts)':>11} {'SQNR (dB)':>10} "
          f"{'file (kB)':>10} {'weights (kB)':>13} {'ORT p50 (ms)':>13}")
    for label, res in results.items():
        for name, row in res["rows"].items():
            p50 = f"{row['p50_ms']:.4f}" if row["p50_ms"] else "n/a"
            sqnr = "inf" if math.isinf(row["sqnr_db"]) else f"{row['sqnr_db']:.1f}"
            print(f"{label:<11} {name:<16} {row['accuracy']:>9.4f} {row['drop_points']:>11.2f} {sqnr:>10} "
                  f"{row['size_bytes'] / 1e3:>10.1f} {row['weight_bytes'] / 1e3:>13.1f} {p50:>13}")
    for label, res in results.items():
        fit = res["rows"]["QAT per-tensor"].pop("fit")
        rec = res["recovered"]
        verdict = "n/a (PTQ per-tensor lost nothing)" if rec is None else (
            f"{100 * rec:.0f}% ({'meets' if rec >= 0.5 else 'misses'} the 50% target)")
        print(f"{label}: depthwise folded channel range ratio {res['depthwise_range_ratio']:,.0f}x; "
              f"QAT fit {fit.seconds:.0f} s ({fit.epochs_run} epochs, best {fit.best_epoch}); "
              f"QAT recovers {verdict} of the per-tensor PTQ drop")
    return results


if __name__ == "__main__":
    main()
