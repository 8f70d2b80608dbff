"""The one training loop every technique uses (teacher training, distillation,
later recovery fine-tuning): AdamW, an LR schedule, validation-based early
stopping, best-checkpoint saving, a NaN guard and a progress bar.

Under ``torchrun`` (a process group initialised, see :mod:`edgesmith.pipeline.distributed`)
the loop is data-parallel: every rank draws the same shuffled global batch of
``batch_size`` and trains on its slice of it inside DistributedDataParallel, each
slice's loss weighted by its share, so the averaged gradient is the global batch's
mean loss gradient, as in one process (BatchNorm statistics are per slice). Only
rank 0 writes checkpoints."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from torch import nn

from edgesmith.conf.base import LATER, between
from edgesmith.errors import StageError
from edgesmith.models.io import clone_state, save_weights
from edgesmith.models.tasks import Task, TensorSet
from edgesmith.progress import progress_bar

LossFn = Callable[[nn.Module, TensorSet], torch.Tensor]
ValidateFn = Callable[[nn.Module], float]


@dataclass
class FitResult:
    best_score: float | None
    best_epoch: int
    epochs_run: int
    history: list[dict] = field(default_factory=list)
    seconds: float = 0.0
    samples_per_s: float = 0.0  # training examples (texts, images) per second, validation included
    precision: str = "fp32"  # what the forward passes ran in: fp32, or bf16 autocast


# the training stages' ``precision`` key: the forward passes in fp32, under bf16 autocast, or auto
# (bf16 where the hardware has it natively)
Precision = Literal["fp32", "bf16", "auto"]


@dataclass
class TrainingKeys:
    """The keys every stage that trains (``distill``, ``prune``, ``lowrank``) passes to :func:`fit`
    beside its own: ``precision`` (:data:`Precision`) and ``dropout`` (the rate of every dropout
    layer while it trains; None keeps the model's own)."""

    precision: Precision = "fp32"
    dropout: float | None = field(default=None, metadata={**between(0, 1, hi_open=True), **LATER})


def resolve_precision(precision: str, device: str = "cpu") -> str:
    """``auto`` -> ``bf16`` where the hardware multiplies bfloat16 natively (a CUDA GPU
    that supports it; a CPU with AMX or AVX512-BF16, where oneDNN's bf16 matmuls run
    1.6x faster than fp32 for a MiniLM student on 2 Xeon cores), else ``fp32``."""
    if precision != "auto":
        return precision
    if str(device).startswith("cuda"):
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    cpu = torch.cpu
    native = getattr(cpu, "_is_amx_tile_supported", lambda: False)() or getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
    return "bf16" if native else "fp32"


def make_scheduler(opt: torch.optim.Optimizer, schedule: str, lr: float, total_steps: int):
    if schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(total_steps, 1), pct_start=0.2)
    if schedule == "cosine":
        warm = max(1, total_steps // 20)
        return torch.optim.lr_scheduler.LambdaLR(
            opt,
            lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, total_steps) / max(total_steps, 1))),
        )
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1.0)


def world() -> tuple[int, int]:
    """(rank, world size) of the initialised process group, else (0, 1)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class _LossModule(nn.Module):
    """The model and its loss as one module: DDP's forward (which arms the gradient
    all-reduce) then runs any loss, also one calling other methods of the model."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model, self.loss_fn = model, loss_fn

    def forward(self, batch: TensorSet, weight: float) -> torch.Tensor:
        return self.loss_fn(self.model, batch) * weight


def _shard(batch: TensorSet, rank: int, size: int) -> tuple[TensorSet, float]:
    """This rank's slice of a global batch and its loss weight (its share times the world size)."""
    idx = torch.arange(len(batch)).tensor_split(size)[rank]
    if len(idx) == 0:  # fewer samples than ranks: join the all-reduce with a weight of 0
        return batch.take(torch.arange(1)), 0.0
    return batch.take(idx), len(idx) * size / len(batch)


def fit(
    model: nn.Module,
    task: Task,
    train: TensorSet,
    loss_fn: LossFn,
    *,
    epochs: int,
    lr: float,
    batch_size: int,
    weight_decay: float = 0.0,
    schedule: str = "onecycle",
    patience: int | None = None,
    validate: ValidateFn | None = None,
    checkpoint_dir: Path | None = None,
    device: str = "cpu",
    seed: int = 0,
    desc: str = "train",
    precision: str = "fp32",
    dropout: float | None = None,
) -> FitResult:
    """Train ``model`` in place; on return it holds the best-validated weights.

    ``precision`` ``bf16`` runs the forward passes (and so the backward matmuls) under
    bfloat16 autocast, the weights and optimizer state staying fp32; ``auto`` picks it
    where the hardware has native bf16 (:func:`resolve_precision`). ``dropout`` sets the rate
    of every dropout layer while it trains (restored on return; None keeps the model's own).

    A NaN/inf loss stops training with a :class:`StageError`; the best weights so
    far are restored and, with ``checkpoint_dir``, already saved there.
    """
    torch.manual_seed(seed)  # dropout and friends: a re-run gives the same weights
    model.to(device).train()
    rank, size = world()
    if size > 1:
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        ddp = DistributedDataParallel(_LossModule(model, loss_fn), find_unused_parameters=True)
    params = [p for p in model.parameters() if p.requires_grad]
    # the fused kernel: one pass over each tensor instead of a dozen. On 2 Xeon cores, for a 4-layer
    # MiniLM student with its full token table (19 M parameters), the step takes 13 ms instead of 77 ms
    # (forward and backward of 32 texts: 100 ms); the default recipe's student trains 1.28x faster at
    # batch 32, 1.15x at 64 (same process, alternating)
    fused = all(p.dtype.is_floating_point and p.device.type in ("cpu", "cuda") for p in params)
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay, fused=fused or None)
    steps_per_epoch = math.ceil(len(train) / batch_size)
    sched = make_scheduler(opt, schedule, lr, steps_per_epoch * epochs)
    gen = torch.Generator().manual_seed(seed)
    best_score, best_epoch, best_state, bad_epochs = None, -1, None, 0
    result = FitResult(None, -1, 0, precision=resolve_precision(precision, device))
    autocast = torch.autocast(str(device).split(":")[0], dtype=torch.bfloat16, enabled=result.precision == "bf16")
    t0, seen = time.perf_counter(), 0
    unit = "texts" if task.kind == "embedding" else "samples"  # the bar's ETA column gives the time left
    with progress_bar() as bar, dropout_rate(model, dropout):
        if result.precision == "bf16":
            desc = f"{desc} (bf16)"
        job = bar.add_task(desc, total=steps_per_epoch * epochs)
        for epoch in range(epochs):
            running, n = 0.0, 0
            for step, batch in enumerate(_epoch_batches(task, train, batch_size, gen)):
                batch = TensorSet(task.prepare(batch.inputs), batch.labels, aux=batch.aux).to(device)
                with autocast:
                    if size > 1:
                        part, weight = _shard(batch, rank, size)
                        loss = ddp(part, weight)
                    else:
                        loss = loss_fn(model, batch)
                loss = loss.float()
                mean = loss
                if size > 1:
                    mean = loss.detach().clone()  # the global batch's mean loss, the same on every rank
                    dist.all_reduce(mean)
                    mean /= size
                if not torch.isfinite(mean):
                    if best_state is not None:
                        model.load_state_dict(best_state)
                    kept = f"; best weights (epoch {best_epoch + 1}) kept in {checkpoint_dir}" if checkpoint_dir and best_state else ""
                    raise StageError(
                        f"{desc}: loss became {mean.item()} at epoch {epoch + 1} step {step + 1}{kept}; "
                        f"lower the learning rate (lr={lr})"
                    )
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 5.0)
                opt.step()
                sched.step()
                running += mean.item() * len(batch)
                n += len(batch)
                seen += len(batch)
                rate = seen / max(time.perf_counter() - t0, 1e-9)
                bar.update(job, advance=1, description=f"{desc} ep {epoch + 1}/{epochs} loss {running / n:.4f} "
                                                       f"{rate:.0f} {unit}/s")
            record = {"epoch": epoch + 1, "loss": running / max(n, 1)}
            score = None
            if validate is not None:
                score = validate(model)
                model.train()
                record["val"] = score
            result.history.append(record)
            result.epochs_run = epoch + 1
            if score is None or best_score is None or score > best_score:
                best_score, best_epoch, bad_epochs = score, epoch, 0
                best_state = clone_state(model)
                if checkpoint_dir is not None and rank == 0:
                    save_weights(model, Path(checkpoint_dir) / "best.safetensors")
            else:
                bad_epochs += 1
                if patience is not None and bad_epochs >= patience:
                    bar.update(job, completed=steps_per_epoch * epochs)
                    break
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.best_score, result.best_epoch, result.seconds = best_score, best_epoch + 1, time.perf_counter() - t0
    result.samples_per_s = seen / max(result.seconds, 1e-9)
    return result


@contextmanager
def dropout_rate(model: nn.Module, p: float | None):
    """Every dropout layer of ``model`` at rate ``p`` inside the block (None: unchanged).
    A distilled student's targets carry no noise: on 2 Xeon cores, dropout was 22% of a
    MiniLM student's bf16 training step, and rate 0 trains it 1.33x faster."""
    layers = [m for m in model.modules() if isinstance(m, nn.modules.dropout._DropoutNd)] if p is not None else []
    rates = [m.p for m in layers]
    for m in layers:
        m.p = p
    try:
        yield
    finally:
        for m, r in zip(layers, rates, strict=True):
            m.p = r


def _epoch_batches(task: Task, data: TensorSet, batch_size: int, gen: torch.Generator):
    """Shuffled batches; for variable-length inputs, batches of similar length
    (bucketing) in shuffled order, which cuts padding work by about half."""
    order = task.length_order(data)
    if order is None:
        yield from data.batches(batch_size, shuffle=True, generator=gen)
        return
    # shuffle within a window of 50 batches, then sort each window by length
    perm = torch.randperm(len(data), generator=gen)
    lengths = data.inputs[1].sum(1)
    window = batch_size * 50
    chunks = []
    for i in range(0, len(perm), window):
        w = perm[i : i + window]
        w = w[torch.argsort(lengths[w], stable=True)]
        chunks += [w[j : j + batch_size] for j in range(0, len(w), batch_size)]
    for k in torch.randperm(len(chunks), generator=gen).tolist():
        yield data.take(chunks[k])


def augment_images(x: torch.Tensor, ops: list[str], gen: torch.Generator) -> torch.Tensor:
    """Cheap batch augmentation: random horizontal flips, random shifts of up to 2 px."""
    if "hflip" in ops:
        flip = torch.rand(len(x), generator=gen) < 0.5
        x = torch.where(flip.view(-1, 1, 1, 1).to(x.device), x.flip(-1), x)
    if "shift" in ops:
        dx, dy = (int(v) for v in torch.randint(-2, 3, (2,), generator=gen))
        x = torch.roll(x, shifts=(dy, dx), dims=(-2, -1))
    return x


def train_classifier(model: nn.Module, ctx, cfg, checkpoint_dir: Path | None = None) -> FitResult:
    """Supervised training of a classifier on the run's train split (a teacher's
    ``train:`` block): cross-entropy with label smoothing, augmentation, and
    early stopping on held-out accuracy."""
    train, val = ctx.train_val(cfg.val_fraction)
    gen = torch.Generator().manual_seed(ctx.recipe.seed + 1)

    def loss_fn(m: nn.Module, batch: TensorSet) -> torch.Tensor:
        x = augment_images(batch.inputs[0], cfg.augment, gen) if cfg.augment else batch.inputs[0]
        return nn.functional.cross_entropy(m(x), batch.labels, label_smoothing=cfg.label_smoothing)

    def validate(m: nn.Module) -> float:
        return ctx.task.metrics(ctx.task.predict(m, val, device=ctx.device), None, val.labels)["accuracy"]

    return fit(model, ctx.task, train, loss_fn, epochs=cfg.epochs, lr=cfg.lr, batch_size=cfg.batch_size,
               weight_decay=cfg.weight_decay, schedule=cfg.schedule, patience=cfg.patience,
               validate=validate if val is not None else None, checkpoint_dir=checkpoint_dir,
               device=ctx.device, seed=ctx.recipe.seed, desc="teacher")
