"""Sparse kernels equal dense matrix products to 1e-4, on random and on real (pruned) weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sparsearch.pruning.kernels import BlockSparse, SparseLinear, sparsify_linears, spmm
from sparsearch.pruning.magnitude import block_scores, expand_blocks, smallest_mask


def _pruned(weight: torch.Tensor, sparsity: float, rows: int) -> np.ndarray:
    keep = expand_blocks(smallest_mask(block_scores(weight, (rows, 1)), sparsity), (rows, 1))
    return (weight * keep).numpy()


@pytest.mark.parametrize("rows", [1, 4, 16])
@pytest.mark.parametrize("sparsity", [0.0, 0.5, 0.9, 0.99])
def test_spmm_equals_dense_on_random_weights(rows: int, sparsity: float) -> None:
    rng = np.random.default_rng(rows)
    w = _pruned(torch.from_numpy(rng.standard_normal((64, 48)).astype(np.float32)), sparsity, rows)
    x = rng.standard_normal((37, 48)).astype(np.float32)
    matrix = BlockSparse.from_dense(w, rows)
    assert np.array_equal(matrix.to_dense(), w)
    assert np.allclose(spmm(matrix, x), x @ w.T, atol=1e-4)


@pytest.mark.parametrize("rows", [1, 4, 16])
def test_spmm_equals_dense_on_real_weights(cassette_dir: Path, rows: int) -> None:
    from sparsearch.retriever.mlm import load_masked_lm

    model = load_masked_lm(cassette_dir)
    weight = model.bert.encoder.layer[1].intermediate.dense.weight.detach()  # [512, 128], trained
    w = _pruned(weight, 0.8, rows)
    x = np.random.default_rng(0).standard_normal((200, 128)).astype(np.float32)
    assert np.allclose(spmm(BlockSparse.from_dense(w, rows), x), x @ w.T, atol=1e-4)


def test_sparse_linear_in_a_model_equals_dense(cassette_dir: Path) -> None:
    from sparsearch.pruning.base import PruneConfig
    from sparsearch.pruning.magnitude import MagnitudePruner
    from sparsearch.retriever.mlm import load_masked_lm

    model = load_masked_lm(cassette_dir)
    MagnitudePruner().prune(model, PruneConfig(sparsity=0.9, block=(4, 1), scope="layer"))
    ids = torch.randint(1000, 5000, (3, 20))
    with torch.inference_mode():
        dense = model(input_ids=ids).logits
        swapped = sparsify_linears(model, rows=4)
        sparse = model(input_ids=ids).logits
    assert len(swapped) == 13 and isinstance(model.bert.encoder.layer[0].output.dense, SparseLinear)
    assert torch.allclose(sparse, dense, atol=1e-4)
