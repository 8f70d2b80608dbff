"""Teacher targets, computed once per (data, teacher) and kept on disk.

Distillation and every recovery fine-tune after it (prune, lowrank) train towards
the teacher's pooled outputs on the same texts. :func:`teacher_outputs` keys
those outputs by a hash of the teacher's weights and of the exact model inputs
(token ids and masks, or pixels), and stores them in safetensors shards of
``SHARD_ROWS`` rows under ``cache_dir/<key>/``: a later stage, a re-run or a
resumed run reads them instead of running the teacher again, and a run
interrupted half-way keeps the shards it finished. A change of teacher weights,
tokenizer, texts or ``max_length`` changes the key, so stale targets are never read.
Repeated rows (a source with ``repeat: N``) are run once: the key and the shards
are those of the distinct rows, so weighting a source up reuses its targets.

Example:
    >>> out = teacher_outputs(teacher, task, train, cache_dir=cache_root() / "targets")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import torch
from torch import nn

from edgesmith import atomic
from edgesmith.models.tasks import Task, TensorSet
from edgesmith.progress import log

SHARD_ROWS = 4096
KEY_VERSION = 1


def model_fingerprint(model: nn.Module) -> str:
    """sha256 of every tensor of ``model``'s state dict (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")  # 0-dim too (BatchNorm counters)
    return h.hexdigest()


def data_fingerprint(task: Task, data: TensorSet) -> str:
    """sha256 of the task's preprocessing facts and of every input tensor."""
    h = hashlib.sha256(json.dumps(task.describe(), sort_keys=True, default=str).encode())
    for t in data.inputs:
        t = t.detach().cpu().contiguous()
        h.update(f"{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def targets_key(teacher: nn.Module, task: Task, data: TensorSet, what: str = "outputs") -> str:
    """The cache key of ``teacher``'s ``what`` on ``data``."""
    payload = {"v": KEY_VERSION, "what": what, "model": model_fingerprint(teacher), "data": data_fingerprint(task, data)}
    return atomic.sha256_json(payload)[:32]


def teacher_outputs(teacher: nn.Module, task: Task, data: TensorSet, *, device: str = "cpu",
                    cache_dir: Path | None = None, stats: dict | None = None) -> torch.Tensor:
    """``task.predict(teacher, data)``, read from ``cache_dir`` when it holds it.

    Args:
        teacher: The model whose outputs are the targets (in eval mode while it runs).
        task: How the model is fed (batches trimmed to their longest text).
        data: The inputs, in the order the targets are returned.
        device: Where the teacher runs on a miss.
        cache_dir: Folder of the shards (``<cache>/targets``); None computes without caching.
        stats: If given, ``hits`` and ``misses`` (shards) are added to it.

    Returns:
        The outputs on the CPU, one row per example of ``data``.
    """
    data, inverse = _distinct(data)  # repeated rows: run once, then spread back
    out = _cached_outputs(teacher, task, data, device, cache_dir, stats)
    return out if inverse is None else out[inverse]


def _cached_outputs(teacher: nn.Module, task: Task, data: TensorSet, device: str, cache_dir: Path | None,
                    stats: dict | None) -> torch.Tensor:
    """:func:`teacher_outputs` of rows that are all distinct."""
    if cache_dir is None or not len(data):
        return task.predict(teacher, data, device=device)
    folder = Path(cache_dir) / targets_key(teacher, task, data)
    parts, hits = [], 0
    for i in range(math.ceil(len(data) / SHARD_ROWS)):
        rows = slice(i * SHARD_ROWS, min(len(data), (i + 1) * SHARD_ROWS))
        path = folder / f"shard-{i:05d}.safetensors"
        part = _read(path, rows.stop - rows.start)
        if part is None:
            part = task.predict(teacher, data.take(rows), device=device)
            from safetensors.torch import save

            atomic.write_bytes(path, save({"outputs": part.contiguous()}))
        else:
            hits += 1
        parts.append(part)
    if stats is not None:
        stats["hits"] = stats.get("hits", 0) + hits
        stats["misses"] = stats.get("misses", 0) + len(parts) - hits
    if hits:
        log(f"  [dim]teacher targets: {hits} of {len(parts)} shard(s) from cache {folder}[/dim]")
    return torch.cat(parts)


def _distinct(data: TensorSet) -> tuple[TensorSet, torch.Tensor | None]:
    """The distinct rows of ``data`` (the first of each, in order) and each row's index
    among them; ``(data, None)`` when every row is distinct."""
    flat = [t.detach().cpu().reshape(len(data), -1).contiguous().numpy() for t in data.inputs]
    index: dict[bytes, int] = {}  # a row's bytes -> its index among the distinct rows
    rows, inverse = [], []  # the distinct rows' positions in data; each row's index among them
    for i in range(len(data)):
        j = index.setdefault(b"".join(f[i].tobytes() for f in flat), len(rows))
        if j == len(rows):
            rows.append(i)
        inverse.append(j)
    if len(rows) == len(data):
        return data, None
    return data.take(torch.tensor(rows)), torch.tensor(inverse)


def _read(path: Path, rows: int) -> torch.Tensor | None:
    """A shard's outputs, or None when it is missing, unreadable or of the wrong length."""
    if not path.is_file():
        return None
    from safetensors.torch import load_file

    try:
        out = load_file(str(path))["outputs"]
    except Exception:  # noqa: BLE001 - a torn or foreign file is a miss, rebuilt
        return None
    return out if out.shape[0] == rows else None
