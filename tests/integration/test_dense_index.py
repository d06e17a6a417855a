"""The dense index through the one writer: exact and approximate search, files, recovery, filters.

Everything goes through :class:`~sparsearch.index.writer.IndexWriter` with a
:class:`~sparsearch.index.dense.DenseFormat`, as a dense collection would:
flat search must equal NumPy brute force (after deletes and upserts, across
segments), HNSW and IVF-PQ must find what flat finds, a saved index must
answer the same after reopening, a corrupt file must be refused naming it,
a killed live writer must come back with every acknowledged write, and
filtered search must equal filtering by hand.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sparsearch.errors import IndexFormatError, InputError, MissingDependencyError
from sparsearch.index.config import IndexConfig
from sparsearch.index.dense import DenseFormat, DenseSnapshot
from sparsearch.index.manifest import Manifest
from sparsearch.index.merge import MergePolicy
from sparsearch.index.writer import IndexWriter, LiveSettings
from sparsearch.scoring import Scoring

DIM = 16
CONFIG = IndexConfig(stored_fields=("title", "metadata"))
QUIET = LiveSettings(flush_docs=10**9, flush_seconds=10**9, flush_bytes=10**12)
LANGS = ("en", "fr", "de")


class Terms:
    """A term space of ``dim`` ids: the dense index's dimension."""

    def __init__(self, dim: int = DIM) -> None:
        self.n_terms = dim

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": "precomputed", "config": {}}

    def state_files(self) -> dict[str, bytes]:
        return {}


def unit(rng: np.random.Generator, n: int, dim: int = DIM) -> np.ndarray:
    x = rng.standard_normal((n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def metadata(i: int) -> dict[str, Any]:
    return {"lang": LANGS[i % 3], "year": 1990 + i % 30, "rare": i % 97 == 0}


def writer(fmt: DenseFormat | None = None, dim: int = DIM) -> IndexWriter:
    return IndexWriter.in_memory([], Scoring(), CONFIG, Terms(dim), fmt=fmt or DenseFormat())


def add(w: IndexWriter, ids: list[str], x: np.ndarray, meta: list[dict[str, Any]] | None = None) -> None:
    meta = meta or [{} for _ in ids]
    w.add(ids, x, [{"title": f"t-{i}", "metadata": m} for i, m in zip(ids, meta)],
          [{"vector": row.tolist(), "title": f"t-{i}", "metadata": m} for i, row, m in zip(ids, x, meta)])


def reindex(ids: list[str], sources: list[dict[str, Any]]) -> tuple[np.ndarray, list[dict[str, Any]]]:
    """The live writer's recovery step: each logged source carries its vector."""
    x = np.array([s["vector"] for s in sources], np.float32).reshape(len(sources), -1)
    return x, [{"title": s["title"], "metadata": s["metadata"]} for s in sources]


def brute_force(docs: dict[str, np.ndarray], queries: np.ndarray, k: int,
                keep: Any = None) -> list[list[tuple[str, float]]]:
    """Exact top-k in insertion order (the index's tie order), among ids ``keep`` accepts."""
    ids = [d for d in docs if keep is None or keep(d)]
    if not ids:
        return [[] for _ in queries]
    matrix = np.stack([docs[d] for d in ids])
    out = []
    for q in queries:
        s = (matrix.astype(np.float64) @ q.astype(np.float64))
        order = np.lexsort((np.arange(len(ids)), -s))[:k]
        out.append([(ids[i], float(s[i])) for i in order])
    return out


def assert_same(hits: list[Any], want: list[list[tuple[str, float]]]) -> None:
    for h, w in zip(hits, want):
        assert h.ids == [d for d, _ in w]
        np.testing.assert_allclose(h.scores, [s for _, s in w], atol=1e-5)


def recall(hits: list[Any], want: list[list[tuple[str, float]]]) -> float:
    found = sum(len(set(h.ids) & {d for d, _ in w}) for h, w in zip(hits, want))
    return found / max(1, sum(len(w) for w in want))


# ------------------------------------------------------------------ exact search


@pytest.mark.parametrize("n_queries", [1, 3, 12])
def test_flat_equals_brute_force_across_deletes_upserts_and_segments(n_queries: int) -> None:
    rng = np.random.default_rng(n_queries)
    w = writer()
    docs: dict[str, np.ndarray] = {}
    for batch in range(4):  # four commits: four segments
        ids = [f"d{batch}-{i}" for i in range(60)]
        x = unit(rng, len(ids))
        add(w, ids, x)
        docs.update(zip(ids, x))
        w.commit()
    gone = [f"d{b}-{i}" for b in range(4) for i in range(0, 60, 7)]
    assert sorted(w.delete(gone + ["nope"])) == sorted(gone)
    for d in gone:
        del docs[d]
    again = [f"d1-{i}" for i in range(1, 30, 2)] + ["new-1", "new-2"]
    fresh = unit(rng, len(again))
    add(w, again, fresh)
    for d, v in zip(again, fresh):
        docs.pop(d, None)
        docs[d] = v  # an upsert moves the document to the end: the tie order of a fresh build
    w.commit()
    assert len(w.snapshot.segments) == 5 and w.n_docs == len(docs)
    q = unit(rng, n_queries)
    for k in (1, 10, 1000):
        assert_same(w.search(q, k), brute_force(docs, q, k))


def test_ties_go_to_the_lower_internal_id_on_every_exact_path() -> None:
    w = writer()
    x = np.zeros((40, DIM), np.float32)
    x[:, 0] = 1.0  # forty documents tied on every query
    add(w, [f"t{i:02d}" for i in range(40)], x)
    w.commit()
    for n_queries in (1, 2, 9):  # faiss's scan (its ties settled in NumPy) and the BLAS path
        for hits in w.search(np.ones((n_queries, DIM), np.float32), 5):
            assert hits.ids == ["t00", "t01", "t02", "t03", "t04"]


def test_the_dimension_is_learned_when_the_term_space_has_none(tmp_path: Path) -> None:
    """A dense encoder's term space may count no terms (0): the first vectors fix the dimension."""
    fmt = DenseFormat()
    empty = fmt.build([], fmt.concatenate([]), [], 0, CONFIG)  # an empty corpus, before any dimension is known
    w = IndexWriter.in_memory([empty], Scoring(), CONFIG, Terms(0), fmt=fmt)
    assert w.snapshot.dim is None and len(w.search(np.ones((1, 5), np.float32), 3)[0]) == 0
    add(w, ["a", "b"], np.eye(2, 5, dtype=np.float32))
    with pytest.raises(InputError, match="vectors have 4 dimensions; this index holds 5"):
        w.add(["c"], np.ones((1, 4), np.float32))
    w.commit()
    w.save(tmp_path / "idx")
    assert Manifest.read(tmp_path / "idx").config["dense"]["dim"] == 5
    opened = IndexWriter.open(tmp_path / "idx", Terms(0))
    with pytest.raises(InputError, match="vectors have 4 dimensions; this index holds 5"):
        opened.add(["c"], np.ones((1, 4), np.float32))
    assert opened.search(np.eye(1, 5, dtype=np.float32), 1)[0].ids == ["a"]
    assert opened.merge(MergePolicy(merge_factor=2)) and opened.snapshot.segments[0].dim == 5  # the empty one goes


def test_bad_vectors_and_queries_are_refused_in_one_line() -> None:
    w = writer()
    with pytest.raises(InputError, match="2-d array"):
        w.add(["a"], np.zeros(DIM, np.float32))
    with pytest.raises(InputError, match="3 dimensions; this index holds 16"):
        w.add(["a"], np.zeros((1, 3), np.float32))
    bad = np.zeros((2, DIM), np.float32)
    bad[1, 4] = np.nan
    with pytest.raises(InputError, match="'b' holds NaN"):
        w.add(["a", "b"], bad)
    with pytest.raises(InputError, match="ids are limited"):
        w.add(["x" * 3000], np.zeros((1, DIM), np.float32))
    add(w, ["a"], np.ones((1, DIM), np.float32))
    w.commit()
    with pytest.raises(InputError, match="queries have 4 dimensions"):
        w.search(np.ones((1, 4), np.float32), 3)
    with pytest.raises(InputError, match="finite"):
        w.search(np.full((1, DIM), np.inf, np.float32), 3)
    assert w.n_docs == 1


# ------------------------------------------------------------------ approximate search


def test_hnsw_recall_at_10_against_flat(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    dim, n = 64, 5000
    x = unit(rng, n, dim)
    ids = [f"d{i}" for i in range(n)]
    w = writer(DenseFormat(index_type="hnsw", hnsw_m=32, ef_construction=200, ef_search=128), dim)
    add(w, ids, x)
    w.commit()
    w.save(tmp_path / "idx")  # the graph is built where the segment is written
    seg = w.snapshot.segments[0]
    assert seg.ann is not None and seg.ann.kind == "hnsw"
    assert (tmp_path / "idx" / Manifest.read(tmp_path / "idx").segments[0].name / "hnsw.faiss").exists()
    q = unit(rng, 200, dim)
    want = brute_force(dict(zip(ids, x)), q, 10)
    approx = w.search(q, 10)
    assert recall(approx, want) >= 0.95
    assert_same(w.snapshot.hits(q, 10, exact=True), want)
    # The same graph reopened (storage re-attached from the mapped vectors) answers the same.
    again = IndexWriter.open(tmp_path / "idx", Terms(dim))
    assert [h.ids for h in again.search(q, 10)] == [h.ids for h in approx]


def test_an_in_memory_index_searches_its_graph_without_being_saved() -> None:
    """A committed in-memory segment is final: it gets the graph a write would build (it used to be scanned)."""
    rng = np.random.default_rng(9)
    dim, n = 32, 6000
    x = unit(rng, n, dim)
    ids = [f"d{i}" for i in range(n)]
    w = writer(DenseFormat(index_type="hnsw", hnsw_m=8, ef_construction=40, ef_search=16, rerank=False), dim)
    add(w, ids[:3000], x[:3000])
    w.commit()
    assert w.snapshot.segments[0].ann is None  # below ann_min_docs (4096): searched exactly
    add(w, ids[3000:], x[3000:])
    w.commit()
    assert w.merge(MergePolicy(merge_factor=2))
    (seg,) = w.snapshot.segments
    assert seg.n_docs == n and seg.ann is not None and seg.ann.kind == "hnsw"
    q = unit(rng, 100, dim)
    want = brute_force(dict(zip(ids, x)), q, 10)
    narrow = recall(w.snapshot.hits(q, 10, ef_search=10), want)
    wide = recall(w.snapshot.hits(q, 10, ef_search=400), want)
    assert narrow < wide and wide >= 0.95  # the graph is walked: a narrow beam misses what a wide one finds
    assert_same(w.snapshot.hits(q, 10, exact=True), want)


def test_ivfpq_candidates_are_reranked_exactly(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    dim, n = 32, 6000
    x = unit(rng, n, dim)
    ids = [f"d{i}" for i in range(n)]
    w = writer(DenseFormat(index_type="ivfpq", ivf_nlist=64, ivf_nprobe=32, pq_m=8, rerank_factor=8), dim)
    add(w, ids, x)
    w.commit()
    w.save(tmp_path / "idx")
    w = IndexWriter.open(tmp_path / "idx", Terms(dim))
    assert w.snapshot.segments[0].ann.kind == "ivfpq"
    q = unit(rng, 100, dim)
    docs = dict(zip(ids, x))
    hits = w.search(q, 10)
    want = brute_force(docs, q, 10)
    assert recall(hits, want) >= 0.9  # random vectors have no clusters: IVF needs half its lists here
    assert recall(w.snapshot.hits(q, 10, nprobe=4), want) < recall(w.snapshot.hits(q, 10, nprobe=64), want)
    for h, row in zip(hits, q):  # reranked: every score is the exact inner product, best first
        np.testing.assert_allclose(h.scores, [float(docs[d] @ row) for d in h.ids], atol=1e-5)
        assert list(h.scores) == sorted(h.scores, reverse=True)


def test_pq_m_must_divide_the_dimension() -> None:
    w = writer(DenseFormat(index_type="ivfpq", pq_m=5))
    with pytest.raises(InputError, match="pq_m=5 does not divide the vector dimension 16"):
        w.add(["a"], np.ones((1, DIM), np.float32))


# ------------------------------------------------------------------ on disk


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_save_open_round_trip_and_merge(index_type: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    fmt = DenseFormat(index_type=index_type, ann_min_docs=100)
    w = writer(fmt)
    docs: dict[str, np.ndarray] = {}
    for batch in range(4):
        ids = [f"d{batch}-{i}" for i in range(150)]
        x = unit(rng, len(ids))
        add(w, ids, x, [metadata(i) for i in range(len(ids))])
        docs.update(zip(ids, x))
        w.commit()
    w.save(tmp_path / "idx")
    q = unit(rng, 20)
    before = w.search(q, 10)
    manifest = Manifest.read(tmp_path / "idx")
    assert manifest.config["format"] == "dense" and manifest.config["dense"]["index_type"] == index_type
    opened = IndexWriter.open(tmp_path / "idx", Terms())
    assert isinstance(opened.fmt, DenseFormat) and opened.fmt.settings == dataclasses.replace(fmt.settings, dim=DIM)
    assert isinstance(opened.snapshot, DenseSnapshot)
    after = opened.search(q, 10)
    assert [h.ids for h in after] == [h.ids for h in before]
    np.testing.assert_array_equal([h.scores for h in after], [h.scores for h in before])
    assert after[0].fields(0)["title"] == f"t-{after[0].ids[0]}"
    # Deletes then a merge: the merged segment is rewritten (and its graph rebuilt) with the same answers.
    gone = [d for d in docs if d.endswith("-3")]
    opened.delete(gone)
    opened.commit()
    for d in gone:
        del docs[d]
    assert opened.merge(MergePolicy(merge_factor=2))
    while opened.merge(MergePolicy(merge_factor=2)):
        pass
    assert len(opened.snapshot.segments) == 1 and opened.n_docs == len(docs)
    if index_type == "hnsw":
        assert opened.snapshot.segments[0].ann is not None
    reopened = IndexWriter.open(tmp_path / "idx", Terms())
    want = brute_force(docs, q, 10)
    got = reopened.search(q, 10)
    if index_type == "flat":
        assert_same(got, want)
    else:
        assert recall(got, want) >= 0.95
    assert reopened.get("d0-1") == {"title": "t-d0-1", "metadata": metadata(1)}


def test_a_corrupt_vectors_file_is_refused_on_open_naming_it(tmp_path: Path) -> None:
    w = writer(DenseFormat(index_type="hnsw", ann_min_docs=10))
    add(w, [f"d{i}" for i in range(50)], unit(np.random.default_rng(1), 50))
    w.commit()
    w.save(tmp_path / "idx")
    segment = tmp_path / "idx" / Manifest.read(tmp_path / "idx").segments[0].name
    for name in ("vectors.npy", "hnsw.faiss"):
        path = segment / name
        data = bytearray(path.read_bytes())
        original = bytes(data)
        data[len(data) - 5] ^= 0x10  # one bit of the payload
        path.write_bytes(bytes(data))
        with pytest.raises(IndexFormatError, match=f"{name}: checksum mismatch"):
            IndexWriter.open(tmp_path / "idx", Terms())
        path.write_bytes(original)
    path = segment / "vectors.npy"
    path.write_bytes(path.read_bytes()[:-4])  # truncated
    with pytest.raises(IndexFormatError, match="vectors.npy: size"):
        IndexWriter.open(tmp_path / "idx", Terms())


def test_large_vectors_are_memory_mapped(tmp_path: Path) -> None:
    w = writer(dim=256)
    add(w, [f"d{i}" for i in range(2000)], unit(np.random.default_rng(2), 2000, 256))  # 2 MB of vectors
    w.commit()
    w.save(tmp_path / "idx")
    opened = IndexWriter.open(tmp_path / "idx", Terms(256))
    vectors = opened.snapshot.segments[0].vectors
    assert not vectors.flags.writeable and vectors.base is not None
    q = unit(np.random.default_rng(3), 5, 256)
    for n_queries in (1, 5):  # faiss's scan and BLAS, both straight over the mapping
        assert [h.ids for h in opened.search(q[:n_queries], 3)] == [h.ids for h in w.search(q[:n_queries], 3)]


# ------------------------------------------------------------------ live mode


KILLED_WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    import numpy as np
    from tests.integration.test_dense_index import QUIET, Terms, add, reindex, unit
    from sparsearch.index.writer import IndexWriter

    w = IndexWriter.open_live(Path(sys.argv[1]), Path(sys.argv[2]), Terms(), reindex, QUIET)
    rng = np.random.default_rng(5)
    add(w, [f"d{i}" for i in range(100)], unit(rng, 100))
    w.commit()
    add(w, [f"u{i}" for i in range(30)] + ["d3"], unit(rng, 31))
    w.delete(["d7", "u2"])
    print("acknowledged", flush=True)
    sys.stdin.read()
""")


def test_kill_9_in_live_mode_replays_uncommitted_writes(tmp_path: Path) -> None:
    index, log = tmp_path / "idx", tmp_path / "wal.jsonl"
    writer(DenseFormat(index_type="hnsw", ann_min_docs=50)).save(index)
    root = Path(__file__).resolve().parents[2]
    p = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(index), str(log)], cwd=root,
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env={**os.environ, "PYTHONPATH": str(root)})
    try:
        assert p.stdout is not None and p.stdout.readline().strip() == b"acknowledged", p.stderr.read()
    finally:
        os.kill(p.pid, signal.SIGKILL)
        p.wait()
    rng = np.random.default_rng(5)
    docs = dict(zip([f"d{i}" for i in range(100)], unit(rng, 100)))
    docs.pop("d3")
    docs.update(zip([f"u{i}" for i in range(30)] + ["d3"], unit(rng, 31)))
    del docs["d7"], docs["u2"]
    w = IndexWriter.open_live(index, log, Terms(), reindex, QUIET)
    try:
        assert w.n_docs == len(docs) and w.get("u2") is None and w.get("u5")["title"] == "t-u5"
        q = unit(np.random.default_rng(9), 5)
        assert_same(w.search(q, 10), brute_force(docs, q, 10))
        w.commit()  # the replayed writes become a segment; the committed one keeps its graph
        assert w.snapshot.segments[0].ann is not None
        assert_same(w.search(q, 10), brute_force(docs, q, 10))
    finally:
        w.close()
    assert IndexWriter.open(index, Terms()).n_docs == len(docs)


# ------------------------------------------------------------------ filters


FILTERS: list[tuple[Any, Any]] = [
    ({"field": "lang", "eq": "en"}, lambda m: m["lang"] == "en"),
    ({"field": "year", "gte": 2000, "lt": 2010}, lambda m: 2000 <= m["year"] < 2010),
    ({"and": [{"field": "lang", "in": ["fr", "de"]}, {"not": {"field": "year", "lt": 1995}}]},
     lambda m: m["lang"] in ("fr", "de") and not m["year"] < 1995),
    ({"field": "rare", "eq": True}, lambda m: m["rare"]),  # about 1 %: searched exactly even with a graph
    ({"lang": "de"}, lambda m: m["lang"] == "de"),  # the flat form
]


@pytest.mark.parametrize("index_type", ["flat", "hnsw"])
def test_metadata_filters_equal_filtering_by_hand(index_type: str, tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    w = writer(DenseFormat(index_type=index_type, ann_min_docs=200, ef_search=256))
    docs: dict[str, np.ndarray] = {}
    meta: dict[str, dict[str, Any]] = {}
    for batch in range(2):
        ids = [f"d{batch}-{i}" for i in range(1500)]
        x = unit(rng, len(ids))
        m = [metadata(i + batch) for i in range(len(ids))]
        add(w, ids, x, m)
        docs.update(zip(ids, x))
        meta.update(zip(ids, m))
        if batch == 0:
            w.save(tmp_path / "idx")
        else:
            w.commit()
    w = IndexWriter.open(tmp_path / "idx", Terms())
    gone = list(docs)[::11]
    w.delete(gone)
    w.commit()
    for d in gone:
        del docs[d]
    q = unit(rng, 30)
    for flt, keep in FILTERS:
        want = brute_force(docs, q, 10, lambda d: keep(meta[d]))
        got = w.search(q, 10, filter=flt)
        if index_type == "flat" or flt == {"field": "rare", "eq": True}:
            assert_same(got, want)
        else:
            assert recall(got, want) >= 0.9
            assert all(keep(meta[d]) and d in docs for h in got for d in h.ids)  # never a document outside
    assert all(len(h) == 0 for h in w.search(q, 10, filter={"field": "lang", "eq": "xx"}))


# ------------------------------------------------------------------ dependencies


def test_without_faiss_a_search_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    w = writer()
    add(w, ["a", "b"], np.eye(2, DIM, dtype=np.float32))
    w.commit()
    monkeypatch.setitem(sys.modules, "faiss", None)  # import faiss now raises ImportError
    with pytest.raises(MissingDependencyError, match="pip install faiss-cpu"):
        w.search(np.ones((1, DIM), np.float32), 1)


def test_importing_the_dense_format_does_not_import_faiss() -> None:
    code = "import sys, sparsearch.index.dense; print('faiss' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
