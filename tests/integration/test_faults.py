"""A full disk, failing fsyncs and corrupt logs: acknowledged writes survive, failed ones leave no trace."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from sparsearch import BM25Encoder, Document, Index
from sparsearch.errors import IndexFormatError, IndexLockedError, StorageError, StorageFullError
from sparsearch.index.merge import MergePolicy
from sparsearch.index.storage import FaultInjector, FaultRule, inject_faults
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.retriever import INDEX_DIR, WAL_NAME, Retriever
from sparsearch.index.wal import encode_record

QUIET = LiveSettings(flush_docs=10_000, flush_seconds=3600)


def doc(i: int, text: str = "") -> Document:
    return Document(f"d{i}", f"title {i}", text or f"shared words item{i} group{i % 3}", {"n": i})


def fresh(tmp_path: Path, settings: LiveSettings = QUIET) -> Retriever:
    return Retriever.create_live(tmp_path / "c", BM25Encoder(), settings=settings)


def assert_same_as_fresh_build(live: Retriever, docs: list[Document]) -> None:
    """Every live document is there with its content, nothing else, and scores equal a fresh build."""
    assert live.n_docs == len(docs)
    for d in docs:
        assert live.document(d.doc_id) == Document(d.doc_id, d.title, d.text, d.metadata)
    if docs:
        want = Index.build(docs).search("shared words item3", 50).as_dict()
        got = {i: s for i, s in live.search("shared words item3", 50)}
        assert got.keys() == want.keys() and all(abs(got[k] - want[k]) < 1e-5 for k in got)


def test_a_full_disk_during_a_log_append_applies_nothing_and_cuts_the_partial_record(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1), doc(2)])
    wal = tmp_path / "c" / WAL_NAME
    size = wal.stat().st_size
    with inject_faults(FaultInjector(rules=[FaultRule("write", errno.ENOSPC, path_contains=WAL_NAME)])) as faults:
        with pytest.raises(StorageFullError, match="no space left"):
            live.upsert([doc(3)])
    assert faults.injected and faults.injected[0][0] == "write"
    assert wal.stat().st_size == size  # the partial record was cut back
    assert live.get("d3") is None and live.n_docs == 2  # no ghost write
    live.upsert([doc(4)])  # space is back: writes succeed without a restart
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, [doc(1), doc(2), doc(4)])
    again.close()


@pytest.mark.parametrize("code,error", [(errno.EIO, StorageError), (errno.ENOSPC, StorageFullError)])
def test_a_failed_fsync_is_not_acknowledged_and_not_applied(tmp_path: Path, code: int, error: type) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1)])
    with inject_faults(FaultInjector(rules=[FaultRule("fsync", code, path_contains=WAL_NAME)])):
        with pytest.raises(error):
            live.upsert([doc(2)])
    assert live.get("d2") is None
    with inject_faults(FaultInjector(rules=[FaultRule("fsync", code, path_contains=WAL_NAME)])):
        with pytest.raises(error):
            live.delete(["d1"])
    assert live.get("d1") is not None  # the failed delete did not happen either
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, [doc(1)])
    again.close()


def test_a_log_that_cannot_be_cut_back_refuses_writes_until_it_can(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1)])
    rules = [FaultRule("write", errno.ENOSPC, path_contains=WAL_NAME),
             FaultRule("truncate", errno.EIO, times=2, path_contains=WAL_NAME)]
    with inject_faults(FaultInjector(rules=rules, seed=3)):
        with pytest.raises(StorageFullError):
            live.upsert([doc(2)])  # partial record written, cut back fails: the log is broken
        with pytest.raises(StorageError, match="could not cut off") as refused:
            live.upsert([doc(3)])  # refused: it would land behind a torn record
        assert not refused.value.outcome_unknown
        live.upsert([doc(4)])  # the repair succeeds now, then the write
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, [doc(1), doc(4)])
    again.close()


@pytest.mark.parametrize("op,where", [("write", "seg-"), ("fsync", "seg-"), ("mkdir", "seg-"),
                                      ("write", "manifest"), ("rename", "manifest"), ("fsync", "index"),
                                      ("write", "vocab")])
def test_a_failed_flush_keeps_everything_sweeps_its_files_and_is_retried(tmp_path: Path, op: str,
                                                                          where: str) -> None:
    live = fresh(tmp_path)
    docs = [doc(i) for i in range(6)]
    live.upsert(docs[:3])
    live.flush()
    live.upsert(docs[3:])
    live.delete(["d0"])
    index_dir = tmp_path / "c" / INDEX_DIR
    before = sorted(p.name for p in index_dir.iterdir())
    with inject_faults(FaultInjector(rules=[FaultRule(op, errno.ENOSPC, path_contains=where)])) as faults:
        try:
            live.flush()
            flushed = True
        except StorageFullError:
            flushed = False
    assert faults.injected, "the fault never fired"
    if not flushed:
        assert sorted(p.name for p in index_dir.iterdir()) == before  # partial files swept
    assert_same_as_fresh_build(live, docs[1:])
    live.upsert([doc(9)])
    live.flush()  # retried: no FileExistsError from leftovers
    assert (tmp_path / "c" / WAL_NAME).read_bytes() == b""
    live.close()
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, docs[1:] + [doc(9)])
    again.close()


def test_a_rename_that_happened_before_its_directory_fsync_failed_is_not_applied_twice(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1), doc(2)])
    # The manifest rename succeeds, then the directory fsync fails: the new generation is in force,
    # but not known durable, so the log keeps its records until an fsync of the directory succeeds.
    rule = FaultRule("fsync", errno.EIO, path_suffix=f"/{INDEX_DIR}", times=0)
    with inject_faults(FaultInjector(rules=[rule])) as faults:
        try:
            live.flush()
        except StorageError:
            pass
        assert faults.injected and (tmp_path / "c" / WAL_NAME).stat().st_size > 0
        assert live.writer.flush_due(now=time.monotonic() + 2)  # the scheduler retries
        live.flush()  # still failing: the log is kept
        assert (tmp_path / "c" / WAL_NAME).stat().st_size > 0
    assert_same_as_fresh_build(live, [doc(1), doc(2)])
    live.flush()  # the directory syncs now: the log is emptied
    assert (tmp_path / "c" / WAL_NAME).stat().st_size == 0
    live.upsert([doc(3)])
    assert_same_as_fresh_build(live, [doc(1), doc(2), doc(3)])
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, [doc(1), doc(2), doc(3)])
    again.close()


def test_a_failed_merge_changes_nothing(tmp_path: Path) -> None:
    settings = LiveSettings(flush_docs=10_000, flush_seconds=3600, merge=MergePolicy(merge_factor=2))
    live = fresh(tmp_path, settings)
    live.upsert([doc(1)])
    live.flush()
    live.upsert([doc(2)])
    # The flush's own commit succeeds; the merge after it (the second commit) fails.
    with inject_faults(FaultInjector(rules=[FaultRule("rename", errno.ENOSPC, after=1, path_contains="manifest")])):
        live.flush()
    assert_same_as_fresh_build(live, [doc(1), doc(2)])
    live.upsert([doc(3)])
    live.flush()
    live.close()
    assert Index.open(tmp_path / "c" / INDEX_DIR).n_docs == 3


def test_a_corrupt_record_in_the_middle_of_the_log_is_an_error_naming_it(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    for i in range(3):
        live.upsert([doc(i)])
    live.close(flush=False)
    wal = tmp_path / "c" / WAL_NAME
    lines = wal.read_bytes().split(b"\n")
    lines[1] = lines[1].replace(b"item1", b"itemX")  # same length, checksum no longer matches
    wal.write_bytes(b"\n".join(lines))
    with pytest.raises(IndexFormatError, match=rf"{WAL_NAME}:2: corrupt write-ahead log record"):
        Retriever.open_live(tmp_path / "c")


def test_a_damaged_last_record_was_never_acknowledged_and_is_dropped(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1)])
    live.close(flush=False)
    wal = tmp_path / "c" / WAL_NAME
    record = encode_record({"op": "upsert", "docs": [{"_id": "d2", "text": "x"}]})
    wal.write_bytes(wal.read_bytes() + record[:-8] + b"garbage\n")
    again = Retriever.open_live(tmp_path / "c")
    assert again.get("d2") is None and again.get("d1") is not None
    again.upsert([doc(3)])  # appended after the good records, not after the dropped one
    again.close(flush=False)
    third = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(third, [doc(1), doc(3)])
    third.close()


def test_replay_encodes_the_log_once_however_many_records(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    live = fresh(tmp_path)
    live.close()
    wal = tmp_path / "c" / WAL_NAME
    records = [encode_record({"op": "upsert", "docs": [{"_id": f"d{i % 500}", "text": f"w{i} shared"}]})
               for i in range(2000)]
    records.append(encode_record({"op": "delete", "ids": ["d7"]}))
    wal.write_bytes(b"".join(records))
    calls: list[int] = []
    original = BM25Encoder.encode_documents

    def counting(self: BM25Encoder, docs: list[Document]):  # type: ignore[no-untyped-def]
        calls.append(len(docs))
        return original(self, docs)

    monkeypatch.setattr(BM25Encoder, "encode_documents", counting)
    again = Retriever.open_live(tmp_path / "c")
    assert calls == [499]  # one pass over the surviving documents
    assert again.n_docs == 499 and again.get("d7") is None
    assert again.document("d3") == Document("d3", "", "w1503 shared", {})
    again.close()


def test_the_log_is_flushed_by_bytes(tmp_path: Path) -> None:
    live = fresh(tmp_path, LiveSettings(flush_docs=10_000, flush_seconds=3600, flush_bytes=2000))
    for i in range(40):
        live.upsert([doc(i, "long text " * 20)])
    assert (tmp_path / "c" / WAL_NAME).stat().st_size < 2000 + 400
    assert len(Index.open(tmp_path / "c" / INDEX_DIR).inverted.segments) >= 1
    live.close()


def test_concurrent_writers_share_fsyncs_and_all_land(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            for i in range(30):
                live.upsert([doc(t * 100 + i)])
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=writer, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and live.n_docs == 120
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert again.n_docs == 120
    again.close()


def test_live_indexes_share_one_flush_thread(tmp_path: Path) -> None:
    before = threading.active_count()
    indexes = [Retriever.create_live(tmp_path / f"c{i}", BM25Encoder(), settings=QUIET) for i in range(30)]
    assert threading.active_count() - before <= 3  # not one thread per index
    for live in indexes:
        live.close()


def test_the_cli_cannot_write_into_an_index_a_live_index_holds(tmp_path: Path) -> None:
    live = fresh(tmp_path)
    live.upsert([doc(1)])
    live.flush()
    live.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, time
            from sparsearch.retriever.retriever import Retriever
            live = Retriever.open_live({str(tmp_path / 'c')!r})
            print("ready", flush=True)
            sys.stdin.read()
        """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        corpus = tmp_path / "more.jsonl"
        corpus.write_text('{"_id": "x", "text": "more"}\n')
        cli = subprocess.run([sys.executable, "-m", "sparsearch.cli", "add", str(tmp_path / "c" / INDEX_DIR),
                              str(corpus)], capture_output=True, text=True)
        assert cli.returncode == 2
        assert f"process {holder.pid}" in cli.stderr and "Traceback" not in cli.stderr
        index = Index.open(tmp_path / "c" / INDEX_DIR)
        index.add([Document("y", "", "text")])
        with pytest.raises(IndexLockedError, match=str(holder.pid)):
            index.commit()
    finally:
        holder.communicate("")
    again = Retriever.open_live(tmp_path / "c")  # released at the holder's exit
    assert_same_as_fresh_build(again, [doc(1)])
    again.close()


def test_a_closed_live_index_refuses_writes_and_reads_clearly(tmp_path: Path) -> None:
    from sparsearch.errors import IndexClosedError

    live = fresh(tmp_path)
    live.close()
    with pytest.raises(IndexClosedError):
        live.upsert([doc(1)])
    with pytest.raises(IndexClosedError):
        live.search("x", 3)
    assert os.path.exists(tmp_path / "c" / WAL_NAME)


def test_input_the_segment_refuses_never_reaches_the_log(tmp_path: Path) -> None:
    from sparsearch.errors import InputError

    live = fresh(tmp_path)
    live.upsert([doc(1)])
    size = (tmp_path / "c" / WAL_NAME).stat().st_size
    with pytest.raises(InputError, match="bytes long"):
        live.upsert([Document("x" * 5000, "", "text")])  # over the id length limit
    with pytest.raises(InputError):
        live.upsert([Document("nan", "", "text", {"score": float("nan")})])  # JSON cannot hold it
    assert (tmp_path / "c" / WAL_NAME).stat().st_size == size
    live.close(flush=False)
    again = Retriever.open_live(tmp_path / "c")
    assert_same_as_fresh_build(again, [doc(1)])
    again.close()
