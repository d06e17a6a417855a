"""Indexed metadata filters: filtered search equals post-filtering the unfiltered ranking, scores to the bit.

The reference is deliberately naive: rank every document without a filter,
keep those whose metadata (decoded JSON) passes the filter evaluated in plain
Python, take the first k.  Every path of the filtered search (candidate
scoring, deletion masks, the automatic choice) must give exactly that: same
ids, same order, same float32 scores, on random metadata, random filters,
random queries, several segments, deletions, and both score transforms.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from filter_reference import matches  # tests/fixtures: the filter language in plain Python
from sparsearch import BM25Encoder, Document, Index
from sparsearch.errors import InputError
from sparsearch.filters import FilterError
from sparsearch.index import filtering
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch

# ---------------------------------------------------------------- random metadata and filters

FIELDS = ["kw", "num", "flag", "tags", "mix", "obj"]
metadata = st.fixed_dictionaries({}, optional={
    "kw": st.sampled_from(["a", "b", "c"]),
    "num": st.one_of(st.integers(-3, 3), st.sampled_from([-1.5, 0.5, 2.5]), st.lists(st.integers(-3, 3), max_size=3)),
    "flag": st.booleans(),
    "tags": st.lists(st.one_of(st.sampled_from(["x", "y", "z"]), st.none(), st.just(["x"])), max_size=3),
    "mix": st.one_of(st.sampled_from(["a", "1"]), st.integers(0, 2), st.booleans(), st.none()),
    "obj": st.fixed_dictionaries({"p": st.integers(0, 1)}),
})
# Documents holding every field with every kind the filters compare it with (never deleted), so that
# random filters always fit the data; the error paths have their own tests.
ANCHORS = [{"kw": "a", "num": 0, "flag": True, "tags": ["x"], "mix": "a", "obj": {"p": 0}}, {"mix": 1}, {"mix": True}]

bound = st.one_of(st.integers(-4, 4), st.sampled_from([-0.5, 0.5, 2.5]))
leaf = st.one_of(
    st.fixed_dictionaries({"field": st.just("kw"), "eq": st.sampled_from(["a", "b", "c", "d"])}),
    st.fixed_dictionaries({"field": st.sampled_from(["kw", "tags"]),
                           "in": st.lists(st.sampled_from(["a", "b", "x", "y", "q"]), max_size=3)}),
    st.dictionaries(st.sampled_from(["gt", "gte", "lt", "lte"]), bound, min_size=1).map(lambda d: {"field": "num", **d}),
    st.fixed_dictionaries({"field": st.just("num"), "eq": bound}),
    st.fixed_dictionaries({"field": st.just("flag"), "eq": st.booleans()}),
    st.fixed_dictionaries({"field": st.just("mix"), "in": st.lists(
        st.one_of(st.sampled_from(["a", "1"]), st.integers(0, 2), st.booleans()), min_size=1, max_size=3)}),
    st.fixed_dictionaries({"field": st.sampled_from(FIELDS), "exists": st.booleans()}),
    st.dictionaries(st.sampled_from(FIELDS + ["absent"]), st.one_of(
        st.sampled_from(["a", "b", "x"]), st.integers(-1, 2), st.booleans(), st.none(),
        st.lists(st.sampled_from(["x", "y"]), max_size=2), st.just({"p": 1})), min_size=1, max_size=2),
)
filters = st.recursive(leaf, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3).map(lambda c: {"and": c}),
    st.lists(inner, min_size=1, max_size=3).map(lambda c: {"or": c}),
    inner.map(lambda c: {"not": c}),
), max_leaves=6)

SCORINGS = [Scoring("saturate", k1=0.9, b=0.4), Scoring("saturate", k1=1.2, b=0.75, length_norm="exact"),
            Scoring("linear")]
N_TERMS = 8


@st.composite
def collections(draw: Any) -> tuple[InvertedIndex, list[dict[str, Any]]]:
    """An inverted index of 1-3 segments of random vectors and metadata, some documents deleted."""
    scoring = draw(st.sampled_from(SCORINGS))
    config = IndexConfig(quantization=draw(st.sampled_from(["none", "uint8"])), stored_fields=("title", "metadata"))
    metas = ANCHORS + draw(st.lists(metadata, min_size=0, max_size=40))
    n = len(metas)
    cuts = sorted(draw(st.lists(st.integers(1, n - 1), max_size=2, unique=True)))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    segments, all_meta = [], []
    for lo, hi in zip([0] + cuts, cuts + [n]):
        rows = [rng.choice(N_TERMS, size=rng.integers(0, 7), replace=False) for _ in range(hi - lo)]
        offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
        terms = np.concatenate(rows) if rows else np.zeros(0, np.int32)
        weights = (rng.integers(1, 5, len(terms)) if scoring.transform == "saturate"
                   else rng.random(len(terms)) * 3 + 0.01).astype(np.float32)
        if scoring.transform == "linear" and rng.random() < 0.3:
            weights[rng.random(len(terms)) < 0.3] = 1e-30  # with a tiny query weight, contributions round to 0
        batch = SparseBatch(offsets, terms, weights)
        stored = [{"metadata": m} for m in metas[lo:hi]]
        seg = build_segment(batch, [f"d{i}" for i in range(lo, hi)], stored, N_TERMS, config)
        deleted = (rng.random(hi - lo) < 0.2).astype(np.uint8)
        deleted[: max(0, len(ANCHORS) - lo)] = 0  # anchors stay
        segments.append(seg.with_deletes(deleted if deleted.any() else None))
        all_meta += [m if not d else None for m, d in zip(metas[lo:hi], deleted)]
    return InvertedIndex(segments, scoring, config), all_meta


def queries_of(draw: Any, n: int) -> SparseBatch:
    # Mostly real terms with positive weights; now and then an unknown term or a zero weight (both skipped),
    # or a weight so small that contributions round to 0 (no hit: the kernels' rule).
    rows = [draw(st.lists(st.integers(-1, N_TERMS), min_size=1, max_size=4, unique=True)) for _ in range(n)]
    weights = [[draw(st.sampled_from([0.5, 1.0, 1.7, 2.25, 3.0, 0.0, 1e-30])) for _ in r] for r in rows]
    offsets = np.concatenate([[0], np.cumsum([len(r) for r in rows])])
    return SparseBatch(offsets, np.array([t for r in rows for t in r], np.int32),
                       np.array([w for r in weights for w in r], np.float32))


def post_filtered(inv: InvertedIndex, metas: list[Any], queries: SparseBatch, flt: dict, k: int) -> list[list]:
    """The reference: the full unfiltered ranking of each query, post-filtered in Python, first k."""
    full = inv.search(queries, inv.id_space)
    out = []
    for q in range(len(queries)):
        ids, scores = full.row(q)
        out.append([(int(d), float(s)) for d, s in zip(ids, scores) if matches(metas[int(d)], flt)][:k])
    return out


def got(top: Any) -> list[list]:
    return [[(int(d), float(s)) for d, s in zip(*top.row(q))] for q in range(len(top.counts))]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(collection=collections(), flt=filters, k=st.integers(1, 12), data=st.data())
def test_filtered_search_equals_post_filtering(collection: Any, flt: dict, k: int, data: Any) -> None:
    inv, metas = collection
    queries = queries_of(data.draw, data.draw(st.integers(1, 3)))
    want = post_filtered(inv, metas, queries, flt, k)
    event("some hits" if any(want) else "no hits")
    for strategy in filtering.STRATEGIES:
        top = filtering.search(inv, queries, k, flt, threads=2, strategy=strategy)
        assert got(top) == want, (strategy, flt, [(d, metas[d]) for r in got(top) + want for d, _ in r])
    # One query at a time (the single-query kernels), as Index.search and the live index call it.
    for q in range(len(queries)):
        lo, hi = queries.offsets[q], queries.offsets[q + 1]
        one = SparseBatch(np.array([0, hi - lo]), queries.term_ids[lo:hi], queries.weights[lo:hi])
        for strategy in filtering.STRATEGIES:
            assert got(filtering.search(inv, one, k, flt, threads=1, strategy=strategy)) == [want[q]]


def test_statistics_are_the_whole_collections() -> None:
    """A filter changes which documents are ranked, never N, avgdl or df: scores equal the unfiltered ones."""
    docs = [Document(f"d{i}", "", " ".join(["common"] * (1 + i % 5) + (["rare"] if i % 7 == 0 else [])),
                     {"g": i % 10}) for i in range(200)]
    idx = Index.build(docs, encoder=BM25Encoder(), config=IndexConfig(stored_fields=("title", "metadata")))
    inv = idx.inverted
    before = (inv.stats.n_docs, inv.stats.total_length, inv.stats.doc_freq.copy())
    full = idx.search("common rare", k=200).as_dict()
    for flt in ({"field": "g", "eq": 3}, {"field": "g", "lt": 2}, {"not": {"field": "g", "eq": 0}}):
        for strategy in filtering.STRATEGIES:
            queries = idx.encode_queries(["common rare"])
            top = filtering.search(inv, queries, 200, flt, threads=1, strategy=strategy)
            hits = dict(zip(inv.resolve_ids(top.row(0)[0]), top.row(0)[1].tolist()))
            assert hits and all(full[d] == s for d, s in hits.items())
            assert len(hits) == sum(matches(docs[int(d[1:])].metadata, flt) for d in full)
    view = filtering._PinnedStats(inv, [inv.segments[0].with_deletes(np.ones(200, np.uint8))])
    assert view.stats is inv.stats
    assert (inv.stats.n_docs, inv.stats.total_length) == before[:2] and np.array_equal(inv.stats.doc_freq, before[2])


def build_index(n: int = 60) -> tuple[Index, list[Document]]:
    docs = [Document(f"d{i}", f"title {i}", f"alpha beta {'gamma ' * (i % 4)}delta{i % 3}",
                     {"lang": ["en", "fr", "de"][i % 3], "year": 1990 + i % 30, "tags": ["t%d" % (i % 4), "all"],
                      "oa": i % 5 == 0}) for i in range(n)]
    idx = Index.build(docs[: n // 2], encoder=BM25Encoder(),
                      config=IndexConfig(quantization="uint8", stored_fields=("title", "metadata")))
    idx.add(docs[n // 2:])
    idx.commit()
    idx.delete(["d3", "d40"])
    idx.commit()
    return idx, [d for d in docs if d.doc_id not in ("d3", "d40")]


def test_index_search_and_batch_take_filters() -> None:
    idx, docs = build_index()
    meta = {d.doc_id: d.metadata for d in docs}
    assert len(idx.inverted.segments) == 2
    for flt in ({"field": "lang", "eq": "fr"}, {"field": "year", "gte": 2000, "lt": 2010},
                {"and": [{"field": "tags", "in": ["t1", "t2"]}, {"not": {"field": "oa", "eq": True}}]},
                {"lang": "de"}, {"field": "lang", "eq": "none"}):
        full = idx.search("alpha gamma delta1", k=len(docs))
        want = [(i, s) for i, s in zip(full.ids, full.scores.tolist()) if matches(meta[i], flt)][:7]
        hits = idx.search("alpha gamma delta1", k=7, filter=flt)
        assert list(zip(hits.ids, hits.scores.tolist())) == want
        batch = idx.search_batch(["alpha gamma delta1", "beta"], k=7, filter=flt)
        assert list(zip(batch[0].ids, batch[0].scores.tolist())) == want
        full_b = idx.search("beta", k=len(docs))
        assert batch[1].ids == [i for i in full_b.ids if matches(meta[i], flt)][:7]
    assert idx.search("alpha", 5, filter={}).ids == idx.search("alpha", 5).ids


def test_errors_name_the_field() -> None:
    idx, _ = build_index(20)
    for flt, words in [({"field": "lang", "gt": 3}, "filter field 'lang': a range needs numbers"),
                       ({"field": "year", "eq": "2001"}, "filter field 'year': 'eq' compares a string"),
                       ({"field": "langs", "eq": "en"}, "filter field 'langs': no document in this index has"),
                       ({"field": "lang", "has": "en"}, "filter field 'lang': unknown operator 'has'"),
                       ({"field": "tags", "in": "t1"}, "filter field 'tags': 'in' takes a list")]:
        with pytest.raises(FilterError, match=words):
            idx.search("alpha", 3, filter=flt)
    plain = Index.build([Document("a", "t", "alpha", {"lang": "en"})], encoder=BM25Encoder())
    with pytest.raises(InputError, match="it stores no metadata"):
        plain.search("alpha", 3, filter={"field": "lang", "eq": "en"})


def test_column_index_is_built_once_per_segment() -> None:
    idx, _ = build_index(20)
    seg = idx.inverted.segments[0]
    first = filtering.segment_columns(seg)
    assert filtering.segment_columns(seg.with_deletes(np.zeros(seg.n_docs, np.uint8))) is first
    assert first.fields["year"].kinds == {"number"} and first.fields["tags"].kinds == {"string"}
