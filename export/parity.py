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
    return {"max_abs_diff": None, "cosine": None, "agreement": None, "tolerance": tol.to_dict(),
            "passed": False, "reason": reason}


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
    """Max abs diff, mean cosine and top-1 agreement of ``out`` vs the reference
    ``ref``, judged by the artifact's tolerance (or a :class:`Tolerance`)."""
    if ref.shape != out.shape:
        return failed(artifact, f"output shape {list(out.shape)} != PyTorch {list(ref.shape)}")
    diff = float(np.abs(ref - out).max()) if ref.size else 0.0
    r, o = ref.reshape(len(ref), -1).astype(np.float64), out.reshape(len(out), -1).astype(np.float64)
    cos = mean_cosine(r, o)
    agreement = float(np.mean(r.argmax(1) == o.argmax(1))) if r.shape[1] > 1 else None
    tol = artifact if isinstance(artifact, Tolerance) else artifact.tolerance
    finite = bool(np.isfinite(out).all())
    passed = finite and diff <= tol.atol and cos >= tol.min_cosine
    result = {"max_abs_diff": diff, "cosine": cos, "agreement": agreement,
              "tolerance": tol.to_dict(), "passed": passed, "samples": int(len(ref))}
    if not passed:
        result["reason"] = "non-finite outputs" if not finite else (
            f"max_abs_diff {diff:.3g} > atol {tol.atol:g}" if diff > tol.atol
            else f"cosine {cos:.6f} < {tol.min_cosine}")
    return result


def gate(result: dict, artifact: ExportArtifact, enforce: bool) -> None:
    """Raise ParityError (or just return, when not enforced) on a failed check."""
    if result["passed"] or not enforce:
        return
    raise ParityError(
        f"parity gate: {artifact.format} {artifact.precision} ({artifact.path}) disagrees with PyTorch: "
        f"{result.get('reason')}; rerun with --no-parity-gate to keep it anyway"
    )
