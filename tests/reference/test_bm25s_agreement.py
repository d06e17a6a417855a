"""Agreement with bm25s (a peer implementation) fed exactly our tokens.

bm25s's "lucene" method is BM25 with Lucene's IDF and exact document
lengths, so our index runs with ``length_norm="exact"`` for this comparison.
"""

from __future__ import annotations

from pathlib import Path

import bm25s
import numpy as np

from sparsearch import BM25Config, BM25Encoder, Index, read_corpus


def test_same_top10_as_bm25s(scifact_slice: Path, scifact_queries: list[str]) -> None:
    docs = list(read_corpus(scifact_slice))
    encoder = BM25Encoder(BM25Config(k1=0.9, b=0.4, length_norm="exact"))
    index = Index.build(docs, encoder=encoder)
    analyzer = encoder.analyzer
    corpus_tokens = [analyzer.analyze(d.contents) for d in docs]

    peer = bm25s.BM25(k1=0.9, b=0.4, method="lucene")
    peer.index(corpus_tokens, show_progress=False)

    compared = agree = 0
    for query in scifact_queries:
        terms = [t for t in analyzer.analyze(query) if t in encoder.vocab]
        if not terms or len(set(terms)) != len(terms):
            continue  # bm25s does not boost repeated query terms; compare on distinct-term queries
        ours = index.search(query, 10)
        ids, scores = peer.retrieve([terms], k=10, show_progress=False)
        theirs = [docs[i].doc_id for i, s in zip(ids[0], scores[0]) if s > 0]
        compared += 1
        if set(ours.ids) == set(theirs):
            agree += 1
            np.testing.assert_allclose(np.sort(ours.scores), np.sort(scores[0][: len(theirs)]), rtol=1e-4)
    assert compared > 800
    assert agree / compared >= 0.99
