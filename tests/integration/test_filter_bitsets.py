"""Selective filters on large segments: every way a posting list meets the candidates gives post-filtering's results.

The candidate scorer (``filter_kernels.score_rows_py``) meets each query
term's list with the candidates by scanning it, galloping through it, or
intersecting the term's bitset (``filter_postings``) with the filter's,
chosen per term by cost; ``strategy="candidates:scan"``, ``":gallop"`` and
``":bitset"`` force one.  The segments here are large enough (>= 8,192
documents) for the automatic choice to take the candidate path and for the
long lists to get bitsets, and every path must equal the reference: the
full unfiltered ranking, post-filtered, first k, ids and float32 scores.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from filter_reference import matches  # tests/fixtures: the filter language in plain Python
from sparsearch.index import filter_kernels, filter_postings, filtering
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch

N_DOCS = 9000
N_TERMS = 300
SCORINGS = {"bm25": Scoring("saturate", k1=0.9, b=0.4), "exact": Scoring("saturate", k1=1.2, b=0.75,
                                                                          length_norm="exact"),
            "linear": Scoring("linear")}
STRATEGIES = ("auto", "candidates", "candidates:scan", "candidates:gallop", "candidates:bitset")


@lru_cache(maxsize=None)
def collection(scoring: str) -> tuple[InvertedIndex, list[dict[str, Any]]]:
    """Two segments (9,000 and 3,000 documents; a few deleted), Zipf-like terms, metadata of known selectivity."""
    rng = np.random.default_rng(7)
    popularity = 1.0 / np.arange(1, N_TERMS + 1) ** 0.9
    popularity /= popularity.sum()
    config = IndexConfig(quantization="none" if scoring == "linear" else "uint8", stored_fields=("title", "metadata"))
    segments, metas = [], []
    for n, base in ((N_DOCS, 0), (3000, N_DOCS)):
        rows = [np.unique(rng.choice(N_TERMS, size=rng.integers(1, 40), p=popularity)) for _ in range(n)]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        terms = np.concatenate(rows).astype(np.int32)
        weights = (rng.integers(1, 6, len(terms)) if scoring != "linear" else rng.random(len(terms)) * 3 + 0.01)
        m = [{"g": int(rng.integers(0, 100)), "run": (base + i) // 90, "h": int(rng.integers(0, 10))} for i in range(n)]
        seg = build_segment(SparseBatch(offsets, terms, weights.astype(np.float32)), [f"d{base + i}" for i in range(n)],
                            [{"metadata": x} for x in m], N_TERMS, config)
        deleted = (rng.random(n) < 0.02).astype(np.uint8)
        segments.append(seg.with_deletes(deleted))
        metas += [x if not d else None for x, d in zip(m, deleted)]
    return InvertedIndex(segments, SCORINGS[scoring], config), metas


def random_queries(rng: np.random.Generator, n: int) -> SparseBatch:
    rows = [rng.choice(N_TERMS, size=rng.integers(1, 8), replace=False) for _ in range(n)]
    weights = [rng.choice([0.5, 1.0, 1.7, 2.25, 3.0], len(r)) for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return SparseBatch(offsets, np.concatenate(rows).astype(np.int32), np.concatenate(weights).astype(np.float32))


def post_filtered(inv: InvertedIndex, metas: list[Any], queries: SparseBatch, flt: dict, k: int) -> list[list]:
    keep = np.array([m is not None and matches(m, flt) for m in metas])
    full = inv.search(queries, inv.id_space, threads=1)
    out = []
    for q in range(len(queries)):
        ids, scores = full.row(q)
        sel = keep[ids]
        out.append(list(zip(ids[sel][:k].tolist(), scores[sel][:k].tolist())))
    return out


def got(top: Any) -> list[list]:
    return [list(zip(top.row(q)[0].tolist(), top.row(q)[1].tolist())) for q in range(len(top.counts))]


FILTERS = {
    "1 % at random": {"field": "g", "eq": 17},
    "3 % at random": {"field": "g", "in": [1, 50, 99]},
    "10 % at random": {"field": "h", "eq": 3},
    "0.3 % contiguous": {"field": "run", "in": [20, 55, 120]},
    "1 % contiguous": {"field": "run", "eq": 60},
    "and": {"and": [{"field": "g", "lt": 20}, {"field": "h", "gte": 8}]},
    "a document or two": {"and": [{"field": "g", "eq": 5}, {"field": "run", "eq": 3}]},
}


@pytest.mark.parametrize("scoring", sorted(SCORINGS))
def test_every_way_equals_post_filtering(scoring: str) -> None:
    inv, metas = collection(scoring)
    queries = random_queries(np.random.default_rng(1), 12)
    for name, flt in FILTERS.items():
        for k in (1, 10, 100):
            want = post_filtered(inv, metas, queries, flt, k)
            for strategy in STRATEGIES:
                assert got(filtering.search(inv, queries, k, flt, threads=2, strategy=strategy)) == want, \
                    (scoring, name, k, strategy)
                for q in range(len(queries)):
                    lo, hi = queries.offsets[q], queries.offsets[q + 1]
                    one = SparseBatch(np.array([0, hi - lo]), queries.term_ids[lo:hi], queries.weights[lo:hi])
                    assert got(filtering.search(inv, one, k, flt, threads=1, strategy=strategy)) == [want[q]], \
                        (scoring, name, k, strategy, q)


def test_large_segments_take_the_candidate_path_with_term_bitsets() -> None:
    inv, _ = collection("bm25")
    p = filtering.plan(inv, filtering.parse_filter(FILTERS["1 % at random"]))
    assert len(p.candidates) == 1 and p.view is not None  # the 3,000-document segment takes the masked path
    tb = filter_postings.term_bits(inv.segments[0])
    lengths = np.diff(inv.segments[0].postings_offsets)
    long_terms = np.flatnonzero(lengths >= -(-N_DOCS // filter_postings.TERM_SHARE))
    assert 0 < tb.n_terms == len(long_terms) and (tb.slot[long_terms] >= 0).all()
    assert (tb.slot[np.setdiff1d(np.arange(N_TERMS), long_terms)] == -1).all()
    assert filter_postings.term_bits(inv.segments[0].with_deletes(None)) is tb  # once per segment, every view


def test_term_bits_ranks_are_positions() -> None:
    rng = np.random.default_rng(3)
    n_docs = 70_000  # more than one rank superblock (65,536 documents)
    lists = [np.sort(rng.choice(n_docs, size=s, replace=False)) for s in (1, 5000, 40_000, 69_999)]
    lists.append(np.array([3, 9, 9, 12]))  # a repeated document: validation allows it, ranks cannot hold it
    offsets = np.concatenate([[0], np.cumsum([len(x) for x in lists])]).astype(np.int64)
    docs = np.concatenate(lists).astype(np.uint32)
    slot, bits, rel, sup = filter_kernels.term_bits(offsets, docs, n_docs, np.arange(len(lists)))
    assert slot.tolist() == [0, 1, 2, 3, -1]
    for t, lst in enumerate(lists[:4]):
        s = slot[t]
        member = np.zeros(n_docs, bool)
        member[lst] = True
        unpacked = np.unpackbits(bits[s].view(np.uint8), bitorder="little")[:n_docs].astype(bool)
        assert np.array_equal(unpacked, member)
        for d in lst[:: max(1, len(lst) // 300)].tolist() + [int(lst[-1])]:
            w = d >> 6
            below = int(bits[s, w]) & ((1 << (d & 63)) - 1)
            pos = int(sup[s, w // filter_kernels.SUPER_WORDS]) + int(rel[s, w]) + bin(below).count("1")
            assert docs[pos] == d and offsets[t] <= pos < offsets[t + 1]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scoring=st.sampled_from(sorted(SCORINGS)), strategy=st.sampled_from(STRATEGIES),
       values=st.lists(st.integers(0, 99), min_size=1, max_size=12, unique=True),
       runs=st.lists(st.integers(0, 133), max_size=3, unique=True), k=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1))
def test_random_filters_on_large_segments(scoring: str, strategy: str, values: list[int], runs: list[int], k: int,
                                          seed: int) -> None:
    """Random selectivities (0.01 % to 15 %, scattered or in runs), queries, k and ways: post-filtering's results."""
    inv, metas = collection(scoring)
    flt: dict[str, Any] = {"field": "g", "in": values}
    if runs:
        flt = {"or": [flt, {"field": "run", "in": runs}]} if seed % 2 else {"and": [flt, {"not": {"field": "run",
                                                                                                  "in": runs}}]}
    queries = random_queries(np.random.default_rng(seed), 3)
    assert got(filtering.search(inv, queries, k, flt, threads=1, strategy=strategy)) == \
        post_filtered(inv, metas, queries, flt, k)
