"""FLOPs of Conv2d / Linear layers, counted with forward hooks (no fvcore).

A layer's multiply-accumulates are ``weight.numel() * positions``, where
``positions`` is the number of output positions per sample (``h * w`` for a
convolution, tokens for a Linear on a sequence, 1 for a Linear on a vector).
FLOPs are ``2 * MACs``. Other ops (BatchNorm, activations, pooling, attention's
matmuls between activations) are not counted: for the CNNs and MLPs compressed
here they are a few percent of the total.

Example:
    >>> import torch
    >>> from torch import nn
    >>> net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    >>> count_flops(net, (torch.zeros(1, 1, 8, 8),)) == 2 * (36 * 64 + 256 * 10)
    True
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["COUNTED", "layer_positions", "layer_macs", "count_flops"]

COUNTED = (nn.Conv2d, nn.Linear)


def _channels(m: nn.Module, out: torch.Tensor) -> int:
    if isinstance(m, nn.Conv2d):
        return int(out.shape[1])
    return int(out.shape[-1])


@torch.no_grad()
def layer_positions(model: nn.Module, inputs: Sequence[torch.Tensor],
                    types: tuple[type, ...] = (*COUNTED, nn.Embedding)) -> dict[str, int]:
    """Output positions per sample of every module of ``types`` on ``inputs``
    (summed over calls when a module runs more than once); modules not called are absent."""
    seen: dict[str, int] = {}

    def hook(mod, _inp, out, name):
        if isinstance(out, torch.Tensor) and out.dim() >= 1 and out.shape[0]:
            seen[name] = seen.get(name, 0) + out.numel() // (_channels(mod, out) * int(out.shape[0]))

    hooks = [m.register_forward_hook(lambda mod, i, o, n=n: hook(mod, i, o, n))
             for n, m in model.named_modules() if isinstance(m, types)]
    was_training = model.training
    try:
        model.eval()(*inputs)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return seen


def layer_macs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> dict[str, int]:
    """Multiply-accumulates per sample of every Conv2d / Linear called on ``inputs``."""
    positions = layer_positions(model, inputs, COUNTED)
    return {n: model.get_submodule(n).weight.numel() * p for n, p in positions.items()}


def count_flops(model: nn.Module, inputs: Sequence[torch.Tensor]) -> int:
    """FLOPs (``2 * MACs``) of the Conv2d / Linear layers for one sample shaped like ``inputs``."""
    return 2 * sum(layer_macs(model, inputs).values())
