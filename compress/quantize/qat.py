"""Quantization-aware training (QAT) with PyTorch 2 export quantization (pt2e):
the model is captured with ``torch.export``, its BatchNorms are folded into the
convolutions, fake-quant nodes are inserted by ``XNNPACKQuantizer(is_qat=True)``
(int8 symmetric weights, per channel by default, int8 activations), the graph is
fine-tuned with knowledge distillation from the teacher, and ``convert_pt2e``
turns it into a quantize/dequantize graph that exports to ONNX QDQ.

The input model is left untouched; the result is a new ``GraphModule``.

BatchNorm is folded before QAT (its statistics are frozen, as most QAT recipes do
for the last epochs anyway): torchao's QAT conv-bn fusion re-traces ~100 patterns
with ``torch.export`` on convert, about 25 s here even for a two-conv net.

Example:
    >>> q, fit = qat(model, teacher, QatConfig(epochs=2), task, train, val,
    ...              (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},))  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import types
import warnings
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from edgesmith.compress.distill import embedding_kd_loss, logit_kd_loss
from edgesmith.compress.selection import LayerSelection, select
from edgesmith.compress.train import FitResult, fit
from edgesmith.conf.base import RecipeError, at_least, between
from edgesmith.conf.stage import StageConfig
from edgesmith.errors import StageError
from edgesmith.models.tasks import Task, TensorSet

__all__ = ["QatConfig", "prepare_qat", "qat"]

QAT_OP_TYPES = ("Conv1d", "Conv2d", "Linear")


@dataclass
class QatConfig(StageConfig):
    """Fine-tune the incoming model with int8 fake quantization, then ship it as int8 QDQ.

    Attributes:
        epochs, lr, batch_size, weight_decay, schedule, patience: the fine-tuning run
            (a small ``lr``: QAT starts from trained weights).
        temperature, alpha: logit KD from the teacher (``alpha`` on the KD term,
            ``1 - alpha`` on cross-entropy with the labels); embedding models use
            cosine + MSE to the teacher's embeddings.
        per_channel: per-output-channel weight scales (False: one scale per tensor).
        freeze_observers_epoch: from this epoch on the quantization ranges stop
            moving and only the weights train (None: ranges follow to the end).
        include, exclude, op_types: which ``Conv1d``/``Conv2d``/``Linear`` modules
            (``named_modules`` fnmatch patterns) are quantized; the others stay float.
        val_fraction: share of the train split held out to pick the best epoch.
        sqnr_floor: output SQNR (dB) of the int8 file vs the fp32 parent on the eval
            split below which the stage fails.
    """

    kind = "qat"
    epochs: int = field(default=3, metadata=at_least(1))
    lr: float = field(default=1e-4, metadata=at_least(0, open_=True))
    batch_size: int = field(default=64, metadata=at_least(1))
    weight_decay: float = field(default=0.0, metadata=at_least(0))
    schedule: Literal["onecycle", "cosine", "constant"] = "cosine"
    patience: int | None = field(default=None, metadata=at_least(1))
    temperature: float = field(default=4.0, metadata=at_least(0, open_=True))
    alpha: float = field(default=0.9, metadata=between(0, 1))
    per_channel: bool = True
    freeze_observers_epoch: int | None = field(default=None, metadata=at_least(1))
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    op_types: list[str] = field(default_factory=list)
    val_fraction: float = field(default=0.1, metadata=between(0, 0.5))
    sqnr_floor: float = 10.0

    def validate(self) -> None:
        if self.freeze_observers_epoch is not None and self.freeze_observers_epoch > self.epochs:
            raise RecipeError("freeze_observers_epoch", f"{self.freeze_observers_epoch} is after the last epoch "
                              f"({self.epochs}); set it to at most epochs, or null")
        bad = [t for t in self.op_types if t not in QAT_OP_TYPES]
        if bad:
            raise RecipeError("op_types", f"{bad} cannot be quantized by QAT; choose from {list(QAT_OP_TYPES)}")
        LayerSelection(include=self.include, exclude=self.exclude, op_types=self.op_types)


def _pt2e() -> tuple[Any, ...]:
    try:
        from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import XNNPACKQuantizer
        from torchao.quantization.pt2e import allow_exported_model_train_eval
        from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_qat_pt2e
    except ImportError as e:
        raise StageError(f"qat: needs torchao and executorch ({e.name} is missing); "
                         "pip install 'edgesmith[mobile]'") from None
    return XNNPACKQuantizer, allow_exported_model_train_eval, prepare_qat_pt2e, convert_pt2e


def prepare_qat(model: nn.Module, config: QatConfig, example_inputs: tuple[torch.Tensor, ...],
                dynamic_shapes: Any = None) -> torch.fx.GraphModule:
    """A copy of ``model`` (eval-mode BatchNorm folded) with fake quantization inserted,
    ready to train on the CPU; ``model`` itself is not changed.

    Raises:
        RecipeError: (key ``include``) when the selection matches no layer.
        StageError: when ``torch.export`` cannot capture the model.
    """
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

    from edgesmith.compress.quantize.backend import get_backend
    from edgesmith.compress.quantize.presets import preset

    quantizer_cls, allow_train_eval, prepare_qat_pt2e, _ = _pt2e()
    model = copy.deepcopy(model).cpu().eval()  # the export shares parameters with the model it captures
    selection = LayerSelection(include=config.include, exclude=config.exclude, op_types=config.op_types)
    chosen = {n for n, _ in select(model, selection, QAT_OP_TYPES)}
    # the same spec as the mobile exports' int8 (preset "xnnpack"), with fake quantization for training
    qconfig = get_backend("pt2e").qconfig(preset("xnnpack", per_channel=config.per_channel), "xnnpack", qat=True)
    quantizer = quantizer_cls()
    every = {n for n, m in model.named_modules() if n and type(m).__name__ in QAT_OP_TYPES}
    if chosen == every:
        quantizer.set_global(qconfig)
    else:  # XNNPACKQuantizer cannot leave a module out of a global config: name the chosen ones
        for name in sorted(chosen):
            quantizer.set_module_name(name, qconfig)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            graph = torch.export.export(model, tuple(example_inputs), dynamic_shapes=dynamic_shapes).module()
    except Exception as e:  # noqa: BLE001 - torch.export raises many error kinds
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise StageError(f"qat: torch.export of {type(model).__name__} failed: {first}") from None
    _fuse_conv_bn_(graph)  # fold BN with its running statistics (see the module docstring)
    graph.recompile()
    prepared = prepare_qat_pt2e(graph, quantizer)
    allow_train_eval(prepared)  # .train()/.eval() switch dropout in the graph instead of raising
    return prepared


def qat(
    model: nn.Module,
    teacher: nn.Module,
    config: QatConfig,
    task: Task,
    train: TensorSet,
    val: TensorSet | None,
    example_inputs: tuple[torch.Tensor, ...],
    *,
    dynamic_shapes: Any = None,
    seed: int = 0,
) -> tuple[torch.fx.GraphModule, FitResult]:
    """Fine-tune a fake-quantized copy of ``model`` with KD from ``teacher`` on
    ``train`` (best epoch on ``val`` by agreement with the teacher) and convert it.

    Returns:
        The converted pt2e model (quantize/dequantize ops around int8 weights and
        activations; export it with ``torch.onnx.export(..., dynamo=True)``) and the fit record.
    """
    *_, convert_pt2e = _pt2e()
    device = "cpu"  # the fake-quant graph is prepared and converted on the CPU
    prepared = prepare_qat(model, config, example_inputs, dynamic_shapes)
    teacher = teacher.to(device).eval()
    cached = TensorSet(train.inputs, train.labels, aux=task.predict(teacher, train, device=device))
    logits = task.kind == "classification"

    def loss_fn(m: nn.Module, batch: TensorSet) -> torch.Tensor:
        out = m(*batch.inputs)
        if logits:
            return logit_kd_loss(out, batch.aux, batch.labels, config.temperature, config.alpha)
        return embedding_kd_loss(out, batch.aux, 1.0, 1.0)

    val_teacher = task.predict(teacher, val, device=device) if val is not None and len(val) else None
    epoch = [0]

    def validate(m: nn.Module) -> float | None:
        epoch[0] += 1
        _observers(m, False)  # held-out data must not move the ranges
        score = None  # no held-out split: the last epoch is kept
        if val_teacher is not None:
            metrics = task.metrics(task.predict(m, val, device=device), val_teacher, val.labels)
            score = metrics.get("teacher_agreement", metrics.get("cosine_to_teacher", 0.0))
        frozen = config.freeze_observers_epoch is not None and epoch[0] + 1 >= config.freeze_observers_epoch
        _observers(m, not frozen)
        return score

    if config.freeze_observers_epoch == 1:
        _observers(prepared, False)
    result = fit(prepared, task, cached, loss_fn, epochs=config.epochs, lr=config.lr, batch_size=config.batch_size,
                 weight_decay=config.weight_decay, schedule=config.schedule, patience=config.patience,
                 validate=validate, device=device, seed=seed, desc=config.name or "qat")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        converted = convert_pt2e(prepared)
    _inference_only(converted)
    return converted, result


def _inference_only(graph: torch.fx.GraphModule) -> None:
    """Put the converted graph in eval form (dropout off) for good; its ``train()`` and
    ``eval()`` then return it unchanged, like a module's, so exporters can call them
    (an exported graph's own raise, and torchao's replacements return None)."""
    from torchao.quantization.pt2e import move_exported_model_to_eval

    move_exported_model_to_eval(graph)
    graph.train = types.MethodType(lambda self, mode=True: self, graph)  # type: ignore[method-assign]
    graph.eval = types.MethodType(lambda self: self, graph)  # type: ignore[method-assign]


def _observers(model: nn.Module, on: bool) -> None:
    from torchao.quantization.pt2e import disable_observer, enable_observer

    model.apply(enable_observer if on else disable_observer)
