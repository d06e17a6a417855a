"""Precomputed BM25 impacts (``sparsearch.index.impacts``) against scoring each posting on the fly.

The impacts path must be invisible in results: the same internal ids, in the
same order, with the same float32 scores to the bit, for both length norms,
with deletes and several segments, in a batch and one query at a time.  And
it must follow its rule: built only once a snapshot has scored enough,
reused by a snapshot with the same statistics, never past the byte budget.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.index import impacts, small
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.impacts import ImpactPolicy
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch

from tests.unit.test_pruned_search import assert_same, random_batch


@pytest.fixture(autouse=True)
def numba_paths(monkeypatch: pytest.MonkeyPatch):
    """Test-sized segments would take the NumPy path, which has no impacts; and a clean policy per test."""
    monkeypatch.setattr(small, "ENABLED", False)
    yield
    impacts.set_policy(None)


def build_index(rng: np.random.Generator, sizes: list[int], scoring: Scoring, deleted_share: float,
                n_terms: int = 300) -> InvertedIndex:
    config = IndexConfig(quantization="uint8")
    segments = []
    for s, size in enumerate(sizes):
        docs = random_batch(rng, size, n_terms, 25, 1.1, integer=True)
        seg = build_segment(docs, [f"{s}-{i}" for i in range(size)], [{}] * size, n_terms, config)
        if deleted_share:
            seg = seg.with_deletes((rng.random(size) < deleted_share).astype(np.uint8))
        segments.append(seg)
    return InvertedIndex(segments, scoring, config)


def used_impacts(index: InvertedIndex) -> list[bool]:
    return [index._impacts[plan.base].ready is not None for plan in index._segment_plans()
            if plan.base in index._impacts]


@pytest.mark.parametrize("length_norm", ["lucene", "exact"])
@pytest.mark.parametrize("sizes,deleted_share", [([700], 0.0), ([300, 900, 500], 0.2)])
def test_impacts_give_the_same_hits_and_scores_to_the_bit(length_norm: str, sizes: list[int],
                                                          deleted_share: float) -> None:
    rng = np.random.default_rng(7)
    scoring = Scoring("saturate", k1=1.2, b=0.75, length_norm=length_norm)  # type: ignore[arg-type]
    index = build_index(rng, sizes, scoring, deleted_share)
    queries = random_batch(rng, 60, 300, 8, 1.1, integer=True)

    impacts.set_policy(ImpactPolicy(max_bytes=0))  # declined: every posting scored on the fly
    raw = InvertedIndex(index.segments, scoring, index.config)
    expected = raw.search(queries, 10, threads=1)
    assert used_impacts(raw) == [False] * len(sizes)

    impacts.set_policy(ImpactPolicy(build_ratio=0.0))  # built on the first search
    fast = InvertedIndex(index.segments, scoring, index.config)
    for threads in (1, 2):
        assert_same(fast.search(queries, 10, threads=threads), expected)
    assert used_impacts(fast) == [True] * len(sizes)
    for q in range(len(queries)):
        lo, hi = queries.offsets[q], queries.offsets[q + 1]
        one = SparseBatch(np.array([0, hi - lo]), queries.term_ids[lo:hi], queries.weights[lo:hi])
        assert_same(fast.search(one, 10), raw.search(one, 10))
    # k above the heap's range takes the touched-list path of the same kernel.
    assert_same(fast.search(queries, 100, threads=1), raw.search(queries, 100, threads=1))


def test_the_impact_of_a_posting_is_w_over_w_plus_kd_in_float32() -> None:
    """Two documents of lengths 2 and 6 (avgdl 4), k1 1, b 0.5, exact lengths: K = 0.5 + 0.5·len/4 = 0.75, 1.25."""
    docs = SparseBatch.from_dicts([{0: 2.0}, {0: 1.0, 1: 5.0}], lengths=[2.0, 6.0])
    seg = build_segment(docs, ["a", "b"], [{}, {}], 2, IndexConfig(quantization="uint8"))
    scoring = Scoring("saturate", k1=1.0, b=0.5, length_norm="exact")
    index = InvertedIndex([seg], scoring, IndexConfig(quantization="uint8"))
    plan = index._segment_plans()[0]
    built = impacts.build(plan.common, impacts.statistics_key(plan.common))
    assert built is not None
    f = np.float32
    k_short, k_long = f(0.75), f(1.25)  # exact in binary: no rounding before the division
    expected = {(0, 0): f(2) / (f(2) + k_short), (0, 1): f(1) / (f(1) + k_long), (1, 1): f(5) / (f(5) + k_long)}
    offsets, doc_ids = plan.seg.postings_offsets, plan.seg.postings_docs
    got = {(t, int(doc_ids[p])): built.impacts[p] for t in range(2) for p in range(offsets[t], offsets[t + 1])}
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        assert got[key].view(np.uint32) == np.float32(value).view(np.uint32), key
    assert built.min_impact == min(expected.values())
    # And a query scored over them gives the two-term score by hand: idf-free weights 1 and 2.
    query = SparseBatch(np.array([0, 2]), np.array([0, 1], np.int32), np.array([1.0, 2.0], np.float32))
    impacts.set_policy(ImpactPolicy(build_ratio=0.0))
    top = InvertedIndex([seg], scoring, IndexConfig(quantization="uint8")).search(query, 2)
    ids, scores = top.row(0)
    assert ids.tolist() == [1, 0]
    assert scores[0] == f(1) * expected[(0, 1)] + f(2) * expected[(1, 1)]
    assert scores[1] == expected[(0, 0)]


def test_impacts_are_built_once_the_snapshot_has_scored_the_segments_postings() -> None:
    """Ski rental: with build_ratio 1, not before the postings scored reach the segment's postings, then for good."""
    rng = np.random.default_rng(3)
    scoring = Scoring("saturate", k1=0.9, b=0.4)
    index = build_index(rng, [800], scoring, 0.0)
    impacts.set_policy(ImpactPolicy(build_ratio=1.0))
    seg = index.segments[0]
    queries = random_batch(rng, 40, 300, 6, 1.1, integer=True)
    per_query = [impacts.postings_of(seg.postings_offsets, queries.term_ids[queries.offsets[q]:queries.offsets[q + 1]])
                 for q in range(len(queries))]
    scored = 0
    for q in range(len(queries)):
        lo, hi = queries.offsets[q], queries.offsets[q + 1]
        index.search(SparseBatch(np.array([0, hi - lo]), queries.term_ids[lo:hi], queries.weights[lo:hi]), 10)
        scored += per_query[q]
        assert used_impacts(index) == [scored >= seg.n_postings], (q, scored, seg.n_postings)
        if scored >= seg.n_postings:
            break
    else:
        pytest.fail("the queries never reached the segment's postings")
    # A new snapshot over the same segment and statistics finds them in the cache at once...
    again = InvertedIndex(index.segments, scoring, index.config)
    again.search(queries, 10, threads=1)
    assert used_impacts(again) == [True]
    # ...while other statistics (another avgdl: one more segment) must not reuse them.
    bigger = InvertedIndex(index.segments + build_index(rng, [50], scoring, 0.0).segments, scoring, index.config)
    one = SparseBatch(np.array([0, 1]), queries.term_ids[:1], queries.weights[:1])
    bigger.search(one, 10)
    assert bigger._impacts[0].ready is None


def test_the_byte_budget_is_shared_by_all_segments() -> None:
    rng = np.random.default_rng(5)
    scoring = Scoring("saturate", k1=0.9, b=0.4)
    index = build_index(rng, [400, 600], scoring, 0.0)
    sizes = sorted(4 * s.n_postings for s in index.segments)
    impacts.set_policy(ImpactPolicy(build_ratio=0.0, max_bytes=sizes[1] + sizes[0] // 2))  # room for the larger only
    queries = random_batch(rng, 20, 300, 6, 1.1, integer=True)
    expected_index = InvertedIndex(index.segments, scoring, index.config)
    got = expected_index.search(queries, 10, threads=1)
    assert sorted(used_impacts(expected_index)) == [False, True]  # largest first: it took the budget
    impacts.set_policy(ImpactPolicy(max_bytes=0))
    assert_same(got, InvertedIndex(index.segments, scoring, index.config).search(queries, 10, threads=1))


def test_linear_indexes_never_build_impacts() -> None:
    rng = np.random.default_rng(2)
    config = IndexConfig()
    docs = random_batch(rng, 500, 300, 20, 1.1, integer=False)
    seg = build_segment(docs, [str(i) for i in range(500)], [{}] * 500, 300, config)
    impacts.set_policy(ImpactPolicy(build_ratio=0.0))
    index = InvertedIndex([seg], Scoring("linear"), config)
    index.search(random_batch(rng, 5, 300, 5, 1.1, integer=False), 10)
    assert index._impacts == {}


@pytest.mark.parametrize("raw,megabytes", [("", 2048), ("0", 0), ("1.5", 1.5)])
def test_the_budget_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, raw: str, megabytes: float) -> None:
    monkeypatch.setenv("SPARSEARCH_IMPACT_CACHE_MB", raw)
    assert ImpactPolicy.from_env().max_bytes == int(megabytes * (1 << 20))


@pytest.mark.parametrize("raw", ["lots", "-1"])
def test_a_bad_budget_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, raw: str) -> None:
    monkeypatch.setenv("SPARSEARCH_IMPACT_CACHE_MB", raw)
    with pytest.raises(ValueError, match="SPARSEARCH_IMPACT_CACHE_MB"):
        ImpactPolicy.from_env()
