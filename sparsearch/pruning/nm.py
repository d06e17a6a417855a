"""N:M semi-structured masks: in every M consecutive weights of an input row keep the N largest.

Where it pays: NVIDIA sparse tensor cores (Ampere and newer) run 2:4 matrices at
up to 2× dense throughput (Mishra et al. 2021, "Accelerating Sparse Deep Neural
Networks").  Where it does not: on a CPU without such a kernel an N:M matrix is
just a 50 % (2:4) or 50 % (4:8) unstructured one — too dense for the CSR/block
kernels here to beat BLAS (docs/pruning.md), so on these cores it only costs
quality.  Groups run along the input (reduction) dimension, as the hardware needs.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsearch.pruning.base import (
    PruneConfig,
    PruneReport,
    PruningError,
    apply_masks,
    count_parameters,
    prunable_linears,
    weight_sparsity,
)


def nm_mask(weight: torch.Tensor, n: int, m: int) -> torch.Tensor:
    """Keep-mask of ``weight`` ``[out, in]`` with exactly ``n`` of every ``m`` consecutive inputs kept."""
    out_f, in_f = weight.shape
    if in_f % m:
        raise PruningError(f"N:M with M={m} needs the input width ({in_f}) to be a multiple of M")
    groups = weight.detach().abs().float().reshape(out_f, in_f // m, m)
    top = groups.topk(n, dim=-1).indices
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(-1, top, True)
    return keep.reshape(out_f, in_f)


class NMPruner:
    """N:M masks on every prunable linear layer."""

    name = "nm"

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        before = count_parameters(model)
        masks = {name: nm_mask(layer.weight, config.n, config.m) for name, layer in prunable_linears(model).items()}
        apply_masks(model, masks)
        return PruneReport("nm", {"n": config.n, "m": config.m}, weight_sparsity(model), before, before,
                           notes=["N:M pays on GPU sparse tensor cores (2:4); on CPU it is plain 50 % sparsity"])
