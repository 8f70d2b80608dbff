"""Post-training int8 quantization in PT2E form, shared by the mobile exporters.

A ``torch.export`` graph gets the backend's quantizer annotations (XNNPACK's for
ExecuTorch, litert-torch's for TFLite), observes activation ranges on real
calibration inputs, and comes back with quantize/dequantize pairs that the
backend's lowering turns into int8 kernels.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch

from edgesmith.errors import ExportError


def calibration_batches(calibration: Iterable[tuple[torch.Tensor, ...]] | None, fmt: str
                        ) -> list[tuple[torch.Tensor, ...]]:
    """The calibration input tuples, or a one-line ExportError when there are none."""
    batches = [tuple(b) for b in calibration] if calibration is not None else []
    if not batches:
        raise ExportError(f"{fmt}: precision 'int8' needs calibration inputs (calibration=[input tuples]; the "
                          f"pipeline passes its calibration split); pass them or choose precision fp32")
    return batches


def quantize_pt2e(module: torch.fx.GraphModule, quantizer, batches: list[tuple[torch.Tensor, ...]],
                  fit: Callable[[tuple[torch.Tensor, ...]], list[tuple | dict]] | None = None,
                  fold_quantize: bool = True) -> torch.fx.GraphModule:
    """Annotate ``module`` (``ExportedProgram.module()``), calibrate it on ``batches``
    (each turned by ``fit``, when given, into the positional tuples or keyword dicts
    the module was exported with, e.g. at a static batch) and convert it.

    Returns:
        The quantized graph module, in eval mode (BatchNorm and dropout as exported).
    """
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    # eval form first: the rewrite replaces dropout nodes, and a quantizer annotation that
    # names a replaced node as its input loses its choose_qparams (dynamic int8 then fails)
    # (once: each call replaces the dropout nodes again)
    prepared = prepare_pt2e(move_exported_model_to_eval(module), quantizer)
    with torch.no_grad():
        for batch in batches:
            for inputs in fit(batch) if fit else [batch]:
                prepared(**inputs) if isinstance(inputs, dict) else prepared(*inputs)
    return move_exported_model_to_eval(convert_pt2e(prepared, fold_quantize=fold_quantize))
