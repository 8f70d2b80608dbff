"""Low-rank factorization by truncated SVD, with KD recovery fine-tuning.

- ``Linear(in, out)`` -> ``Sequential(Linear(in, r, bias=False), Linear(r, out))``
- ``Conv2d(in, out, k)`` -> ``Sequential(Conv2d(in, r, k, bias=False), Conv2d(r, out, 1))``
  (channel SVD of the ``out x (in*k*k)`` weight; same stride, padding, dilation)
- ``Embedding(vocab, d)`` -> ``Sequential(Embedding(vocab, r), Linear(r, d, bias=False))``
  (ALBERT style; only with ``include_embeddings``). With ``embedding_weighting:
  frequency`` the rank-``r`` basis is fitted to the rows the training texts use, each
  weighted by ``sqrt(count + 1)`` (the SVD of the weighted table: its error is the
  one a token stream sees), and every row is then projected onto it; ``uniform``
  treats all rows alike (the plain SVD of the table).

The rank comes from ``rank`` (the same for every layer), ``energy`` (the fraction
of squared singular values kept) or ``ratio`` (the parameters kept per layer).
A layer where rank ``r`` would not save parameters (and so FLOPs: both scale as
``r * (rows + cols)`` against ``rows * cols``) is left as it is and listed in
``report["skipped"]``.

Example:
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    >>> small, report = factorize(net, LowRankConfig(ratio=0.5, epochs=0))
    >>> [(r["name"], r["rank"]) for r in report["layers"]]
    [('0', 16), ('2', 4)]
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import nn

from edgesmith.compress.auto import AutoConfig
from edgesmith.compress.recovery import KDRecovery, model_sizes
from edgesmith.compress.selection import LayerSelection, select
from edgesmith.compress.stage import in_stage, register_stage
from edgesmith.compress.train import TrainingKeys
from edgesmith.conf.base import RecipeError, at_least, between
from edgesmith.conf.stage import StageConfig
from edgesmith.errors import StageError
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["LowRankConfig", "factorize", "rebuild_factorized"]


@dataclass
class LowRankConfig(StageConfig, TrainingKeys):
    """Low-rank factorization settings: exactly one of ``rank``, ``energy``, ``ratio``,
    or ``auto`` (:mod:`edgesmith.compress.auto`): a rank per layer chosen from a
    sensitivity table under a global parameter or FLOP budget."""

    kind = "lowrank"
    rank: int | None = field(default=None, metadata=at_least(1))
    energy: float | None = field(default=None, metadata=between(0, 1, lo_open=True))
    ratio: float | None = field(default=None, metadata=between(0, 1, lo_open=True, hi_open=True))
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    include_embeddings: bool = False
    embedding_weighting: Literal["uniform", "frequency"] = "uniform"
    epochs: int = field(default=1, metadata=at_least(0))
    lr: float = field(default=1e-3, metadata=at_least(0, open_=True))
    batch_size: int = field(default=64, metadata=at_least(1))
    temperature: float = field(default=4.0, metadata=at_least(0, open_=True))
    alpha: float = field(default=0.9, metadata=between(0, 1))
    # classifiers: KD recovery on augmented batches, the reference run on them (as distill's)
    augment: list[Literal["hflip", "shift"]] = field(default_factory=list)
    val_fraction: float = field(default=0.05, metadata=between(0, 0.5))
    auto: AutoConfig | None = None

    def validate(self) -> None:
        given = [k for k in ("rank", "energy", "ratio") if getattr(self, k) is not None]
        if self.auto is not None and given:
            raise RecipeError(given[0], "auto chooses each layer's rank; remove rank, energy and ratio "
                                        "(candidates go in auto.ratios / auto.ranks)")
        if self.auto is None and len(given) != 1:
            got = f"got {' and '.join(given)}" if given else "got none"
            raise RecipeError(given[1] if len(given) > 1 else "rank", f"give exactly one of rank, energy or ratio ({got})")
        if "Embedding" in self.op_types and not self.include_embeddings:
            raise RecipeError("op_types", "lists Embedding; set include_embeddings: true to factorize embeddings")
        self.selection  # noqa: B018 - validates include/exclude/op_types

    @property
    def selection(self) -> LayerSelection:
        return LayerSelection(include=self.include, exclude=self.exclude, op_types=self.op_types)

    @property
    def default_types(self) -> list[str]:
        return ["Linear", "Conv2d"] + (["Embedding"] if self.include_embeddings else [])


def factorize(
    model: nn.Module,
    config: LowRankConfig,
    task: Task | None = None,
    train: TensorSet | None = None,
    val: TensorSet | None = None,
    teacher: nn.Module | None = None,
    *,
    device: str = "cpu",
    seed: int = 0,
    cache_dir: Path | None = None,
) -> tuple[nn.Module, dict[str, Any]]:
    """Factorize the selected layers of a copy of ``model``; returns ``(model, report)``.

    ``report["layers"]`` lists each factorized layer's rank, parameters before and
    after and relative reconstruction error ``||W - W_r||_F / ||W||_F``;
    ``report["skipped"]`` the layers left dense and why. Recovery fine-tuning
    (``epochs > 0`` with ``train``) distils from ``teacher`` (default: ``model``),
    its targets read from ``cache_dir`` when it holds them.

    Raises:
        RecipeError: a rank above a selected layer's maximum, or a selection matching nothing.
    """
    out = copy.deepcopy(model).to(device).eval()
    before = model_sizes(out)
    auto = None
    if config.auto is not None:
        from edgesmith.compress.auto import plan_lowrank

        if task is None:
            raise StageError(f"{config.name or 'lowrank'}: auto mode needs the task and held-out data to score layers")
        auto = plan_lowrank(out, config, task, val, teacher, device)
    done, skipped = [], []
    for name, m in select(out, config.selection, config.default_types):
        if auto is not None and name not in auto["ranks"]:
            continue
        rows = None
        if isinstance(m, nn.Embedding) and config.embedding_weighting == "frequency":
            rows = _token_weights(m, train, name)
        entry = _factorize_layer(out, name, m, config, None if auto is None else auto["ranks"][name], rows)
        (done if "rank" in entry else skipped).append(entry)
    rec = None
    if config.epochs > 0 and train is not None and done:
        reference = teacher if teacher is not None else copy.deepcopy(model).to(device)
        rec = KDRecovery(reference, config, task, train, val, device=device, seed=seed,
                         cache_dir=cache_dir)(out)
    report = {"layers": done, "skipped": skipped, "recovery": rec, "size_before": before, "size_after": model_sizes(out)}
    if auto is not None:
        from edgesmith.compress.auto import budget_used

        example = tuple(t.to(device) for t in task.prepare(val.take(slice(0, 1)).inputs))
        auto["after"] = budget_used(out, config.auto.budget, example)
        auto["met"] = auto["after"] <= auto["allowed"]
        if not auto["met"]:
            raise StageError(f"{config.name or 'lowrank'}: auto plan left {auto['after']} {config.auto.budget}, "
                             f"above the budget of {auto['allowed']}; please report this")
        report["auto"] = auto
    return out.eval(), report


def rebuild_factorized(model: nn.Module, report: dict[str, Any]) -> nn.Module:
    """A copy of ``model`` (the stage's input) with the factorized structure from
    ``report`` (ranks per layer), for the factorized weights to be loaded into."""
    out = copy.deepcopy(model)
    for entry in report["layers"]:
        out.set_submodule(entry["name"], _factored_shell(out.get_submodule(entry["name"]), entry["rank"]))
    return out


def _matrix(m: nn.Module) -> torch.Tensor:
    """The layer's weight as the 2-D matrix that gets factorized."""
    w = m.weight.detach().float()
    return w.reshape(w.shape[0], -1)


def _choose_rank(config: LowRankConfig, s: torch.Tensor, rows: int, cols: int, name: str) -> int:
    max_rank = min(rows, cols)
    if config.rank is not None:
        if config.rank > max_rank:
            raise RecipeError("rank", f"{config.rank} is above the maximum rank {max_rank} of layer '{name}' "
                                      f"({rows} x {cols}); use a rank <= {max_rank} or exclude the layer")
        return config.rank
    if config.energy is not None:
        share = (s**2).cumsum(0) / (s**2).sum().clamp(min=1e-30)
        return min(max_rank, int((share < config.energy - 1e-7).sum()) + 1)
    return max(1, min(max_rank, int(config.ratio * rows * cols / (rows + cols))))


def _token_weights(m: nn.Embedding, train: TensorSet | None, name: str) -> torch.Tensor:
    """``sqrt(count + 1)`` per row of ``m``: how often the training texts use each token."""
    if train is None or not len(train) or train.inputs[0].is_floating_point():
        raise RecipeError("embedding_weighting", f"'frequency' counts the token ids of the training texts; '{name}' "
                                                 "gets none (use embedding_weighting: uniform)")
    ids = train.inputs[0]
    if len(train.inputs) > 1:
        ids = ids[train.inputs[1].bool()]
    counts = torch.bincount(ids.reshape(-1).long(), minlength=m.num_embeddings)[: m.num_embeddings]
    return (counts.double() + 1).sqrt()


def _factorize_layer(model: nn.Module, name: str, m: nn.Module, config: LowRankConfig,
                     rank: int | None = None, row_weights: torch.Tensor | None = None) -> dict[str, Any]:
    if isinstance(m, nn.Conv2d) and m.groups != 1:
        return {"name": name, "reason": f"grouped convolution (groups={m.groups})"}
    if not isinstance(m, (nn.Linear, nn.Conv2d, nn.Embedding)):
        raise RecipeError("op_types", f"cannot factorize '{name}', a {type(m).__name__}; supported: Linear, Conv2d, Embedding")
    w = _matrix(m)
    rows, cols = w.shape
    if row_weights is None:
        u, s, vh = torch.linalg.svd(w, full_matrices=False)
    else:  # the basis of the weighted rows; the rank (energy, ratio) is chosen on their spectrum too
        _, s, vh = torch.linalg.svd(w.double() * row_weights[:, None], full_matrices=False)
        s, vh = s.float(), vh.float()
    r = rank if rank is not None else _choose_rank(config, s, rows, cols, name)
    dense, factored = rows * cols, r * (rows + cols)
    if factored >= dense:
        return {"name": name, "reason": f"rank {r} would keep {factored} weights, dense has {dense}: no saving"}
    if row_weights is None:
        a, b = u[:, :r] * s[:r].sqrt(), s[:r].sqrt()[:, None] * vh[:r]  # w ~= a @ b
    else:
        a, b = w @ vh[:r].T, vh[:r]  # every row projected onto the weighted basis
    new = _factored_shell(m, r)
    with torch.no_grad():
        first, second = new[0], new[1]
        if isinstance(m, nn.Embedding):
            first.weight.copy_(a)
            second.weight.copy_(b.T)
        else:
            first.weight.copy_(b.reshape(first.weight.shape))
            second.weight.copy_(a.reshape(second.weight.shape))
            if m.bias is not None:
                second.bias.copy_(m.bias)
    model.set_submodule(name, new)
    err = float(torch.linalg.matrix_norm(w - a @ b) / torch.linalg.matrix_norm(w).clamp(min=1e-30))
    return {"name": name, "type": type(m).__name__, "shape": list(m.weight.shape), "rank": r, "max_rank": min(rows, cols),
            "weights_before": dense, "weights_after": factored, "rel_error": err,
            "energy_kept": float((s[:r] ** 2).sum() / (s**2).sum().clamp(min=1e-30))}


def _factored_shell(m: nn.Module, r: int) -> nn.Sequential:
    """The two-layer replacement of ``m`` at rank ``r`` (weights not yet set)."""
    kw = {"device": m.weight.device, "dtype": m.weight.dtype}
    if isinstance(m, nn.Embedding):
        return nn.Sequential(nn.Embedding(m.num_embeddings, r, padding_idx=m.padding_idx, **kw),
                             nn.Linear(r, m.embedding_dim, bias=False, **kw))
    if isinstance(m, nn.Conv2d):
        return nn.Sequential(
            nn.Conv2d(m.in_channels, r, m.kernel_size, m.stride, m.padding, m.dilation, bias=False,
                      padding_mode=m.padding_mode, **kw),
            nn.Conv2d(r, m.out_channels, 1, bias=m.bias is not None, **kw),
        )
    if isinstance(m, nn.Linear):
        return nn.Sequential(nn.Linear(m.in_features, r, bias=False, **kw),
                             nn.Linear(r, m.out_features, bias=m.bias is not None, **kw))
    raise RecipeError("op_types", f"cannot factorize a {type(m).__name__}")


# --------------------------------------------------------- the recipe stage
@register_stage(LowRankConfig, skeleton=lambda ctx, prev_model, cfg, info: rebuild_factorized(prev_model, info))
def run_lowrank_stage(ctx, cfg: LowRankConfig, model, stage_dir):
    train, val = ctx.train_val(cfg.val_fraction)
    return in_stage(ctx, cfg, factorize, model, cfg, ctx.task, train, val, ctx.teacher,
                    device=ctx.device, seed=ctx.recipe.seed, cache_dir=ctx.targets_cache)
