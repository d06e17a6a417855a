"""Vocabulary pruning: compute the SPLADE head only for terms that documents actually use.

The vocabulary projection (30,522 × hidden, over every token) costs as much as
the whole 6-layer transformer of the shipped model.  The exact screening of
:mod:`sparsearch.retriever.mlm` proves most terms zero, but its bound is cheap
only with fast bfloat16, which these AVX2 cores lack; and for an
inference-free model every term but the five special tokens has an IDF, so
"terms a query can hold" removes nothing.  What remains is empirical: count,
over a sample of (unlabelled) corpus documents, how often each term gets a
weight, and keep the decoder rows of the most used ``vocab_keep`` fraction.
A dropped term never gets a posting — exactly the behaviour of a model whose
weight for it is always 0 — so the loss is measured, not bounded
(docs/pruning.md).  The folder stays a full Hugging Face model; the kept term
ids are saved beside it and sparsearch's loader slices the decoder.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from sparsearch.pruning.base import PruneConfig, PruneReport, PruningError, count_parameters, weight_sparsity


def term_usage(model: nn.Module, token_rows: Sequence[Sequence[int]], batch_size: int = 16,
               max_length: int = 256) -> np.ndarray:
    """Per term: documents with a non-zero weight, plus a fraction < 1 from its largest weight (tie-break)."""
    from sparsearch.retriever.mlm import mlm_parts, screened_splade_vectors
    from sparsearch.retriever.splade import pad_rows

    parts = mlm_parts(model)
    vocab = parts.decoder_weight.shape[0]
    counts = torch.zeros(vocab, dtype=torch.float64)
    largest = torch.zeros(vocab, dtype=torch.float64)
    order = np.argsort([len(r) for r in token_rows], kind="stable")
    with torch.inference_mode():
        for lo in range(0, len(order), batch_size):
            rows = [list(token_rows[i])[:max_length] for i in order[lo:lo + batch_size]]
            vectors = screened_splade_vectors(parts, *pad_rows(rows, 0), screen_dtype=torch.float32).double()
            counts += (vectors > 0).sum(dim=0)
            largest = torch.maximum(largest, vectors.amax(dim=0))
    return (counts + largest / (1.0 + largest)).numpy()


def kept_terms(usage: np.ndarray, keep_fraction: float) -> np.ndarray:
    """Sorted ids of the ``round(keep_fraction · V)`` most used terms."""
    n_keep = int(round(keep_fraction * len(usage)))
    if n_keep < 1:
        raise PruningError(f"vocab_keep {keep_fraction} keeps no term")
    return np.sort(np.argsort(-usage, kind="stable")[:n_keep]).astype(np.int64)


class VocabPruner:
    """Keep the decoder rows of the terms most used on ``token_rows`` (tokenised sample documents)."""

    name = "vocab"

    def __init__(self, token_rows: Sequence[Sequence[int]]) -> None:
        if not token_rows:
            raise PruningError("vocabulary pruning needs sample documents")
        self.token_rows = token_rows

    def prune(self, model: nn.Module, config: PruneConfig) -> PruneReport:
        usage = term_usage(model, self.token_rows)
        terms = kept_terms(usage, config.vocab_keep)
        n = count_parameters(model)
        used = int((usage >= 1).sum())
        return PruneReport("vocab", {"vocab_keep": config.vocab_keep, "sample_documents": len(self.token_rows),
                                     "terms_used_in_sample": used},
                           weight_sparsity(model), n, n, runtime={"vocab_terms": terms.tolist()})
