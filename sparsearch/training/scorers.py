"""Teachers as scorers of (query, document) pairs, for corpora of any size.

A teacher must do two things for the trainer: name each query's top
candidates (hard negatives) and give its exact score for any candidate a
batch draws.  A ``[queries, documents]`` matrix does both for a few thousand
documents, but not for the 10⁵-document general training text or a user's
corpus, so each teacher here keeps its query and document representations
and answers :meth:`top` (a sparse teacher through sparsearch's own inverted
index, a dense one by blocked matrix products) and :meth:`pairs` (row-wise
dot products) without ever forming the matrix.

BM25 becomes a linear sparse scorer over precomputed impacts
``tf / (tf + K(d))`` with query weights ``idf · qtf``: the same products the
index's saturating kernel sums, under the same collection statistics and
Lucene length norms, so its scores equal ``sparsearch``'s BM25 (tested).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence

import numpy as np
import scipy.sparse as sp

from sparsearch.types import CollectionStats, Document, SparseBatch

log = logging.getLogger(__name__)


class PairScorer(Protocol):
    """A teacher over fixed lists of queries and documents (row ``i`` = ``queries[i]``)."""

    name: str

    def top(self, depth: int) -> np.ndarray:
        """``[queries, min(depth, documents)]`` document rows, best first."""

    def pairs(self, query_rows: np.ndarray, doc_rows: np.ndarray) -> np.ndarray:
        """The score of each ``(query_rows[i], doc_rows[i])``, float32."""


def _csr(batch: SparseBatch, n_cols: int) -> sp.csr_matrix:
    return sp.csr_matrix((np.asarray(batch.weights, np.float32), np.asarray(batch.term_ids, np.int64),
                          np.asarray(batch.offsets, np.int64)), shape=(len(batch), n_cols))


@dataclass
class SparseScorer:
    """Dot products of sparse query and document vectors (``[rows, terms]`` CSR)."""

    name: str
    queries: sp.csr_matrix
    documents: sp.csr_matrix
    threads: int | None = None

    def top(self, depth: int) -> np.ndarray:
        from sparsearch.index.config import IndexConfig
        from sparsearch.index.inverted import InvertedIndex
        from sparsearch.index.segment_build import build_segment
        from sparsearch.scoring import Scoring

        docs, queries = self.documents, self.queries
        n_docs = docs.shape[0]
        depth = min(depth, n_docs)
        config = IndexConfig(quantization="none", stored_fields=())
        batch = SparseBatch(docs.indptr.astype(np.int64), docs.indices.astype(np.int32), docs.data.astype(np.float32))
        segment = build_segment(batch, [str(i) for i in range(n_docs)], [{}] * n_docs, docs.shape[1], config)
        index = InvertedIndex([segment], Scoring("linear"), config)
        out = np.empty((queries.shape[0], depth), np.int64)
        rng = np.random.default_rng(0)
        for lo in range(0, queries.shape[0], 4096):
            block = queries[lo:lo + 4096]
            qb = SparseBatch(block.indptr.astype(np.int64), block.indices.astype(np.int32),
                             block.data.astype(np.float32))
            for i, hits in enumerate(index.hits(qb, depth, threads=self.threads)):
                found = np.asarray(hits.internal_ids, np.int64)
                if len(found) < depth:  # fewer matching documents than asked: pad with random non-matches
                    rest = np.setdiff1d(rng.choice(n_docs, size=min(n_docs, 2 * depth + 8), replace=False), found)
                    found = np.concatenate([found, rest[: depth - len(found)]])
                    if len(found) < depth:
                        found = np.concatenate([found, np.setdiff1d(np.arange(n_docs), found)[: depth - len(found)]])
                out[lo + i] = found
        return out

    def pairs(self, query_rows: np.ndarray, doc_rows: np.ndarray) -> np.ndarray:
        """Σ_t q_t·d_t per pair, walking each query's few terms and looking the document's weight up by
        ``term · n_docs + doc`` in the sorted postings: slicing document rows out of the CSR instead costs
        the documents' whole length per pair (10× slower for learned-sparse documents of ~200 terms)."""
        keys, values = self._postings()
        n_docs = np.int64(self.documents.shape[0])
        q = self.queries
        query_rows = np.asarray(query_rows, np.int64)
        doc_rows = np.asarray(doc_rows, np.int64)
        out = np.empty(len(query_rows), np.float32)
        step = 1_000_000
        for lo in range(0, len(query_rows), step):
            qr, dr = query_rows[lo:lo + step], doc_rows[lo:lo + step]
            starts, counts = q.indptr[qr], np.diff(q.indptr)[qr]
            pair = np.repeat(np.arange(len(qr)), counts)
            first = np.repeat(np.cumsum(counts) - counts, counts)
            entry = np.repeat(starts, counts) + (np.arange(len(pair)) - first)
            wanted = q.indices[entry].astype(np.int64) * n_docs + dr[pair]
            pos = np.minimum(np.searchsorted(keys, wanted), len(keys) - 1)
            found = keys[pos] == wanted if len(keys) else np.zeros(len(wanted), bool)
            contrib = np.where(found, values[pos] if len(keys) else 0.0, 0.0) * q.data[entry]
            out[lo:lo + len(qr)] = np.bincount(pair, weights=contrib, minlength=len(qr))
        return out

    def _postings(self) -> tuple[np.ndarray, np.ndarray]:
        cached = getattr(self, "_sorted", None)
        if cached is None:
            coo = self.documents.tocoo()
            keys = coo.col.astype(np.int64) * np.int64(self.documents.shape[0]) + coo.row.astype(np.int64)
            order = np.argsort(keys, kind="stable")
            cached = self._sorted = (keys[order], coo.data[order].astype(np.float64))
        return cached


@dataclass
class DenseScorer:
    """Inner products of dense query and document embeddings (cosine when both are normalised)."""

    name: str
    queries: np.ndarray
    documents: np.ndarray
    device: str = "cpu"

    def top(self, depth: int) -> np.ndarray:
        import torch

        depth = min(depth, len(self.documents))
        docs = torch.as_tensor(self.documents, device=self.device)
        out = np.empty((len(self.queries), depth), np.int64)
        for lo in range(0, len(self.queries), 1024):
            q = torch.as_tensor(self.queries[lo:lo + 1024], device=self.device)
            out[lo:lo + len(q)] = torch.topk(q @ docs.T, depth, dim=1).indices.cpu().numpy()
        return out

    def pairs(self, query_rows: np.ndarray, doc_rows: np.ndarray) -> np.ndarray:
        out = np.empty(len(query_rows), np.float32)
        for lo in range(0, len(query_rows), 500_000):
            q, d = self.queries[query_rows[lo:lo + 500_000]], self.documents[doc_rows[lo:lo + 500_000]]
            out[lo:lo + len(q)] = np.einsum("ij,ij->i", q, d)
        return out


def bm25_scorer(documents: Sequence[Document], queries: Sequence[str], threads: int | None = None) -> SparseScorer:
    """BM25 (sparsearch's defaults: Lucene English analyzer, k1 0.9, b 0.4, Lucene norms) as a linear scorer."""
    from sparsearch.index.inverted import norm_k_table
    from sparsearch.index.small import encode_norms
    from sparsearch.retriever.registry import build_encoder

    encoder = build_encoder("bm25")
    batch = encoder.encode_documents(list(documents))
    lengths = np.asarray(batch.lengths, np.float64)
    n_terms = encoder.n_terms
    df = np.bincount(batch.term_ids, minlength=n_terms).astype(np.int64)
    stats = CollectionStats(n_docs=int(np.count_nonzero(lengths)), total_length=float(lengths.sum()), doc_freq=df)
    s = encoder.settings
    avgdl = stats.avg_length or 1.0
    if s.length_norm == "lucene":  # the index's own K(d) table, read through each document's norm byte
        kd = norm_k_table(encoder.scoring, avgdl)[encode_norms(lengths.astype(np.int64))]
    else:
        kd = (s.k1 * ((1.0 - s.b) + s.b * lengths / np.float32(avgdl))).astype(np.float32)
    tf = np.asarray(batch.weights, np.float32)
    rows = np.repeat(np.arange(len(batch)), np.diff(batch.offsets))
    impacts = tf / (tf + kd[rows])
    docs = _csr(SparseBatch(batch.offsets, batch.term_ids, impacts), n_terms)
    q = encoder.encode_queries(list(queries), stats)
    return SparseScorer("bm25", _csr(q, n_terms), docs, threads)


def sparse_encoder_scorer(name: str, encoder, documents: Sequence[Document], queries: Sequence[str],  # type: ignore[no-untyped-def]
                          threads: int | None = None) -> SparseScorer:
    """A learned sparse encoder's dot products (SPLADE, or an inference-free model's IDF queries)."""
    docs = encoder.encode_documents(list(documents))
    qs = encoder.encode_queries(list(queries))
    n_terms = int(encoder.n_terms) if hasattr(encoder, "n_terms") else int(max(docs.term_ids.max(initial=0),
                                                                                 qs.term_ids.max(initial=0)) + 1)
    return SparseScorer(name, _csr(qs, n_terms), _csr(docs, n_terms), threads)


def dense_scorer(model_dir: str | Path, documents: Sequence[Document], queries: Sequence[str],
                 device: str = "auto") -> DenseScorer:
    """Cosine similarities of a mean-pooled bi-encoder (see :func:`~sparsearch.training.teachers.dense_embeddings`)."""
    from sparsearch.training.device import resolve_device
    from sparsearch.training.teachers import dense_embeddings

    device = resolve_device(device)
    docs = dense_embeddings(model_dir, [d.contents for d in documents], device).numpy()
    qs = dense_embeddings(model_dir, list(queries), device).numpy()
    return DenseScorer("dense", qs, docs, device)
