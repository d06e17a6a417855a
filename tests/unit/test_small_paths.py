"""The NumPy paths of small inputs (sparsearch/index/small.py) against the Numba kernels: identical results.

Which path runs depends only on size, so the two must agree exactly — same
arrays and dtypes, scores equal to the bit, the same order among ties and the
same number of hits — or a collection would change its answers when it grows
past a threshold.  Hypothesis draws the inputs; each kernel is compared on
its own, then whole builds and searches through the dispatch (both paths
forced), with BM25 saturation (Lucene norms and exact lengths of every
stored dtype), linear scoring, 8-bit quantisation with per-term scales,
deletions, many ties, several segments and ``k`` larger than the matches.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from sparsearch.index import kernels, small
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def assert_same(a: np.ndarray, b: np.ndarray) -> None:
    """Same dtype, shape and bytes (so float scores agree to the bit, NaN patterns included)."""
    a, b = np.asarray(a), np.asarray(b)
    assert a.dtype == b.dtype and a.shape == b.shape
    assert a.tobytes() == b.tobytes(), (a, b)


@pytest.fixture
def numpy_paths(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """``set(True)``: small inputs take NumPy (the default); ``set(False)``: every input takes Numba."""

    def set_(on: bool) -> None:
        monkeypatch.setattr(small, "ENABLED", on)

    return set_


# ---------------------------------------------------------------- inputs


@st.composite
def token_streams(draw):  # type: ignore[no-untyped-def]
    n_docs = draw(st.integers(0, 30))
    vocab = draw(st.integers(1, 40))
    lengths = draw(st.lists(st.integers(0, 25), min_size=n_docs, max_size=n_docs))
    offsets = np.zeros(n_docs + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    tokens = np.array(draw(st.lists(st.integers(0, vocab - 1), min_size=int(offsets[-1]),
                                    max_size=int(offsets[-1]))), np.int32)
    return offsets, tokens


#: Weights where rounding decisions are close: integers, halves, tiny and huge values, near-ties.
WEIGHTS = st.one_of(
    st.integers(1, 300).map(float),
    st.sampled_from([0.5, 1.5, 2.5, 254.5, 255.0, 255.5, 1e-3, 1e-30, 3e38, 0.1, 0.3]),
    st.floats(0.125, 1e4, allow_nan=False, allow_infinity=False, width=32),
)


@st.composite
def batches(draw, integral: bool | None = None, max_docs: int = 40, max_terms: int = 30):  # type: ignore[no-untyped-def]
    n_terms = draw(st.integers(1, max_terms))
    n_docs = draw(st.integers(1, max_docs))
    if integral is None:
        integral = draw(st.booleans())
    weight = st.integers(1, 6).map(float) if integral else WEIGHTS
    rows = [draw(st.dictionaries(st.integers(0, n_terms - 1), weight, max_size=min(n_terms, 12)))
            for _ in range(n_docs)]
    lengths = draw(st.sampled_from(["sum", "uint32", "fraction"]))
    sums = [min(sum(r.values()), 60_000.0) for r in rows]
    if lengths == "sum":
        doc_lengths = sums
    elif lengths == "uint32":  # stored as uint32 (some length >= 2**16): another dtype in exact scoring
        doc_lengths = [round(x) + 70_000 * (i % 2) for i, x in enumerate(sums)]
    else:  # stored as float32
        doc_lengths = [x + 0.25 for x in sums]
    return SparseBatch.from_dicts(rows, doc_lengths), n_terms


# ---------------------------------------------------------------- kernel by kernel


@SETTINGS
@given(token_streams())
def test_term_frequencies(stream) -> None:  # type: ignore[no-untyped-def]
    offsets, tokens = stream
    for a, b in zip(small.term_frequencies(offsets, tokens), kernels.term_frequencies(offsets, tokens)):
        assert_same(a, b)


@SETTINGS
@given(batches(), st.sampled_from([1, 3, 16]))
def test_invert(drawn, n_chunks: int) -> None:  # type: ignore[no-untyped-def]
    batch, n_terms = drawn
    got = small.invert(batch.offsets, batch.term_ids, batch.weights, n_terms)
    want = kernels.invert(batch.offsets, batch.term_ids, batch.weights, n_terms, n_chunks)
    for a, b in zip(got, want):
        assert_same(a, b)


@SETTINGS
@given(st.lists(st.lists(WEIGHTS, max_size=20), min_size=1, max_size=12))
def test_quantize_uint8(lists) -> None:  # type: ignore[no-untyped-def]
    offsets = np.zeros(len(lists) + 1, np.int64)
    np.cumsum([len(x) for x in lists], out=offsets[1:])
    weights = np.array([w for x in lists for w in x], np.float32)
    for a, b in zip(small.quantize_uint8(offsets, weights), kernels.quantize_uint8(offsets, weights)):
        assert_same(a, b)


def test_quantize_uint8_rounding_boundaries() -> None:
    """Quotients just below and above .5 after the float32 division: the kernel adds 0.5 in float64."""
    rng = np.random.default_rng(0)
    top = np.float32(97.3)
    w = np.concatenate([[top], (np.arange(0, 256, dtype=np.float32) + np.float32(0.5)) * (top / np.float32(255.0))])
    w = np.concatenate([w, np.nextafter(w, 0).astype(np.float32), np.nextafter(w, np.inf).astype(np.float32),
                        rng.random(2000, dtype=np.float32) * top])
    w = np.abs(w).astype(np.float32)
    offsets = np.array([0, len(w)])
    for a, b in zip(small.quantize_uint8(offsets, w), kernels.quantize_uint8(offsets, w)):
        assert_same(a, b)


@SETTINGS
@given(st.lists(st.one_of(st.integers(0, 100), st.integers(0, 2**31 - 1)).map(float), max_size=50))
def test_encode_norms(lengths) -> None:  # type: ignore[no-untyped-def]
    x = np.array(lengths, np.float32)
    assert_same(small.encode_norms(x), kernels.encode_norms(x))


def test_encode_norms_every_length_up_to_a_million() -> None:
    x = np.arange(0, 1_000_000, dtype=np.float32)
    assert_same(small.encode_norms(x), kernels.encode_norms(x))
    assert_same(small.decode_norm_table(), kernels.decode_norm_table())


@SETTINGS
@given(st.lists(st.integers(0, 50), max_size=30), st.integers(0, 60), st.sampled_from([np.uint32, np.int64]))
def test_first_bad_offset(values, end: int, dtype) -> None:  # type: ignore[no-untyped-def]
    offsets = np.array(values, dtype)
    assert small.first_bad_offset(offsets, end) == kernels.first_bad_offset(offsets, end)
    ordered = np.sort(offsets)
    assert small.first_bad_offset(ordered, end) == kernels.first_bad_offset(ordered, end)


@SETTINGS
@given(batches(), st.integers(-3, 3), st.data())
def test_first_bad_posting_list_and_live_doc_freq(drawn, n_docs_shift: int, data) -> None:  # type: ignore[no-untyped-def]
    batch, n_terms = drawn
    offsets, docs, _ = small.invert(batch.offsets, batch.term_ids, batch.weights, n_terms)
    if len(docs) and data.draw(st.booleans()):  # damage one doc id
        docs = docs.copy()
        docs[data.draw(st.integers(0, len(docs) - 1))] = data.draw(st.integers(0, len(batch) + 2))
    n_docs = max(0, len(batch) + n_docs_shift)
    bounds = np.array([0, n_terms], np.int64)
    assert small.first_bad_posting_list(offsets, docs, n_docs) == kernels.first_bad_posting_list(
        offsets, docs, n_docs, bounds)
    deleted = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(batch) + 3, max_size=len(batch) + 3)),
                       np.uint8)
    if len(docs) == 0 or int(docs.max()) < len(deleted):
        assert_same(small.live_doc_freq(offsets, docs, deleted), kernels.live_doc_freq(offsets, docs, deleted))


@SETTINGS
@given(st.lists(st.one_of(st.floats(width=32), st.sampled_from([0.0, -0.0, np.inf, -np.inf, np.nan])), max_size=40))
def test_first_bad_weight(values) -> None:  # type: ignore[no-untyped-def]
    x = np.array(values, np.float32)
    assert small.first_bad_weight(x) == kernels.first_bad_weight(x, 3)


# ---------------------------------------------------------------- search, kernel against kernel


def _search_all(seg, scoring: Scoring, queries: SparseBatch, k: int, index: InvertedIndex):  # type: ignore[no-untyped-def]
    """small.search, then kernels.search_many and kernels.search_one, each with the segment's underflow bounds
    (the fast loops wherever no contribution can round to 0) and with bounds that force the checked loops."""
    params = index._length_params()
    k_table, k1, b_over_avgdl, one_minus_b, exact = params
    deleted = seg.deleted if seg.deleted is not None else np.zeros(0, np.uint8)
    common = (seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales, scoring.transform_code,
              k_table, seg.doc_norms, np.float32(k1), np.float32(b_over_avgdl), np.float32(one_minus_b),
              seg.doc_lengths, exact, deleted, 7)
    out = []
    n_q = len(queries)
    for which, floors in (("small", None), ("many", index._underflow_bounds(seg, params)),
                          ("one", index._underflow_bounds(seg, params)), ("many", (np.float32(0.0), np.inf)),
                          ("one", (np.float32(0.0), np.inf))):
        scores, docs, counts = np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64)
        if which == "small":
            small.search(queries.offsets, queries.term_ids, queries.weights, k, *common, seg.n_docs,
                         scores, docs, counts)
        elif which == "many":
            kernels.search_many(queries.offsets, queries.term_ids, queries.weights, k, 2, *common, *floors,
                                seg.n_docs, scores, docs, counts)
        else:
            acc, touched = np.zeros(seg.n_docs, np.float32), np.empty(seg.n_docs + 1, np.int32)
            hist = np.zeros(kernels.RADIX_BUCKETS, np.int32)
            for q in range(n_q):
                t, w = queries.row(q)
                counts[q] = kernels.search_one(t, w, k, *common, *floors, acc, touched, hist, scores[q], docs[q])
        out.append((scores, docs, counts))
    return out


@st.composite
def queries_for(draw, n_terms: int):  # type: ignore[no-untyped-def]
    """Query rows that may repeat a term, name terms out of range, or weigh one 0, negative or NaN."""
    rows_t, rows_w = [], []
    for _ in range(draw(st.integers(1, 6))):
        n = draw(st.integers(0, 6))
        rows_t.append(draw(st.lists(st.integers(-1, n_terms), min_size=n, max_size=n)))
        rows_w.append(draw(st.lists(st.one_of(WEIGHTS, st.sampled_from([0.0, -1.0, np.nan, 1.0])), min_size=n,
                                    max_size=n)))
    offsets = np.zeros(len(rows_t) + 1, np.int64)
    np.cumsum([len(r) for r in rows_t], out=offsets[1:])
    t = np.array([x for r in rows_t for x in r], np.int32)
    w = np.array([x for r in rows_w for x in r], np.float32)
    return SparseBatch(offsets, t, w)


@SETTINGS
@given(batches(), st.sampled_from(["linear", "lucene", "exact"]), st.sampled_from(["none", "uint8"]),
       st.sampled_from([1, 3, 10, 100]), st.booleans(), st.data())
def test_search_kernels(drawn, scoring_name: str, quantization: str, k: int, with_deletes: bool, data) -> None:  # type: ignore[no-untyped-def]
    batch, n_terms = drawn
    config = IndexConfig(quantization=quantization)
    seg = build_segment(batch, [str(i) for i in range(len(batch))], [{}] * len(batch), n_terms, config)
    if with_deletes:
        mask = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(batch), max_size=len(batch))), np.uint8)
        seg = seg.with_deletes(mask)
    scoring = Scoring("linear") if scoring_name == "linear" else Scoring("saturate", 0.9, 0.4, scoring_name)
    index = InvertedIndex([seg], scoring, config)
    queries = data.draw(queries_for(n_terms))
    (s0, d0, c0), *others = _search_all(seg, scoring, queries, k, index)
    for s, d, c in others:
        assert_same(c0, c)
        assert_same(d0, d)
        assert_same(s0, s)


def test_search_zero_contributions_and_repeated_doc_ids() -> None:
    """Contributions that round to 0 (no hit, however often: the touched list holds n_docs + 1) and a list
    repeating a doc id (never built, but allowed by the structural checks)."""
    offsets = np.array([0, 3, 5, 8], np.int64)
    docs = np.array([0, 1, 2, 1, 3, 2, 2, 4], np.uint32)  # term 2 lists doc 2 twice
    weights = np.array([1e-30, 2.0, 1e-30, 1e-30, 5.0, 1.0, 3.0, 1e-30], np.float32)
    scales = np.ones(3, np.float32)
    norms = np.zeros(5, np.uint8)
    lengths = np.ones(5, np.float32)
    k_table = np.ones(256, np.float32)
    rows = [[(0, 1e-20), (1, 1e-20), (2, 2.0)], [(2, 1.0), (0, 1e-20)], [(1, 1.0)], [(0, 1e-20)] * 40,
            [(0, 1e-20)] * 40 + [(1, 1e-20)] * 40 + [(2, 1.0)]]
    q_offsets = np.cumsum([0] + [len(r) for r in rows]).astype(np.int64)
    q_terms = np.array([t for r in rows for t, _ in r], np.int32)
    q_weights = np.array([w for r in rows for _, w in r], np.float32)
    n_q = len(rows)
    for transform in (small.TRANSFORM_LINEAR, small.TRANSFORM_SATURATE):
        for k in (1, 2, 5, 20):
            results = []
            # The segment's bounds (smallest weight 1e-30, kd at most 1) send the terms whose contributions may
            # round to 0 through the checked loops; the touched buffer sits in a larger one whose tail must stay
            # untouched (the kernels do not check bounds: an overrun would be silent).
            for fn, floors in (("small", ()), ("many", (np.float32(1e-30), 1.0)), ("one", (np.float32(1e-30), 1.0))):
                s, d, c = np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64)
                common = (offsets, docs, weights, scales, transform, k_table, norms, np.float32(0.9),
                          np.float32(0.4), np.float32(0.6), lengths, False, np.zeros(0, np.uint8), 0)
                if fn == "small":
                    small.search(q_offsets, q_terms, q_weights, k, *common, 5, s, d, c)
                elif fn == "many":
                    kernels.search_many(q_offsets, q_terms, q_weights, k, 1, *common, *floors, 5, s, d, c)
                else:
                    acc, guarded = np.zeros(5, np.float32), np.full(600, -1, np.int32)
                    touched = guarded[:6]
                    hist = np.zeros(kernels.RADIX_BUCKETS, np.int32)
                    for q in range(n_q):
                        lo, hi = q_offsets[q], q_offsets[q + 1]
                        c[q] = kernels.search_one(q_terms[lo:hi], q_weights[lo:hi], k, *common, *floors, acc, touched,
                                                  hist, s[q], d[q])
                    assert not acc.any() and (guarded[6:] == -1).all()
                results.append((s, d, c))
            for other in results[1:]:
                for a, b in zip(results[0], other):
                    assert_same(a, b)
            s, d, c = results[0]
            assert d[3, :c[3]].tolist() == [1]  # 80 contributions to docs 0 and 2 round to 0: no hits
            assert (s[c[:, None] > np.arange(k)] > 0).all()


@SETTINGS
@given(st.data())
def test_merge_top_k(data) -> None:  # type: ignore[no-untyped-def]
    n_q, k = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 8))
    lists = []
    for _ in range(2):
        s, d, c = np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64)
        lists.append((s, d, c))
    for q in range(n_q):
        ids = data.draw(st.lists(st.integers(0, 60), unique=True, max_size=2 * k))
        scores = data.draw(st.lists(st.sampled_from([1.0, 2.0, 2.5, 3.0]), min_size=len(ids), max_size=len(ids)))
        side = data.draw(st.lists(st.booleans(), min_size=len(ids), max_size=len(ids)))
        for which, (s, d, c) in enumerate(lists):
            mine = sorted(((-sc, i) for i, sc, sd in zip(ids, scores, side) if sd == bool(which)))[:k]
            c[q] = len(mine)
            for j, (neg, i) in enumerate(mine):
                s[q, j], d[q, j] = -neg, i
    outs = []
    for merge in (small.merge_top_k, kernels.merge_top_k):
        o = (np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
        merge(*lists[0], *lists[1], k, *o)
        outs.append(o)
    for a, b in zip(*outs):
        assert_same(a, b)


# ---------------------------------------------------------------- the whole stack, both paths


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(batches(max_docs=60), st.sampled_from(["linear", "lucene", "exact"]), st.sampled_from(["none", "uint8"]),
       st.sampled_from([1, 5, 1000]), st.booleans(), st.data())
def test_builds_and_searches_agree_across_paths(numpy_paths, drawn, scoring_name: str, quantization: str, k: int,
                                                split: bool, data) -> None:  # type: ignore[no-untyped-def]
    """Whole segments (inversion, quantisation, norms) and whole searches (several segments, deletes)."""
    batch, n_terms = drawn
    config = IndexConfig(quantization=quantization)
    scoring = Scoring("linear") if scoring_name == "linear" else Scoring("saturate", 1.2, 0.75, scoring_name)
    cut = data.draw(st.integers(0, len(batch))) if split else len(batch)
    parts = [(0, cut), (cut, len(batch))] if split else [(0, len(batch))]
    mask = np.array(data.draw(st.lists(st.integers(0, 1), min_size=len(batch), max_size=len(batch))), np.uint8)
    queries = data.draw(queries_for(n_terms))
    results = []
    for on in (True, False):
        numpy_paths(on)
        segments = []
        for lo, hi in parts:
            if hi == lo:
                continue
            o = batch.offsets
            sub = SparseBatch(o[lo:hi + 1] - o[lo], batch.term_ids[o[lo]:o[hi]], batch.weights[o[lo]:o[hi]],
                              batch.lengths[lo:hi])
            seg = build_segment(sub, [str(i) for i in range(lo, hi)], [{}] * (hi - lo), n_terms, config)
            segments.append(seg.with_deletes(mask[lo:hi]))
        index = InvertedIndex(segments, scoring, config)
        top = index.search(queries, k, threads=1)
        top_batch = index.search(queries, k, threads=2)
        results.append((segments, index.stats, top, top_batch))
    (segs_a, stats_a, top_a, batch_a), (segs_b, stats_b, top_b, batch_b) = results
    for sa, sb in zip(segs_a, segs_b):
        for name, array in sa.arrays().items():
            assert_same(array, sb.arrays()[name])
        assert (sa.term_scales is None) == (sb.term_scales is None)
        assert_same(sa.doc_freq(), sb.doc_freq())
    assert_same(stats_a.doc_freq, stats_b.doc_freq)
    for a, b in ((top_a, top_b), (batch_a, batch_b), (top_a, batch_b)):
        assert_same(a.counts, b.counts)
        assert_same(a.doc_ids, b.doc_ids)
        assert_same(a.scores, b.scores)


def test_bm25_ties_and_k_beyond_the_matches(numpy_paths) -> None:  # type: ignore[no-untyped-def]
    """Identical documents tie exactly: lower ids first on both paths; k past the matches gives every match."""
    from sparsearch import Index
    from sparsearch.types import Document

    texts = ["alpha beta", "alpha beta", "gamma", "alpha beta", "beta alpha", "delta alpha"] * 5
    docs = [Document(f"d{i}", text=t) for i, t in enumerate(texts)]
    hits = []
    for on in (True, False):
        numpy_paths(on)
        index = Index.build(docs)
        index.delete(["d3"])
        index.commit()
        hits.append([index.search("alpha beta", k=100), index.search_batch(["alpha", "gamma", "zzz"], k=50)])
    (one_a, many_a), (one_b, many_b) = hits
    assert one_a.ids == one_b.ids and one_a.scores.tobytes() == one_b.scores.tobytes()
    assert len(one_a.ids) == 5 * 5 - 1  # every document holding alpha or beta, d3 deleted
    assert one_a.ids[:3] == ["d0", "d1", "d4"]  # equal scores: lower internal id first
    for a, b in zip(many_a, many_b):
        assert a.ids == b.ids and a.scores.tobytes() == b.scores.tobytes()
    assert len(many_b[2].ids) == 0


def test_a_small_build_and_search_never_imports_numba(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What makes a first ``sparsearch quickstart`` fast: no kernel is compiled, Numba is not even imported."""
    code = textwrap.dedent(f"""
        import sys
        from sparsearch import Index, read_corpus
        from sparsearch.sample import SAMPLE_CORPUS
        index = Index.build(read_corpus(SAMPLE_CORPUS), path={str(tmp_path / 'idx')!r})
        index = Index.open({str(tmp_path / 'idx')!r})
        assert index.search("term frequency", k=5).ids
        index.delete(["ir-02"])
        index.add(read_corpus(SAMPLE_CORPUS))
        index.commit()
        assert index.search_batch(["term frequency", "ranking"], k=3)[0].ids
        print("numba" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**__import__("os").environ, "SPARSEARCH_NUMPY_PATHS": "1"})
    assert out.stdout.strip() == "False", out.stderr
