"""Sparsity regularisers on batches of non-negative term weights ``[N, V]``."""

from __future__ import annotations

import torch


def flops(weights: torch.Tensor) -> torch.Tensor:
    """``Σ_j ((1/N) Σ_i w_ij)²`` (Paria et al. 2020): a smooth proxy of the posting-list work a batch causes."""
    return weights.mean(dim=0).pow(2).sum()


def idf_flops(weights: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """``Σ_j ((1/N) Σ_i w_ij / idf_j)²`` (Geng et al. 2024).

    Dividing by IDF penalises common tokens (long posting lists, little
    evidence) more and rare, informative tokens less.  A token with
    ``idf_j = 0`` (special tokens, tokens outside the table) can never be a
    query term of an inference-free model; the trainer masks it out of
    document vectors, and here it contributes nothing instead of a division
    by zero.
    """
    safe = torch.where(idf > 0, idf, torch.ones_like(idf))
    scaled = torch.where(idf > 0, weights / safe, torch.zeros_like(weights))
    return scaled.mean(dim=0).pow(2).sum()
