"""How faithful a student's embeddings are to its teacher's, beyond a probe:
cosine statistics per text, and a retrieval task (each query must find its own
document among all documents) scored for teacher and student alike.

Example:
    >>> import torch
    >>> q = torch.eye(3); d = torch.eye(3)[[0, 2, 1]]
    >>> retrieval_recall(q, d, ks=(1, 2))
    {'retrieval_r1': 0.3333333333333333, 'retrieval_r2': 0.3333333333333333}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

P05 = 0.05


def cosine_stats(outputs: torch.Tensor, reference: torch.Tensor, prefix: str = "cosine_to_teacher") -> dict:
    """Mean and 5th-percentile (numpy's linear interpolation) cosine of each row to its reference."""
    cos = F.cosine_similarity(outputs.double(), reference.double(), dim=-1)
    return {prefix: float(cos.mean()), f"{prefix}_p05": float(torch.quantile(cos, P05))}


def retrieval_recall(queries: torch.Tensor, docs: torch.Tensor, ks: tuple[int, ...] = (1, 10)) -> dict:
    """Recall@k of query ``i`` retrieving document ``i`` by cosine among all documents.

    A tie counts against the query (its document must score strictly above every
    document ranked ahead of it), so a model that maps everything to one vector
    scores 0, not 1.
    """
    if len(queries) != len(docs) or not len(queries):
        raise ValueError(f"retrieval needs one document per query, got {len(queries)} and {len(docs)}")
    sim = F.normalize(queries.double(), dim=-1) @ F.normalize(docs.double(), dim=-1).T
    own = sim.diagonal().unsqueeze(1)
    rank = (sim >= own).sum(1) - 1  # documents scoring at least as high as the query's own, itself excluded
    return {f"retrieval_r{k}": float((rank < k).double().mean()) for k in ks}
