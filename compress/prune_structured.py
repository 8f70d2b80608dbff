"""Structured pruning: the pruned model is really smaller.

- CNNs (and any net of Conv2d / Linear layers): output channels ranked by L1
  magnitude and removed with torch-pruning's dependency graph, which also slices
  every coupled layer (BatchNorm, residual adds, the Linear after a flatten).
  The layer producing the model's output is never pruned.
- BERT-style encoders (``encoder.layer[i]`` with ``attention``, ``intermediate``
  and ``output``): whole attention heads (Hugging Face ``prune_heads``) and FFN
  neurons (rows of ``intermediate.dense``, columns of ``output.dense``) ranked by
  L1 norm, or (``criterion: activation``) by what each neuron adds to the layer's
  output on the stage's own texts: the standard deviation of its activation times
  the L2 norm of its ``output.dense`` column. With that criterion the kept columns
  and the bias of ``output.dense`` are then refitted by least squares to the full
  layer's output on the same tokens (damped normal equations), so the kept
  neurons stand in for the removed ones as far as a linear map can.

The shapes that change are recorded (:func:`structure_diff`) so that a resumed
run can rebuild the model before loading its weights (:func:`apply_structure`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from edgesmith.compress.recovery import KDRecovery, cubic_schedule
from edgesmith.compress.selection import op_type_matches, select
from edgesmith.errors import EdgesmithError, RecipeError, StageError
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["prune_structured", "structure_diff", "apply_structure", "snapshot"]

WIDTH_TYPES = ["Conv2d", "Linear"]
FFN_NOTE = ("FFN widths now differ per layer, which a Hugging Face config cannot express (intermediate_size "
            "is one number): reload it with edgesmith (weights + this structure), not from_pretrained")


def prune_structured(model: nn.Module, config, task: Task, train: TensorSet,
                     recovery: KDRecovery | None, device: str = "cpu",
                     ratios: dict[str, float] | None = None) -> dict[str, Any]:
    """Prune ``model`` in place (the caller passes a copy); returns the report part.
    ``ratios`` (auto mode, CNNs): each named layer's own final ratio instead of ``config.sparsity``."""
    before = snapshot(model)
    layers = _bert_layers(model)
    if layers is not None and ratios is not None:
        raise RecipeError("auto", "auto mode prunes Conv2d / Linear channels; transformer heads and FFN neurons "
                                  "take one sparsity")
    if layers is None:
        if config.criterion != "magnitude":
            raise RecipeError("criterion", f"'{config.criterion}' ranks the FFN neurons of a transformer; CNN "
                                           "channels are ranked by L1 magnitude (criterion: magnitude)")
        per_layer, history = _prune_channels(model, config, task, train, recovery, device, ratios)
        extra: dict[str, Any] = {}
    else:
        per_layer, history, heads = _prune_transformer(model, layers, config, recovery, task, train, device)
        extra = {"pruned_heads": heads} if heads else {}
        if any(r["ffn_after"] != r["ffn_before"] for r in per_layer):
            extra["note"] = FFN_NOTE
    return {"layers": per_layer, "steps": history, **extra, "structure": structure_diff(before, model)}


# ----------------------------------------------------------------------- CNNs
def _prune_channels(model, config, task, train, recovery, device, ratios=None):
    import torch_pruning as tp

    example = tuple(t.to(device) for t in task.prepare(train.take(slice(0, 2)).inputs))
    chosen = {id(m) for _, m in select(model, config.selection, WIDTH_TYPES)}
    last_name, last = _output_layer(model, example)
    if not chosen - {id(last)}:
        raise RecipeError("include", f"selects only '{last_name}', the output layer, whose outputs cannot be pruned")
    ignored = [m for _, m in model.named_modules()
               if op_type_matches(m, WIDTH_TYPES) and (id(m) not in chosen or m is last)]
    steps = cubic_schedule(config.sparsity, config.schedule_steps)
    per_layer_ratio = None
    if ratios is not None:  # auto: the planned layers at their own ratios, the rest of the selection at 0
        per_layer_ratio = {m: ratios[n] for n, m in model.named_modules() if n in ratios}
    pruner = tp.pruner.MetaPruner(
        model, example, importance=tp.importance.MagnitudeImportance(p=1),
        pruning_ratio=config.sparsity if ratios is None else 0.0, pruning_ratio_dict=per_layer_ratio,
        global_pruning=config.scope == "global", iterative_steps=len(steps),
        iterative_pruning_ratio_scheduler=lambda ratio, n: [0.0, *cubic_schedule(ratio, n)],
        ignored_layers=ignored, round_to=config.round_to if config.round_to > 1 else None,
    )
    widths = {n: (m.weight.shape[0], m.weight.shape[1]) for n, m in model.named_modules() if op_type_matches(m, WIDTH_TYPES)}
    history = []
    for step, target in enumerate(steps, 1):
        pruner.step()
        model.eval()
        rec = recovery(model, step if len(steps) > 1 else None) if recovery is not None else None
        history.append({"step": step, "target_sparsity": None if ratios is not None else target, "recovery": rec})
    del pruner  # it holds the model; nothing of it stays on the model
    per_layer = []
    for name, m in model.named_modules():
        if name in widths:
            out_after, in_after = m.weight.shape[0], m.weight.shape[1]
            if out_after == 0:
                raise StageError(f"{config.name or 'prune'}: layer '{name}' lost every channel; lower sparsity "
                                 "or use scope: layer")
            per_layer.append({"name": name, "type": type(m).__name__, "out_before": widths[name][0],
                              "out_after": out_after, "in_before": widths[name][1], "in_after": in_after})
    return per_layer, history


@torch.no_grad()
def _output_layer(model: nn.Module, example: tuple[torch.Tensor, ...]) -> tuple[str, nn.Module]:
    """The last Conv2d / Linear the forward pass calls: the one making the output."""
    calls: list[tuple[str, nn.Module]] = []
    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: calls.append((n, mod)))
             for n, m in model.named_modules() if op_type_matches(m, WIDTH_TYPES)]
    try:
        model.eval()(*example)
    finally:
        for h in hooks:
            h.remove()
    if not calls:
        raise RecipeError("method", "structured pruning needs Conv2d or Linear layers; this model has none")
    return calls[-1]


# --------------------------------------------------------------- transformers
def _bert_layers(model: nn.Module) -> nn.ModuleList | None:
    from edgesmith.models.encoder import encoder_layers

    try:
        layers = encoder_layers(model)
    except EdgesmithError:
        return None
    ok = all(hasattr(lay, "attention") and hasattr(lay.attention, "prune_heads")
             and hasattr(getattr(lay, "intermediate", None), "dense") and hasattr(getattr(lay, "output", None), "dense")
             for lay in layers)
    return layers if ok and len(layers) else None


def _kept(n: int, ratio: float) -> int:
    return max(1, int(n * (1 - ratio) + 1e-6))


def _choose(scores: dict[int, torch.Tensor], initial: dict[int, int], ratio: float, scope: str) -> dict[int, list[int]]:
    """Per layer, the current indices to remove so that ``ratio`` of the initial
    units go (per layer, or ranked over all layers keeping at least one each)."""
    if scope == "layer":
        return {i: torch.argsort(s)[: max(0, len(s) - _kept(initial[i], ratio))].tolist() for i, s in scores.items()}
    total_keep = max(len(scores), int(sum(initial.values()) * (1 - ratio) + 1e-6))
    keep = {i: {int(s.argmax())} for i, s in scores.items()}
    rest = sorted(((float(v), i, j) for i, s in scores.items() for j, v in enumerate(s) if j not in keep[i]), reverse=True)
    for _, i, j in rest[: max(0, total_keep - len(scores))]:
        keep[i].add(j)
    return {i: [j for j in range(len(s)) if j not in keep[i]] for i, s in scores.items()}


def _prune_transformer(model, layers, config, recovery, task, train, device):
    default = [type(layers[0].attention).__name__, type(layers[0].intermediate).__name__]
    chosen = {id(m) for _, m in select(model, config.selection, default)}
    att = {i: lay.attention for i, lay in enumerate(layers) if id(lay.attention) in chosen}
    ffn = {i: lay for i, lay in enumerate(layers) if id(lay.intermediate) in chosen}
    if not att and not ffn:
        raise RecipeError("op_types", f"structured pruning of a transformer removes heads ({default[0]}) and FFN "
                                      f"neurons ({default[1]}); the selection picks neither")
    heads0 = {i: lay.attention.self.num_attention_heads for i, lay in enumerate(layers)}
    ffn0 = {i: lay.intermediate.dense.out_features for i, lay in enumerate(layers)}
    inner = getattr(model, "encoder", model)
    steps = cubic_schedule(config.sparsity, config.schedule_steps)
    history = []
    for step, target in enumerate(steps, 1):
        if att:
            remove = _choose({i: _head_scores(a) for i, a in att.items()}, {i: heads0[i] for i in att}, target, config.scope)
            for i, idx in remove.items():
                alive = sorted(set(range(heads0[i])) - att[i].pruned_heads)
                att[i].prune_heads([alive[j] for j in idx])
        if ffn:
            stats = None
            if config.criterion == "activation":
                stats = _ffn_activation_stats(model, ffn, task, train, config.calibration_samples, device)
                scores = {i: stats[i][1].float() * ffn[i].output.dense.weight.detach().norm(dim=0) for i in ffn}
            else:
                scores = {i: _ffn_scores(lay) for i, lay in ffn.items()}
            remove = _choose(scores, {i: ffn0[i] for i in ffn}, target, config.scope)
            for i, idx in remove.items():
                keep = torch.tensor(sorted(set(range(ffn[i].intermediate.dense.out_features)) - set(idx)))
                if stats is not None and idx:
                    _refit(ffn[i].output.dense, keep, stats[i][0], stats[i][2])
                ffn[i].intermediate.dense = _slice_linear(ffn[i].intermediate.dense, keep, 0)
                ffn[i].output.dense = _slice_linear(ffn[i].output.dense, keep, 1)
        rec = recovery(model, step if len(steps) > 1 else None) if recovery is not None else None
        history.append({"step": step, "target_sparsity": target, "recovery": rec})
    heads = {i: sorted(a.pruned_heads) for i, a in att.items() if a.pruned_heads}
    if heads and hasattr(getattr(inner, "config", None), "pruned_heads"):
        inner.config.pruned_heads = {**inner.config.pruned_heads, **heads}
    per_layer = [{"name": f"layer.{i}", "heads_before": heads0[i], "heads_after": lay.attention.self.num_attention_heads,
                  "ffn_before": ffn0[i], "ffn_after": lay.intermediate.dense.out_features} for i, lay in enumerate(layers)]
    return per_layer, history, heads


def _head_scores(att: nn.Module) -> torch.Tensor:
    """Mean |w| per head over its query/key/value rows and output columns."""
    s = att.self
    h, d = s.num_attention_heads, s.attention_head_size
    rows = sum(getattr(s, n).weight.detach().abs().view(h, d, -1).mean((1, 2)) for n in ("query", "key", "value"))
    cols = att.output.dense.weight.detach().abs().view(-1, h, d).mean((0, 2))
    return rows + cols


def _ffn_scores(layer: nn.Module) -> torch.Tensor:
    """L1 norm per FFN neuron: its ``intermediate.dense`` row plus its ``output.dense`` column."""
    return layer.intermediate.dense.weight.detach().abs().sum(1) + layer.output.dense.weight.detach().abs().sum(0)


@torch.no_grad()
def _ffn_activation_stats(model, ffn, task, train, samples, device):
    """Per FFN layer, the mean, standard deviation and second-moment matrix of the
    neurons' activations (the input of ``output.dense``) over the real tokens of
    the first ``samples`` texts (float64)."""
    sums: dict[int, list] = {}
    mask: list[torch.Tensor] = []

    def hook(i):
        def record(mod, args):
            a = args[0].detach().double()
            a = a.reshape(-1, a.shape[-1])[mask[0].reshape(-1).bool()] if a.dim() == 3 and mask else a
            f = a.shape[-1]
            s = sums.setdefault(i, [a.new_zeros(f), a.new_zeros(f, f), 0])
            s[0] += a.sum(0)
            s[1] += a.T @ a
            s[2] += a.shape[0]
        return record

    hooks = [lay.output.dense.register_forward_pre_hook(hook(i)) for i, lay in ffn.items()]
    was_training = model.training
    model.eval()
    try:
        for batch in train.take(slice(0, samples)).batches(64):
            inputs = tuple(t.to(device) for t in task.prepare(batch.inputs))
            mask[:] = [inputs[1]] if len(inputs) > 1 else []
            model(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    out = {}
    for i, (s1, s2, n) in sums.items():
        mean, second = s1 / max(n, 1), s2 / max(n, 1)
        out[i] = (mean, (second.diagonal() - mean * mean).clamp_min(0).sqrt(), second)
    return out


@torch.no_grad()
def _refit(dense: nn.Linear, keep: torch.Tensor, mean: torch.Tensor, second: torch.Tensor,
           damp: float = 0.01) -> None:
    """Refit ``dense``'s ``keep`` columns and its bias so that, on the tokens the
    moments came from, they reproduce the full layer's output in least squares:
    ``[W_K b] = [W b] G[:, K1] (G[K1, K1] + damp * mean(diag) I)^-1`` with ``G`` the
    second moments of the activations extended by a constant 1 and ``K1 = keep + [1]``."""
    f = second.shape[0]
    g = second.new_empty(f + 1, f + 1)
    g[:f, :f], g[:f, f], g[f, :f], g[f, f] = second, mean, mean, 1.0
    k = torch.cat([keep.to(g.device), torch.tensor([f], device=g.device)])
    bias = dense.bias.detach() if dense.bias is not None else dense.weight.new_zeros(dense.out_features)
    w = torch.cat([dense.weight.detach().to(g), bias.to(g)[:, None]], 1)
    gkk = g[k][:, k]
    gkk += damp * gkk.diagonal().mean() * torch.eye(len(k), dtype=g.dtype, device=g.device)
    sol = torch.linalg.solve(gkk, (w @ g[:, k]).T).T
    dense.weight.data[:, keep.to(dense.weight.device)] = sol[:, :-1].to(dense.weight)
    if dense.bias is None:
        dense.bias = nn.Parameter(dense.weight.new_zeros(dense.out_features))
    dense.bias.data.copy_(sol[:, -1].to(dense.bias))


def _slice_linear(layer: nn.Linear, keep: torch.Tensor, dim: int) -> nn.Linear:
    keep = keep.to(layer.weight.device)
    w = layer.weight.detach().index_select(dim, keep)
    new = nn.Linear(w.shape[1], w.shape[0], bias=layer.bias is not None).to(w.device, w.dtype)
    with torch.no_grad():
        new.weight.copy_(w)
        if layer.bias is not None:
            new.bias.copy_(layer.bias if dim == 1 else layer.bias[keep])
    return new


# ------------------------------------------------------------------ structure
_SIMPLE = (int, float, bool, tuple, list, set, frozenset)


def snapshot(model: nn.Module) -> dict[str, dict[str, Any]]:
    """Per module: its tensors' shapes and its plain (int, tuple, set...) attributes."""
    out = {}
    for name, m in model.named_modules():
        tensors = {**m._parameters, **m._buffers}
        attrs = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training" and isinstance(v, _SIMPLE)}
        out[name] = {"shapes": {k: list(t.shape) for k, t in tensors.items() if t is not None}, "attrs": attrs}
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, (set, frozenset)):
        return sorted(v)
    return list(v) if isinstance(v, tuple) else v


def structure_diff(before: dict[str, dict[str, Any]], model: nn.Module) -> dict[str, dict[str, Any]]:
    """What changed since ``before`` (a :func:`snapshot`), as JSON-able data."""
    diff = {}
    for name, now in snapshot(model).items():
        was = before.get(name, {"shapes": {}, "attrs": {}})
        shapes = {k: s for k, s in now["shapes"].items() if was["shapes"].get(k) != s}
        attrs = {k: _plain(v) for k, v in now["attrs"].items() if was["attrs"].get(k) != v}
        if shapes or attrs:
            diff[name] = {"shapes": shapes, "attrs": attrs}
    return diff


def apply_structure(model: nn.Module, structure: dict[str, dict[str, Any]],
                    pruned_heads: dict | None = None) -> nn.Module:
    """Give ``model`` (the unpruned structure) the recorded shapes and attributes;
    the tensors are left uninitialised, for the saved weights to be loaded."""
    for name, entry in structure.items():
        m = model.get_submodule(name)
        for k, shape in entry["shapes"].items():
            old = getattr(m, k, None)
            dtype = old.dtype if isinstance(old, torch.Tensor) else torch.float32
            if k in m._buffers:
                m._buffers[k] = torch.empty(shape, dtype=dtype)
            else:
                m._parameters[k] = nn.Parameter(torch.empty(shape, dtype=dtype),
                                                requires_grad=getattr(old, "requires_grad", True))
        for k, v in entry["attrs"].items():
            old = getattr(m, k, None)
            setattr(m, k, type(old)(v) if isinstance(old, (set, frozenset, tuple)) else v)
    inner = getattr(model, "encoder", model)
    if pruned_heads and hasattr(getattr(inner, "config", None), "pruned_heads"):
        inner.config.pruned_heads = {**inner.config.pruned_heads, **{int(k): v for k, v in pruned_heads.items()}}
    return model
