"""Advanced post-training quantization: float-model transforms that make the int8
model quantized from them more accurate. Each returns a new model and a report;
the model passed in is never modified.

- :func:`equalize`: cross-layer equalization (CLE; Nagel et al. 2019, "Data-Free
  Quantization") for CNNs. BatchNorms are folded into the Conv/Linear before them,
  then for each pair ``layer1 -> [ReLU, pooling, Flatten, Dropout, ...] -> layer2``
  output channel ``i`` of ``layer1`` is divided by ``s_i`` and the matching input
  channel(s) of ``layer2`` multiplied by it, ``s_i = sqrt(r1_i r2_i) / r2_i``
  (``r``: the channel's max ``|w|``), until the ranges settle. Exact because every op
  between is positively homogeneous per channel (``f(s x) = s f(x)``, ``s > 0``);
  pairs with anything else between (ReLU6, GELU, SiLU, a residual add, an output
  read twice) are skipped and reported with the reason.
- :func:`smooth`: SmoothQuant (Xiao et al. 2023) for transformers: a Linear's input
  channel ``j`` is divided by ``s_j = max|x_j|^alpha / max|W_j|^(1-alpha)`` and its
  weight column multiplied by it, moving activation outliers into the weights. The
  division is an explicit per-channel multiply before the Linear
  (:class:`SmoothedLinear`, one ONNX ``Mul``; Linears reading the same tensor share
  it): folding it into the LayerNorm before, as SmoothQuant's code does for pre-LN
  models (OPT, Llama), is not exact in post-LN BERT / MiniLM, where every LayerNorm
  output also feeds a residual add. A group is smoothed only where a simulated int8
  quantization of it gains at least ``min_gain_db``.
- :func:`correct_bias`: empirical bias correction (Nagel et al. 2019, sec. 4.2): the
  mean output shift that the target's weight quantization (:class:`WeightQuant`,
  onnxruntime's rounding) causes on the calibration data, ``E[y_q] - E[y]`` per
  output channel, is subtracted from each Conv/Linear bias (created where missing),
  including the shift a layer inherits from its quantized upstream. Apply it last.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 4, 1))
    >>> eq, report = equalize(net.eval())
    >>> report["folded_batchnorms"], [(p["first"], p["second"]) for p in report["pairs"]]
    (['1'], [('0', '3')])
"""

from __future__ import annotations

import copy
import math
import operator
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from edgesmith.conf.base import RecipeError
from edgesmith.errors import StageError

__all__ = ["SmoothedLinear", "WeightQuant", "correct_bias", "equalize", "smooth"]

Batch = Sequence[torch.Tensor]
_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Linear)
# channel-wise positively homogeneous ops: f(s * x) = s * f(x) per channel, for s > 0
_HOMOGENEOUS_MODULES = (nn.ReLU, nn.LeakyReLU, nn.Identity, nn.Dropout, nn.MaxPool1d, nn.MaxPool2d,
                        nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
                        nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d)
_HOMOGENEOUS_FUNCTIONS = {F.relu, torch.relu, F.leaky_relu, F.max_pool1d, F.max_pool2d, F.avg_pool1d,
                          F.avg_pool2d, F.adaptive_avg_pool1d, F.adaptive_avg_pool2d, F.dropout}
_HOMOGENEOUS_METHODS = {"relu", "contiguous"}
_RELU6_CLIP = 6.0
_SIM_ROWS = 4096  # input rows (tokens) per Linear group kept for SmoothQuant's simulation


@dataclass(frozen=True)
class WeightQuant:
    """How the target quantizes weights, mirrored from onnxruntime's quantizer:
    per output channel (else per tensor), symmetric int8 in ``[-127, 127]`` (else
    uint8 with a zero point), ``reduce_range``: 7 bits (``[-64, 64]`` / ``[0, 127]``)."""

    per_channel: bool = True
    symmetric: bool = True
    reduce_range: bool = False

    def fake_quantize(self, w: torch.Tensor) -> torch.Tensor:
        """``w`` quantized and dequantized (output channel = dim 0) as onnxruntime does."""
        if self.symmetric:
            qmin, qmax = (-64, 64) if self.reduce_range else (-127, 127)
        else:
            qmin, qmax = (0, 127) if self.reduce_range else (0, 255)
        flat = w.detach().double().reshape(len(w), -1) if self.per_channel else w.detach().double().reshape(1, -1)
        lo, hi = flat.amin(1, keepdim=True).clamp(max=0), flat.amax(1, keepdim=True).clamp(min=0)
        if self.symmetric:
            hi = torch.maximum(-lo, hi)
            lo = -hi
        scale = (hi - lo) / (qmax - qmin)
        tiny = scale < torch.finfo(torch.float32).tiny
        scale = torch.where(tiny, torch.ones_like(scale), scale)
        zero = torch.zeros_like(scale) if self.symmetric else torch.round(qmin - lo / scale)
        zero = torch.where(tiny, torch.zeros_like(zero), zero)
        scale = scale.float()  # onnxruntime divides in float32
        q = torch.clamp(torch.round(flat.float() / scale) + zero.float(), qmin, qmax)
        return ((q - zero.float()) * scale).reshape(w.shape).to(w.dtype)


class SmoothedLinear(nn.Linear):
    """``linear(x * smooth_inv, W * s, b)``: a Linear with SmoothQuant's per-channel
    input scale as an explicit multiply (``smooth_inv = 1 / s``), so the model
    computes the same function whatever else reads ``x``."""

    smooth_inv: torch.Tensor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x * self.smooth_inv, self.weight, self.bias)


# ---------------------------------------------------------------- equalization

@torch.no_grad()
def equalize(model: nn.Module, *, iterations: int = 20, tolerance: float = 1e-4,
             example_inputs: Batch | None = None,
             calibration: Sequence[Batch] | None = None) -> tuple[nn.Module, dict[str, Any]]:
    """Cross-layer equalization of a copy of ``model`` (eval mode, on the CPU).

    Args:
        model: A CNN (or MLP) that ``torch.fx.symbolic_trace`` can trace.
        iterations: Most sweeps over all pairs (the scales of chained pairs interact).
        tolerance: Stop when no scale of a sweep moves by more than this (relative).
        example_inputs: If given, the fp32 outputs of both models are compared on
            them (``report["fp32_max_abs_diff"]``).
        calibration: Batches of real inputs. With them, pairs across a ReLU6 (``nn.ReLU6``,
            ``Hardtanh(0, 6)``, ``F.relu6``: MobileNetV2's activation) are equalized too,
            clip-aware: ``relu6(x / s) = relu6(x) / s`` holds exactly where channel ``x``
            stays below the clip, so a channel that reaches 6 on the calibration data keeps
            scale 1 and every other one is scaled only as far as its calibration maximum
            stays below 6. Without them such pairs are skipped.

    Returns:
        ``(model, report)``; report: ``folded_batchnorms``, ``pairs`` (first, second,
        ops ``between``, ``range_ratio_before``/``after``: the worst max/min of the
        channel ranges of both layers), ``skipped`` (first, second or None, reason),
        ``sweeps``.

    Raises:
        RecipeError: (key ``equalize``) the model does not trace or has no pair to equalize.
    """
    out = copy.deepcopy(model).cpu().eval()
    ref = None if example_inputs is None else _outputs(out, example_inputs)
    folded = _fold_batchnorms(out, _trace(out))
    pairs, skipped = _find_pairs(out, _trace(out), folded, clip_aware=calibration is not None)
    if not pairs:
        first = f" (first: {skipped[0]['first']}: {skipped[0]['reason']})" if skipped else ""
        raise RecipeError("equalize", f"{type(model).__name__} has no Conv/Linear pair that can be equalized "
                          f"exactly; {len(skipped)} candidates skipped{first}; remove equalize")
    modules = dict(out.named_modules())
    if any("ReLU6" in p["between"] for p in pairs):
        _clip_headroom(out, modules, pairs, calibration)
    before = [_range_ratio(modules, p) for p in pairs]
    sweeps, moved = 0, math.inf
    while sweeps < iterations and moved >= tolerance:
        moved = max(_equalize_pair(modules, p) for p in pairs)
        sweeps += 1
    report = {
        "folded_batchnorms": folded,
        "pairs": [{"first": p["first"], "second": p["second"], "between": p["between"],
                   "range_ratio_before": round(b, 2), "range_ratio_after": round(_range_ratio(modules, p), 2),
                   **({"clipping_channels": int(p["clips"].sum())} if "clips" in p else {})}
                  for p, b in zip(pairs, before, strict=True)],
        "skipped": skipped, "sweeps": sweeps,
    }
    if ref is not None:
        report["fp32_max_abs_diff"] = _check_preserved(ref, _outputs(out, example_inputs), "equalize")
    return out, report


def _trace(model: nn.Module) -> torch.fx.GraphModule:
    try:
        return torch.fx.symbolic_trace(model)
    except Exception as e:  # noqa: BLE001 - tracing raises many error kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise RecipeError("equalize", f"torch.fx cannot trace {type(model).__name__} ({first}); equalize needs "
                          "a traceable CNN: remove equalize for this model") from None


def _fold_batchnorms(model: nn.Module, gm: torch.fx.GraphModule) -> list[str]:
    """Fold each BatchNorm whose input is a Conv/Linear output read by nothing else
    into that layer (running statistics); the BatchNorm becomes an Identity."""
    from torch.nn.utils.fusion import fuse_conv_bn_weights, fuse_linear_bn_weights

    modules = dict(model.named_modules())
    uses = _call_counts(gm)
    folded = []
    for node in gm.graph.nodes:
        bn = modules.get(node.target) if node.op == "call_module" else None
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
            continue
        src = node.args[0]
        layer = modules.get(src.target) if isinstance(src, torch.fx.Node) and src.op == "call_module" else None
        if not isinstance(layer, _LAYERS) or len(src.users) != 1 or uses[src.target] > 1 or uses[node.target] > 1:
            continue
        if isinstance(layer, nn.Linear):
            w, b = fuse_linear_bn_weights(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps,
                                          bn.weight, bn.bias)
        else:
            w, b = fuse_conv_bn_weights(layer.weight, layer.bias, bn.running_mean, bn.running_var, bn.eps,
                                        bn.weight, bn.bias)
        layer.weight, layer.bias = nn.Parameter(w.detach()), nn.Parameter(b.detach())
        model.set_submodule(node.target, nn.Identity())
        folded.append(node.target)
    return folded


def _call_counts(gm: torch.fx.GraphModule) -> dict[str, int]:
    counts: dict[str, int] = {}
    for n in gm.graph.nodes:
        if n.op == "call_module":
            counts[n.target] = counts.get(n.target, 0) + 1
    return counts


def _find_pairs(model: nn.Module, gm: torch.fx.GraphModule, folded: Sequence[str] = (),
                clip_aware: bool = False) -> tuple[list[dict], list[dict]]:
    """Equalizable ``layer1 -> homogeneous ops -> layer2`` chains, and the skipped ones;
    ``clip_aware``: a ReLU6 counts (scaled within its clip, :func:`_clip_headroom`)."""
    modules = dict(model.named_modules())
    uses = _call_counts(gm)
    pairs, skipped = [], []
    for node in gm.graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), _LAYERS):
            continue
        first, cur, between, flatten = node.target, node, [], False
        while True:
            users = list(cur.users)
            if len(users) != 1:
                if users:
                    skipped.append({"first": first, "second": None,
                                    "reason": f"output of {cur.name} is read by {len(users)} ops (a branch)"})
                break
            nxt = users[0]
            if nxt.op == "output":
                break  # the model's last layer
            mod = modules.get(nxt.target) if nxt.op == "call_module" else None
            if isinstance(mod, _LAYERS):
                reason = _pair_problem(modules[first], mod, flatten, uses, first, nxt.target, nxt.args[0] is cur)
                entry = {"first": first, "second": nxt.target}
                if reason:
                    skipped.append({**entry, "reason": reason})
                else:
                    pairs.append({**entry, "between": between, "flatten": flatten})
                break
            kind = "BatchNorm (folded)" if nxt.target in folded else _homogeneous(nxt, mod)
            if kind is None and clip_aware and _is_relu6(nxt, mod) and "ReLU6" not in between:
                kind = "ReLU6"
            if kind is None:
                what = type(mod).__name__ if mod is not None else getattr(nxt.target, "__name__", str(nxt.target))
                where = nxt.target if nxt.op == "call_module" else nxt.name
                skipped.append({"first": first, "second": None, "reason": f"{what} ({where}) follows: "
                                + ("a residual/branch merge" if nxt.target in (operator.add, torch.add, torch.cat)
                                   else "not positively homogeneous per channel")})
                break
            flatten = flatten or kind == "Flatten"
            between.append(kind)
            cur = nxt
    return pairs, skipped


def _homogeneous(node: torch.fx.Node, mod: nn.Module | None) -> str | None:
    """The op's label if ``f(s x) = s f(x)`` per channel for ``s > 0``, else None."""
    if mod is not None:
        if isinstance(mod, _HOMOGENEOUS_MODULES):
            return type(mod).__name__
        if isinstance(mod, nn.Flatten) and mod.start_dim == 1:
            return "Flatten"
        return None
    if node.op == "call_function" and node.target in _HOMOGENEOUS_FUNCTIONS:
        return node.target.__name__
    if node.op == "call_function" and node.target is torch.flatten and _flatten_from_1(node):
        return "Flatten"
    if node.op == "call_method" and node.target in _HOMOGENEOUS_METHODS:
        return node.target
    if node.op == "call_method" and node.target == "flatten" and _flatten_from_1(node):
        return "Flatten"
    return None


def _is_relu6(node: torch.fx.Node, mod: nn.Module | None) -> bool:
    if isinstance(mod, nn.ReLU6) or (type(mod) is nn.Hardtanh and mod.min_val == 0 and mod.max_val == 6):
        return True
    return node.op == "call_function" and node.target is F.relu6


def _clip_headroom(model: nn.Module, modules: dict[str, nn.Module], pairs: list[dict],
                   calibration: Sequence[Batch]) -> None:
    """For each pair with a ReLU6 between: the first layer's per-channel output maximum on
    ``calibration`` (``pair["peak"]``) and which channels reach the clip (``pair["clips"]``)."""
    clipped = [p for p in pairs if "ReLU6" in p["between"]]
    peaks: dict[str, torch.Tensor] = {}

    def hook(name: str):
        def record(_m, _i, y):
            m = y.detach().transpose(0, 1).reshape(y.shape[1], -1).amax(1).double()
            peaks[name] = m if name not in peaks else torch.maximum(peaks[name], m)
        return record

    _feed(model, {modules[p["first"]]: hook(p["first"]) for p in clipped}, calibration)
    for p in clipped:
        p["peak"] = peaks[p["first"]]
        p["clips"] = p["peak"] >= _RELU6_CLIP


def _flatten_from_1(node: torch.fx.Node) -> bool:
    start = node.args[1] if len(node.args) > 1 else node.kwargs.get("start_dim", 0)
    end = node.args[2] if len(node.args) > 2 else node.kwargs.get("end_dim", -1)
    return start == 1 and end == -1


def _pair_problem(first: nn.Module, second: nn.Module, flatten: bool, uses: dict[str, int],
                  a: str, b: str, direct: bool) -> str | None:
    channels = first.out_features if isinstance(first, nn.Linear) else first.out_channels
    if uses[a] > 1 or uses[b] > 1:
        return "a layer is called more than once (shared weights)"
    if not direct:
        return f"{b} does not take {a}'s output as its input"
    if flatten and isinstance(first, nn.Linear):
        return "a Flatten after a Linear interleaves its channels"
    if isinstance(second, nn.Linear):
        if flatten and second.in_features % channels == 0:
            return None
        return None if second.in_features == channels else f"{b} has {second.in_features} inputs for {channels} channels"
    if flatten:
        return "a Flatten lies before a convolution"
    return None if second.in_channels == channels else f"{b} has {second.in_channels} input channels for {channels}"


def _input_columns(second: nn.Module, channels: int) -> list[tuple[slice, slice]]:
    """Per input channel ``i`` of ``second``: the (rows, columns) of its weight
    (as ``[out, in_per_group, ...]`` flattened to 2-D) that read channel ``i``."""
    if isinstance(second, nn.Linear):
        block = second.in_features // channels
        return [(slice(None), slice(i * block, (i + 1) * block)) for i in range(channels)]
    cin_g = second.in_channels // second.groups
    cout_g = second.out_channels // second.groups
    ksize = math.prod(second.kernel_size)
    return [(slice(i // cin_g * cout_g, (i // cin_g + 1) * cout_g), slice(i % cin_g * ksize, (i % cin_g + 1) * ksize))
            for i in range(channels)]


def _ranges(modules: dict[str, nn.Module], pair: dict) -> tuple[torch.Tensor, torch.Tensor, list]:
    first, second = modules[pair["first"]], modules[pair["second"]]
    w1 = first.weight.detach().reshape(first.weight.shape[0], -1)
    r1 = w1.abs().amax(1).double()
    cols = _input_columns(second, len(r1))
    w2 = second.weight.detach().reshape(second.weight.shape[0], -1)
    r2 = torch.stack([w2[rows, c].abs().max() for rows, c in cols]).double()
    return r1, r2, cols


def _equalize_pair(modules: dict[str, nn.Module], pair: dict) -> float:
    """One CLE step on ``pair``; returns the largest relative change of a scale."""
    r1, r2, cols = _ranges(modules, pair)
    s = torch.where((r1 > 0) & (r2 > 0), torch.sqrt(r1 * r2) / r2.clamp_min(1e-30), torch.ones_like(r1))
    if "peak" in pair:  # ReLU6 between: the scaled channel must stay below the clip (peak / s <= 6)
        s = torch.where(pair["clips"], torch.ones_like(s), torch.maximum(s, pair["peak"] / _RELU6_CLIP))
        pair["peak"] = torch.where(pair["clips"], pair["peak"], pair["peak"] / s)
    first, second = modules[pair["first"]], modules[pair["second"]]
    shape = (-1,) + (1,) * (first.weight.dim() - 1)
    first.weight.copy_((first.weight.double() / s.reshape(shape)).float())
    if first.bias is not None:
        first.bias.copy_((first.bias.double() / s).float())
    w2 = second.weight.data.reshape(second.weight.shape[0], -1)  # a view: edits land in the weight
    for i, (rows, c) in enumerate(cols):
        w2[rows, c] *= float(s[i])
    return float((s - 1).abs().max())


def _range_ratio(modules: dict[str, nn.Module], pair: dict) -> float:
    """Worst max/min over channels of ``r1`` and of ``r2`` (1 = perfectly balanced)."""
    r1, r2, _ = _ranges(modules, pair)
    return max(float(r.max() / r[r > 0].min()) if (r > 0).any() else 1.0 for r in (r1, r2))


# ------------------------------------------------------------------ SmoothQuant

@torch.no_grad()
def smooth(model: nn.Module, calibration: Sequence[Batch], alpha: float = 0.5, *,
           weights: WeightQuant = WeightQuant(), symmetric_activations: bool = False,
           min_gain_db: float = 0.5) -> tuple[nn.Module, dict[str, Any]]:
    """SmoothQuant on a copy of ``model``: each group of Linears that read the same
    tensor becomes :class:`SmoothedLinear` where that helps.

    One pass over ``calibration`` (batches of model inputs) gives each Linear input's
    per-channel maxima and a sample of its rows; each group's int8 quantization is
    then simulated on that sample (activations per tensor on their min/max range,
    weights as ``weights``) with and without smoothing, and the group is smoothed
    when its output SQNR gains ``min_gain_db`` or more.

    Returns:
        ``(model, report)``; report: ``alpha``, ``groups`` (``layers``, ``input_from``:
        the LayerNorm producing the input, if one; simulated ``sqnr_db`` and
        ``smoothed_sqnr_db``; ``act_range_ratio`` (largest / median channel max) before
        and after; ``smoothed``), ``smoothed_layers``, ``fp32_max_abs_diff``.

    Raises:
        RecipeError: (key ``smoothquant``) ``model`` has no Linear layer, or alpha is out of [0, 1].
    """
    if not 0 <= alpha <= 1:
        raise RecipeError("smoothquant", f"alpha must be in [0, 1], got {alpha}")
    out = copy.deepcopy(model).cpu().eval()
    linears = {n: m for n, m in out.named_modules() if type(m) is nn.Linear}
    if not linears:
        raise RecipeError("smoothquant", f"{type(model).__name__} has no Linear layer to smooth; smoothquant is "
                          "for transformers: remove it")
    ref = _outputs(out, calibration[0])
    groups, stats = _activation_stats(out, linears, calibration)
    report_groups, smoothed = [], []
    for leader, g in groups.items():
        st = stats[leader]
        wmax = torch.stack([linears[n].weight.detach().abs().amax(0) for n in g["layers"]]).amax(0).double()
        ok = (st["absmax"] > 0) & (wmax > 0)
        s = torch.where(ok, st["absmax"].clamp_min(1e-12) ** alpha / wmax.clamp_min(1e-12) ** (1 - alpha),
                        torch.ones_like(wmax)).clamp(1e-5, 1e5)
        before, after = _simulate(linears, g["layers"], st, s, weights, symmetric_activations)
        chosen = after - before >= min_gain_db
        if chosen:
            inv = (1 / s).float()
            for name in g["layers"]:
                out.set_submodule(name, _smoothed(linears[name], s, inv))
                smoothed.append(name)
        report_groups.append({
            "layers": g["layers"], "input_from": g["input_from"], "smoothed": bool(chosen),
            "sqnr_db": round(before, 2), "smoothed_sqnr_db": round(after, 2),
            "act_range_ratio": round(_spread(st["absmax"]), 1),
            "smoothed_act_range_ratio": round(_spread(st["absmax"] / s), 1),
        })
    diff = _check_preserved(ref, _outputs(out, calibration[0]), "smoothquant")
    return out, {"alpha": alpha, "min_gain_db": min_gain_db, "groups": report_groups,
                 "smoothed_layers": smoothed, "fp32_max_abs_diff": diff}


def _spread(absmax: torch.Tensor) -> float:
    live = absmax[absmax > 0]
    return float(live.max() / live.median()) if len(live) else 1.0


def _smoothed(linear: nn.Linear, s: torch.Tensor, inv: torch.Tensor) -> SmoothedLinear:
    new = SmoothedLinear(linear.in_features, linear.out_features, linear.bias is not None,
                         dtype=linear.weight.dtype)
    new.weight.copy_((linear.weight.double() * s).to(linear.weight.dtype))
    if linear.bias is not None:
        new.bias.copy_(linear.bias)
    new.register_buffer("smooth_inv", inv)  # the same tensor in every Linear of the group: one Mul on export
    return new


def _activation_stats(model: nn.Module, linears: dict[str, nn.Linear], calibration: Sequence[Batch],
                      rows: int = _SIM_ROWS):
    """One pass over ``calibration``: the groups of Linears reading the same tensor
    (``{leader: {"layers", "input_from"}}``) and per leader the per-channel
    ``absmax``, ``lo``, ``hi`` of that input plus ``sample``, about ``rows`` of its
    rows (tokens) spread evenly over the batches, for the simulation."""
    seen: dict[int, tuple[torch.Tensor, str]] = {}  # tensors kept alive so ids stay unique
    norms: dict[int, tuple[torch.Tensor, str]] = {}
    groups: dict[str, dict] = {}
    stats: dict[str, dict[str, Any]] = {}
    member: dict[str, str] = {}
    per_batch = max(16, rows // max(1, len(calibration)))

    def on_norm(name):
        return lambda mod, args, output: norms.__setitem__(id(output), (output, name))

    def on_linear(name):
        def hook(mod, args):
            x = args[0]
            seen.setdefault(id(x), (x, name))
            leader = member.setdefault(name, seen[id(x)][1])
            if leader == name:
                if name not in groups:
                    groups[name] = {"layers": [], "input_from": norms[id(x)][1] if id(x) in norms else None}
                flat = x.detach().reshape(-1, x.shape[-1]).float()
                pick = flat[torch.linspace(0, len(flat) - 1, min(per_batch, len(flat))).long()]
                new = {"absmax": flat.abs().amax(0), "lo": flat.amin(0), "hi": flat.amax(0), "sample": [pick]}
                old = stats.get(name)
                stats[name] = new if old is None else {
                    "absmax": torch.maximum(old["absmax"], new["absmax"]), "lo": torch.minimum(old["lo"], new["lo"]),
                    "hi": torch.maximum(old["hi"], new["hi"]), "sample": old["sample"] + [pick]}
            if name not in groups[leader]["layers"]:
                groups[leader]["layers"].append(name)
        return hook

    hooks = [m.register_forward_pre_hook(on_linear(n)) for n, m in linears.items()]
    hooks += [m.register_forward_hook(on_norm(n)) for n, m in model.named_modules() if isinstance(m, nn.LayerNorm)]
    try:
        for batch in calibration:
            seen.clear()
            norms.clear()
            model(*batch)
    finally:
        for h in hooks:
            h.remove()
    for st in stats.values():
        st["absmax"] = st["absmax"].double()
        st["sample"] = torch.cat(st["sample"])
    return groups, stats


def _simulate(linears: dict[str, nn.Linear], group: list[str], st: dict[str, Any], s: torch.Tensor,
              weights: WeightQuant, symmetric: bool) -> tuple[float, float]:
    """A group's simulated int8 output SQNR (dB) on its row sample, without and with
    smoothing by ``s``: activations per tensor on their calibration min/max range."""
    x, s = st["sample"], s.float()
    ws = [linears[n].weight.detach().float() for n in group]
    w = torch.cat(ws)
    q = torch.cat([weights.fake_quantize(v) for v in ws])
    qs = torch.cat([weights.fake_quantize((v.double() * s.double()).float()) for v in ws])
    ref = x @ w.T
    plain = _fake_quant_act(x, st["lo"].min(), st["hi"].max(), symmetric) @ q.T
    smoothed = _fake_quant_act(x / s, (st["lo"] / s).min(), (st["hi"] / s).max(), symmetric) @ qs.T
    signal = ref.double().pow(2).sum()
    return _db(signal, (ref - plain).double().pow(2).sum()), _db(signal, (ref - smoothed).double().pow(2).sum())


def _fake_quant_act(x: torch.Tensor, lo: torch.Tensor, hi: torch.Tensor, symmetric: bool) -> torch.Tensor:
    """Per-tensor activation quantization on a min/max range: uint8 asymmetric, or
    int8 symmetric (``[-127, 127]``)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        scale = max(-lo, hi) / 127 or 1.0
        return torch.clamp(torch.round(x / scale), -127, 127) * scale
    scale = (hi - lo) / 255 or 1.0
    zero = round(-lo / scale)
    return (torch.clamp(torch.round(x / scale) + zero, 0, 255) - zero) * scale


def _db(signal: torch.Tensor, noise: torch.Tensor) -> float:
    return float("inf") if noise == 0 else float(10 * torch.log10(signal.clamp_min(1e-30) / noise))


# -------------------------------------------------------------- bias correction

@torch.no_grad()
def correct_bias(model: nn.Module, calibration: Sequence[Batch], weights: WeightQuant, *,
                 max_passes: int | None = None, tolerance: float = 0.01) -> tuple[nn.Module, dict]:
    """Empirical bias correction of every Conv1d/Conv2d/Linear of a copy of ``model``.

    BatchNorms after a Conv/Linear are folded first (when the model traces), since
    onnxruntime quantizes the folded weights. Each layer's per-channel output mean
    over ``calibration`` (batches of model inputs; batch and spatial/token positions)
    is measured in the fp32 model and in a copy whose weights are quantized as
    ``weights`` does, with every layer before it already corrected, and
    ``E[y] - E[y_q]`` is added to its bias (created where missing). So a layer also
    absorbs the shift its quantized upstream passes on (through a ReLU the mean of a
    weight error does not stay zero). When the batches concatenate into one, one
    pass does this layer by layer; otherwise the copy is re-measured with all biases
    corrected at once until a pass changes none by more than ``tolerance`` of the
    largest correction, at most ``max_passes`` times (default: layers + 1). A pass or
    two of that is worse than no correction (digits MobileNet, per-channel: 31.7 dB
    output SQNR; 22.9 after 2 passes; 32.7 converged after 11). Activation
    quantization is not simulated.

    Returns:
        ``(model, report)``; report: ``layers`` (name, ``max_abs_shift`` and
        ``mean_abs_shift``: the correction added, ``bias_created``), ``folded_batchnorms``,
        ``samples``, ``passes``, ``converged``.
    """
    out = copy.deepcopy(model).cpu().eval()
    folded = []
    if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in out.modules()):
        try:
            folded = _fold_batchnorms(out, torch.fx.symbolic_trace(out))
        except Exception:  # noqa: BLE001 - an untraceable model keeps its BatchNorms
            folded = []
    quantized = copy.deepcopy(out)
    layers = {n: m for n, m in out.named_modules() if isinstance(m, _LAYERS)}
    qlayers = {n: m for n, m in quantized.named_modules() if isinstance(m, _LAYERS)}
    for m in qlayers.values():
        m.weight.copy_(weights.fake_quantize(m.weight))
    joined = _concat(calibration)
    reference = _output_means(out, layers, calibration if joined is None else [joined])
    if joined is not None:
        total, passes, converged = _sequential_shifts(quantized, qlayers, reference, joined), 1, True
    else:
        total = {n: torch.zeros_like(v) for n, v in reference.items()}
        passes, converged, limit = 0, not reference, max_passes or len(layers) + 1
        while passes < limit and not converged:
            means = _output_means(quantized, qlayers, calibration)
            change = 0.0
            for name, ref in reference.items():
                delta = ref - means[name]
                total[name] += delta
                _add_bias(qlayers[name], delta)
                change = max(change, float(delta.abs().max()))
            passes += 1
            converged = change <= tolerance * max(float(t.abs().max()) for t in total.values())
    report = []
    for name, shift in total.items():
        created = layers[name].bias is None
        _add_bias(layers[name], shift)
        report.append({"name": name, "max_abs_shift": float(shift.abs().max()),
                       "mean_abs_shift": float(shift.abs().mean()), "bias_created": created})
    samples = sum(len(b[0]) for b in calibration)
    return out, {"weights": asdict(weights), "layers": report, "folded_batchnorms": folded, "samples": samples,
                 "passes": passes, "converged": converged}


def _concat(calibration: Sequence[Batch]) -> tuple[torch.Tensor, ...] | None:
    """The batches as one batch, or None when their shapes beyond dim 0 differ."""
    if len({tuple(t.shape[1:] for t in b) for b in calibration}) != 1:
        return None
    return tuple(torch.cat(parts) for parts in zip(*calibration, strict=True))


def _sequential_shifts(model: nn.Module, layers: dict[str, nn.Module], reference: dict, batch: Batch) -> dict:
    """One pass of ``batch`` through ``model`` in which each layer's output is shifted
    to its ``reference`` mean before the next layer reads it; returns the shifts."""
    shifts: dict[str, torch.Tensor] = {}

    def hook(name):
        def run(mod, args, y):
            if name not in shifts:
                shifts[name] = reference[name] - _channel_mean(mod, y)[0].float()
            shift = shifts[name]
            return y + (shift if isinstance(mod, nn.Linear) else shift.view(-1, *([1] * (y.dim() - 2))))
        return run

    hooks = [m.register_forward_hook(hook(n)) for n, m in layers.items() if n in reference]
    try:
        model(*batch)
    finally:
        for h in hooks:
            h.remove()
    return shifts


def _channel_mean(mod: nn.Module, y: torch.Tensor) -> tuple[torch.Tensor, int]:
    """The per-channel mean over every position of a layer's output, and the count."""
    flat = y.detach() if isinstance(mod, nn.Linear) else y.detach().movedim(1, -1)
    flat = flat.reshape(-1, flat.shape[-1]).double()
    return flat.sum(0) / len(flat), len(flat)


def _add_bias(layer: nn.Module, delta: torch.Tensor) -> None:
    if layer.bias is None:
        layer.bias = nn.Parameter(torch.zeros(len(delta), dtype=layer.weight.dtype))
    layer.bias.add_(delta.to(layer.weight.dtype))


def _output_means(model: nn.Module, layers: dict[str, nn.Module], calibration: Sequence[Batch]) -> dict:
    """Per layer, the per-channel mean of its output over every batch and position."""
    sums: dict[str, torch.Tensor] = {}
    counts: dict[str, int] = {}

    def hook(name):
        def run(mod, args, y):
            mean, n = _channel_mean(mod, y)
            sums[name] = sums.get(name, 0) + mean * n
            counts[name] = counts.get(name, 0) + n
        return run

    _feed(model, {m: hook(n) for n, m in layers.items()}, calibration)
    return {n: (sums[n] / counts[n]).float() for n in sums}


def _feed(model: nn.Module, hooks: dict[nn.Module, Any], calibration: Sequence[Batch]) -> None:
    """Run ``calibration`` through ``model`` with each forward hook on its module, then remove them."""
    handles = [m.register_forward_hook(h) for m, h in hooks.items()]
    try:
        for batch in calibration:
            model(*batch)
    finally:
        for h in handles:
            h.remove()


def _outputs(model: nn.Module, inputs: Batch) -> torch.Tensor:
    y = model(*inputs)
    return (y if isinstance(y, torch.Tensor) else y[0]).detach()


def _check_preserved(ref: torch.Tensor, new: torch.Tensor, what: str, rtol: float = 1e-3) -> float:
    """The max ``|ref - new|``; a StageError when it exceeds ``rtol`` of max ``|ref|``
    (a transform meant to be exact changed the fp32 function)."""
    diff, scale = float((ref - new).abs().max()), float(ref.abs().max())
    if diff > rtol * max(scale, 1e-6):
        raise StageError(f"quantize: {what} changed the fp32 outputs by up to {diff:.3g} (max |y| {scale:.3g}); "
                         f"remove {what} for this model")
    return diff
