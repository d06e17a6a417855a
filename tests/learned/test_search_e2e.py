"""Encode -> index -> save -> open -> search, checked against a brute-force numpy dot product."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from sparsearch.corpus import read_corpus
from sparsearch import Index
from sparsearch.retriever.inference_free import InferenceFreeConfig, InferenceFreeEncoder
from sparsearch.retriever.splade import SpladeConfig, SpladeEncoder

from .plain import assert_same_top_k, idf_query_vector, plain_splade

DOC_MAX_LENGTH = 128


@pytest.fixture(scope="module")
def corpus(eval_slice: Path):  # type: ignore[no-untyped-def]
    docs = list(read_corpus(eval_slice))
    assert len(docs) == 200
    return docs


@pytest.fixture(scope="module")
def queries(eval_slice: Path) -> list[str]:
    with open(eval_slice / "queries.jsonl", encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f][:12]
    return texts + ["[CLS] cells", "zzzz qqqq"]  # a special token typed in, and mostly unknown word pieces


def assert_postings(index: Index, doc_vectors: np.ndarray, pooled: np.ndarray) -> None:
    """One posting per non-zero weight (a term within 1e-5 of the ReLU edge may fall either way)."""
    edge = np.abs(pooled) < 1e-5
    assert int(((doc_vectors > 0) & ~edge).sum()) <= index.inverted.n_postings <= int(((doc_vectors > 0) | edge).sum())
    assert index.inverted.n_postings > 0


def test_splade_index_matches_brute_force(tiny_mlm: Path, corpus, queries: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    encoder = SpladeEncoder(SpladeConfig(model_dir=str(tiny_mlm), max_length=DOC_MAX_LENGTH, device="cpu"))
    built = Index.build(corpus, path=tmp_path / "idx", encoder=encoder)
    index = Index.open(tmp_path / "idx")
    assert index.encoder.name == "splade" and index.n_docs == 200
    doc_vectors, pooled = plain_splade(tiny_mlm, [d.contents for d in corpus], max_length=DOC_MAX_LENGTH,
                                       return_pooled=True)
    assert_postings(index, doc_vectors, pooled)
    query_vectors = plain_splade(tiny_mlm, queries, max_length=256)
    scores = query_vectors @ doc_vectors.T
    ids = [d.doc_id for d in corpus]
    for q, row in zip(queries, scores):
        hits = index.search(q, k=10)
        assert_same_top_k(hits, ids, row, 10)
        assert built.search(q, k=10).ids == hits.ids  # the in-memory index agrees with the reopened one
    # search_batch and encode_queries agree with search
    batch = index.search_batch(queries[:3], k=10, threads=1)
    assert [h.ids for h in batch] == [index.search(q, 10).ids for q in queries[:3]]
    encoded = index.encode_queries(queries[:1])
    got = np.zeros(query_vectors.shape[1])
    got[encoded.term_ids] = encoded.weights
    np.testing.assert_allclose(got, query_vectors[0], atol=1e-5)


def test_inference_free_index_matches_brute_force_and_outlives_the_model(
        inference_free_mlm: Path, corpus, queries: list[str], tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    model_dir = tmp_path / "model"
    shutil.copytree(inference_free_mlm, model_dir)
    idf = json.loads((model_dir / "idf.json").read_text(encoding="utf-8"))
    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(model_dir), max_length=DOC_MAX_LENGTH,
                                                       device="cpu"))
    Index.build(corpus, path=tmp_path / "idx", encoder=encoder)
    index = Index.open(tmp_path / "idx")
    assert index.encoder.name == "inference-free"

    doc_vectors, pooled = plain_splade(model_dir, [d.contents for d in corpus], max_length=DOC_MAX_LENGTH,
                                       return_pooled=True)
    doc_vectors[:, :5] = 0.0  # special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]): no query holds them
    pooled[:, :5] = -1.0
    assert_postings(index, doc_vectors, pooled)
    vocab = doc_vectors.shape[1]
    query_vectors = np.stack([idf_query_vector(model_dir, q, idf, vocab) for q in queries])
    scores = query_vectors @ doc_vectors.T
    ids = [d.doc_id for d in corpus]
    expected = []
    for q, row in zip(queries, scores):
        hits = index.search(q, k=10)
        assert_same_top_k(hits, ids, row, 10)
        expected.append((hits.ids, hits.scores.tolist()))
    assert any(len(h) for h, _ in expected)

    # Queries need only what the index stored: the idf table and the tokenizer.
    model_dir.rename(tmp_path / "moved-away")
    reopened = Index.open(tmp_path / "idx")
    assert reopened.encoder.queries.idf_table == pytest.approx(idf)
    for q, (ids_before, scores_before) in zip(queries, expected):
        hits = reopened.search(q, k=10)
        assert hits.ids == ids_before and hits.scores.tolist() == scores_before
    assert reopened.encoder._doc_model is None


def test_searching_an_inference_free_index_imports_no_torch(inference_free_mlm: Path, corpus,  # type: ignore[no-untyped-def]
                                                            tmp_path: Path) -> None:
    """No model at query time: a fresh process opens and searches the index without torch or transformers."""
    import subprocess
    import sys

    encoder = InferenceFreeEncoder(InferenceFreeConfig(model_dir=str(inference_free_mlm), max_length=DOC_MAX_LENGTH,
                                                       device="cpu"))
    Index.build(corpus[:20], path=tmp_path / "idx", encoder=encoder)
    code = ("import sys; from sparsearch import Index; "
            f"hits = Index.open({str(tmp_path / 'idx')!r}).search('cells and proteins', 5); "
            "print(len(hits.ids), 'torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[1:] == ["False", "False"] and int(out[0]) > 0
