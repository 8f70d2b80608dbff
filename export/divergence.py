"""Where an ONNX file first disagrees with its PyTorch model.

When an ONNX export fails parity, the final outputs say *that* it differs, not
*where*. Every node the dynamo exporter writes carries the module path it came
from (``pkg.torch.onnx.name_scopes``, e.g. ``['', 'features', 'features.3', 'conv2d']``),
so each module's output is the output of the last node in its scope. Those
values are added as graph outputs, run in onnxruntime, and compared in graph
order with the same modules' outputs in PyTorch (forward hooks); the first
module beyond the export's tolerance is the first diverging layer.

    from edgesmith.export.divergence import first_divergence

    hit = first_divergence("model.onnx", model, (images,), ["image"], tolerance)
    # {"layer": "features.3", "module": "Conv2d", "op_type": "Conv", "max_abs_diff": 13.0, ...}

Files without the scope metadata (not made by torch's dynamo exporter) and
quantized files whose nodes lost it give None: nothing to locate.
"""

from __future__ import annotations

import ast
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from edgesmith.export.base import Tolerance

SCOPES_KEY = "pkg.torch.onnx.name_scopes"


def module_outputs(proto) -> dict[str, tuple[str, str]]:
    """``{module path: (value name, op type)}`` of the last node in each module's
    scope, in graph order of those last nodes."""
    last: dict[str, tuple[int, int, str, str]] = {}
    for i, node in enumerate(proto.graph.node):
        raw = next((p.value for p in node.metadata_props if p.key == SCOPES_KEY), None)
        if not raw or not node.output:
            continue
        try:
            scopes = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            continue
        # every enclosing module ends where its last node is: features.3 and features both;
        # the scopes are qualified names (['', 'features', 'features.3', op]) in current torch
        path = ""
        for depth, name in enumerate(scopes[1:-1], start=1):
            path = name if not path or name.startswith(path + ".") else f"{path}.{name}"
            last[path] = (i, -depth, node.output[0], node.op_type)
    # a module ending on the same node as its parent is compared first
    return {path: (name, op) for path, (_, _, name, op) in sorted(last.items(), key=lambda kv: kv[1][:2])}


def first_divergence(path: str | Path, model: torch.nn.Module, inputs: Sequence[torch.Tensor],
                     input_names: Sequence[str], tolerance: Tolerance) -> dict | None:
    """The first module whose ONNX output is beyond ``tolerance`` of its PyTorch
    output on ``inputs``, with the numbers, or None when none is (or the file has
    no module scopes). ``checked`` counts the modules compared."""
    import onnx
    import onnxruntime as ort

    proto = onnx.load(str(path))
    scopes = module_outputs(proto)
    modules = dict(model.named_modules())
    scopes = {p: v for p, v in scopes.items() if p in modules}
    if not scopes:
        return None
    typed = {v.name: v for v in [*proto.graph.value_info, *proto.graph.output]}
    have = {o.name for o in proto.graph.output}
    for name, _ in scopes.values():
        if name not in have:
            proto.graph.output.append(typed.get(name) or onnx.ValueInfoProto(name=name))
            have.add(name)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL  # keep every value
    opts.intra_op_num_threads, opts.log_severity_level = 1, 3
    session = ort.InferenceSession(proto.SerializeToString(), opts, providers=["CPUExecutionProvider"])
    wanted = [name for name, _ in scopes.values()]
    got = dict(zip(wanted, session.run(wanted, {n: t.numpy() for n, t in zip(input_names, inputs, strict=True)}),
                   strict=True))

    captured: dict[str, np.ndarray] = {}

    def hook(path: str):
        def fn(_module, _args, out):
            while isinstance(out, (tuple, list)) and out:
                out = out[0]
            if isinstance(out, torch.Tensor):
                captured[path] = out.detach().float().cpu().numpy().copy()  # an inplace op may follow
        return fn

    handles = [modules[p].register_forward_hook(hook(p)) for p in scopes]
    try:
        with torch.inference_mode():
            model.eval().cpu()(*inputs)
    finally:
        for h in handles:
            h.remove()
    checked = 0
    for p, (name, op) in scopes.items():
        ref, out = captured.get(p), got.get(name)
        if ref is None or out is None or ref.shape != np.shape(out):
            continue
        checked += 1
        out = np.asarray(out, dtype=np.float32)
        diff = float(np.abs(ref - out).max()) if ref.size else 0.0
        r, o = ref.reshape(-1).astype(np.float64), out.reshape(-1).astype(np.float64)
        cos = float(r @ o / (np.linalg.norm(r) * np.linalg.norm(o) + 1e-12))
        if not np.isfinite(out).all() or diff > tolerance.atol or cos < tolerance.min_cosine:
            return {"layer": p, "module": type(modules[p]).__name__, "op_type": op, "value": name,
                    "max_abs_diff": diff, "cosine": cos, "checked": checked}
    return None
