"""RM3 and Rocchio pseudo-relevance feedback against hand computations (sparsearch.retriever.prf)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sparsearch import BM25Config, BM25Encoder, Document, Index
from sparsearch.retriever.bm25 import bm25_idf
from sparsearch.retriever.prf import (
    RM3Config,
    anserini_term_mask,
    bm25_query_batch,
    expand_with_feedback,
    relevance_model,
    rm3_expand,
    rm3_expand_queries,
    rm3_search,
    rocchio,
    term_string_ranks,
)
from sparsearch.types import CollectionStats

# A hand-made vocabulary: term id -> string, with collection statistics over N = 40 documents.
TERMS = ["cat", "dog", "fish", "bird", "the", "x", "café"]
CAT, DOG, FISH, BIRD, THE, X, CAFE = range(7)
STATS = CollectionStats(n_docs=40, total_length=400.0, doc_freq=np.array([2, 3, 1, 4, 15, 1, 1]))
# df/N: cat .05, dog .075, fish .025, bird .1 (kept: Anserini drops only ratio > .1), the .375 (dropped).


def doc(tf: dict[int, int], length: float) -> tuple[np.ndarray, np.ndarray, float]:
    return np.array(list(tf), np.int32), np.array(list(tf.values()), np.float32), length


D1 = doc({CAT: 3, DOG: 1, FISH: 1, THE: 5, X: 2}, 12)   # first-pass score 6
D2 = doc({DOG: 2, BIRD: 2, CAFE: 4, CAT: 1}, 9)         # score 3
D3 = doc({FISH: 4}, 4)                                   # score 1, beyond fb_docs = 2
FEEDBACK = [D1, D2, D3]
SCORES = [6.0, 3.0, 1.0]
CONFIG = RM3Config(fb_docs=2, fb_terms=2, original_query_weight=0.5)
ELIGIBLE = anserini_term_mask(TERMS, CONFIG)
TIES = term_string_ranks(TERMS)


def as_dict(terms: tuple[np.ndarray, np.ndarray]) -> dict[int, float]:
    return dict(zip(terms[0].tolist(), terms[1].tolist()))


def test_term_filters_and_string_ranks() -> None:
    # "x" is 1 character (< 2), "café" is not [a-z0-9]+.
    assert ELIGIBLE.tolist() == [True, True, True, True, True, False, False]
    # Sorted strings: bird, café, cat, dog, fish, the, x.
    assert TIES.tolist() == [2, 3, 4, 0, 5, 6, 1]


def test_relevance_model_anserini_recipe() -> None:
    # D1 eligible: cat 3, dog 1, fish 1 ("the" over the df cut-off, "x" too short).  Keep the top
    # fb_terms = 2 by tf: cat, then dog/fish tie at 1 -> "dog" < "fish".  Norm 3 + 1 = 4:
    #   P(cat|D1) = .75, P(dog|D1) = .25
    # D2 eligible: dog 2, bird 2, cat 1 ("café" filtered).  Top 2: bird and dog (tie at 2), norm 4:
    #   P(bird|D2) = .5, P(dog|D2) = .5
    # Document weights: scores 6, 3 normalised -> 2/3, 1/3 (D3 is beyond fb_docs).
    # RM1: cat = .75*2/3 = .5; dog = .25*2/3 + .5*1/3 = 1/3; bird = .5*1/3 = 1/6
    # Top 2: cat .5, dog 1/3; L1 (sum 5/6): cat .6, dog .4
    rm = relevance_model(FEEDBACK, SCORES, STATS, CONFIG, ELIGIBLE, TIES)
    assert rm[0].tolist() == [CAT, DOG]
    assert rm[1].tolist() == pytest.approx([0.6, 0.4], abs=1e-7)


def test_rm3_interpolates_over_the_union_of_terms() -> None:
    # Query "cat fish" (counts 1, 1) -> L1: cat .5, fish .5.  RM1 from above: cat .6, dog .4.
    # RM3 (lambda .5): cat .5*.5 + .5*.6 = .55; fish .5*.5 + 0 = .25; dog 0 + .5*.4 = .2
    query = (np.array([CAT, FISH]), np.array([1.0, 1.0]))
    ids, weights = rm3_expand(query, FEEDBACK, SCORES, STATS, CONFIG, ELIGIBLE, TIES)
    assert ids.tolist() == [CAT, FISH, DOG]
    assert weights.tolist() == pytest.approx([0.55, 0.25, 0.2], abs=1e-7)
    assert weights.sum() == pytest.approx(1.0)


def test_raw_or_normalised_scores_give_the_same_model() -> None:
    # Anserini multiplies by raw scores; the final L1 normalisation removes any common factor.
    query = (np.array([CAT]), np.array([1.0]))
    a = rm3_expand(query, FEEDBACK, SCORES, STATS, CONFIG, ELIGIBLE, TIES)
    b = rm3_expand(query, FEEDBACK, [s * 37.5 for s in SCORES], STATS, CONFIG, ELIGIBLE, TIES)
    assert a[0].tolist() == b[0].tolist()
    np.testing.assert_allclose(a[1], b[1], rtol=1e-6)
    # cat .5*1 + .5*.6 = .8, dog .5*.4 = .2
    assert as_dict(a) == {CAT: pytest.approx(0.8), DOG: pytest.approx(0.2)}


def test_mle_document_model() -> None:
    # P(w|D) = tf/|D| with |D| the whole length, filters applied afterwards:
    # D1 (|D| 12): cat 3/12, dog 1/12, fish 1/12;  D2 (|D| 9): dog 2/9, bird 2/9, cat 1/9
    # RM1 (weights 2/3, 1/3): cat = (3/12)(2/3) + (1/9)(1/3) = 1/6 + 1/27 = 11/54
    #   dog = (1/12)(2/3) + (2/9)(1/3) = 3/54 + 4/54 = 7/54; bird = 4/54; fish = 3/54
    # Top 2: cat 11/54, dog 7/54 -> L1: 11/18, 7/18.  With query "cat": cat .5 + .5*11/18 = 29/36, dog 7/36
    config = RM3Config(fb_docs=2, fb_terms=2, doc_model="mle")
    ids, weights = rm3_expand((np.array([CAT]), np.array([1.0])), FEEDBACK, SCORES, STATS, config, ELIGIBLE, TIES)
    assert ids.tolist() == [CAT, DOG]
    assert weights.tolist() == pytest.approx([29 / 36, 7 / 36], abs=1e-7)


def test_filters_off_and_tie_order_by_id() -> None:
    # No stats, no string filter: every term is a candidate.  fb_terms 3, one document D1:
    # top 3 by tf: the 5, cat 3, x 2 (norm 10) -> the .5, cat .3, x .2; lambda 0 -> RM1 alone.
    config = RM3Config(fb_docs=1, fb_terms=3, original_query_weight=0.0)
    got = as_dict(rm3_expand((np.array([CAT]), np.array([1.0])), [D1], [1.0], None, config))
    assert got == {THE: pytest.approx(0.5), CAT: pytest.approx(0.3), X: pytest.approx(0.2)}
    # Ties by term id without tie ranks: dog (1) before fish (2) at tf 1.
    config4 = RM3Config(fb_docs=1, fb_terms=4, original_query_weight=0.0, max_df_ratio=None)
    ids, _ = relevance_model([doc({FISH: 1, DOG: 1, CAT: 5, BIRD: 1}, 8)], [1.0], None, config4)
    assert ids.tolist() == [CAT, DOG, FISH, BIRD]


def test_no_usable_feedback_leaves_the_scaled_query() -> None:
    only_filtered = [doc({THE: 4, X: 1}, 5)]
    ids, weights = rm3_expand((np.array([CAT, DOG]), np.array([2.0, 1.0])), only_filtered, [1.0], STATS, CONFIG,
                              ELIGIBLE, TIES)
    # Query L1: cat 2/3, dog 1/3, times lambda .5.
    assert as_dict((ids, weights)) == {CAT: pytest.approx(1 / 3), DOG: pytest.approx(1 / 6)}
    with pytest.raises(ValueError, match="non-negative"):
        rm3_expand((np.array([CAT]), np.array([1.0])), [D1], [-1.0], STATS, CONFIG)


def test_bm25_query_batch_multiplies_idf() -> None:
    stats = CollectionStats(n_docs=10, total_length=50.0, doc_freq=np.array([1, 0, 5]))
    batch = bm25_query_batch([(np.array([0, 1, 2]), np.array([0.5, 0.3, 0.2])), (np.array([7]), np.array([1.0]))],
                             stats)
    # Term 1 (df 0) and term 7 (unknown) are dropped; idf = ln(1 + (N - df + .5)/(df + .5)).
    assert batch.offsets.tolist() == [0, 2, 2]
    assert batch.term_ids.tolist() == [0, 2]
    assert batch.weights.tolist() == pytest.approx([0.5 * math.log(1 + 9.5 / 1.5), 0.2 * math.log(1 + 5.5 / 5.5)],
                                                   rel=1e-6)


def test_rocchio_equals_numpy() -> None:
    rng = np.random.default_rng(0)
    q = rng.normal(size=(3, 5)).astype(np.float32)
    fb = [rng.normal(size=(4, 5)).astype(np.float32), rng.normal(size=(2, 5)).astype(np.float32),
          np.zeros((0, 5), np.float32)]
    out = rocchio(q, fb, alpha=0.4, beta=0.6)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out[0], 0.4 * q[0] + 0.6 * fb[0].mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(out[1], 0.4 * q[1] + 0.6 * fb[1].mean(axis=0), rtol=1e-5)
    np.testing.assert_array_equal(out[2], q[2])  # no feedback: the query unchanged
    unit = rocchio(q, np.stack([fb[0], fb[0], fb[0]]), alpha=1.0, beta=0.75, normalize=True)
    expected = q + 0.75 * fb[0].mean(axis=0)
    np.testing.assert_allclose(unit, expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-5)
    with pytest.raises(ValueError):
        rocchio(q, fb[:2])


# ------------------------------------------------------------ end to end on a BM25 index

# d1, d2 share the query word with "kitten", "whiskers", "purring"; d3 has those words and not the
# query's.  30 filler documents make N = 33 so that kitten's df ratio 3/33 = .09 passes the 10 % cut-off.
CORPUS = [Document("d1", "", "feline kitten whiskers"), Document("d2", "", "feline kitten purring"),
          Document("d3", "", "kitten whiskers purring")]
CORPUS += [Document(f"f{i}", "", f"filler{i} gadget{i}") for i in range(30)]
BY_ID = {d.doc_id: d for d in CORPUS}
K1, B = 0.9, 0.4


def build() -> Index:
    return Index.build(CORPUS, encoder=BM25Encoder(BM25Config(k1=K1, b=B, length_norm="exact")))


def test_reencoded_feedback_vectors_are_the_indexed_ones() -> None:
    index = build()
    vectors = index.encoder.encode_documents(CORPUS)
    stats = index.snapshot.stats
    assert float(vectors.lengths.sum()) == stats.total_length
    df = np.bincount(vectors.term_ids, minlength=len(stats.doc_freq))
    np.testing.assert_array_equal(df, stats.doc_freq)


def test_rm3_search_pulls_in_a_document_without_the_query_word() -> None:
    index = build()
    vocab = index.encoder.vocab
    felin, kitten, whisker, purr = (vocab.get(t) for t in ("felin", "kitten", "whisker", "pur"))
    bm25 = index.search("feline", k=10)
    assert sorted(bm25.ids) == ["d1", "d2"]  # d3 lacks the word

    # Expansion by hand: d1 and d2 tie in BM25 (same tf, same length) -> weights 1/2 each.
    # P(w|d1) = 1/3 for felin, kitten, whisker; P(w|d2) = 1/3 for felin, kitten, pur.
    # RM1: felin 1/3, kitten 1/3, whisker 1/6, pur 1/6 (already L1 = 1; 4 terms <= fb_terms 10).
    # RM3 (lambda .5, query "felin" -> 1): felin .5 + 1/6 = 2/3, kitten 1/6, whisker 1/12, pur 1/12.
    config = RM3Config()
    [expanded] = rm3_expand_queries(index, ["feline"], BY_ID.get, config)
    assert as_dict(expanded) == {felin: pytest.approx(2 / 3), kitten: pytest.approx(1 / 6),
                                 whisker: pytest.approx(1 / 12), purr: pytest.approx(1 / 12)}

    [hits] = rm3_search(index, ["feline"], BY_ID.get, k=10, config=config)
    assert hits.ids[:2] == ["d1", "d2"] or hits.ids[:2] == ["d2", "d1"]
    assert hits.ids[2] == "d3"
    # d3's score, Lucene's boosted BM25: Σ weight · idf · tf/(tf + k1(1 - b + b·dl/avgdl)).
    n, avgdl = 33, (3 * 3 + 30 * 2) / 33
    idf = {t: math.log(1 + (n - df + 0.5) / (df + 0.5)) for t, df in (("kitten", 3), ("whisker", 2), ("pur", 2))}
    norm = 1 / (1 + K1 * (1 - B + B * 3 / avgdl))
    expected = (idf["kitten"] / 6 + idf["whisker"] / 12 + idf["pur"] / 12) * norm
    assert hits.scores[2] == pytest.approx(expected, rel=1e-5)
    # The first-pass IDF helper agrees with the hand IDF (the same Lucene formula).
    assert float(bm25_idf(np.array([3]), n)[0]) == pytest.approx(idf["kitten"], rel=1e-6)


def test_out_of_vocabulary_query_words_take_weight_like_anserini() -> None:
    # "feline zebra": Anserini's query vector is {felin: 1, zebra: 1} / 2 although "zebra" is in no
    # document.  RM1 as above (the first pass only matches "felin"):
    # felin .5*(1/2) + .5*(1/3) = 5/12, zebra .25 (dropped: cannot be searched), kitten 1/6, whisker, pur 1/12.
    index = build()
    vocab = index.encoder.vocab
    [expanded] = rm3_expand_queries(index, ["feline zebra"], BY_ID.get, RM3Config())
    got = as_dict(expanded)
    assert got[vocab.get("felin")] == pytest.approx(5 / 12)
    assert got[vocab.get("kitten")] == pytest.approx(1 / 6)
    assert len(got) == 4
    # The same through rm3_expand: query_norm 2 for one known count.
    q = (np.array([CAT]), np.array([1.0]))
    assert as_dict(rm3_expand(q, FEEDBACK, SCORES, STATS, CONFIG, ELIGIBLE, TIES, query_norm=2.0)) == {
        CAT: pytest.approx(0.25 + 0.3), DOG: pytest.approx(0.2)}  # cat .5*(1/2) + .5*.6, dog .5*.4
    with pytest.raises(ValueError, match="query_norm"):
        rm3_expand(q, FEEDBACK, SCORES, STATS, CONFIG, query_norm=0.5)


def test_feedback_documents_chosen_by_the_caller() -> None:
    # Feedback from another ranking (e.g. a fused one): d3 alone, "kitten whiskers purring".
    # P(w|d3) = 1/3 each -> RM1 kitten, whisker, pur 1/3; RM3 for "feline": felin .5, the three 1/6 each.
    index = build()
    vocab = index.encoder.vocab
    [expanded] = expand_with_feedback(index, ["feline"], [["d3", "f0"]], [[0.7, 0.2]], BY_ID.get,
                                      RM3Config(fb_docs=1))
    assert as_dict(expanded) == {vocab.get("felin"): pytest.approx(0.5), vocab.get("kitten"): pytest.approx(1 / 6),
                                 vocab.get("whisker"): pytest.approx(1 / 6), vocab.get("pur"): pytest.approx(1 / 6)}
    with pytest.raises(ValueError, match="one of each per query"):
        expand_with_feedback(index, ["feline"], [], [], BY_ID.get)


def test_rm3_search_edge_cases() -> None:
    index = build()
    assert rm3_search(index, [], BY_ID.get) == []
    [none] = rm3_search(index, ["zebra"], BY_ID.get, k=5)  # no known word: no hits, like BM25
    assert len(none) == 0
    with pytest.raises(KeyError, match="no text"):
        rm3_search(index, ["feline"], lambda doc_id: None)
