"""Sparsity regularisers on batches of non-negative term weights ``[N, V]``."""

from __future__ import annotations

import torch


def flops(weights: torch.Tensor) -> torch.Tensor:
    """``Σ_j ((1/N) Σ_i w_ij)²`` (Paria et al. 2020): a smooth proxy of the posting-list work a batch causes."""
    return weights.mean(dim=0).pow(2).sum()


def idf_flops(weights: torch.Tensor, idf: torch.Tensor) -> torch.Tensor:
    """``Σ_j ((1/N) Σ_i w_ij / idf_j)²`` (Geng et al. 2024).

    Dividing by IDF penalises common tokens (long posting lists, little
    evidence) more and rare, informative tokens less.  ``idf`` must be > 0
    where weights can be non-zero; zero entries are treated as infinitely
    common and clamped to a tiny IDF.
    """
    return (weights / idf.clamp_min(1e-6)).mean(dim=0).pow(2).sum()
