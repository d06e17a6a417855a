"""Search modes over the per-segment acceleration structures: exact BMP and approximate search.

BMP must return exactly the exhaustive top-k (ids and float32 scores, ties by
lower internal id) on random and real vectors, with deletes and filters;
approximate search with no cut must too.  The structures are checked against
the postings they come from (forward index round trip, top-lambda pruning),
and an index written without them (older, or small segments) still opens and
searches in every mode.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sparsearch.index import accel as accel_mod
from sparsearch.index import kernels
from sparsearch.index.accel import AccelSettings, build_accel, segment_accel
from sparsearch.index.approx import ApproxSettings
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import Segment, build_segment
from sparsearch.quickstart import SAMPLE_VECTORS
from sparsearch.types import SparseBatch

SAMPLE = SAMPLE_VECTORS  # real learned document vectors (the quickstart's, of the bundled sample)
CONFIG = IndexConfig(stored_fields=("title", "metadata"))


def random_batch(rng: np.random.Generator, n: int, n_terms: int, nnz: int) -> SparseBatch:
    """Rows of Zipf-ish term ids (so lists differ in length) and positive weights, a few rows empty."""
    rows = []
    for _ in range(n):
        count = int(rng.integers(0, nnz + 1))
        terms = np.unique(np.minimum(rng.zipf(1.3, count) - 1, n_terms - 1))
        rows.append({int(t): float(rng.random() + 0.01) for t in terms})
    return SparseBatch.from_dicts(rows)


def real_batch(n: int, seed: int) -> tuple[SparseBatch, int]:
    """``n`` documents recombined from the bundled real inference-free vectors (half the terms of two each)."""
    vectors = [json.loads(line)["vector"] for line in SAMPLE.read_text().splitlines()]
    vocab = sorted({t for v in vectors for t in v})
    ids = {t: i for i, t in enumerate(vocab)}
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        row: dict[int, float] = {}
        for src in rng.integers(0, len(vectors), 2):
            for token, w in vectors[src].items():
                if rng.random() < 0.5:
                    row[ids[token]] = max(row.get(ids[token], 0.0), w)
        rows.append(row)
    return SparseBatch.from_dicts(rows), len(vocab)


def make_segment(vectors: SparseBatch, n_terms: int, first: int, config: IndexConfig = CONFIG) -> Segment:
    langs = ["en", "de", "fr"]
    stored = [{"metadata": {"lang": langs[(first + i) % 3]}} for i in range(len(vectors))]
    return build_segment(vectors, [f"d{first + i}" for i in range(len(vectors))], stored, n_terms, config)


def split_index(vectors: SparseBatch, n_terms: int, parts: int, delete_every: int = 0,
                config: IndexConfig = CONFIG) -> InvertedIndex:
    n = len(vectors)
    cuts = np.linspace(0, n, parts + 1).astype(int)
    segments = []
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows = SparseBatch.from_dicts([dict(zip(*map(np.ndarray.tolist, vectors.row(i)))) for i in range(a, b)])
        seg = make_segment(rows, n_terms, int(a), config)
        if delete_every:
            seg = seg.with_deletes((np.arange(seg.n_docs) % delete_every == 1).astype(np.uint8))
        segments.append(seg)
    return InvertedIndex(segments, Scoring(), config)


def same_hits(index: InvertedIndex, queries: SparseBatch, k: int, flt: object = None, **mode: object) -> None:
    expected = index.hits(queries, k, flt)
    got = index.hits(queries, k, flt, **mode)
    for q, (e, g) in enumerate(zip(expected, got)):
        assert g.internal_ids.tolist() == e.internal_ids.tolist(), f"query {q}"
        assert np.array_equal(g.scores, e.scores), f"query {q}"
        assert g.scores.dtype == e.scores.dtype


# ---------------------------------------------------------------- the structures


@pytest.mark.parametrize("quantization", ["none", "uint8"])
def test_forward_index_transposed_back_equals_the_postings(quantization: str) -> None:
    rng = np.random.default_rng(1)
    seg = make_segment(random_batch(rng, 400, 300, 40), 300, 0, IndexConfig(quantization=quantization))
    acc = segment_accel(seg)
    offsets, docs, weights = kernels.invert(acc.fwd_offsets, acc.fwd_terms.astype(np.int32), acc.fwd_weights,
                                            seg.n_terms, 1)
    assert np.array_equal(offsets, seg.postings_offsets)
    assert np.array_equal(docs, seg.postings_docs)
    assert np.array_equal(weights, seg.postings_weights) and weights.dtype == seg.postings_weights.dtype


def test_static_pruning_keeps_exactly_the_top_lambda_postings_heaviest_first() -> None:
    rng = np.random.default_rng(2)
    seg = make_segment(random_batch(rng, 500, 200, 30), 200, 0)
    lam = 7
    acc = build_accel(seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales, seg.n_docs,
                      AccelSettings(min_lambda=lam, prune_fraction=1e-9))
    assert acc.lam == lam
    for t in range(seg.n_terms):
        lo, hi = seg.postings_offsets[t], seg.postings_offsets[t + 1]
        docs, weights = seg.postings_docs[lo:hi], seg.postings_weights[lo:hi]
        order = np.lexsort((docs, -weights))[:lam]  # heaviest first, lower doc id among equals
        a, b = acc.imp_offsets[t], acc.imp_offsets[t + 1]
        assert acc.imp_docs[a:b].tolist() == docs[order].tolist()
        assert acc.imp_weights[a:b].tolist() == weights[order].tolist()


# ---------------------------------------------------------------- exact BMP


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 10, 60])
def test_bmp_returns_the_exhaustive_top_k_on_random_vectors(seed: int, k: int) -> None:
    rng = np.random.default_rng(seed)
    index = split_index(random_batch(rng, 900, 500, 50), 500, parts=2 + seed % 2, delete_every=5 * seed)
    queries = random_batch(rng, 25, 500, 12)
    same_hits(index, queries, k, mode="bmp")
    same_hits(index, queries, k, {"field": "lang", "eq": "de"}, mode="bmp")


@pytest.mark.parametrize("reorder, block_size", [("none", 8), ("maxterm", 16)])
def test_bmp_is_exact_for_any_block_layout(monkeypatch: pytest.MonkeyPatch, reorder: str, block_size: int) -> None:
    monkeypatch.setattr(accel_mod, "DEFAULT_SETTINGS", AccelSettings(block_size=block_size, reorder=reorder))
    monkeypatch.setattr(accel_mod, "MIN_BUILD_POSTINGS", 0)
    rng = np.random.default_rng(7)
    index = split_index(random_batch(rng, 700, 300, 40), 300, parts=1, delete_every=3, config=IndexConfig(
        quantization="uint8", stored_fields=("title", "metadata")))
    assert index.segments[0].accel["params"].tolist()[0] == block_size
    same_hits(index, random_batch(rng, 20, 300, 10), 10, mode="bmp")


def test_bmp_and_unpruned_approx_are_exact_on_real_vectors() -> None:
    vectors, n_terms = real_batch(1500, seed=3)
    index = split_index(vectors, n_terms, parts=2, delete_every=4)
    queries = SparseBatch.from_dicts([dict(list(zip(*map(np.ndarray.tolist, vectors.row(i))))[:20])
                                      for i in range(0, 1500, 50)])
    for k in (1, 10, 100):
        same_hits(index, queries, k, mode="bmp")
        same_hits(index, queries, k, {"field": "lang", "in": ["en", "fr"]}, mode="bmp")
        same_hits(index, queries, k, mode="approx", approx=ApproxSettings.exhaustive())
        same_hits(index, queries, k, {"field": "lang", "eq": "fr"}, mode="approx", approx=ApproxSettings.exhaustive())


# ---------------------------------------------------------------- approximate


@pytest.mark.parametrize("seed", [0, 1])
def test_approx_without_cut_equals_exact_with_deletes_and_filters(seed: int) -> None:
    rng = np.random.default_rng(10 + seed)
    index = split_index(random_batch(rng, 800, 400, 40), 400, parts=2, delete_every=3)
    queries = random_batch(rng, 20, 400, 15)
    same_hits(index, queries, 10, mode="approx", approx=ApproxSettings.exhaustive())
    same_hits(index, queries, 10, {"field": "lang", "eq": "en"}, mode="approx", approx=ApproxSettings.exhaustive())


def test_approx_scores_are_exact_and_recall_grows_with_its_knobs() -> None:
    vectors, n_terms = real_batch(2000, seed=5)
    index = split_index(vectors, n_terms, parts=1)
    queries = SparseBatch.from_dicts([dict(list(zip(*map(np.ndarray.tolist, vectors.row(i))))[:25])
                                      for i in range(0, 2000, 40)])
    exact = index.hits(queries, 10)
    recalls = []
    for settings in (ApproxSettings(query_terms=2, list_fraction=0.01, candidates=10),
                     ApproxSettings(query_terms=8, list_fraction=0.05, candidates=50),
                     ApproxSettings(query_terms=None, list_fraction=None, candidates=2000)):
        got = index.hits(queries, 10, mode="approx", approx=settings)
        found = 0
        for e, g in zip(exact, got):
            found += len(set(g.internal_ids.tolist()) & set(e.internal_ids.tolist()))
        recalls.append(found / (10 * len(queries)))
    assert recalls[0] < recalls[1] <= recalls[2] == 1.0
    # Every returned score is the document's exact score.
    full = index.hits(queries, index.n_docs)
    got = index.hits(queries, 10, mode="approx", approx=ApproxSettings(query_terms=3, candidates=20))
    for f, g in zip(full, got):
        exact_of = dict(zip(f.internal_ids.tolist(), f.scores.tolist()))
        assert [exact_of[d] for d in g.internal_ids.tolist()] == g.scores.tolist()


def test_modes_are_checked_and_bm25_indexes_are_searched_exactly() -> None:
    rng = np.random.default_rng(4)
    tf = random_batch(rng, 300, 100, 20)
    tf = SparseBatch(tf.offsets, tf.term_ids, np.ceil(tf.weights * 5), np.diff(tf.offsets) * 2.0)
    bm25 = InvertedIndex([build_segment(tf, [f"d{i}" for i in range(300)], [{}] * 300, 100, IndexConfig())],
                         Scoring(transform="saturate", k1=0.9, b=0.4), IndexConfig())
    queries = random_batch(rng, 10, 100, 5)
    same_hits(bm25, queries, 10, mode="bmp")
    same_hits(bm25, queries, 10, mode="approx", approx=ApproxSettings(query_terms=1))
    with pytest.raises(ValueError, match="unknown search mode"):
        bm25.hits(queries, 10, mode="fast")
    with pytest.raises(TypeError, match="ApproxSettings"):
        bm25.hits(queries, 10, mode="approx", approx={"query_terms": 3})
    with pytest.raises(ValueError, match="query_terms"):
        ApproxSettings(query_terms=0)
