"""The index protocol's contract, run against every implementation.

Each implementation (an in-memory writer, a batch writer over a directory, a
live writer with its log) takes the same writes and must give the same
answers: scores equal to the dot products computed with NumPy, upserts that
replace, deletes that report what existed, snapshots that never change, and
— for those on disk — the same answers again after reopening.  A new index
joins by adding a factory here.

The dense index (``sparsearch.index.dense``) runs the same assertions: each
sparse row ``{term: weight}`` becomes a dense row of :data:`N_TERMS` floats
holding those weights, so every dot product, and so every expected answer,
is the same.  Its factories cover it in memory, on disk, live, and with an
HNSW graph on every segment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from sparsearch.index.config import IndexConfig
from sparsearch.index.dense import DenseFormat
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.formats import SPARSE, SegmentFormat
from sparsearch.index.writer import IndexWriter, LiveSettings
from sparsearch.protocols import Index, IndexSnapshot
from sparsearch.scoring import Scoring
from sparsearch.types import Hits, SparseBatch

N_TERMS = 8
CONFIG = IndexConfig(stored_fields=("title",))
QUIET = LiveSettings(flush_docs=10**9, flush_seconds=10**9, flush_bytes=10**12)


class FixedTerms:
    """A term space of eight ids and no state: the index needs nothing more of an encoder."""

    n_terms = N_TERMS

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": "precomputed", "config": {}}

    def state_files(self) -> dict[str, bytes]:
        return {}


Make = Callable[[], SegmentFormat]  # a fresh format per index: a dense one learns its dimension


def dense() -> SegmentFormat:
    return DenseFormat()


def dense_hnsw() -> SegmentFormat:
    """Every segment gets an HNSW graph, however small: the approximate path under the same contract."""
    return DenseFormat(index_type="hnsw", ann_min_docs=1)


def sparse() -> SegmentFormat:
    return SPARSE


def vectors(index: IndexWriter | SegmentFormat, rows: list[dict[int, float]]) -> Any:
    """Rows ``{term: weight}`` in the index's representation: a sparse batch, or a dense matrix of the same weights."""
    fmt = index.fmt if isinstance(index, IndexWriter) else index
    if fmt.kind == "sparse":
        return SparseBatch.from_dicts(rows)
    out = np.zeros((len(rows), N_TERMS), np.float32)
    for i, row in enumerate(rows):
        for t, w in row.items():
            out[i, t] = w
    return out


def reindexer(fmt: SegmentFormat) -> Callable[[list[str], list[dict[str, Any]]], tuple[Any, list[dict[str, Any]]]]:
    """The live writer's recovery step: these sources carry their vector."""

    def reindex(ids: list[str], sources: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
        rows = [{int(t): w for t, w in s["vector"].items()} for s in sources]
        return vectors(fmt, rows), [{"title": s["title"]} for s in sources]

    return reindex


def empty_writer(fmt: SegmentFormat = SPARSE) -> IndexWriter:
    return IndexWriter.in_memory([], Scoring(), CONFIG, FixedTerms(), fmt=fmt)


def memory(make: Make) -> Callable[[Path], IndexWriter]:
    return lambda tmp_path: empty_writer(make())


def disk(make: Make) -> Callable[[Path], IndexWriter]:
    def open_disk(tmp_path: Path) -> IndexWriter:
        if not (tmp_path / "idx").exists():
            empty_writer(make()).save(tmp_path / "idx")
        return IndexWriter.open(tmp_path / "idx", FixedTerms())  # the format comes back from the manifest

    return open_disk


def live(make: Make) -> Callable[[Path], IndexWriter]:
    def open_live(tmp_path: Path) -> IndexWriter:
        if not (tmp_path / "idx").exists():
            empty_writer(make()).save(tmp_path / "idx")
            (tmp_path / "wal.jsonl").write_bytes(b"")
        return IndexWriter.open_live(tmp_path / "idx", tmp_path / "wal.jsonl", FixedTerms(), reindexer(make()),
                                     QUIET)

    return open_live


open_memory, open_disk, open_live = memory(sparse), disk(sparse), live(sparse)

FACTORIES: dict[str, Callable[[Path], IndexWriter]] = {
    "memory": open_memory, "disk": open_disk, "live": open_live,
    "dense": memory(dense), "dense-disk": disk(dense), "dense-live": live(dense),
    "dense-hnsw-disk": disk(dense_hnsw), "dense-hnsw-live": live(dense_hnsw),
}
ON_DISK = {"disk", "live", "dense-disk", "dense-live", "dense-hnsw-disk", "dense-hnsw-live"}
LIVE = {"live", "dense-live", "dense-hnsw-live"}


@pytest.fixture(params=sorted(FACTORIES))
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def add(index: IndexWriter, docs: dict[str, dict[int, float]]) -> None:
    ids = list(docs)
    index.add(ids, vectors(index, [docs[i] for i in ids]), [{"title": f"t-{i}"} for i in ids],
              [{"title": f"t-{i}", "vector": {str(t): w for t, w in docs[i].items()}} for i in ids])


def expected(docs: dict[str, dict[int, float]], query: dict[int, float], k: int) -> list[tuple[str, float]]:
    """Exact top-k by NumPy dot products (ties by insertion order, as the index breaks them).

    Only positive scores, as a sparse index answers; a dense index ranks
    every document, and every document below scores above 0, so both agree.
    """
    q = np.zeros(N_TERMS, np.float32)
    for t, w in query.items():
        q[t] = w
    scored = []
    for i, (doc_id, row) in enumerate(docs.items()):
        d = np.zeros(N_TERMS, np.float32)
        for t, w in row.items():
            d[t] = w
        s = float(np.dot(q, d))
        if s > 0:
            scored.append((-s, i, doc_id, s))
    return [(doc_id, s) for _, _, doc_id, s in sorted(scored)[:k]]


def assert_hits(hits: Hits, want: list[tuple[str, float]]) -> None:
    assert hits.ids == [w[0] for w in want]
    np.testing.assert_allclose(hits.scores, [w[1] for w in want], rtol=1e-6)


QUERY = {1: 1.0, 3: 0.5}
FIRST = {"a": {1: 2.0, 2: 1.0}, "b": {3: 4.0}, "c": {1: 0.5, 3: 0.5, 7: 9.0}}


def test_satisfies_the_protocols(kind: str, tmp_path: Path) -> None:
    index = FACTORIES[kind](tmp_path)
    assert isinstance(index, Index) and isinstance(index.snapshot, IndexSnapshot)
    index.close()


def test_add_commit_search_get(kind: str, tmp_path: Path) -> None:
    index = FACTORIES[kind](tmp_path)
    before = index.snapshot
    add(index, FIRST)
    if kind in LIVE:
        assert_hits(index.search(vectors(index, [QUERY]), 10)[0], expected(FIRST, QUERY, 10))  # visible at once
    else:
        assert index.n_docs == 0 and len(index.search(vectors(index, [QUERY]), 10)[0]) == 0  # not before commit
    index.commit()
    assert_hits(index.search(vectors(index, [QUERY]), 10)[0], expected(FIRST, QUERY, 10))
    assert_hits(index.search(vectors(index, [QUERY]), 2)[0], expected(FIRST, QUERY, 2))
    assert index.get("b") == {"title": "t-b"} and index.get("zz") is None
    assert before.n_docs == 0  # a snapshot never changes
    index.close()


def test_upsert_replaces_and_delete_reports_what_existed(kind: str, tmp_path: Path) -> None:
    index = FACTORIES[kind](tmp_path)
    add(index, FIRST)
    index.commit()
    committed = index.snapshot
    add(index, {"a": {3: 1.0}, "d": {1: 1.0}})
    assert index.delete(["b", "nope", "d"]) == ["b", "d"]
    index.commit()
    final = {"c": FIRST["c"], "a": {3: 1.0}}
    assert_hits(index.search(vectors(index, [QUERY]), 10)[0], expected(final, QUERY, 10))
    assert index.n_docs == 2 and index.get("b") is None
    assert_hits(committed.hits(vectors(index, [QUERY]), 10)[0], expected(FIRST, QUERY, 10))  # the old snapshot
    index.close()


@pytest.mark.parametrize("kind", sorted(ON_DISK))
def test_results_survive_reopening(kind: str, tmp_path: Path) -> None:
    index = FACTORIES[kind](tmp_path)
    add(index, FIRST)
    index.commit()
    index.delete(["a"])
    index.commit()
    index.close()
    again = FACTORIES[kind](tmp_path)
    final = {k: v for k, v in FIRST.items() if k != "a"}
    assert_hits(again.search(vectors(again, [QUERY]), 10)[0], expected(final, QUERY, 10))
    again.close()


@pytest.mark.parametrize("kind", sorted(LIVE))
def test_a_live_index_recovers_uncommitted_writes_from_its_log(kind: str, tmp_path: Path) -> None:
    index = FACTORIES[kind](tmp_path)
    add(index, FIRST)
    index.delete(["c"])
    # kill -9: no commit, no close; the lock and descriptors go with the process.
    scheduler().unregister(index)
    index._held.close()
    again = FACTORIES[kind](tmp_path)
    final = {k: v for k, v in FIRST.items() if k != "c"}
    assert_hits(again.search(vectors(again, [QUERY]), 10)[0], expected(final, QUERY, 10))
    assert again.get("a") == {"title": "t-a"}
    again.close()
