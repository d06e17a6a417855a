"""The live index: log, buffer, flush, merge, and recovery from a torn log."""

from __future__ import annotations

from pathlib import Path

from sparsearch import BM25Encoder, Document, Index
from sparsearch.index.merge import MergePolicy
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.retriever import WAL_NAME, Retriever


def docs(prefix: str, n: int) -> list[Document]:
    return [Document(f"{prefix}{i}", f"t{i}", f"common words {prefix} item{i}", {"g": i % 2}) for i in range(n)]


def test_writes_are_searchable_at_once_and_flush_and_merge(tmp_path: Path) -> None:
    settings = LiveSettings(flush_docs=10, flush_seconds=3600, merge=MergePolicy(merge_factor=3))
    live = Retriever.create_live(tmp_path / "c", BM25Encoder(), settings=settings)
    for batch in range(7):
        live.upsert(docs(f"b{batch}-", 4))  # a flush every 10+ buffered documents
    assert live.n_docs == 28
    assert live.search("b3- item2", 1).ids[0] == "b3-2"
    filtered = live.search("item1", 50, filter={"g": 1})
    assert filtered.ids[:1] and all(filtered.fields(i)["metadata"]["g"] == 1 for i in range(len(filtered)))
    live.flush()
    assert (tmp_path / "c" / WAL_NAME).read_bytes() == b""
    assert len(live.writer.committed.segments) <= 3  # merged as flushes accumulated
    fresh = Index.build([d for b in range(7) for d in docs(f"b{b}-", 4)])
    for q in ("common", "item3 b5-", "words item0"):
        got = {i: s for i, s in live.search(q, 30)}
        want = fresh.search(q, 30).as_dict()
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in got)
    live.close()


def test_log_replay_after_crash_and_torn_record(tmp_path: Path) -> None:
    live = Retriever.create_live(tmp_path / "c", BM25Encoder(), settings=LiveSettings(flush_docs=1000))
    live.upsert(docs("a", 3))
    live.delete(["a1"])
    # Simulate kill -9: no close, no flush; then a record torn in the middle of its write.
    with open(tmp_path / "c" / WAL_NAME, "ab") as f:
        f.write(b'{"op": "upsert", "docs": [{"_id": "zz", "te')
    again = Retriever.open_live(tmp_path / "c")
    assert again.n_docs == 2 and again.get("a1") is None and again.get("zz") is None
    assert again.document("a2") == Document("a2", "t2", "common words a item2", {"g": 0})
    again.close()
    assert Index.open(tmp_path / "c" / "index").n_docs == 2


def test_many_small_writes_consolidate_and_match_a_fresh_build(tmp_path: Path) -> None:
    live = Retriever.create_live(tmp_path / "c", BM25Encoder(), settings=LiveSettings(flush_docs=10_000))
    final: dict[str, Document] = {}
    for i in range(40):  # more writes than MAX_BUFFER_PARTS: the parts get consolidated
        d = Document(f"d{i % 13}", "", f"word{i % 5} shared term{i % 7} and more {i}")
        live.upsert([d])
        final.pop(d.doc_id, None)
        final[d.doc_id] = d
        if i % 9 == 8:
            live.delete([f"d{(i + 3) % 13}"])
            final.pop(f"d{(i + 3) % 13}", None)
    assert live.n_docs == len(final)
    fresh = Index.build(list(final.values()))
    for q in ("shared", "word3 term2", "more 17", "word1"):
        got = {i: s for i, s in live.search(q, 20)}
        want = fresh.search(q, 20).as_dict()
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in got)
    live.close()
    assert Index.open(tmp_path / "c" / "index").n_docs == len(final)
