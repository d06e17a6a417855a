"""The evaluation's timing wrapper must pass the same protocol checks as the encoder it wraps.

Python 3.12 checks runtime protocols with ``inspect.getattr_static``, which
does not see members forwarded by ``__getattr__``: a forwarding-only wrapper
of BM25 was then indexed as a dense encoder and every ``evaluate_beir`` of a
sparse model failed on 3.12.  These tests look the members up the 3.12 way on
any Python, so they fail on 3.11 too if a member goes back to forwarding.
"""

from __future__ import annotations

import inspect

import numpy as np

from sparsearch.eval.beir import TimedSparseEncoder, timing_wrapper
from sparsearch.protocols import Encoder, SparseEncoder, StreamingEncoder
from sparsearch.retriever.registry import build_encoder
from sparsearch.types import Document

SPARSE_MEMBERS = ("name", "encode_documents", "encode_queries", "config", "state_files", "scoring", "n_terms", "load")


def _statically_has(obj: object, member: str) -> bool:
    try:
        inspect.getattr_static(obj, member)
    except AttributeError:
        return False
    return True


def test_bm25_wrapper_statically_has_every_sparse_protocol_member() -> None:
    wrapped = timing_wrapper(build_encoder("bm25"))
    assert isinstance(wrapped, TimedSparseEncoder)
    missing = [m for m in SPARSE_MEMBERS if not _statically_has(wrapped, m)]
    assert missing == []
    assert _statically_has(wrapped, "encode_document_stream")  # BM25 streams; the wrapper keeps that
    assert isinstance(wrapped, SparseEncoder) and isinstance(wrapped, StreamingEncoder)


def test_wrapper_forwards_and_counts() -> None:
    inner = build_encoder("bm25")
    wrapped = timing_wrapper(inner)
    docs = [Document("a", "sparse retrieval with an inverted index"), Document("b", "dense retrieval")]
    batch = wrapped.encode_documents(docs)
    assert wrapped.documents == 2 and wrapped.seconds > 0
    assert wrapped.n_terms == inner.n_terms == len(set("sparse retrieval with an inverted index dense".split())) - 2
    assert wrapped.config() == inner.config() and wrapped.name == inner.name
    assert wrapped.state_files() == inner.state_files()
    assert len(batch) == 2


class _DenseLike:
    """An encoder that is not sparse: the wrapper must not claim the sparse members."""

    name = "dense-like"

    def encode_documents(self, documents):  # type: ignore[no-untyped-def]
        return np.zeros((len(documents), 4), np.float32)

    def encode_queries(self, queries, stats=None):  # type: ignore[no-untyped-def]
        return np.zeros((len(queries), 4), np.float32)

    def config(self):  # type: ignore[no-untyped-def]
        return {}

    def state_files(self):  # type: ignore[no-untyped-def]
        return {}


def test_dense_wrapper_is_an_encoder_but_not_sparse() -> None:
    wrapped = timing_wrapper(_DenseLike())
    assert not isinstance(wrapped, TimedSparseEncoder)
    assert isinstance(wrapped, Encoder) and not isinstance(wrapped, SparseEncoder)
    assert not _statically_has(wrapped, "scoring") and not _statically_has(wrapped, "encode_document_stream")
