"""Distillation terms beside the embedding loss, each off by default and turned on
by a recipe key of the ``distill`` stage (their value is to be chosen by
measurement; see the issue's study list):

- ``contrastive_weight``: an in-batch relational term: the student's softmax over
  its similarities to the other texts of the batch is pulled towards the teacher's
  (KL, temperature ``contrastive_temperature``); reads the cached teacher outputs,
  so it costs no teacher pass.
- ``attention_weight``: MiniLM-style self-attention distribution transfer: KL from
  the teacher's last-layer attention distributions to the student's (same head
  count; padded keys excluded). It runs the teacher on every batch.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def contrastive_kd_loss(student_emb: torch.Tensor, teacher_emb: torch.Tensor, temperature: float) -> torch.Tensor:
    """``KL(softmax(T T^T / t) || softmax(S S^T / t))`` over each row, the diagonal masked out."""
    s, t = F.normalize(student_emb, dim=-1), F.normalize(teacher_emb, dim=-1)
    n = len(s)
    if n < 3:
        return student_emb.new_zeros(())
    off = ~torch.eye(n, dtype=torch.bool, device=s.device)
    s_sim = (s @ s.T)[off].view(n, n - 1) / temperature
    t_sim = (t @ t.T)[off].view(n, n - 1) / temperature
    return F.kl_div(F.log_softmax(s_sim, -1), F.log_softmax(t_sim, -1), reduction="batchmean", log_target=True)


def attention_kd_loss(student: nn.Module, teacher: nn.Module, ids: torch.Tensor,
                      mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(student embeddings, KL of the last layer's attention distributions)`` for two
    :class:`~edgesmith.models.encoder.SentenceEncoder` models with equal head counts."""
    out = student.encoder(input_ids=ids, attention_mask=mask, output_attentions=True)
    with torch.no_grad():
        t_att = teacher.encoder(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[-1]
    s_att = out.attentions[-1]
    if s_att.shape != t_att.shape:
        from edgesmith.conf.base import RecipeError

        raise RecipeError("attention_weight", f"needs equal attention heads in student and teacher "
                                              f"({tuple(s_att.shape)} vs {tuple(t_att.shape)}); set it to 0")
    q = mask.bool()[:, None, :, None].expand_as(s_att)  # real query rows; padded keys have ~0 probability
    kl = (t_att * (torch.log(t_att.clamp(min=1e-12)) - torch.log(s_att.clamp(min=1e-12)))).sum(-1, keepdim=True)
    loss = (kl * q[..., :1]).sum() / q[..., :1].sum().clamp(min=1)
    return student.pool(out.last_hidden_state, mask), loss
