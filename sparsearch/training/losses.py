"""Ranking losses: InfoNCE and KL distillation from a heterogeneous ensemble teacher."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(scores: torch.Tensor, positive: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Cross-entropy of each query's positive against every candidate in ``scores`` ``[Q, C]``.

    Candidates are the batch's documents (in-batch negatives) plus any hard
    negatives; ``positive[q]`` is the column of query ``q``'s positive.
    Sparse dot products are unbounded, so SPLADE uses temperature 1.
    """
    return F.cross_entropy(scores / temperature, positive)


def minmax_normalize(scores: torch.Tensor) -> torch.Tensor:
    """Per row: ``(s − min)/(max − min)``; a row with no spread becomes all zeros (no signal, no NaN)."""
    lo = scores.amin(dim=1, keepdim=True)
    span = scores.amax(dim=1, keepdim=True) - lo
    return torch.where(span > 0, (scores - lo) / span.clamp_min(1e-12), torch.zeros_like(scores))


def ensemble_teacher_logits(teacher_scores: list[torch.Tensor], scale: float = 30.0) -> torch.Tensor:
    """Mean of per-query min-max normalised teacher scores, times ``scale`` (Geng et al. 2024).

    Normalising first puts a cosine similarity in [-1, 1] and a BM25 score in
    [0, 40] on the same footing, so neither teacher dominates by units.
    """
    if not teacher_scores:
        raise ValueError("need at least one teacher")
    return scale * torch.stack([minmax_normalize(s) for s in teacher_scores]).mean(dim=0)


def kl_distillation(student_scores: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    """``KL(softmax(teacher) ‖ softmax(student))`` averaged over queries ``[Q, C]``."""
    target = F.log_softmax(teacher_logits.float(), dim=1)
    return F.kl_div(F.log_softmax(student_scores.float(), dim=1), target, reduction="batchmean", log_target=True)
