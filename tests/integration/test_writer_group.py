"""WriterGroup: two live indexes under one write-ahead log (no model needed: two BM25 parts, k1 0.9 and 1.5).

What the group promises, whatever the parts: a write refused by any part is
logged for none and applied to none; a failed log append changes nothing;
concurrent writers share fsyncs and all land in both parts; a reopened
group replays the one log into both; scores equal fresh builds.
"""

from __future__ import annotations

import errno
import threading
from pathlib import Path

import pytest

from sparsearch import BM25Encoder, Document, Retriever
from sparsearch.errors import InputError, StorageFullError
from sparsearch.index.segment import MAX_ID_BYTES
from sparsearch.index.storage import FaultInjector, FaultRule, inject_faults
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.bm25 import BM25Config
from sparsearch.retriever.hybrid_collection import HybridCollection
from sparsearch.retriever.retriever import WAL_NAME

QUIET = LiveSettings(flush_docs=10**9, flush_seconds=10**9, flush_bytes=10**12)


def doc(i: int) -> Document:
    return Document(f"d{i}", f"title {i}", f"shared words item{i} group{i % 3}", {"n": i})


def encoders() -> dict[str, BM25Encoder]:
    return {"a": BM25Encoder(), "b": BM25Encoder(BM25Config(k1=1.5))}


def assert_parts_equal_fresh_builds(collection: HybridCollection, docs: list[Document]) -> None:
    for name, encoder in encoders().items():
        part = collection.parts[name]
        assert part.n_docs == len(docs)
        want = Retriever.build(docs, encoder=encoder).search("shared words item3 group1", len(docs) + 5).as_dict()
        got = part.search("shared words item3 group1", len(docs) + 5).as_dict()
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in got), name


def test_a_write_one_part_refuses_is_logged_for_none(tmp_path: Path) -> None:
    live = HybridCollection.create_live(tmp_path / "c", encoders(), settings=QUIET)
    live.upsert([doc(1), doc(2)])
    wal = tmp_path / "c" / WAL_NAME
    size = wal.stat().st_size
    with pytest.raises(InputError, match="bytes"):
        live.upsert([doc(3), Document("x" * (MAX_ID_BYTES + 1), "", "too long an id")])
    assert wal.stat().st_size == size and live.get("d3") is None
    assert all(p.get("d3") is None for p in live.parts.values())
    for write in (lambda: live.upsert([doc(4)]), lambda: live.delete(["d1"])):
        with inject_faults(FaultInjector(rules=[FaultRule("write", errno.ENOSPC, path_contains=WAL_NAME)])):
            with pytest.raises(StorageFullError):
                write()
    assert wal.stat().st_size == size
    assert all(p.get("d4") is None and p.get("d1") is not None for p in live.parts.values())
    live.close(flush=False)
    again = HybridCollection.open_live(tmp_path / "c", QUIET)
    assert_parts_equal_fresh_builds(again, [doc(1), doc(2)])
    again.close()


def test_concurrent_writers_share_fsyncs_and_land_in_both_parts(tmp_path: Path) -> None:
    live = HybridCollection.create_live(tmp_path / "c", encoders(), settings=QUIET)
    appends = []
    log = live.group._log  # type: ignore[union-attr]
    append = log.append

    def counted(data: bytes) -> None:
        appends.append(data.count(b"\n"))
        append(data)

    log.append = counted  # type: ignore[method-assign]
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(25):
                live.upsert([doc(t * 100 + i)])
                if i % 5 == 4:
                    live.delete([f"d{t * 100 + i - 1}"])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert sum(appends) == 4 * 30  # every write logged exactly once, for both parts
    final = [doc(t * 100 + i) for t in range(4) for i in range(25) if i % 5 != 3]
    assert_parts_equal_fresh_builds(live, final)
    live.flush()  # both parts commit; the log empties only then
    assert (tmp_path / "c" / WAL_NAME).stat().st_size == 0
    live.upsert([doc(999)])
    live.close(flush=False)
    again = HybridCollection.open_live(tmp_path / "c", QUIET)  # committed segments + the replayed log
    assert_parts_equal_fresh_builds(again, final + [doc(999)])
    again.close()
