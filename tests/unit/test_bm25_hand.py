"""BM25 scores on a corpus small enough to compute by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsearch import BM25Config, BM25Encoder, Document, Index
from sparsearch.retriever.bm25 import bm25_idf

DOCS = [
    Document("d1", "", "cat sat mat"),
    Document("d2", "", "cat cat dog"),
    Document("d3", "", "dog barks loud dog dog"),
]


def formula(query: list[str], doc_tokens: list[list[str]], k1: float, b: float) -> list[float]:
    n = len(doc_tokens)
    avgdl = sum(len(d) for d in doc_tokens) / n
    out = []
    for d in doc_tokens:
        s = 0.0
        for t in set(query):
            df = sum(t in x for x in doc_tokens)
            if df == 0:
                continue
            idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
            tf = d.count(t)
            s += query.count(t) * idf * tf / (tf + k1 * (1 - b + b * len(d) / avgdl))
        out.append(s)
    return out


@pytest.mark.parametrize("length_norm", ["lucene", "exact"])
@pytest.mark.parametrize("k1,b", [(0.9, 0.4), (1.2, 0.75), (2.0, 0.0), (0.5, 1.0)])
def test_scores_equal_formula(k1: float, b: float, length_norm: str) -> None:
    enc = BM25Encoder(BM25Config(k1=k1, b=b, length_norm=length_norm))  # type: ignore[arg-type]
    index = Index.build(DOCS, encoder=enc)
    tokens = [d.text.split() for d in DOCS]
    # Stemming: "barks" -> "bark"; none of the query words below is a stop word.
    for query in (["cat"], ["dog"], ["cat", "dog"], ["dog", "dog", "mat"]):
        expected = formula(query, tokens, k1, b)
        hits = index.search(" ".join(query), k=3)
        got = dict(zip(hits.ids, hits.scores.tolist()))
        for doc, e in zip(DOCS, expected):
            if e > 0:
                assert got[doc.doc_id] == pytest.approx(e, abs=1e-6)
            else:
                assert doc.doc_id not in got


def test_idf_is_lucene_form() -> None:
    idf = bm25_idf(np.array([1, 2, 3]), 3)
    assert idf.tolist() == pytest.approx([math.log(1 + 2.5 / 1.5), math.log(1 + 1.5 / 2.5), math.log(1 + 0.5 / 3.5)],
                                         abs=1e-7)


def test_lucene_norm_changes_long_document_scores() -> None:
    """Beyond 24 tokens Lucene's one-byte norm rounds lengths (41 -> 40); 'exact' keeps them."""
    from sparsearch.index import kernels

    assert kernels.decode_norm_table()[kernels.encode_norms(np.array([41.0], np.float32))[0]] == 40
    long_doc = Document("long", "", " ".join(["alpha"] * 3 + [f"w{i}" for i in range(38)]))  # 41 tokens
    short = Document("short", "", "alpha beta")
    docs = [long_doc, short]
    lucene = Index.build(docs).search("alpha", 2).as_dict()
    exact = Index.build(docs, encoder=BM25Encoder(BM25Config(length_norm="exact"))).search("alpha", 2).as_dict()
    avgdl = (41 + 2) / 2
    idf = math.log(1 + 0.5 / 2.5)

    def score(tf: int, dl: float) -> float:
        return idf * tf / (tf + 0.9 * (0.6 + 0.4 * dl / avgdl))

    assert lucene["short"] == pytest.approx(score(1, 2), abs=1e-6)
    assert exact["short"] == pytest.approx(score(1, 2), abs=1e-6)
    assert lucene["long"] == pytest.approx(score(3, 40), abs=1e-6)
    assert exact["long"] == pytest.approx(score(3, 41), abs=1e-6)
    assert lucene["long"] > exact["long"]


def test_query_term_repetition_boosts() -> None:
    index = Index.build(DOCS)
    once = index.search("mat", 3).as_dict()
    twice = index.search("mat mat", 3).as_dict()
    assert twice["d1"] == pytest.approx(2 * once["d1"], rel=1e-6)


def test_empty_and_unknown_queries_give_no_hits() -> None:
    index = Index.build(DOCS)
    assert len(index.search("", 10)) == 0
    assert len(index.search("the of and", 10)) == 0  # stop words only
    assert len(index.search("zebra", 10)) == 0
    assert [len(h) for h in index.search_batch(["", "cat"], 10)] == [0, 2]


def test_ties_break_by_internal_doc_id() -> None:
    docs = [Document(f"x{i}", "", "same words here") for i in range(5)]
    hits = Index.build(docs).search("words", 5)
    assert hits.ids == ["x0", "x1", "x2", "x3", "x4"]
    assert len(set(hits.scores.tolist())) == 1
