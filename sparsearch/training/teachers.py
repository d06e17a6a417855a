"""Teacher scores for every (training query, corpus document) pair of a dataset.

The training corpora are small (thousands of documents), so each teacher
produces a dense ``[queries, documents]`` matrix once, and batches look
their candidates up: exact scores for any candidate, hard negatives for free.
Sparse teachers (BM25, SPLADE) score through sparsearch's own index with
``k = n_docs`` (a document an exhaustive search does not return scores 0,
which is its true score); the dense teacher is a mean-pooled bi-encoder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from sparsearch.protocols import SparseEncoder
from sparsearch.retriever.registry import build_encoder
from sparsearch.types import Document

log = logging.getLogger(__name__)


def sparse_score_matrix(encoder: SparseEncoder, documents: Sequence[Document], queries: Sequence[str]) -> np.ndarray:
    """``[len(queries), len(documents)]`` scores of an exhaustive search with ``encoder``."""
    from sparsearch.retriever.retriever import Retriever

    from sparsearch.index.config import IndexConfig

    index = Retriever.build(documents, encoder=encoder, config=IndexConfig(quantization="none", stored_fields=()))
    column = {d.doc_id: i for i, d in enumerate(documents)}
    out = np.zeros((len(queries), len(documents)), np.float32)
    for qi, hits in enumerate(index.search_batch(list(queries), k=len(documents))):
        cols = np.fromiter((column[i] for i in hits.ids), np.int64, count=len(hits.ids))
        out[qi, cols] = hits.scores
    return out


def bm25_score_matrix(documents: Sequence[Document], queries: Sequence[str]) -> np.ndarray:
    return sparse_score_matrix(build_encoder("bm25"), documents, queries)


def splade_score_matrix(model_dir: str | Path, documents: Sequence[Document], queries: Sequence[str],
                        device: str = "auto") -> np.ndarray:
    encoder = build_encoder("splade", {"model_dir": str(model_dir), "device": device, "batch_size": 64})
    return sparse_score_matrix(encoder, documents, queries)


def dense_embeddings(model_dir: str | Path, texts: Sequence[str], device: str = "auto", max_length: int = 256,
                     batch_size: int = 128):  # type: ignore[no-untyped-def]
    """L2-normalised mean-pooled embeddings (all-MiniLM-L6-v2's sentence-transformers recipe)."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from sparsearch.training.device import resolve_device

    device = resolve_device(device)
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    model = AutoModel.from_pretrained(str(model_dir), dtype=torch.float32).to(device).eval()
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = torch.zeros((len(texts), model.config.hidden_size), dtype=torch.float32)
    with torch.inference_mode():
        for lo in range(0, len(texts), batch_size):
            idx = order[lo:lo + batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp_min(1.0)
            out[torch.as_tensor(idx)] = torch.nn.functional.normalize(pooled, dim=-1).float().cpu()
    return out


def dense_score_matrix(model_dir: str | Path, documents: Sequence[Document], queries: Sequence[str],
                       device: str = "auto") -> np.ndarray:
    """Cosine similarities of the dense bi-encoder."""
    docs = dense_embeddings(model_dir, [d.contents for d in documents], device)
    qs = dense_embeddings(model_dir, list(queries), device)
    return (qs @ docs.T).numpy().astype(np.float32)
