"""Learned-sparse vectors out and back in: WordPiece token strings, dot-product scores, same top-10."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparsearch.corpus import read_corpus
from sparsearch import Index
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder
from sparsearch.vectors_io import build_from_vectors, export_index, search_vectors, token_strings

from .plain import assert_same_top_k


@pytest.fixture(scope="module")
def queries(eval_slice: Path) -> list[str]:
    with open(eval_slice / "queries.jsonl", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:20] + ["[CLS] cells", "zzzz qqqq"]


def test_inference_free_round_trip_with_its_tokenizer_and_idf(inference_free_mlm: Path, eval_slice: Path,
                                                              queries: list[str], tmp_path: Path) -> None:
    """Export (exact floats) -> import with the model's tokenizer + idf.json as query analyzer: same top-10 and
    scores for text queries, with neither the model nor torch needed to search the import."""
    enc = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm), max_length=128, device="cpu"))
    original = Index.build(read_corpus(eval_slice), path=tmp_path / "if", encoder=enc)
    summary = export_index(original, tmp_path / "if.jsonl", "jsonl")
    assert not summary.bm25_impacts and summary.postings == original.inverted.n_postings
    first = json.loads((tmp_path / "if.jsonl").read_text(encoding="utf-8").splitlines()[0])
    vocab = set(token_strings(enc))
    assert first["vector"] and set(first["vector"]) <= vocab  # WordPiece strings, e.g. "##s"
    imported = build_from_vectors(tmp_path / "if.jsonl", tmp_path / "imp", inference_free_mlm)
    reopened = Index.open(tmp_path / "imp")
    assert reopened.encoder.config() == {"query_analyzer": "wordpiece"}
    # The import numbers its terms its own way, so a query adds the same float32 products in another order:
    # scores agree to rounding, and documents tied within it at the cut may trade places (seen once under load).
    everything = original.search_batch(queries, k=original.n_docs)
    for q, full, a, b in zip(queries, everything, original.search_batch(queries, k=10),
                             reopened.search_batch(queries, k=10)):
        assert_same_top_k(b, full.ids, full.scores, 10)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
    assert imported.n_docs == original.n_docs


def test_splade_round_trip_anserini_and_query_vectors(tiny_mlm: Path, eval_slice: Path, queries: list[str],
                                                      tmp_path: Path) -> None:
    """SPLADE: documents exported as Anserini integers (×100), queries as vectors: top-10 within quantisation."""
    enc = SpladeEncoder(SpladeConfig(model_dir=str(tiny_mlm), max_length=128, device="cpu"))
    original = Index.build(read_corpus(eval_slice), path=tmp_path / "sp", encoder=enc)
    tokens = token_strings(enc)
    qbatch = enc.encode_queries(queries)
    vectors = [{tokens[t]: float(w) for t, w in zip(*qbatch.row(i))} for i in range(len(queries))]
    # The query vectors given by token string reproduce the index's own text search exactly.
    for v, by_vector, by_text in zip(vectors, search_vectors(original, vectors, k=10),
                                     original.search_batch(queries, k=10)):
        assert by_vector.ids == by_text.ids
        np.testing.assert_allclose(by_vector.scores, by_text.scores, rtol=1e-5)
    summary = export_index(original, tmp_path / "sp.jsonl", "anserini", scale=100)
    imported = build_from_vectors(tmp_path / "sp.jsonl", tmp_path / "imp")
    everything = original.search_batch(queries, k=original.n_docs)
    for v, exact, hits in zip(vectors, everything, search_vectors(imported, vectors, k=10)):
        bound = sum(v.values()) * summary.max_abs_error + 1e-4
        scores = exact.as_dict()
        for doc_id, score in zip(hits.ids, hits.scores):
            assert abs(score / 100 - scores[doc_id]) <= bound
        if len(exact) >= 10:
            assert all(scores[d] >= float(exact.scores[9]) - 2 * bound for d in hits.ids)
