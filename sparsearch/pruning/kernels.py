"""Sparse matrix products in Numba that turn zero weights into CPU time saved.

``Y = X Wᵀ + b`` with ``W`` ``[out, in]`` stored by blocks of ``R`` consecutive
output rows at one input column (``R×1``; ``R = 1`` is plain CSR).  The product
runs as ``Yᵀ[rows of block] += w_block ⊗ Xᵀ[col]``: the inner loop walks the
tokens, contiguous in ``Xᵀ`` ``[in, tokens]``, so it vectorises, and a block of
R rows reads each ``Xᵀ`` row once for R outputs — why blocked sparsity beats
unstructured at the same sparsity (the block-sparse kernels of Intel's sparse
accelerator work).  Output row blocks are independent: the outer loop runs in
parallel.  Dense BLAS (MKL/oneDNN) is far more efficient per FLOP, so these win
only at high sparsity; docs/pruning.md gives the crossover measured here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np
import torch
from torch import nn

from sparsearch.pruning.base import PruningError


@dataclass(frozen=True)
class BlockSparse:
    """``W`` by non-zero ``rows×1`` blocks: block row ``r`` owns ``ptr[r]:ptr[r+1]`` of ``cols``/``values``."""

    shape: tuple[int, int]
    rows: int
    ptr: np.ndarray  # int64 [out/rows + 1]
    cols: np.ndarray  # int32 [blocks]
    values: np.ndarray  # float32 [blocks, rows]

    @classmethod
    def from_dense(cls, weight: np.ndarray, rows: int = 1) -> "BlockSparse":
        out_f, in_f = weight.shape
        if out_f % rows:
            raise PruningError(f"{rows}x1 blocks do not tile {out_f} output rows")
        tiles = np.ascontiguousarray(weight, dtype=np.float32).reshape(out_f // rows, rows, in_f)
        nonzero = (tiles != 0).any(axis=1)  # [block rows, in]
        ptr = np.zeros(out_f // rows + 1, np.int64)
        np.cumsum(nonzero.sum(axis=1), out=ptr[1:])
        block_row, cols = np.nonzero(nonzero)
        values = np.ascontiguousarray(tiles[block_row, :, cols], dtype=np.float32)  # [blocks, rows]
        return cls((out_f, in_f), rows, ptr, cols.astype(np.int32), values)

    def to_dense(self) -> np.ndarray:
        out = np.zeros(self.shape, np.float32)
        for r in range(len(self.ptr) - 1):
            for b in range(self.ptr[r], self.ptr[r + 1]):
                out[r * self.rows:(r + 1) * self.rows, self.cols[b]] = self.values[b]
        return out

    @property
    def density(self) -> float:
        return self.values.size / (self.shape[0] * self.shape[1])


@numba.njit(parallel=True, fastmath=True, cache=True)
def _spmm_t(ptr: np.ndarray, cols: np.ndarray, values: np.ndarray, rows: int, xt: np.ndarray,
            out_t: np.ndarray) -> None:
    """``out_t[o, :] = Σ_b values[b, o % rows] · xt[cols[b], :]`` over the blocks of ``o``'s block row."""
    n_tokens = xt.shape[1]
    for r in numba.prange(len(ptr) - 1):
        base = r * rows
        for i in range(rows):
            out_t[base + i, :] = 0.0
        for b in range(ptr[r], ptr[r + 1]):
            x = xt[cols[b]]
            for i in range(rows):
                v = values[b, i]
                o = out_t[base + i]
                for t in range(n_tokens):
                    o[t] += v * x[t]


def spmm(matrix: BlockSparse, x: np.ndarray) -> np.ndarray:
    """``x @ Wᵀ`` for ``x`` ``[tokens, in]`` (float32): ``[tokens, out]``."""
    xt = np.ascontiguousarray(x.T, dtype=np.float32)
    out_t = np.empty((matrix.shape[0], x.shape[0]), np.float32)
    _spmm_t(matrix.ptr, matrix.cols, matrix.values, matrix.rows, xt, out_t)
    return out_t.T


class SparseLinear(nn.Module):
    """Inference-only stand-in for an ``nn.Linear`` whose weight is mostly zero."""

    def __init__(self, linear: nn.Linear, rows: int = 1) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.matrix = BlockSparse.from_dense(linear.weight.detach().float().cpu().numpy(), rows)
        bias = linear.bias.detach().float().cpu() if linear.bias is not None else None
        self.register_buffer("bias", bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            raise PruningError("SparseLinear is for inference only")
        flat = x.reshape(-1, self.in_features).float().cpu().numpy()
        y = torch.from_numpy(spmm(self.matrix, flat)).reshape(*x.shape[:-1], self.out_features)
        return y + self.bias if self.bias is not None else y


def sparsify_linears(model: nn.Module, rows: int = 1, min_sparsity: float = 0.5) -> list[str]:
    """Swap every prunable linear layer at least ``min_sparsity`` zero for a :class:`SparseLinear`.

    Below the crossover a sparse kernel is slower than BLAS, so those layers stay dense.
    """
    from sparsearch.pruning.base import prunable_linears

    swapped = []
    for name, layer in prunable_linears(model).items():
        if float((layer.weight == 0).float().mean()) < min_sparsity:
            continue
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, SparseLinear(layer, rows))
        swapped.append(name)
    return swapped
