"""A live index: durable single-document writes, searchable at once, while searches run.

A write is prepared (validated and encoded), appended to the write-ahead log
(:mod:`sparsearch.wal`) and fsynced, and only then applied to an in-memory
buffer segment and published to readers.  So a write that fails on the disk
(full, I/O error) has no effect at all: the log is cut back to its last good
record, nothing is applied, and the caller gets the cause.  Writers that
arrive while one is on the disk queue up and the next of them commits the
whole queue with one fsync (group commit).

Every so often the buffer is flushed: its documents become an immutable
on-disk segment through the ordinary atomic manifest commit, and the log is
emptied.  A flush that fails (full disk) leaves the last good manifest in
force, sweeps its partial files, keeps the buffer and log, and is retried
later by the shared flush scheduler.  After ``kill -9`` the log is replayed
on open as one batch (one encoding pass, one segment), so recovery costs
about as much as indexing the logged documents once.

Readers take one snapshot (committed segments with their deletion masks,
plus the buffer segment) per search, published by a single reference swap,
so a search never sees half of a batch.  Collection statistics cover the
whole snapshot, so scores equal a fresh build's at every moment.

The live index holds its directory's writer lock for its whole life, so no
other process (``sparsearch add``, a second server) can write into it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

from sparsearch.engine import Index
from sparsearch.errors import IndexClosedError, IndexFormatError, InputError, SparsearchError
from sparsearch.flush_scheduler import scheduler
from sparsearch.index.config import IndexConfig
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.merge import MergePolicy
from sparsearch.index.segment import Segment, build_segment
from sparsearch.index.storage import disk_errors, fsync_path, write_bytes
from sparsearch.index.writer import writer_lock
from sparsearch.protocols import SparseEncoder
from sparsearch.types import Document, SparseBatch
from sparsearch.wal import WriteAheadLog, encode_record

log = logging.getLogger(__name__)

WAL_NAME = "wal.jsonl"
MAX_BUFFER_PARTS = 16
INDEX_DIR = "index"


@dataclass(frozen=True)
class LiveSettings:
    """When the buffer becomes an on-disk segment, and merging.

    A flush happens after ``flush_docs`` buffered documents, ``flush_bytes``
    of log, or ``flush_seconds`` — whichever comes first.  The two size
    bounds bound recovery after a crash: replay re-analyses the logged text,
    about 2 MB/s for BM25 on one core, so 8 MiB of log or 10,000 documents
    come back in a few seconds whatever the document sizes.
    """

    flush_docs: int = 10_000
    flush_seconds: float = 30.0
    flush_bytes: int = 8 * 2**20
    merge: MergePolicy = MergePolicy()


@dataclass
class Snapshot:
    """What one search sees: an immutable inverted index."""

    inverted: InvertedIndex
    generation: int


@dataclass
class _Request:
    """One caller's write, waiting in the group-commit queue."""

    op: str
    docs: list[Document]
    ids: list[str]
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class LiveIndex:
    def __init__(self, path: Path, settings: LiveSettings = LiveSettings()) -> None:
        self.path = Path(path)
        self.settings = settings
        self._lock = threading.RLock()  # the write lock: log order is apply order
        self._queue: list[_Request] = []
        self._queue_lock = threading.Lock()
        self._closed = False
        self._held = contextlib.ExitStack()
        self._held.enter_context(writer_lock(self.path / INDEX_DIR))
        try:
            self.index = Index.open(self.path / INDEX_DIR)
            self._buffer: dict[str, tuple[Document, SparseBatch]] = {}
            # The buffer is searchable as small in-memory segments, one per group commit, with
            # mutable deletion masks; a write costs O(its own documents), and the parts are
            # consolidated into one when they pile up.
            self._parts: list[tuple[Segment, np.ndarray]] = []
            self._where: dict[str, tuple[int, int]] = {}
            self._deleted: set[str] = set()  # committed documents deleted or replaced since the last flush
            self._last_flush = time.monotonic()
            self._flush_failures = 0
            self._commit_unsynced = False  # a commit whose directory fsync failed: keep the log until synced
            self._generation = 0
            self._wal = WriteAheadLog(self.path / WAL_NAME)
            self._replay(self._wal.read())
            self._wal.open()
            self._publish()
        except BaseException:
            self._held.close()
            raise
        scheduler().register(self)

    # ------------------------------------------------------------ creation

    @classmethod
    def create(cls, path: Path, encoder: SparseEncoder, config: IndexConfig | None = None,
               settings: LiveSettings = LiveSettings()) -> "LiveIndex":
        """An empty live index at ``path`` (which must not exist yet)."""
        path = Path(path)
        with disk_errors(f"creating {path}"):
            path.mkdir(parents=True)
            cfg = config or IndexConfig(stored_fields=("title", "text", "metadata"))
            Index.build([], path=path / INDEX_DIR, encoder=encoder, config=cfg)
            write_bytes(path / WAL_NAME, b"")
            fsync_path(path)
        return cls(path, settings)

    # ------------------------------------------------------------ writes

    def upsert(self, documents: Sequence[Document]) -> None:
        """Add or replace documents; durable (logged and fsynced) when this returns."""
        self._submit(_Request("upsert", list(documents), []))

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; returns the ids that existed. Durable when this returns."""
        return self._submit(_Request("delete", [], list(dict.fromkeys(ids))))

    def _submit(self, request: _Request) -> Any:
        """Group commit: queue the request; whoever holds the write lock next commits the whole queue."""
        self._check_open()
        with self._queue_lock:
            self._queue.append(request)
        with self._lock:
            if not request.done:
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit_batch(batch)
        if request.error is not None:
            raise request.error
        return request.result

    def _commit_batch(self, batch: list[_Request]) -> None:
        """Prepare each request, log them all with one fsync, then apply them in order."""
        if self._closed:
            for r in batch:
                r.error, r.done = IndexClosedError(f"{self.path}: the index was closed"), True
            return
        prepared: list[tuple[_Request, bytes, Callable[[], Any]]] = []
        present: dict[str, bool] = {}  # existence of ids after the earlier requests of this batch
        for r in batch:
            try:
                prepared.append(self._prepare(r, present))
            except BaseException as e:  # bad input: this request fails alone
                r.error, r.done = _user_error(e), True
        logged = [(r, apply) for r, data, apply in prepared if data]
        try:
            if logged:
                self._wal.append(b"".join(data for _, data, _ in prepared))
        except BaseException as e:
            for r, _, _ in prepared:
                r.error, r.done = e, True
            return
        for r, data, apply in prepared:
            r.result, r.done = apply(), True
        if logged:
            self._publish()
            try:
                self._maybe_flush()
            except Exception:  # the writes are durable in the log; the flush is retried later
                log.warning("flush of %s failed; will retry", self.path, exc_info=True)

    def _prepare(self, r: _Request, present: dict[str, bool]) -> tuple[_Request, bytes, Callable[[], Any]]:
        """Validate, encode and invert a request (nothing applied yet); returns its log bytes and apply step.

        Everything that can refuse the input (the encoder, JSON encoding of the
        record, the segment builder's id and weight checks) runs here, before
        logging: a record in the log must be one that replay can apply.
        """
        if r.op == "upsert":
            docs = r.docs
            record = {"op": "upsert", "docs": [_doc_to_json(d) for d in docs]}
            data = encode_record(record) if docs else b""
            unique = list(_last_wins(docs).values())
            vectors = self.index.encoder.encode_documents(unique) if unique else SparseBatch.empty()
            part = self._segment_of(unique, vectors) if unique else None
            for d in docs:
                present[d.doc_id] = True
            return r, data, lambda: self._apply_upsert(unique, vectors, part)
        found = [i for i in r.ids if present.get(i, self._exists(i))]
        for i in found:
            present[i] = False
        data = encode_record({"op": "delete", "ids": found}) if found else b""
        return r, data, lambda: self._apply_delete(found) or found

    def _exists(self, doc_id: str) -> bool:
        if doc_id in self._buffer:
            return True
        return doc_id not in self._deleted and doc_id in self.index.live_ids()

    def _apply_upsert(self, docs: Sequence[Document], batch: SparseBatch, part: Segment | None = None) -> None:
        """Buffer documents (``part``: their segment, when :meth:`_prepare` already built it)."""
        if not docs:
            return
        live = self.index.live_ids()
        for i, doc in enumerate(docs):
            lo, hi = batch.offsets[i], batch.offsets[i + 1]
            row = SparseBatch(np.array([0, hi - lo]), batch.term_ids[lo:hi], batch.weights[lo:hi],
                              None if batch.lengths is None else batch.lengths[i : i + 1])
            self._drop_buffered(doc.doc_id)  # re-adding moves it to the end, as a fresh build would order it
            self._buffer[doc.doc_id] = (doc, row)
            if doc.doc_id in live:
                self._deleted.add(doc.doc_id)
        position = len(self._parts)
        self._parts.append((part or self._segment_of(docs, batch), np.zeros(len(docs), np.uint8)))
        for local, doc in enumerate(docs):
            self._where[doc.doc_id] = (position, local)
        if len(self._parts) > MAX_BUFFER_PARTS:
            self._consolidate()

    def _apply_delete(self, ids: Sequence[str]) -> None:
        live = self.index.live_ids()
        for doc_id in ids:
            self._drop_buffered(doc_id)
            if doc_id in live:
                self._deleted.add(doc_id)

    def _drop_buffered(self, doc_id: str) -> None:
        if self._buffer.pop(doc_id, None) is not None:
            part, local = self._where.pop(doc_id)
            self._parts[part][1][local] = 1

    def _segment_of(self, docs: Sequence[Document], vectors: SparseBatch) -> Segment:
        fields = [{f: v for f, v in (("title", d.title), ("text", d.text), ("metadata", d.metadata)) if v}
                  for d in docs]
        return build_segment(vectors, [d.doc_id for d in docs], fields, self.index.encoder.n_terms,
                             self.index.inverted.config)

    def _consolidate(self) -> None:
        """Rebuild the buffer's parts as one segment (from the kept vectors, no re-encoding)."""
        self._parts, self._where = [], {}
        if self._buffer:
            docs = [d for d, _ in self._buffer.values()]
            vectors = SparseBatch.concatenate([v for _, v in self._buffer.values()])
            self._parts.append((self._segment_of(docs, vectors), np.zeros(len(docs), np.uint8)))
            self._where = {d.doc_id: (0, i) for i, d in enumerate(docs)}

    # ------------------------------------------------------------ recovery

    def _replay(self, records: list[dict[str, Any]]) -> None:
        """Apply logged records as one batch: fold them to final states, encode the survivors once."""
        final: dict[str, Document] = {}
        touched: set[str] = set()
        for n, record in enumerate(records, start=1):
            try:
                if record["op"] == "upsert":
                    for obj in record["docs"]:
                        doc = _doc_from_json(obj)
                        final.pop(doc.doc_id, None)
                        final[doc.doc_id] = doc
                        touched.add(doc.doc_id)
                else:
                    for doc_id in record["ids"]:
                        final.pop(str(doc_id), None)
                        touched.add(str(doc_id))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise IndexFormatError(f"{self.path / WAL_NAME}: record {n} is malformed ({e})") from None
        live = self.index.live_ids()
        self._deleted = {i for i in touched if i in live}
        docs = list(final.values())
        if docs:
            log.info("%s: replaying %d logged documents", self.path, len(docs))
            self._apply_upsert(docs, self.index.encoder.encode_documents(docs))  # one part: no consolidation

    # ------------------------------------------------------------ flush

    def log_bytes(self) -> int:
        return self._wal.size

    def flush_due(self, now: float | None = None) -> bool:
        """Whether buffered writes should become a segment now (the scheduler asks every tick)."""
        if self._closed or not (self._buffer or self._deleted or self._commit_unsynced):
            return False
        now = time.monotonic() if now is None else now
        if self._commit_unsynced and not (self._buffer or self._deleted):
            return now - self._last_flush >= 1.0  # retry the directory fsync that keeps the log
        if self._flush_failures:  # back off while the disk refuses: 1, 2, 4 ... 60 s
            return now - self._last_flush >= min(60.0, 2.0 ** (self._flush_failures - 1))
        return (len(self._buffer) >= self.settings.flush_docs or self._wal.size >= self.settings.flush_bytes
                or now - self._last_flush >= self.settings.flush_seconds)

    def _maybe_flush(self) -> None:
        if self.flush_due():
            self.flush()

    def flush(self) -> None:
        """Make the buffer an on-disk segment (atomic manifest commit), then empty the log.

        On failure the last good manifest stays in force and the buffer and
        log are kept (every acknowledged write is still there); the error is
        raised and the scheduler retries with back-off.
        """
        with self._lock:
            if self._buffer or self._deleted:
                before = self.index.inverted.manifest.generation if self.index.inverted.manifest else 0
                try:
                    self.index.delete(self._deleted)
                    self.index.add(doc for doc, _ in self._buffer.values())
                    self.index.commit(encoded=SparseBatch.concatenate([v for _, v in self._buffer.values()]))
                except BaseException as error:
                    self.index._pending, self.index._pending_deletes = {}, set()
                    after = self.index.inverted.manifest.generation if self.index.inverted.manifest else 0
                    if after == before:
                        self._flush_failures += 1
                        self._last_flush = time.monotonic()
                        raise
                    # The rename is in force but not known durable (its directory fsync failed):
                    # keep the log, whose records replay idempotently, until an fsync succeeds.
                    log.warning("%s: the flush took effect although the disk reported an error (%s); the log "
                                "keeps its writes until the commit is known durable", self.path, error)
                    self._commit_unsynced = True
                self._buffer = {}
                self._parts, self._where = [], {}
                self._deleted = set()
                self._publish()
                if self._commit_durable():
                    self._wal.reset()
                    self._merge()
            elif self._wal.size and self._commit_durable():
                self._wal.reset()
            self._flush_failures = 0
            self._last_flush = time.monotonic()

    def _commit_durable(self) -> bool:
        """Whether the manifest in force is known to survive a power loss (retrying its directory fsync)."""
        if self._commit_unsynced:
            try:
                fsync_path(self.path / INDEX_DIR)
            except OSError as e:
                log.warning("%s: the index directory still cannot be synced (%s); the log is kept", self.path, e)
                return False
            self._commit_unsynced = False
        return True

    def _merge(self) -> None:
        """Tiered merges after a flush; a failed merge changes nothing and is retried at the next flush."""
        try:
            while self.index.merge(self.settings.merge):
                pass
        except SparsearchError:
            log.warning("merge in %s failed; the index is unchanged", self.path, exc_info=True)
        self._publish()

    def close(self, flush: bool = True) -> None:
        """Stop writes, flush what is buffered (a failed flush is logged: the log keeps it), release the lock."""
        with self._lock:
            if self._closed:
                return
            scheduler().unregister(self)
            if flush:
                try:
                    self.flush()
                except SparsearchError:
                    log.warning("%s: final flush failed; the log keeps every write", self.path, exc_info=True)
            self._closed = True
            self._wal.close()
            self._held.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise IndexClosedError(f"{self.path}: the index was closed")

    # ------------------------------------------------------------ snapshots and reads

    def _publish(self) -> None:
        base = self.index.inverted
        live = self.index.live_ids()
        masks = [None if s.deleted is None else np.array(s.deleted) for s in base.segments]
        for doc_id in self._deleted:
            i, local = live[doc_id]
            if masks[i] is None:
                masks[i] = np.zeros(base.segments[i].n_docs, np.uint8)
            masks[i][local] = 1
        segments = [s.with_deletes(m) for s, m in zip(base.segments, masks)]
        for part, mask in self._parts:
            segments.append(part.with_deletes(mask.copy() if mask.any() else None))
        self._generation += 1
        self._snapshot = Snapshot(InvertedIndex(segments, base.scoring, base.config), self._generation)

    @property
    def n_docs(self) -> int:
        return self._snapshot.inverted.n_docs

    @property
    def n_segments(self) -> int:
        return len(self._snapshot.inverted.segments)

    def get(self, doc_id: str) -> dict[str, Any] | None:
        with self._lock:
            self._check_open()
            if doc_id in self._buffer:
                d = self._buffer[doc_id][0]
                return {"title": d.title, "text": d.text, "metadata": d.metadata}
            if doc_id in self._deleted:
                return None
            stored = self.index.get(doc_id)
            if stored is None:
                return None
            return {"title": stored.get("title", ""), "text": stored.get("text", ""),
                    "metadata": stored.get("metadata") or {}}

    def search(self, query: str, k: int, filter: Any = None,
               fields: Sequence[str] | None = None) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-k ``(id, score, stored fields)`` among the documents matching ``filter``.

        ``filter``: a metadata filter (:mod:`sparsearch.filters`; the old flat
        ``{"key": value}`` form too), evaluated as bitsets before ranking, so
        a selective filter makes the search faster, not slower.  ``fields``
        names the stored fields to decode (all when ``None``): a search that
        shows titles does not decode every hit's full text.
        """
        from sparsearch.filters import parse_filter
        from sparsearch.index import filtering

        self._check_open()
        parsed = parse_filter(filter)
        wanted = None if fields is None else sorted(set(fields))
        snap = self._snapshot.inverted
        if parsed is not None and filtering.matches_nothing(snap, parsed, "this collection"):
            return []  # nothing to rank: no query to encode
        queries = self.index.encoder.encode_queries([query], snap.stats)
        k = min(k, max(snap.n_docs, 1))
        if parsed is None:
            top = snap.search(queries, k, threads=1)
        else:
            top = filtering.search(snap, queries, k, parsed, threads=1, where="this collection")
        internal, scores = top.row(0)
        ids = snap.external_ids(internal)
        return [(doc_id, s, snap.stored_fields(d, wanted))
                for doc_id, d, s in zip(ids, internal.tolist(), scores.tolist())]


def _user_error(error: BaseException) -> BaseException:
    """Encoding errors of bad input reach the caller as input errors; others as they are."""
    if isinstance(error, (SparsearchError, MemoryError)) or not isinstance(error, (ValueError, TypeError)):
        return error
    return InputError(str(error))


def _last_wins(docs: Sequence[Document]) -> dict[str, Document]:
    """A repeated id within one request: the last copy wins, in the position of its last occurrence."""
    out: dict[str, Document] = {}
    for d in docs:
        out.pop(d.doc_id, None)
        out[d.doc_id] = d
    return out


def _doc_to_json(doc: Document) -> dict[str, Any]:
    return {"_id": doc.doc_id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}


def _doc_from_json(obj: dict[str, Any]) -> Document:
    return Document(str(obj["_id"]), obj.get("title", ""), obj.get("text", ""), obj.get("metadata") or {})

