"""Term-at-a-time MaxScore (``method="pruned"``) and segment threshold seeding against exhaustive search.

Exact means exact here: the same internal ids in the same order and the
same float32 scores to the bit as exhaustive scoring, ties included, with
deletes; one query at a time equal to the batch; a seeded segment search
merged with the seeding segment's hits equal to the unseeded one.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex, _merge
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch


@pytest.fixture(autouse=True)
def prune_every_query(monkeypatch: pytest.MonkeyPatch) -> None:
    """These indexes are small: without this, every query would take the pruned kernel's exhaustive path."""
    from sparsearch.index import blockmax, inverted

    monkeypatch.setattr(inverted, "PRUNE_MIN_POSTINGS", 0)
    monkeypatch.setattr(blockmax, "BLOCK_SHIFT", 6)


def one_row(t: np.ndarray, w: np.ndarray) -> SparseBatch:
    return SparseBatch(np.array([0, len(t)]), t, w)


def random_batch(rng: np.random.Generator, n_rows: int, n_terms: int, max_len: int, skew: float,
                 integer: bool) -> SparseBatch:
    """Rows of Zipf-like term ids (a few long lists, many short ones) and small or tf-like weights."""
    p = 1.0 / np.arange(1, n_terms + 1) ** skew
    p /= p.sum()
    rows = []
    for _ in range(n_rows):
        terms = rng.choice(n_terms, int(rng.integers(1, max_len + 1)), replace=False, p=p)
        rows.append({int(t): float(rng.integers(1, 6)) if integer else float(rng.gamma(1.0, 1.0)) + 0.01
                     for t in terms})
    return SparseBatch.from_dicts(rows, lengths=[sum(r.values()) for r in rows] if integer else None)


def build(rng: np.random.Generator, n_docs: int, scoring: Scoring, deleted_share: float, n_segments: int = 1,
          n_terms: int = 300) -> InvertedIndex:
    integer = scoring.transform == "saturate"
    config = IndexConfig(quantization="uint8" if integer else "none")
    segments = []
    for s in range(n_segments):
        size = n_docs // n_segments * (s + 1)  # unequal sizes: "largest first" must reorder them
        docs = random_batch(rng, size, n_terms, 25, 1.1, integer)
        seg = build_segment(docs, [f"{s}-{i}" for i in range(size)], [{}] * size, n_terms, config)
        if deleted_share:
            seg = seg.with_deletes((rng.random(size) < deleted_share).astype(np.uint8))
        segments.append(seg)
    return InvertedIndex(segments, scoring, config)


def assert_same(a, b) -> None:  # two TopK
    np.testing.assert_array_equal(a.counts, b.counts)
    for q in range(len(a.counts)):
        da, sa = a.row(q)
        db, sb = b.row(q)
        np.testing.assert_array_equal(da, db)
        np.testing.assert_array_equal(sa.view(np.uint32), sb.view(np.uint32))


def test_pruned_one_hand_computed() -> None:
    """Three documents, two terms, dot product; the long low-weight list is only probed once pruning starts.

    doc 0: a=1, b=1 -> 4*1 + 1*1 = 5;  doc 1: b=3 -> 3;  doc 2: a=2 -> 8;  doc 3: b=1 -> 1.
    k = 2: docs 2 (8) and 0 (5).  Bounds: a 2 (x4 = 8), b 3 (x1 = 3): after term a the 2nd score is 4
    (doc 0's partial), above b's bound 3, so doc 1 and doc 3 are never scored.
    """
    docs = SparseBatch.from_dicts([{0: 1.0, 1: 1.0}, {1: 3.0}, {0: 2.0}, {1: 1.0}])
    seg = build_segment(docs, ["d0", "d1", "d2", "d3"], [{}] * 4, 2, IndexConfig())
    index = InvertedIndex([seg], Scoring("linear"), IndexConfig())
    query = one_row(np.array([1, 0], np.int32), np.array([1.0, 4.0], np.float32))
    top = index.search(query, 2, method="pruned")
    ids, scores = top.row(0)
    assert ids.tolist() == [2, 0]
    assert scores.tolist() == [8.0, 5.0]
    # A seed above every bound here (8 + 3 = 11) leaves nothing to search in this segment.
    plan = index._segment_plans()[0]
    acc = np.zeros(4, np.float32)
    out_s, out_d = np.zeros(2, np.float32), np.zeros(2, np.int64)
    bounds = index._bounds(seg, index._length_params())
    floors = index._underflow_bounds(seg, index._length_params())
    hist = np.zeros(0, np.int32)
    n = kernels.pruned_one(query.term_ids, query.weights, 2, *plan.common, *floors, bounds, np.float32(11.5), 0, acc,
                           np.empty(5, np.int32), hist, out_s, out_d)
    assert n == 0
    n = kernels.pruned_one(query.term_ids, query.weights, 2, *plan.common, *floors, bounds, np.float32(5.0), 0, acc,
                           np.empty(5, np.int32), hist, out_s, out_d)
    assert n == 2 and out_d.tolist() == [2, 0]  # a seed equal to a score keeps that document (ties may win)
    assert not acc.any()


@pytest.mark.parametrize("method", ["pruned", "blockmax"])
@pytest.mark.parametrize("transform", ["saturate", "linear"])
@pytest.mark.parametrize("deleted_share", [0.0, 0.2])
def test_pruned_equals_exhaustive_on_random_indexes(method: str, transform: str, deleted_share: float) -> None:
    """Blocks of 64 documents here (BLOCK_SHIFT 6): 63 blocks, most query terms long, many blocks skipped."""
    rng = np.random.default_rng(5 + int(deleted_share * 10) + len(transform))
    scoring = Scoring("saturate", 0.9, 0.4) if transform == "saturate" else Scoring("linear")
    index = build(rng, 4000, scoring, deleted_share)
    queries = random_batch(rng, 60, 300, 12, 0.6, False)
    for k in (1, 3, 10, 100):
        want = index.search(queries, k, method="exhaustive", threads=1)
        assert_same(index.search(queries, k, method=method, threads=1), want)
        assert_same(index.search(queries, k, method=method, threads=2), want)
        for q in range(0, len(queries), 7):
            assert_same(index.search(one_row(*queries.row(q)), k, method=method),
                        index.search(one_row(*queries.row(q)), k, method="exhaustive"))


def test_pruned_keeps_ties_like_exhaustive() -> None:
    """Many documents with equal scores: the k kept are the lowest ids, as exhaustive search keeps."""
    docs = SparseBatch.from_dicts([{0: 1.0, 1: float(i % 3 == 0)} if i % 3 == 0 else {0: 1.0} for i in range(500)])
    seg = build_segment(docs, [str(i) for i in range(500)], [{}] * 500, 2, IndexConfig())
    index = InvertedIndex([seg], Scoring("linear"), IndexConfig())
    query = one_row(np.array([1, 0], np.int32), np.array([0.5, 2.0], np.float32))
    for k in (1, 10, 200):
        assert_same(index.search(query, k, method="pruned"), index.search(query, k, method="exhaustive"))


@pytest.mark.parametrize("method", ["pruned", "blockmax"])
@pytest.mark.parametrize("transform", ["saturate", "linear"])
def test_segments_largest_first_and_seeded_equal_unseeded(method: str, transform: str) -> None:
    rng = np.random.default_rng(9)
    scoring = Scoring("saturate", 1.2, 0.75) if transform == "saturate" else Scoring("linear")
    index = build(rng, 3000, scoring, 0.1, n_segments=3)
    assert [p.seg.n_docs for p in index._segment_plans()] == sorted((s.n_docs for s in index.segments), reverse=True)
    queries = random_batch(rng, 40, 300, 10, 0.6, False)
    k = 10
    assert_same(index.search(queries, k, method=method, threads=1),
                index.search(queries, k, method="exhaustive", threads=1))
    # The seeded search of one segment, merged with the seeding hits, equals the unseeded one merged.
    params = index._length_params()
    first, second = index._segment_plans()[:2]
    top = index._search_segment(first, queries, k, 1, "exhaustive", None)
    seeds = top.scores[:, k - 1].copy()
    seeds[top.counts < k] = 0.0
    seeded = index._search_segment(second, queries, k, 1, method, seeds)
    unseeded = index._search_segment(second, queries, k, 1, method, None)
    assert_same(_merge(top, seeded, k), _merge(top, unseeded, k))
    assert seeded.counts.sum() < unseeded.counts.sum(), "the seed should have pruned something"
    assert params is index._length_params()


def test_auto_is_exhaustive_and_unknown_methods_are_refused() -> None:
    from sparsearch.index import inverted

    rng = np.random.default_rng(3)
    index = build(rng, 2000, Scoring("saturate", 0.9, 0.4), 0.0)
    plan = index._segment_plans()[0]
    assert inverted._method_for(plan, "auto", 10) == "exhaustive"
    assert inverted._method_for(plan, "blockmax", 10) == "blockmax"
    with pytest.raises(ValueError, match="unknown search method"):
        index.search(random_batch(rng, 1, 300, 3, 0.6, False), 10, method="wand")


@pytest.mark.parametrize("method", ["pruned", "blockmax"])
def test_real_queries_with_deletes_and_filters(method: str, scifact_slice, scifact_queries: list[str]) -> None:
    """BM25 on a SciFact slice (or its stand-in): text queries, a delete, a filter; batch, one at a time, both."""
    from sparsearch import Index, read_corpus
    from sparsearch.index import filtering
    from sparsearch.types import Document

    docs = [Document(d.doc_id, d.title, d.text, {"half": i % 2}) for i, d in enumerate(read_corpus(scifact_slice))]
    index = Index.build(docs[:1000], config=IndexConfig(quantization="uint8", stored_fields=("title", "metadata")))
    index.add(docs[1000:])  # a second segment: seeding between segments
    index.delete([d.doc_id for d in docs[::7]])
    index.commit()
    assert index.n_segments >= 2
    queries = scifact_queries[:120]
    for k in (1, 10):
        want = index.search_batch(queries, k, threads=1, method="exhaustive")
        got = index.search_batch(queries, k, threads=2, method=method)
        for q, (a, b) in enumerate(zip(want, got)):
            assert a.ids == b.ids and a.scores.tobytes() == b.scores.tobytes()
            one = index.search(queries[q], k, method=method)
            assert one.ids == b.ids and one.scores.tobytes() == b.scores.tobytes()
    flt = {"field": "half", "eq": 1}
    snap = index.snapshot
    encoded = index.encode_queries(queries, snap)
    for strategy in ("mask", "auto"):
        want = filtering.search(snap, encoded, 10, flt, threads=1, method="exhaustive", strategy=strategy)
        assert_same(filtering.search(snap, encoded, 10, flt, threads=1, method=method, strategy=strategy), want)
    for q in range(0, len(queries), 10):
        assert index.search(queries[q], 10, filter=flt, method=method).ids == \
            index.search(queries[q], 10, filter=flt).ids
