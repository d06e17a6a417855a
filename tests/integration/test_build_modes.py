"""Build variants that must not change results: storage precision, parallel analysis."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sparsearch import Index, read_corpus
from sparsearch.index.config import IndexConfig
from sparsearch.types import Document


def test_uint8_tf_storage_is_lossless_for_bm25(scifact_slice: Path, scifact_queries: list[str]) -> None:
    docs = list(read_corpus(scifact_slice))
    exact = Index.build(docs, config=IndexConfig(quantization="none"))
    packed = Index.build(docs, config=IndexConfig(quantization="uint8"))
    assert packed.inverted.segments[0].postings_weights.dtype == np.uint8
    assert packed.inverted.segments[0].term_scales is None  # every tf fit in a byte: no scales stored
    queries = scifact_queries[:300]
    for a, b in zip(exact.search_batch(queries, 10), packed.search_batch(queries, 10)):
        assert a.ids == b.ids
        np.testing.assert_array_equal(a.scores, b.scores)


def test_default_storage_falls_back_to_float_for_large_tf() -> None:
    docs = [Document("big", "", "word " * 300), Document("small", "", "word other")]
    index = Index.build(docs)
    assert index.inverted.segments[0].postings_weights.dtype == np.float32
    assert index.search("word", 2).ids == ["big", "small"]


def test_parallel_analysis_builds_the_same_index(scifact_slice: Path) -> None:
    docs = list(read_corpus(scifact_slice))
    serial = Index.build(docs, config=IndexConfig(threads=1, chunk_size=200))
    parallel = Index.build(docs, config=IndexConfig(threads=2, chunk_size=200))
    assert serial.encoder.vocab.terms == parallel.encoder.vocab.terms
    a, b = serial.inverted.segments[0], parallel.inverted.segments[0]
    for name in ("postings_offsets", "postings_docs", "postings_weights", "doc_lengths", "doc_norms"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    np.testing.assert_array_equal(a.doc_ids.offsets, b.doc_ids.offsets)
    np.testing.assert_array_equal(a.doc_ids.data, b.doc_ids.data)
