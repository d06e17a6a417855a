"""The index kernels against plain NumPy computations of the same quantities."""

from __future__ import annotations

import numpy as np
import pytest

from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch


def random_batch(rng: np.random.Generator, n_rows: int, n_terms: int, density: float, integral: bool) -> SparseBatch:
    rows = []
    for _ in range(n_rows):
        mask = rng.random(n_terms) < density
        terms = np.flatnonzero(mask)
        if integral:
            w = rng.integers(1, 6, len(terms)).astype(float)
        else:
            w = rng.gamma(1.0, 1.0, len(terms)) + 1e-3
        rows.append(dict(zip(terms.tolist(), w.tolist())))
    lengths = [sum(r.values()) for r in rows]
    return SparseBatch.from_dicts(rows, lengths)


def dense(batch: SparseBatch, n_terms: int) -> np.ndarray:
    m = np.zeros((len(batch), n_terms))
    for i, (t, w) in enumerate(batch.rows()):
        m[i, t] = w
    return m


def expected_top_k(scores: np.ndarray, k: int) -> list[tuple[int, float]]:
    order = sorted((i for i in range(len(scores)) if scores[i] > 0), key=lambda i: (-scores[i], i))[:k]
    return [(i, scores[i]) for i in order]


def test_term_frequencies_counts_tokens() -> None:
    offsets = np.array([0, 5, 5, 8])
    tokens = np.array([3, 1, 3, 3, 0, 7, 7, 2], np.int32)
    rows, terms, counts = kernels.term_frequencies(offsets, tokens)
    assert rows.tolist() == [0, 3, 3, 5]
    assert terms.tolist() == [0, 1, 3, 2, 7]
    assert counts.tolist() == [1, 1, 3, 1, 2]


@pytest.mark.parametrize("n_chunks", [1, 3, 16])
def test_invert_matches_transpose(n_chunks: int) -> None:
    rng = np.random.default_rng(1)
    batch = random_batch(rng, 200, 50, 0.1, integral=False)
    offsets, docs, weights = kernels.invert(batch.offsets, batch.term_ids, batch.weights, 50, n_chunks)
    m = dense(batch, 50)
    for t in range(50):
        lo, hi = offsets[t], offsets[t + 1]
        assert docs[lo:hi].tolist() == np.flatnonzero(m[:, t]).tolist()  # ascending doc ids
        np.testing.assert_array_equal(weights[lo:hi], m[docs[lo:hi], t].astype(np.float32))


@pytest.mark.parametrize("k", [1, 5, 200, 1000])
def test_linear_search_equals_numpy_dot(k: int) -> None:
    rng = np.random.default_rng(2)
    docs = random_batch(rng, 300, 80, 0.08, integral=False)
    queries = random_batch(rng, 20, 80, 0.1, integral=False)
    seg = build_segment(docs, [str(i) for i in range(300)], [{}] * 300, 80, IndexConfig())
    index = InvertedIndex([seg], Scoring("linear"), IndexConfig())
    expected = dense(queries, 80).astype(np.float32) @ dense(docs, 80).T.astype(np.float32)
    for threads in (1, 2):
        top = index.search(queries, k, threads=threads)
        for q in range(len(queries)):
            ids, scores = top.row(q)
            want = expected_top_k(expected[q], k)
            assert ids.tolist() == [i for i, _ in want]
            np.testing.assert_allclose(scores, [s for _, s in want], rtol=1e-5)


def test_saturate_search_equals_formula() -> None:
    rng = np.random.default_rng(3)
    docs = random_batch(rng, 250, 40, 0.15, integral=True)
    queries = random_batch(rng, 15, 40, 0.2, integral=False)
    k1, b = 1.2, 0.75
    seg = build_segment(docs, [str(i) for i in range(250)], [{}] * 250, 40, IndexConfig())
    index = InvertedIndex([seg], Scoring("saturate", k1, b, "exact"), IndexConfig())
    tf = dense(docs, 40)
    lengths = docs.lengths.astype(np.float64)
    denom = k1 * (1 - b + b * lengths / lengths.mean())
    contrib = tf / (tf + denom[:, None])
    expected = dense(queries, 40) @ contrib.T
    top = index.search(queries, 10)
    for q in range(len(queries)):
        ids, scores = top.row(q)
        want = expected_top_k(expected[q], 10)
        np.testing.assert_allclose(scores, [s for _, s in want], rtol=1e-5)
        assert set(ids.tolist()) == {i for i, _ in want} or np.allclose(sorted(scores), sorted(s for _, s in want))


def test_segments_merge_to_the_single_segment_ranking() -> None:
    rng = np.random.default_rng(4)
    docs = random_batch(rng, 400, 60, 0.1, integral=True)
    queries = random_batch(rng, 30, 60, 0.1, integral=True)
    ids = [str(i) for i in range(400)]
    scoring = Scoring("saturate", 0.9, 0.4, "lucene")
    whole = InvertedIndex([build_segment(docs, ids, [{}] * 400, 60, IndexConfig())], scoring, IndexConfig())
    parts = []
    for lo, hi in ((0, 130), (130, 131), (131, 400)):
        sub = SparseBatch(docs.offsets[lo : hi + 1] - docs.offsets[lo], docs.term_ids[docs.offsets[lo] : docs.offsets[hi]],
                          docs.weights[docs.offsets[lo] : docs.offsets[hi]], docs.lengths[lo:hi])
        parts.append(build_segment(sub, ids[lo:hi], [{}] * (hi - lo), 60, IndexConfig()))
    split = InvertedIndex(parts, scoring, IndexConfig())
    np.testing.assert_array_equal(split.stats.doc_freq, whole.stats.doc_freq)
    a, b = whole.search(queries, 25), split.search(queries, 25)
    np.testing.assert_array_equal(a.counts, b.counts)
    np.testing.assert_array_equal(a.doc_ids, b.doc_ids)
    np.testing.assert_array_equal(a.scores, b.scores)


def test_uint8_quantization_is_lossless_for_small_integers() -> None:
    offsets = np.array([0, 3, 5])
    weights = np.array([1, 7, 255, 0.5, 2.0], np.float32)
    q, scales = kernels.quantize_uint8(offsets, weights)
    assert scales[0] == 1.0 and q[:3].tolist() == [1, 7, 255]
    assert scales[1] == pytest.approx(2.0 / 255)
    np.testing.assert_allclose(q[3:] * scales[1], [0.5, 2.0], atol=scales[1] / 2)


def test_uint8_quantization_never_rounds_a_posting_to_zero() -> None:
    offsets = np.array([0, 3])
    weights = np.array([100.0, 0.1, 0.3], np.float32)  # 0.1 / (100/255) = 0.26 would round to 0
    q, _ = kernels.quantize_uint8(offsets, weights)
    assert q.tolist() == [255, 1, 1]


def test_quantized_linear_search_counts_each_document_once() -> None:
    """Tiny weights next to a large one: every hit is a distinct document, and none is lost."""
    n = 50
    rows = [{0: 0.01, 1: 0.01} for _ in range(n)] + [{0: 100.0, 1: 100.0}]
    docs = SparseBatch.from_dicts(rows)
    ids = [str(i) for i in range(n + 1)]
    cfg = IndexConfig(quantization="uint8")
    index = InvertedIndex([build_segment(docs, ids, [{}] * (n + 1), 2, cfg)], Scoring("linear"), cfg)
    top = index.search(SparseBatch.from_dicts([{0: 1.0, 1: 1.0}]), n + 1, threads=1, method="exhaustive")
    found, _ = top.row(0)
    assert top.counts[0] == n + 1 and len(set(found.tolist())) == n + 1
    assert found[0] == n  # the heavy document first


def test_quantized_float_top10_overlap() -> None:
    rng = np.random.default_rng(5)
    docs = random_batch(rng, 2000, 300, 0.05, integral=False)
    queries = random_batch(rng, 100, 300, 0.03, integral=False)
    ids = [str(i) for i in range(2000)]
    exact = InvertedIndex([build_segment(docs, ids, [{}] * 2000, 300, IndexConfig())], Scoring("linear"), IndexConfig())
    cfg = IndexConfig(quantization="uint8")
    quant = InvertedIndex([build_segment(docs, ids, [{}] * 2000, 300, cfg)], Scoring("linear"), cfg)
    a, b = exact.search(queries, 10), quant.search(queries, 10)
    overlaps = [len(set(a.row(q)[0].tolist()) & set(b.row(q)[0].tolist())) / max(1, a.counts[q])
                for q in range(len(queries)) if a.counts[q]]
    assert np.mean(overlaps) >= 0.99


def test_norm_bytes_follow_lucene_smallfloat() -> None:
    lengths = np.arange(0, 5000, dtype=np.float32)
    encoded = kernels.encode_norms(lengths)
    decoded = kernels.decode_norm_table()[encoded]
    assert decoded[:25].tolist() == list(range(25))  # exact below NUM_FREE_VALUES (24)
    assert (np.diff(encoded.astype(int)) >= 0).all()  # monotonic
    assert (decoded <= lengths).all() and ((lengths - decoded) / np.maximum(lengths, 1) < 0.125).all()
    # Hand-encoded: 100 - 24 = 76 = 0b1001100 -> shift 3, mantissa 0b001 -> byte 24 + 33 = 57 -> 24 + 72 = 96.
    assert int(encoded[100]) == 57 and decoded[100] == 96


def test_rejects_negative_or_nan_weights() -> None:
    bad = SparseBatch.from_dicts([{0: -1.0}])
    with pytest.raises(ValueError, match="non-negative"):
        build_segment(bad, ["a"], [{}], 1, IndexConfig())


def test_zero_weights_are_not_postings() -> None:
    batch = SparseBatch.from_dicts([{0: 0.0, 1: 2.0}, {0: 1.0}, {}])
    seg = build_segment(batch, ["a", "b", "c"], [{}] * 3, 2, IndexConfig())
    assert seg.doc_freq().tolist() == [1, 1]
    assert seg.postings_docs.tolist() == [1, 0]


@pytest.mark.parametrize("transform,integral", [("linear", False), ("saturate", True)])
@pytest.mark.parametrize("k", [1, 7, 50, 500])
def test_maxscore_equals_exhaustive(transform: str, integral: bool, k: int) -> None:
    rng = np.random.default_rng(6)
    docs = random_batch(rng, 600, 120, 0.06, integral=integral)
    queries = random_batch(rng, 40, 120, 0.08, integral=False)
    seg = build_segment(docs, [str(i) for i in range(600)], [{}] * 600, 120, IndexConfig())
    index = InvertedIndex([seg], Scoring(transform), IndexConfig())  # type: ignore[arg-type]
    a = index.search(queries, k, method="exhaustive")
    for threads in (1, 2):
        b = index.search(queries, k, threads=threads, method="maxscore")
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_allclose(a.scores, b.scores, rtol=1e-5)
        for q in range(len(queries)):
            ids_a, s_a = a.row(q)
            ids_b, _ = b.row(q)
            # Same documents; order may differ only inside float-rounding ties.
            assert set(ids_a[s_a > s_a[-1] * (1 + 1e-5)].tolist()) <= set(ids_b.tolist()) if len(s_a) else True


@pytest.mark.parametrize("k", [10, 1000, 30000])
def test_radix_selection_on_many_candidates_with_ties(k: int) -> None:
    """>= 8192 touched documents take the histogram path; heavy ties must still break by doc id."""
    rng = np.random.default_rng(7)
    n = 20000
    rows = [{0: float(rng.integers(1, 4)), 1 + int(rng.integers(0, 3)): float(rng.integers(1, 3))} for _ in range(n)]
    docs = SparseBatch.from_dicts(rows)
    queries = SparseBatch.from_dicts([{0: 1.0, 1: 0.5, 2: 0.25}, {3: 2.0}])
    seg = build_segment(docs, [str(i) for i in range(n)], [{}] * n, 4, IndexConfig())
    index = InvertedIndex([seg], Scoring("linear"), IndexConfig())
    expected = dense(queries, 4).astype(np.float32) @ dense(docs, 4).T.astype(np.float32)
    for threads in (1, 2):
        top = index.search(queries, k, threads=threads)
        for q in range(2):
            ids, scores = top.row(q)
            want = expected_top_k(expected[q], k)
            assert ids.tolist() == [i for i, _ in want]
            np.testing.assert_array_equal(scores, np.array([s for _, s in want], np.float32))
    single = index.search(SparseBatch.from_dicts([{0: 1.0, 1: 0.5, 2: 0.25}]), k)
    np.testing.assert_array_equal(single.row(0)[0], index.search(queries, k).row(0)[0])


def test_radix_preselection_leaves_its_histogram_zeroed_when_deletes_leave_fewer_than_k() -> None:
    """The 16-bit histogram is shared scratch: a dirty one would misplace the next query's cut."""
    rng = np.random.default_rng(8)
    n = 10000
    acc = (rng.random(n) + 1).astype(np.float32)
    touched = np.arange(n + 1, dtype=np.int32)
    deleted = np.zeros(n, np.uint8)
    deleted[: n // 2] = 1  # 5000 live candidates < k = 8000 < 10000 touched
    hist = np.zeros(kernels.RADIX_BUCKETS, np.int32)
    scores, docs = np.zeros(8000, np.float32), np.zeros(8000, np.int64)
    live_scores = acc[n // 2:].copy()
    count = kernels._collect_top_k(acc, touched, n, deleted, 8000, scores, docs, 0, hist)
    assert count == n // 2 and not hist.any() and not acc.any()
    order = np.lexsort((np.arange(n // 2), -live_scores))
    np.testing.assert_array_equal(docs[:count], order + n // 2)
