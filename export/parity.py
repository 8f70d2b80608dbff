"""The parity gate: run an exported file in its runtime on real held-out inputs
and compare with the PyTorch model it came from."""

from __future__ import annotations

import numpy as np
import torch

from edgesmith.errors import EdgesmithError, ParityError
from edgesmith.export.base import ExportArtifact, Tolerance
from edgesmith.numeric import mean_cosine


def check_parity(artifact: ExportArtifact, model, task, data, samples: int = 64, batch_size: int = 16) -> dict:
    """Max abs diff, mean cosine and top-1 agreement of ``artifact`` vs ``model``
    on the first ``samples`` items of ``data`` (a TensorSet)."""
    from edgesmith.runtimes import load

    subset = data.take(slice(0, min(samples, len(data))))
    model = model.eval().cpu()
    ref_chunks, out_chunks = [], []
    with load(artifact.path, artifact.runtime, threads=1, device=artifact.info.get("device", "cpu")) as rt:
        for batch in subset.batches(batch_size):
            inputs = fit_static(task.prepare(batch.inputs), task, artifact.info.get("static_shapes"))
            with torch.inference_mode():
                ref_chunks.append(model(*inputs).float().numpy())
            feed = {n: t.numpy() for n, t in zip(task.input_names, inputs, strict=True)}
            try:
                out_chunks.append(np.asarray(rt.run(feed)[0], dtype=np.float32))
            except EdgesmithError as e:  # e.g. an NHWC file fed NCHW: a failed check, not a crash
                return failed(artifact, f"the {artifact.runtime} runtime rejected the inputs PyTorch takes: {e}")
    ref, out = np.concatenate(ref_chunks), np.concatenate(out_chunks)
    result = compare(ref, out, artifact)
    if not result["passed"] and artifact.runtime == "onnxruntime" and artifact.path.suffix == ".onnx":
        locate(result, artifact, model, task, fit_static(task.prepare(subset.inputs), task,
                                                           artifact.info.get("static_shapes")))
    return result


def locate(result: dict, artifact: ExportArtifact, model, task, inputs: tuple) -> None:
    """Add the first diverging layer of a failed ONNX check to ``result`` and its reason."""
    from edgesmith.export.divergence import first_divergence

    try:
        hit = first_divergence(artifact.path, model, inputs, task.input_names, artifact.tolerance)
    except Exception as e:  # noqa: BLE001 - locating is a diagnosis: its failure must not hide the verdict
        result["first_divergence"] = {"error": f"{type(e).__name__}: {e}"}
        return
    result["first_divergence"] = hit
    if hit is not None:
        result["reason"] += (f"; first diverging layer: {hit['layer']} ({hit['module']}, ONNX {hit['op_type']}, "
                             f"max |diff| {hit['max_abs_diff']:.3g}, cosine {hit['cosine']:.4f})")


def check_bundle_parity(bundle, model, task, raw, samples: int = 64, tolerance: Tolerance | None = None) -> dict:
    """Raw held-out inputs through a bundle (its manifest's preprocessing and its
    file) vs the PyTorch model fed by the task's training-time preprocessing.

    :func:`check_parity` feeds both sides the same prepared tensors, so it cannot
    see a bundle that normalises with the wrong mean/std, feeds the wrong layout or
    tokenizes differently; this check does. ``raw`` is a RawData split (images in
    [0, 1] or texts); ``tolerance`` defaults to the file's export tolerance.
    """
    sub = raw.subset(range(min(samples, len(raw))))
    ref = task.predict(model.eval().cpu(), task.tensors(sub)).numpy()
    entry = bundle.manifest["formats"][bundle.format]
    tol = tolerance or Tolerance(**entry["parity"]["tolerance"])
    try:
        out = np.asarray(bundle.predict(sub.x), dtype=np.float32)
    except EdgesmithError as e:
        return failed(tol, f"the {bundle.format} file rejected the bundle's preprocessed inputs: {e}")
    return compare(ref, out, tol)


def failed(artifact: ExportArtifact | Tolerance, reason: str) -> dict:
    """A failed parity result without numbers (the outputs could not be compared)."""
    tol = artifact if isinstance(artifact, Tolerance) else artifact.tolerance
    return {"max_abs_diff": None, "cosine": None, "agreement": None, "top5_agreement": None,
            "tolerance": tol.to_dict(), "passed": False, "reason": reason}


def fit_static(inputs: tuple, task, static: dict | None) -> tuple:
    """Pad token inputs to a static-shape file's sequence length (pad id 0,
    mask 0: the masked positions change nothing), so PyTorch and the runtime see
    exactly the same tensors."""
    if not static:
        return inputs
    out = []
    for name, t in zip(task.input_names, inputs, strict=True):
        shape = static.get(name)
        if shape is not None and t.dim() == 2 and len(shape) == 2 and t.shape[1] < shape[1]:
            t = torch.nn.functional.pad(t, (0, shape[1] - t.shape[1]), value=0)
        out.append(t)
    return tuple(out)


def compare(ref: np.ndarray, out: np.ndarray, artifact: ExportArtifact | Tolerance) -> dict:
    """Max abs diff, mean cosine, top-1 agreement and top-5 agreement (the reference's
    top-1 among the output's five highest) of ``out`` vs the reference ``ref``, judged
    by the artifact's tolerance (or a :class:`Tolerance`)."""
    if ref.shape != out.shape:
        return failed(artifact, f"output shape {list(out.shape)} != PyTorch {list(ref.shape)}")
    diff = float(np.abs(ref - out).max()) if ref.size else 0.0
    r, o = ref.reshape(len(ref), -1).astype(np.float64), out.reshape(len(out), -1).astype(np.float64)
    cos = mean_cosine(r, o)
    agreement, top5 = agreements(r, o)
    tol = artifact if isinstance(artifact, Tolerance) else artifact.tolerance
    finite = bool(np.isfinite(out).all())
    problems = [] if finite else ["non-finite outputs"]
    if finite and diff > tol.atol:
        problems.append(f"max_abs_diff {diff:.3g} > atol {tol.atol:g}")
    if finite and cos < tol.min_cosine:
        problems.append(f"cosine {cos:.6f} < {tol.min_cosine}")
    if finite and agreement is not None and tol.min_agreement is not None and agreement < tol.min_agreement:
        problems.append(f"top-1 agreement {agreement:.4f} < {tol.min_agreement} (export.parity.min_agreement)")
    if finite and top5 is not None and tol.min_top5 is not None and top5 < tol.min_top5:
        problems.append(f"top-5 agreement {top5:.4f} < {tol.min_top5} (export.parity.min_top5)")
    result = {"max_abs_diff": diff, "cosine": cos, "agreement": agreement, "top5_agreement": top5,
              "tolerance": tol.to_dict(), "passed": not problems, "samples": int(len(ref))}
    if problems:
        result["reason"] = problems[0]
    return result


def agreements(ref: np.ndarray, out: np.ndarray) -> tuple[float | None, float | None]:
    """Top-1 agreement of ``out`` with ``ref`` (rows of class scores) and the fraction of
    rows whose reference top-1 is among ``out``'s five highest; None where the rows have
    too few classes (1, and up to 5 for top-5)."""
    if ref.ndim != 2 or ref.shape[1] < 2:
        return None, None
    top1 = ref.argmax(1)
    agreement = float(np.mean(top1 == out.argmax(1)))
    if ref.shape[1] <= 5:
        return agreement, None
    five = np.argpartition(-out, 5, axis=1)[:, :5]
    return agreement, float(np.mean((five == top1[:, None]).any(1)))


def gate(result: dict, artifact: ExportArtifact, enforce: bool) -> None:
    """Raise ParityError (or just return, when not enforced) on a failed check."""
    if result["passed"] or not enforce:
        return
    raise ParityError(
        f"parity gate: {artifact.format} {artifact.precision} ({artifact.path}) disagrees with PyTorch: "
        f"{result.get('reason')}; rerun with --no-parity-gate to keep it anyway"
    )
