"""Weights on disk: safetensors, written atomically, read without pickle."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from edgesmith import atomic
from edgesmith.errors import EdgesmithError


def state_bytes(model: nn.Module) -> bytes:
    from safetensors.torch import save

    seen: dict[int, str] = {}
    state = {}
    for k, v in model.state_dict().items():
        ptr = v.data_ptr()
        # safetensors refuses shared storage; tied tensors are stored once per key
        state[k] = v.detach().cpu().clone().contiguous() if ptr in seen else v.detach().cpu().contiguous()
        seen.setdefault(ptr, k)
    return save(state)


def save_weights(model: nn.Module, path: str | Path) -> Path:
    return atomic.write_bytes(path, state_bytes(model))


def load_weights(model: nn.Module, path: str | Path, strict: bool = True) -> nn.Module:
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except Exception as e:  # noqa: BLE001 - safetensors raises its own error types
        raise EdgesmithError(f"{path}: cannot read weights ({str(e).splitlines()[0]})") from None
    missing, unexpected = model.load_state_dict(state, strict=False)
    if strict and (missing or unexpected):
        what = f"missing {missing[0]}" if missing else f"unexpected {unexpected[0]}"
        raise EdgesmithError(f"{path}: weights do not fit the model ({what}); delete the file to rebuild it")
    return model


def params_bytes(model: nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def clone_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}
