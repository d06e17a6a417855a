"""Adds, upserts and deletes: scores must equal a fresh build over the same final documents."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sparsearch import Document, Index
from sparsearch.index.merge import MergePolicy, plan_merge
from sparsearch.types import Hits

WORDS = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "theta", "kappa", "lambda", "sigma"]
QUERIES = ["alpha beta", "gamma", "delta epsilon zeta", "kappa kappa sigma", "theta lambda alpha", "omega"]


def doc(doc_id: str, words: list[int]) -> Document:
    return Document(doc_id, "", " ".join(WORDS[w] for w in words))


texts = st.lists(st.integers(0, len(WORDS) - 1), min_size=0, max_size=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("add"), st.integers(0, 15), texts),
        st.tuples(st.just("delete"), st.integers(0, 15), st.just([])),
        st.tuples(st.just("commit"), st.just(0), st.just([])),
        st.tuples(st.just("merge"), st.just(0), st.just([])),
    ),
    min_size=1,
    max_size=25,
)


def assert_same_scores(a: list[Hits], b: list[Hits]) -> None:
    for x, y in zip(a, b):
        assert x.as_dict().keys() == y.as_dict().keys()
        for doc_id, score in x.as_dict().items():
            assert abs(score - y.as_dict()[doc_id]) <= 1e-5


def replay(index: Index, ops: list, final: dict[str, Document]) -> None:
    for op, n, words in ops:
        doc_id = f"d{n}"
        if op == "add":
            index.add([doc(doc_id, words)])
            final.pop(doc_id, None)
            final[doc_id] = doc(doc_id, words)
        elif op == "delete":
            index.delete([doc_id])
            final.pop(doc_id, None)
        elif op == "merge":
            index.commit()
            while index.merge(MergePolicy(merge_factor=2, max_deleted_fraction=0.2)):
                pass
        else:
            index.commit()
    index.commit()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(initial=st.lists(texts, min_size=1, max_size=8), ops=operations)
def test_incremental_equals_fresh_build_in_memory(initial: list[list[int]], ops: list) -> None:
    start = [doc(f"d{i}", w) for i, w in enumerate(initial)]
    index = Index.build(start)
    final = {d.doc_id: d for d in start}
    replay(index, ops, final)
    assert index.n_docs == len(final)
    if not final:
        assert all(len(h) == 0 for h in index.search_batch(QUERIES, 20))
        return
    fresh = Index.build(list(final.values()))
    assert index.inverted.stats.n_docs == fresh.inverted.stats.n_docs
    assert index.inverted.stats.total_length == fresh.inverted.stats.total_length
    assert_same_scores(index.search_batch(QUERIES, 20), fresh.search_batch(QUERIES, 20))


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=operations)
def test_incremental_on_disk_survives_reopen(tmp_path_factory, ops: list) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path_factory.mktemp("inc") / "idx"
    start = [doc("d0", [0, 1]), doc("d1", [2, 2, 3]), doc("d2", [4])]
    index = Index.build(start, path=path)
    final = {d.doc_id: d for d in start}
    replay(index, ops, final)
    reopened = Index.open(path)
    assert reopened.n_docs == len(final)
    assert {d for d in final} == {d for d in final if reopened.get(d) is not None}
    if final:
        fresh = Index.build(list(final.values()))
        assert_same_scores(reopened.search_batch(QUERIES, 20), fresh.search_batch(QUERIES, 20))
        assert_same_scores(index.search_batch(QUERIES, 20), fresh.search_batch(QUERIES, 20))


def test_upsert_replaces_and_get_returns_stored_fields(tmp_path: Path) -> None:
    index = Index.build([Document("a", "Old", "alpha"), Document("b", "B", "beta")], path=tmp_path / "i")
    index.add([Document("a", "New", "gamma")])
    assert index.search("alpha", 5).ids == ["a"]  # not visible before commit
    index.commit()
    assert index.search("alpha", 5).ids == []
    assert index.search("gamma", 5).ids == ["a"]
    assert index.get("a") == {"title": "New"} and index.get("zzz") is None
    assert index.delete(["b", "nope"]) == ["b"]
    index.commit()
    reopened = Index.open(tmp_path / "i")
    assert reopened.n_docs == 1 and reopened.search("beta", 5).ids == []
    np.testing.assert_array_equal(reopened.search("gamma", 5).scores, index.search("gamma", 5).scores)


def test_merge_plan_is_tiered() -> None:
    policy = MergePolicy(merge_factor=4, max_deleted_fraction=0.3)
    assert plan_merge([1000, 10, 12, 9], [0, 0, 0, 0], policy) == []
    assert plan_merge([1000, 10, 12, 9, 11], [0] * 5, policy) == [1, 2, 3, 4]
    assert plan_merge([1000, 10], [600, 0], policy) == [0]  # 37.5 % deleted: rewrite to reclaim space
    assert plan_merge([0, 10, 0], [3, 0, 0], policy) == [0, 2]  # no live documents: dropped first
    assert plan_merge([0], [0], policy) == []


def test_merging_keeps_scores_and_shrinks_segments(tmp_path: Path) -> None:
    index = Index.build([doc("d0", [0, 1, 2])], path=tmp_path / "m")
    for i in range(1, 9):
        index.add([doc(f"d{i}", [i % 10, (i * 3) % 10, 1])])
        index.commit()
    index.delete(["d3"])
    index.commit()
    before = index.search_batch(QUERIES, 20)
    assert len(index.inverted.segments) == 9
    merged = 0
    while index.merge(MergePolicy(merge_factor=4)):
        merged += 1
    assert merged == 2 and len(index.inverted.segments) == 1  # the emptied segment dropped, then one tier merge
    assert_same_scores(before, index.search_batch(QUERIES, 20))
    reopened = Index.open(tmp_path / "m")
    assert_same_scores(before, reopened.search_batch(QUERIES, 20))
    assert reopened.n_docs == 8 and reopened.get("d3") is None
    on_disk = sorted(p.name for p in (tmp_path / "m").iterdir() if p.name.startswith("seg-"))
    assert len(on_disk) == len(reopened.inverted.segments)
