"""Compression-aware drift: live activations leaving the ranges a static int8 model
was calibrated on.

A QDQ ONNX file states its calibration directly: each activation's
``QuantizeLinear`` has a scale ``s`` and zero point ``z``, so the int8 grid covers
``[(qmin - z) * s, (qmax - z) * s]`` and anything outside is clipped (saturated).
:func:`calibration_probes` picks up to :data:`MAX_PROBES` per-tensor activation
quantizers, evenly spread from the first (usually the model input) to the last
(here the quantized output, e.g. a classifier's logits). The profile records each probe's range and
the fraction of reference values outside it; live, :class:`SaturationProbe` runs
the sampled items through the same file with the probed tensors as extra outputs
and counts values outside the range. A rate above ``saturation_recalibrate`` (and
significantly above the reference's) raises ``recalibrate``.

Dynamically quantized files (``DynamicQuantizeLinear``) compute their ranges per
batch and cannot saturate: they get no probe.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

MAX_PROBES = 4
_RANGES = {2: (0, 255), 3: (-128, 127)}  # onnx TensorProto UINT8, INT8


def calibration_probes(onnx_path: str | Path) -> list[dict[str, Any]]:
    """Calibration ranges of up to :data:`MAX_PROBES` activation quantizers of a QDQ
    ONNX file (empty for a float or dynamically quantized file)."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(onnx_path), load_external_data=False)
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    consts = {n.output[0]: n.attribute[0].t for n in g.node if n.op_type == "Constant" and n.attribute}
    found = []
    for node in g.node:
        if node.op_type != "QuantizeLinear" or node.input[0] in inits or len(node.input) < 2:
            continue
        tensors = [inits.get(name) or consts.get(name) for name in node.input[1:3]]
        if tensors[0] is None or (len(tensors) > 1 and tensors[1] is None):
            continue
        scale = numpy_helper.to_array(tensors[0])
        zp_t = tensors[1] if len(tensors) > 1 else None
        zp = numpy_helper.to_array(zp_t) if zp_t is not None else np.zeros((), np.uint8)
        if scale.size != 1 or zp.size != 1:
            continue  # per-channel activation quantizers are rare; skipped
        qmin, qmax = _RANGES.get(zp_t.data_type if zp_t is not None else 2, (0, 255))
        s, z = float(scale.ravel()[0]), int(zp.ravel()[0])
        if any(p["tensor"] == node.input[0] for p in found):
            continue
        found.append({"tensor": node.input[0], "scale": s, "zero_point": z, "qmin": qmin, "qmax": qmax,
                      "low": (qmin - z) * s, "high": (qmax - z) * s})
    if len(found) <= MAX_PROBES:
        return found
    pick = np.unique(np.linspace(0, len(found) - 1, MAX_PROBES).round().astype(int))
    return [found[i] for i in pick]


class SaturationProbe:
    """Runs feeds through an ONNX file with the probed tensors as extra outputs and
    counts, per item, the values outside each probe's calibration range."""

    def __init__(self, onnx_path: str | Path, probes: list[dict], input_names: list[str]):
        import onnx
        import onnxruntime as ort

        self.probes = probes
        model = onnx.load(str(onnx_path))
        existing = {o.name for o in model.graph.output}
        self.from_feeds = {p["tensor"] for p in probes if p["tensor"] in input_names}
        for p in probes:
            if p["tensor"] not in existing and p["tensor"] not in self.from_feeds:
                model.graph.output.append(onnx.helper.make_empty_tensor_value_info(p["tensor"]))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads, opts.inter_op_num_threads = 1, 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])
        self.outputs = [p["tensor"] for p in probes if p["tensor"] not in self.from_feeds]

    def counts(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        """``(n_items, n_probes, 2)``: values outside the range, and values, per item and probe."""
        outs = dict(zip(self.outputs, self.session.run(self.outputs, feeds), strict=True)) if self.outputs else {}
        outs.update({k: feeds[k] for k in self.from_feeds})
        n = len(next(iter(feeds.values())))
        result = np.zeros((n, len(self.probes), 2))
        for j, p in enumerate(self.probes):
            v = np.asarray(outs[p["tensor"]], np.float32).reshape(n, -1)
            # half a step of slack: values that round onto the grid's end points are not clipped. A
            # range starting at exactly 0 is a ReLU's (onnxruntime folds the ReLU into the quantizer,
            # so the probed tensor is the pre-ReLU one): clipping below it is the ReLU, not saturation.
            half = 0.5 * p["scale"]
            above = v > p["high"] + half
            result[:, j, 0] = (above if p["low"] == 0 else above | (v < p["low"] - half)).sum(1)
            result[:, j, 1] = v.shape[1]
        return result


def saturation_profile(bundle: Any, raw: Any, limit: int = 1000) -> dict | None:
    """``reference_profile.calibration`` of a bundle whose loaded file is QDQ ONNX:
    the probes and the fraction of each outside its range on the reference inputs."""
    entry = bundle.manifest["formats"][bundle.format]
    path = Path(bundle.path) / entry["path"]
    if path.suffix != ".onnx":
        return None
    probes = calibration_probes(path)
    if not probes:
        return None
    names = [i["name"] for i in bundle.manifest["inputs"]]
    probe = SaturationProbe(path, probes, names)
    counts = np.zeros((len(probes), 2))
    for i in range(0, min(len(raw), limit), 64):
        counts += probe.counts(bundle.preprocess(raw[i : min(i + 64, limit)])).sum(0)
    for p, (out, total) in zip(probes, counts, strict=True):
        p["reference_rate"] = round(float(out / max(total, 1)), 8)
    return {"format": bundle.format, "file": entry["path"], "probes": probes}
