"""Every encoder and every index must satisfy the protocols, and behave as they promise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from sparsearch import BM25Config, BM25Encoder, Document, Index
from sparsearch.protocols import SparseEncoder, SparseIndex
from sparsearch.retriever.registry import encoder_class
from sparsearch.types import SparseBatch

DOCS = [Document("a", "Alpha", "first document about retrieval"), Document("b", "", "second one, about indexes")]


def wordpiece_dir(tmp_path: Path) -> Path:
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "first", "second", "document", "about", "retrieval", "index",
             "##es", "one", ",", "alpha"]
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return tmp_path


@pytest.fixture(params=["lucene", "wordpiece"])
def encoder(request: pytest.FixtureRequest, tmp_path: Path) -> SparseEncoder:
    if request.param == "lucene":
        return BM25Encoder()
    return BM25Encoder(BM25Config(analyzer="wordpiece", tokenizer=str(wordpiece_dir(tmp_path))))


def test_encoder_contract(encoder: SparseEncoder, tmp_path: Path) -> None:
    assert isinstance(encoder, SparseEncoder)
    docs = encoder.encode_documents(DOCS)
    assert isinstance(docs, SparseBatch) and len(docs) == 2
    assert docs.term_ids.max() < encoder.n_terms
    for terms, _ in docs.rows():
        assert len(set(terms.tolist())) == len(terms)  # unique term ids per row
    # Save -> load through the registry gives an encoder producing identical vectors.
    files = {}
    for kind, data in encoder.state_files().items():
        (tmp_path / kind).write_bytes(data)
        files[kind] = tmp_path / kind
    loaded = encoder_class(encoder.name).load(encoder.config(), files)
    again = loaded.encode_documents(DOCS)
    np.testing.assert_array_equal(again.term_ids, docs.term_ids)
    np.testing.assert_array_equal(again.weights, docs.weights)


def test_index_contract(encoder: SparseEncoder, tmp_path: Path) -> None:
    index = Index.build(DOCS, path=tmp_path / "idx", encoder=encoder)
    for inverted in (index.inverted, Index.open(tmp_path / "idx").inverted):
        assert isinstance(inverted, SparseIndex)
        assert inverted.n_docs == 2 and inverted.stats.n_docs == 2
    assert index.search("retrieval", 2).ids == ["a"]
    assert Index.open(tmp_path / "idx").search("retrieval", 2).ids == ["a"]
