"""How faithful a student's embeddings are to its teacher's, beyond a probe:
cosine statistics per text, and a retrieval task (each query must find its own
document among the documents of its pool) scored for teacher and student alike.

Example:
    >>> import torch
    >>> q = torch.eye(3); d = torch.eye(3)[[0, 2, 1]]
    >>> retrieval_recall(q, d, ks=(1, 2))
    {'retrieval_r1': 0.3333333333333333, 'retrieval_r2': 0.3333333333333333}
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

P05 = 0.05


def cosine_stats(outputs: torch.Tensor, reference: torch.Tensor, prefix: str = "cosine_to_teacher") -> dict:
    """Mean and 5th-percentile (numpy's linear interpolation) cosine of each row to its reference."""
    cos = F.cosine_similarity(outputs.double(), reference.double(), dim=-1)
    return {prefix: float(cos.mean()), f"{prefix}_p05": float(torch.quantile(cos, P05))}


# Each query competes with at most this many documents: a larger held-out set then
# narrows the uncertainty of R@1 without making the task harder (recall@1 among all
# 1,973 held-out glosses would be lower for teacher and student alike, and not
# comparable with checks of another size).
RETRIEVAL_POOL = 500


def retrieval_recall(queries: torch.Tensor, docs: torch.Tensor, ks: tuple[int, ...] = (1, 10),
                     pool: int = RETRIEVAL_POOL) -> dict:
    """Recall@k of query ``i`` retrieving document ``i`` by cosine among the documents
    of its pool (:func:`retrieval_pools`; all of them up to ``pool`` pairs).

    A tie counts against the query (its document must score strictly above every
    document ranked ahead of it), so a model that maps everything to one vector
    scores 0, not 1.
    """
    return recall_at(retrieval_ranks(queries, docs, pool), ks)


def recall_at(rank: torch.Tensor, ks: tuple[int, ...] = (1, 10)) -> dict:
    """``retrieval_r{k}`` for each ``k``: the share of queries whose :func:`retrieval_ranks` rank is under ``k``."""
    return {f"retrieval_r{k}": float((rank < k).double().mean()) for k in ks}


def retrieval_pools(n: int, pool: int = RETRIEVAL_POOL) -> torch.Tensor:
    """The pool of each of ``n`` query / document pairs: ``ceil(n / pool)`` pools of
    equal size (within one), dealt in turn (pair ``i`` in pool ``i % pools``), so each
    pool mixes the whole list's kinds of text.

    Example:
        >>> retrieval_pools(5, pool=2).tolist()
        [0, 1, 2, 0, 1]
    """
    if pool < 1:
        raise ValueError(f"retrieval pool size must be at least 1, got {pool}")
    return torch.arange(n) % max(1, -(-n // pool))


def retrieval_ranks(queries: torch.Tensor, docs: torch.Tensor, pool: int = RETRIEVAL_POOL) -> torch.Tensor:
    """Per query, how many other documents of its pool (:func:`retrieval_pools`) score
    at least as high as its own (0: a hit at 1)."""
    if len(queries) != len(docs) or not len(queries):
        raise ValueError(f"retrieval needs one document per query, got {len(queries)} and {len(docs)}")
    sim = F.normalize(queries.double(), dim=-1) @ F.normalize(docs.double(), dim=-1).T
    own = sim.diagonal().unsqueeze(1)
    pools = retrieval_pools(len(queries), pool)
    same = pools.unsqueeze(1) == pools.unsqueeze(0)
    return ((sim >= own) & same).sum(1) - 1  # documents of its pool scoring at least as high, itself excluded


def paired_share(hits, reference_hits, n_boot: int = 10_000, seed: int = 0, level: float = 0.95) -> dict:
    """A student's hit rate as a share of its reference's (the teacher's) on the same
    queries, with a paired percentile-bootstrap interval.

    Queries are resampled with replacement, each carrying both models' outcomes, so
    the queries both get right (or wrong) move the two rates together. For 0/1
    outcomes a resample depends only on the counts of the four outcome pairs, drawn
    here from their multinomial: exact, in microseconds. Draws where the reference
    hits nothing are left out.

    Returns:
        ``{"share", "share_lo", "share_hi", "queries", "discordant"}``; ``discordant``
        counts the queries exactly one of the two gets right (what the interval's width
        comes from).

    Example:
        >>> r = paired_share([1, 1, 0, 0] * 50, [1, 1, 1, 0] * 50)
        >>> round(r["share"], 3), r["share_lo"] < r["share"] < r["share_hi"] <= 1.0, r["discordant"]
        (0.667, True, 50)
    """
    a = np.asarray(hits, dtype=bool).ravel()
    b = np.asarray(reference_hits, dtype=bool).ravel()
    if a.shape != b.shape or not a.size:
        raise ValueError(f"paired_share() needs outcomes of the same queries, got {a.size} and {b.size}")
    if not b.any():
        raise ValueError("paired_share(): the reference gets no query right; a share of zero is undefined")
    n = a.size
    counts = np.array([(a & b).sum(), (a & ~b).sum(), (~a & b).sum(), (~a & ~b).sum()], dtype=np.float64)
    draws = np.random.default_rng(seed).multinomial(n, counts / n, size=n_boot)
    ref = draws[:, 0] + draws[:, 2]
    ratio = (draws[:, 0] + draws[:, 1])[ref > 0] / ref[ref > 0]
    tail = (1.0 - level) / 2
    lo, hi = np.quantile(ratio, [tail, 1.0 - tail])
    return {"share": float(a.sum() / b.sum()), "share_lo": float(lo), "share_hi": float(hi),
            "queries": int(n), "discordant": int(counts[1] + counts[2])}
