"""One-shot magnitude pruning, unstructured or in blocks, global or per layer; no retraining.

Jaiswal et al. (2023), "The Emergence of Essential Sparsity in Large Pre-trained
Models": zeroing the smallest-magnitude weights of a pre-trained transformer keeps
quality almost unchanged up to a sharp drop (about 30–50 % for BERT).  Blocks of
several output rows (e.g. 4×1, 16×1) are ranked by their L2 norm; they lose a
little more quality at a given sparsity but are what the CPU kernels of
:mod:`sparsearch.pruning.kernels` turn into speed.
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


def block_scores(weight: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """L2 norm of every ``block``-shaped tile of ``weight`` ``[out, in]``: ``[out/rows, in/cols]``."""
    rows, cols = block
    out_f, in_f = weight.shape
    if out_f % rows or in_f % cols:
        raise PruningError(f"block {rows}x{cols} does not tile a {out_f}x{in_f} weight")
    tiles = weight.detach().float().reshape(out_f // rows, rows, in_f // cols, cols)
    return tiles.pow(2).sum(dim=(1, 3)).sqrt()


def expand_blocks(keep: torch.Tensor, block: tuple[int, int]) -> torch.Tensor:
    """A per-block mask back to per-weight shape."""
    return keep.repeat_interleave(block[0], dim=0).repeat_interleave(block[1], dim=1)


def smallest_mask(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """``True`` except for exactly ``round(sparsity · n)`` smallest scores (ties broken by position)."""
    flat = scores.flatten()
    n_drop = int(round(sparsity * flat.numel()))
    keep = torch.ones(flat.numel(), dtype=torch.bool, device=flat.device)
    if n_drop:
        keep[torch.argsort(flat, stable=True)[:n_drop]] = False
    return keep.reshape(scores.shape)


def magnitude_masks(model: nn.Module, sparsity: float, scope: str = "global",
                    block: tuple[int, int] = (1, 1)) -> dict[str, torch.Tensor]:
    """Keep-masks over :func:`prunable_linears`: the smallest weights (or blocks) get ``False``.

    ``global`` ranks every block of every layer together, so layers whose
    weights are small overall (typically the attention projections) lose more.
    """
    linears = prunable_linears(model)
    scores = {name: block_scores(layer.weight, block) for name, layer in linears.items()}
    if scope == "layer":
        return {name: expand_blocks(smallest_mask(s, sparsity), block) for name, s in scores.items()}
    flat_keep = smallest_mask(torch.cat([s.flatten() for s in scores.values()]), sparsity)
    masks, start = {}, 0
    for name, s in scores.items():
        masks[name] = expand_blocks(flat_keep[start:start + s.numel()].reshape(s.shape), block)
        start += s.numel()
    return masks


class MagnitudePruner:
    """Zero the smallest weights once (global or per layer, weights or blocks)."""

    name = "magnitude"

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        before = count_parameters(model)
        apply_masks(model, magnitude_masks(model, config.sparsity, config.scope, config.block))
        return PruneReport("magnitude", {"sparsity": config.sparsity, "scope": config.scope,
                                         "block": list(config.block)},
                           weight_sparsity(model), before, before)
