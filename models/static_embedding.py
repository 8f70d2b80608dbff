"""Static-embedding students: one vector per token, taken from the teacher.

Every vocabulary token is run through the teacher alone (``[CLS] token [SEP]``,
batched) and its mean-pooled hidden state kept; PCA reduces those vectors to
``dim`` (without centring, so the transposed components map a sentence vector
back into the teacher's space: the output is comparable with stored teacher
embeddings, which model2vec's output is not); each row is scaled by a frequency weight (SIF, ``a / (a + p(token))``
with ``p`` counted on the distillation corpus, so frequent tokens such as "the"
count little); special tokens get zero rows. As a module it is a gather, a
masked mean and (``dim`` below the teacher's width) a ``dim x width`` projection,
L2-normalised like the teacher's embeddings, so it exports to ONNX,
TFLite and ExecuTorch through the ordinary exporters and its table quantizes to
int8 (``Gather`` in the ``x86-dynamic`` preset). A ``distill`` stage can then
fine-tune the table towards the teacher's sentence embeddings, which model2vec
does not do.

Example:
    >>> import torch
    >>> m = StaticEmbedding(torch.eye(4)[:, :3] + 0.1)
    >>> m(torch.tensor([[1, 2, 0]]), torch.tensor([[1, 1, 0]])).shape
    torch.Size([1, 3])
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from edgesmith.errors import EdgesmithError


class StaticEmbedding(nn.Module):
    """``(input_ids, attention_mask) -> embeddings``: the masked mean of the tokens' rows,
    then ``projection`` (``(dim, width)``, e.g. the transposed PCA components) if given."""

    def __init__(self, table: torch.Tensor, projection: torch.Tensor | None = None, normalize: bool = True,
                 bias: torch.Tensor | None = None):
        super().__init__()
        self.word_embeddings = nn.Embedding(table.shape[0], table.shape[1])
        with torch.no_grad():
            self.word_embeddings.weight.copy_(table)
        self.projection = None
        if projection is not None:
            self.projection = nn.Linear(projection.shape[0], projection.shape[1], bias=bias is not None)
            with torch.no_grad():
                self.projection.weight.copy_(projection.T)
                if bias is not None:
                    self.projection.bias.copy_(bias)
        self.normalize = normalize

    def get_input_embeddings(self) -> nn.Embedding:
        return self.word_embeddings

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        vectors = self.word_embeddings(input_ids)
        mask = attention_mask.unsqueeze(-1).to(vectors.dtype)
        emb = (vectors * mask).sum(1) / mask.sum(1).clamp(min=1.0)
        if self.projection is not None:
            emb = self.projection(emb)
        return F.normalize(emb, p=2, dim=-1) if self.normalize else emb


@torch.inference_mode()
def token_vectors(teacher: nn.Module, tokenizer: Any, batch_size: int = 1024, device: str = "cpu") -> torch.Tensor:
    """Each token id's vector from the teacher run on ``[CLS] token [SEP]`` alone: the mean of
    the encoder's last hidden states (before normalisation), ``(vocab, hidden)``."""
    from edgesmith.models.encoder import SentenceEncoder

    n = len(tokenizer)
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    teacher = teacher.to(device).eval()
    out = []
    for i in range(0, n, batch_size):
        ids = torch.arange(i, min(n, i + batch_size)).unsqueeze(1)
        if cls is not None and sep is not None:
            ids = torch.cat([torch.full_like(ids, cls), ids, torch.full_like(ids, sep)], 1)
        mask = torch.ones_like(ids)
        if isinstance(teacher, SentenceEncoder):
            hidden = teacher.encoder(input_ids=ids.to(device), attention_mask=mask.to(device)).last_hidden_state
            out.append(hidden.mean(1).float().cpu())
        else:
            out.append(teacher(ids.to(device), mask.to(device)).float().cpu())
    return torch.cat(out)


def sif_weights(tokenizer: Any, texts: Sequence[str], a: float = 1e-3) -> np.ndarray:
    """``a / (a + p(token))`` per token id, ``p`` its add-one smoothed frequency in ``texts``."""
    counts = np.ones(len(tokenizer), np.float64)
    for i in range(0, len(texts), 4096):
        for ids in tokenizer(list(texts[i : i + 4096]), add_special_tokens=False)["input_ids"]:
            np.add.at(counts, ids, 1)
    p = counts / counts.sum()
    return a / (a + p)


def pca(x: np.ndarray, dim: int, center: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """``(x @ V, V)``: ``x`` projected on its ``dim`` leading principal directions ``V``
    (``width x dim``, orthonormal), from an eigendecomposition of the ``width x width``
    second-moment matrix (cheap for a tall table); ``center`` subtracts the mean first."""
    if center:
        x = x - x.mean(0, keepdims=True)
    _, vecs = np.linalg.eigh(x.T @ x)
    v = vecs[:, ::-1][:, :dim]
    return x @ v, v


def static_student(teacher: nn.Module, tokenizer: Any, texts: Sequence[str], dim: int = 256,
                   weighting: str = "sif", sif_a: float = 1e-3, normalize: bool = True, center: bool = False,
                   cache: bool = True) -> StaticEmbedding:
    """A :class:`StaticEmbedding` distilled from ``teacher`` (no training).

    Args:
        teacher: The sentence encoder whose token vectors are taken.
        tokenizer: Its tokenizer (the table has one row per token id).
        texts: The corpus the token frequencies are counted on (``weighting: sif``).
        dim: Width after PCA (at most the teacher's width).
        weighting: ``sif`` (corpus frequencies) or ``none``.
        sif_a: SIF's smoothing constant ``a``.
        normalize: L2-normalise the output like the teacher.
        center: Centre the token vectors before PCA (as model2vec does: the common direction
            every token shares is removed from the table); the projection back to the teacher's
            width then adds it back as a bias, ``mean weight x mean vector``.
        cache: Keep the table in the run cache, keyed by teacher, tokenizer, corpus and settings.
    """
    if weighting not in ("sif", "none"):
        raise EdgesmithError(f"student.kwargs.weighting: '{weighting}' is not known; use 'sif' or 'none'")
    if tokenizer is None:
        raise EdgesmithError("student.arch 'static' needs a text teacher with a tokenizer")
    path = _cache_path(teacher, tokenizer, texts, dim, weighting, sif_a, center) if cache else None
    if path is not None and path.is_file():
        from safetensors.torch import load_file

        saved = load_file(str(path))
        return StaticEmbedding(saved["table"], saved.get("projection"), normalize, saved.get("bias"))
    vectors = _cached_vectors(teacher, tokenizer, cache).astype(np.float64)
    width = vectors.shape[1]
    if not 1 <= dim <= width:
        raise EdgesmithError(f"student.kwargs.dim: {dim} must be between 1 and the teacher's width ({width})")
    if dim == width and not center:  # no reduction: the teacher's own token vectors, no projection
        table, components = vectors.copy(), np.eye(width)
    else:
        table, components = pca(vectors, dim, center)
    weights = sif_weights(tokenizer, texts, sif_a) if weighting == "sif" else np.ones(len(table))
    table *= weights[:, None]
    table[list(tokenizer.all_special_ids)] = 0.0
    bias = torch.from_numpy((weights.mean() * vectors.mean(0)).astype(np.float32)) if center else None
    table = torch.from_numpy(table.astype(np.float32))
    projection = None if dim == width and not center else torch.from_numpy(
        components.T.astype(np.float32)).contiguous()
    if path is not None:
        from safetensors.torch import save

        from edgesmith import atomic

        extra = {k: v for k, v in (("projection", projection), ("bias", bias)) if v is not None}
        atomic.write_bytes(path, save({"table": table.contiguous(), **extra}))
    return StaticEmbedding(table, projection, normalize, bias)


def _cached_vectors(teacher: nn.Module, tokenizer: Any, cache: bool) -> np.ndarray:
    """:func:`token_vectors`, kept in the run cache by teacher and vocabulary (the slow part:
    one teacher pass per token), so other widths and weightings cost seconds."""
    if not cache:
        return token_vectors(teacher, tokenizer).numpy()
    from safetensors.torch import load_file, save

    from edgesmith import atomic
    from edgesmith.cache import cache_root
    from edgesmith.compress.targets import model_fingerprint

    h = hashlib.sha256(f"vectors-v1:{model_fingerprint(teacher)}".encode())
    h.update("\x00".join(sorted(tokenizer.get_vocab())).encode())
    path = cache_root() / "static" / f"vectors-{h.hexdigest()[:32]}.safetensors"
    if path.is_file():
        return load_file(str(path))["vectors"].numpy()
    vectors = token_vectors(teacher, tokenizer)
    atomic.write_bytes(path, save({"vectors": vectors.contiguous()}))
    return vectors.numpy()


def _cache_path(teacher, tokenizer, texts, dim, weighting, sif_a, center=False):
    from edgesmith.cache import cache_root
    from edgesmith.compress.targets import model_fingerprint

    h = hashlib.sha256(f"v3:{dim}:{weighting}:{sif_a}:{model_fingerprint(teacher)}{':c' if center else ''}".encode())
    h.update("\x00".join(sorted(tokenizer.get_vocab())).encode())
    if weighting == "sif":
        h.update("\x00".join(texts).encode())
    return cache_root() / "static" / f"{h.hexdigest()[:32]}.safetensors"
