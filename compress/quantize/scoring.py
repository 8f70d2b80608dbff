"""Scoring an ONNX file inside a run: its outputs on the eval split (and the probe)
with the pipeline's own metrics, for the ``quantize`` and ``qat`` stages."""

from __future__ import annotations

import numpy as np


def feeds(task, data, ordered: bool = True) -> list[dict]:
    """Batches of 64 ``{input_name: array}``, length-ordered like ``task.predict`` when ``ordered``."""
    order = task.length_order(data) if ordered else None
    data = data if order is None else data.take(order)
    return [{k: t.numpy() for k, t in zip(task.input_names, task.prepare(b.inputs), strict=True)}
            for b in data.batches(64)]


def onnx_scorer(ctx, name: str, model, kind: str, fix: str):
    """``score(path, optimize=True) -> (metrics, outputs)``: an ONNX file's outputs on
    the eval split scored with the pipeline's own metrics (encoders: the probe's
    accuracy from its outputs on the probe texts); NaN/inf stops the stage, naming ``fix``."""
    import torch

    from edgesmith.errors import StageError

    task, threads = ctx.task, max(1, torch.get_num_threads())
    evals = (feeds(task, ctx.tensors["eval"]), task.length_order(ctx.tensors["eval"]))
    probe = (feeds(task, ctx.probe[1]), task.length_order(ctx.probe[1])) if ctx.probe is not None else None
    retrieval = [(feeds(task, t), task.length_order(t)) for t in ctx.retrieval] if ctx.retrieval is not None else None

    def score(path, optimize: bool = True) -> tuple[dict, list]:
        outs = onnx_outputs(path, *evals, threads, optimize)
        if not all(np.isfinite(o).all() for o in outs):
            raise StageError(f"{kind}: {path.name} outputs NaN/inf on the eval split; {fix}")
        m = task.metrics(torch.from_numpy(outs[0]), ctx.teacher_eval_outputs(), ctx.tensors["eval"].labels)
        if probe is not None:
            m["accuracy"] = ctx.score_outputs(onnx_outputs(path, *probe, threads, optimize)[0], name, model, "probe")
        if retrieval is not None:  # the held-out retrieval check, on the file itself
            q, d = (torch.from_numpy(onnx_outputs(path, *r, threads, optimize)[0]) for r in retrieval)
            m.update(ctx.retrieval_metrics(q, d))
        return m, outs

    return score


def onnx_outputs(path, feeds: list[dict], order, threads: int, optimize: bool = True) -> list[np.ndarray]:
    """Every output of ``path`` over ``feeds``, concatenated, back in data order;
    ``optimize=False`` evaluates Q/DQ in float (no fused int8 kernels)."""
    if optimize:
        from edgesmith.runtimes import load

        with load(path, "onnxruntime", threads=threads) as rt:
            chunks = [rt.run(f) for f in feeds]
    else:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        opts.intra_op_num_threads = threads
        sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        chunks = [sess.run(None, f) for f in feeds]
    outs = [np.concatenate([np.asarray(c[i], np.float32) for c in chunks]) for i in range(len(chunks[0]))]
    if order is not None:
        inverse = np.argsort(order.numpy())
        outs = [o[inverse] for o in outs]
    return outs
