"""Masks: exactly the requested sparsity, block and N:M patterns, and the smallest weights are the ones cut."""

from __future__ import annotations

import pytest
import torch

from pruning.conftest import random_bert
from sparsearch.pruning.base import PruneConfig, PruningError, prunable_linears, weight_sparsity
from sparsearch.pruning.magnitude import MagnitudePruner, magnitude_masks, smallest_mask
from sparsearch.pruning.nm import NMPruner, nm_mask


def test_smallest_mask_hand_example() -> None:
    scores = torch.tensor([[0.1, 3.0], [2.0, 0.2]])
    assert smallest_mask(scores, 0.5).tolist() == [[False, True], [True, False]]
    assert smallest_mask(scores, 0.25).tolist() == [[False, True], [True, True]]


@pytest.mark.parametrize("sparsity", [0.1, 0.3, 0.5, 0.9])
def test_global_magnitude_has_exact_sparsity_and_cuts_the_smallest(sparsity: float) -> None:
    model = random_bert()
    weights = torch.cat([l.weight.detach().abs().flatten() for l in prunable_linears(model).values()])
    MagnitudePruner().prune(model, PruneConfig(sparsity=sparsity))
    n_drop = round(sparsity * weights.numel())
    zeros = sum(int((l.weight == 0).sum()) for l in prunable_linears(model).values())
    assert zeros == n_drop
    # Every kept weight is at least as large as every cut one.
    threshold = torch.sort(weights).values[n_drop - 1]
    kept = torch.cat([l.weight.detach().abs().flatten() for l in prunable_linears(model).values()])
    assert float(kept[kept > 0].min()) >= float(threshold)


def test_per_layer_magnitude_prunes_each_matrix_to_the_sparsity() -> None:
    model = random_bert()
    MagnitudePruner().prune(model, PruneConfig(sparsity=0.6, scope="layer"))
    for layer in prunable_linears(model).values():
        assert int((layer.weight == 0).sum()) == round(0.6 * layer.weight.numel())


@pytest.mark.parametrize("block", [(4, 1), (16, 1), (1, 4)])
def test_block_masks_cut_whole_blocks(block: tuple[int, int]) -> None:
    model = random_bert()
    masks = magnitude_masks(model, 0.75, "layer", block)
    for mask in masks.values():
        rows, cols = block
        tiles = mask.reshape(mask.shape[0] // rows, rows, mask.shape[1] // cols, cols)
        per_tile = tiles.sum(dim=(1, 3))
        assert set(per_tile.unique().tolist()) <= {0, rows * cols}
        assert int((per_tile == 0).sum()) == round(0.75 * per_tile.numel())


@pytest.mark.parametrize("n,m", [(2, 4), (4, 8), (1, 4)])
def test_nm_masks_keep_exactly_the_n_largest_of_every_m(n: int, m: int) -> None:
    weight = torch.randn(8, 32)
    mask = nm_mask(weight, n, m)
    groups = mask.reshape(8, 32 // m, m)
    assert bool((groups.sum(dim=-1) == n).all())
    w = weight.abs().reshape(8, 32 // m, m)
    smallest_kept = torch.where(groups, w, torch.inf).amin(dim=-1)
    largest_cut = torch.where(~groups, w, -torch.inf).amax(dim=-1)
    assert bool((smallest_kept >= largest_cut).all())


def test_nm_pruner_on_a_model() -> None:
    model = random_bert()
    report = NMPruner().prune(model, PruneConfig(method="nm", n=2, m=4))
    assert report.sparsity == pytest.approx(0.5) and weight_sparsity(model) == pytest.approx(0.5)
    for layer in prunable_linears(model).values():
        nonzero = (layer.weight != 0).reshape(layer.weight.shape[0], -1, 4).sum(dim=-1)
        assert bool((nonzero <= 2).all())


def test_bad_settings_name_the_problem() -> None:
    with pytest.raises(PruningError, match="sparsity must be in"):
        PruneConfig(sparsity=1.0)
    with pytest.raises(PruningError, match="N:M needs"):
        PruneConfig(method="nm", n=4, m=4)
    with pytest.raises(PruningError, match="multiple of M"):
        nm_mask(torch.randn(4, 6), 2, 4)
    with pytest.raises(PruningError, match="unknown pruning method"):
        PruneConfig(method="lottery")  # type: ignore[arg-type]
