"""``IndexWriter``: the one write path of an index directory, over vectors.

Every write — a bulk build, ``sparsearch add``, a Python ``commit``, an HTTP
upsert — goes through this class, so durability, locking and the on-disk
protocol live in one place.  The writer never sees text or encoders: it
takes ids, sparse vectors, stored fields and (in live mode) each document's
*source*, an opaque JSON object logged so that a crash can be recovered.

Two modes, one code path:

* **batch** (``IndexWriter.open``): ``add``/``delete`` are buffered and
  become visible at ``commit``, which writes a new generation atomically.
  The directory's writer lock is taken per commit.
* **live** (``IndexWriter.open_live``): each write is logged to the
  write-ahead log (:mod:`sparsearch.index.wal`) and fsynced, then applied to
  the buffer and published to readers at once.  Writers that arrive while
  one is on the disk queue up and the next of them logs the whole queue with
  one fsync (group commit).  ``commit`` (a *flush*) turns the buffer into a
  segment and empties the log; the shared scheduler flushes by size and
  age.  A failed flush leaves the last good manifest in force and is retried
  with back-off.  After ``kill -9`` the log is replayed on open: its
  sources go back through the caller's ``reindex`` as one batch.  The lock
  is held for the writer's whole life.
* **attached** (``IndexWriter.open_attached``): live under the one log of a
  :class:`~sparsearch.index.writer_group.WriterGroup` (a hybrid collection's
  parts), which logs each write once and drives :meth:`prepare`/:meth:`replay`.

Readers take :attr:`snapshot`, an immutable :class:`InvertedIndex`
published by a single reference swap, so a search never sees half a write.
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

from sparsearch.errors import IndexClosedError, IndexFormatError, InputError, SparsearchError
from sparsearch.index.buffer import WriteBuffer, last_wins
from sparsearch.index.config import IndexConfig
from sparsearch.index.directory import manifest_in_force, prepare_directory, writer_lock
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.formats import SPARSE, SegmentFormat, format_of
from sparsearch.index.generations import Part, TermSpace, commit_generation
from sparsearch.index.manifest import Manifest
from sparsearch.index.merge import MergePolicy, plan_merge
from sparsearch.index.storage import fsync_path
from sparsearch.index.wal import WriteAheadLog, encode_record
from sparsearch.scoring import Scoring
from sparsearch.types import CollectionStats, Hits, SparseBatch

log = logging.getLogger(__name__)

#: Re-encodes logged sources on recovery: ``(ids, sources) -> (vectors, stored fields)``.
Reindex = Callable[[list[str], list[dict[str, Any]]], tuple[Any, list[dict[str, Any]]]]


@dataclass(frozen=True)
class LiveSettings:
    """When a live writer's buffer becomes an on-disk segment, and merging.

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
class WriteRequest:
    """One caller's write, waiting in the group-commit queue."""

    op: str
    ids: list[str]
    vectors: Any = None
    stored: list[dict[str, Any]] | None = None
    sources: list[dict[str, Any] | None] | None = None
    done: bool = False
    result: Any = None
    error: BaseException | None = None


class IndexWriter:
    """Add, delete, commit and merge vectors of one format; publishes immutable reader snapshots."""

    def __init__(self, base: Any, terms: TermSpace, path: Path | None = None, *,
                 log_path: Path | None = None, settings: LiveSettings = LiveSettings(),
                 reindex: Reindex | None = None, fmt: SegmentFormat = SPARSE, attached: bool = False) -> None:
        self.path = path
        self.terms = terms
        self.fmt = fmt
        self.settings = settings
        self._base = base  # the committed generation
        self._snapshot = base
        self._buffer = WriteBuffer(fmt)
        self._live: dict[str, tuple[int, int]] | None = None
        self._lock = threading.RLock()  # the write lock: log order is apply order
        self._queue: list[WriteRequest] = []
        self._queue_lock = threading.Lock()
        self._closed = False
        self._held = contextlib.ExitStack()
        self._log: WriteAheadLog | None = None
        self._last_flush = time.monotonic()
        self._flush_failures = 0
        self._commit_unsynced = False  # a commit whose directory fsync failed: keep the log until synced
        self._attached = attached  # live, logged by a WriterGroup
        if attached:
            assert path is not None and log_path is None, "an attached writer has a directory and no log of its own"
            self._held.enter_context(writer_lock(path))
            self.publish()
        elif log_path is not None:
            assert path is not None and reindex is not None, "a live writer needs a directory and a reindex step"
            self._held.enter_context(writer_lock(path))
            try:
                self._log = WriteAheadLog(log_path)
                self.replay(self._log.read(), reindex, str(log_path))
                self._log.open()
                self.publish()
            except BaseException:
                self._held.close()
                raise
            scheduler().register(self)

    # ------------------------------------------------------------ constructors

    @classmethod
    def in_memory(cls, segments: Sequence[Any], scoring: Scoring, config: IndexConfig,
                  terms: TermSpace, fmt: SegmentFormat = SPARSE) -> "IndexWriter":
        return cls(fmt.snapshot(list(segments), scoring, config), terms, fmt=fmt)

    @classmethod
    def open(cls, path: Path, terms: TermSpace, manifest: Manifest | None = None, mmap: bool = True) -> "IndexWriter":
        """Batch mode over a committed index directory (no lock until a commit)."""
        manifest = manifest or Manifest.read(path)
        fmt = format_of(manifest)
        return cls(fmt.open(path, manifest, mmap=mmap), terms, path, fmt=fmt)

    @classmethod
    def open_live(cls, path: Path, log_path: Path, terms: TermSpace, reindex: Reindex,
                  settings: LiveSettings = LiveSettings(), manifest: Manifest | None = None) -> "IndexWriter":
        """Live mode: takes the writer lock for life and replays ``log_path``."""
        with writer_lock(path):  # read the manifest under the lock a live writer will hold
            manifest = manifest or Manifest.read(path)
            fmt = format_of(manifest)
            base = fmt.open(path, manifest)
        return cls(base, terms, path, log_path=log_path, settings=settings, reindex=reindex, fmt=fmt)

    @classmethod
    def open_attached(cls, path: Path, terms: TermSpace, settings: LiveSettings = LiveSettings(),
                      manifest: Manifest | None = None) -> "IndexWriter":
        """Live mode under a :class:`~sparsearch.index.writer_group.WriterGroup`'s log: takes the lock for life."""
        with writer_lock(path):
            manifest = manifest or Manifest.read(path)
            fmt = format_of(manifest)
            base = fmt.open(path, manifest)
        return cls(base, terms, path, settings=settings, fmt=fmt, attached=True)

    def save(self, path: Path, overwrite: bool = False) -> None:
        """Commit the committed segments to ``path`` as a new index (or a new generation of it)."""
        previous = prepare_directory(path, overwrite)
        with writer_lock(path):
            generation = (previous.generation + 1) if previous else 1
            self._base = commit_generation(path, generation, previous, [Part(s) for s in self._base.segments],
                                           self.terms, self._base.scoring, self._base.config, self.fmt)
        self.path = path
        self._snapshot = self._base if self._log is None else self._snapshot
        self._live = None

    # ------------------------------------------------------------ reading

    @property
    def snapshot(self) -> Any:
        """What a search sees now: committed segments (plus, live, the buffer), immutable."""
        return self._snapshot

    @property
    def committed(self) -> Any:
        return self._base

    @property
    def n_docs(self) -> int:
        return self._snapshot.n_docs

    @property
    def stats(self) -> CollectionStats:
        return self._snapshot.stats

    @property
    def live_mode(self) -> bool:
        """Writes are logged (by this writer or its group) and visible at once."""
        return self._log is not None or self._attached

    @property
    def write_lock(self) -> threading.RLock:
        return self._lock  # a group holds its members' while it applies to them

    @property
    def pending_docs(self) -> int:
        """Documents written since the last flush."""
        return len(self._buffer.docs)

    @property
    def durable(self) -> bool:
        """Nothing buffered and the last commit known durable: the log holds nothing this writer still needs."""
        return not self._buffer and not self._commit_unsynced

    def search(self, queries: Any, k: int, filter: Any = None, threads: int | None = None,
               where: str = "this index") -> list[Hits]:
        """Top-``k`` per query row over the current snapshot (``filter``: see :mod:`sparsearch.filters`)."""
        return self._snapshot.hits(queries, k, filter, threads=threads, where=where)

    def live_ids(self) -> dict[str, tuple[int, int]]:
        """External id -> (segment, local id) of every committed live document (built on first use)."""
        if self._live is None:
            live: dict[str, tuple[int, int]] = {}
            for i, seg in enumerate(self._base.segments):
                mask = seg.live_mask()
                for local, doc_id in enumerate(seg.doc_ids.tolist()):
                    if mask[local]:
                        live[doc_id] = (i, local)
            self._live = live
        return self._live

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """Stored fields of a visible document, or ``None``."""
        self.check_open()
        with self._lock:
            if self.live_mode:
                buffered = self._buffer.docs.get(doc_id)
                if buffered is not None:
                    return buffered.stored
                if doc_id in self._buffer.deleted:
                    return None
            where = self.live_ids().get(doc_id)
            return None if where is None else self._base.segments[where[0]].stored(where[1])

    # ------------------------------------------------------------ writes

    def add(self, ids: Sequence[str], vectors: Any, stored: Sequence[dict[str, Any]] | None = None,
            sources: Sequence[dict[str, Any] | None] | None = None) -> None:
        """Add or replace documents (the last copy of a repeated id wins).

        Live: durable and visible when this returns.  Batch: visible at :meth:`commit`.
        """
        if len(ids) != self.fmt.count(vectors):
            raise InputError(f"{len(ids)} ids but {self.fmt.count(vectors)} vectors")
        stored = list(stored) if stored is not None else [{} for _ in ids]
        srcs = list(sources) if sources is not None else [None] * len(ids)
        if self.live_mode and any(s is None for s in srcs):
            raise InputError("a live index logs each document's source for recovery: give sources")
        self._submit(WriteRequest("upsert", list(ids), vectors, stored, srcs))

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; returns the ids that existed (live: durable when this returns)."""
        return self._submit(WriteRequest("delete", list(dict.fromkeys(ids))))

    def _submit(self, request: WriteRequest) -> Any:
        self.check_open()
        if self._attached:
            raise InputError(f"{self.path}: a part of a collection with one log; write through the collection")
        return group_commit(request, self._queue, self._queue_lock, self._lock, self._apply_batch)

    def _apply_batch(self, batch: list[WriteRequest]) -> None:
        """Prepare each request, log them all with one fsync (live), then apply them in order."""
        if self._closed:
            for r in batch:
                r.error, r.done = IndexClosedError(f"{self.path}: the index was closed"), True
            return
        prepared: list[tuple[WriteRequest, bytes, Callable[[], Any]]] = []
        present: dict[str, bool] = {}  # existence of ids after the earlier requests of this batch
        for r in batch:
            try:
                prepared.append(self.prepare(r, present))
            except BaseException as e:  # bad input: this request fails alone
                r.error, r.done = user_error(e), True
        logged = any(data for _, data, _ in prepared)
        try:
            if logged and self._log is not None:
                self._log.append(b"".join(data for _, data, _ in prepared))
        except BaseException as e:
            for r, _, _ in prepared:
                r.error, r.done = e, True
            return
        for r, _, apply in prepared:
            r.result, r.done = apply(), True
        if logged and self._log is not None:
            self.publish()
            try:
                if self.flush_due():
                    self.flush()
            except Exception:  # the writes are durable in the log; the flush is retried later
                log.warning("flush of %s failed; will retry", self.path, exc_info=True)

    def prepare(self, r: WriteRequest, present: dict[str, bool]) -> tuple[WriteRequest, bytes, Callable[[], Any]]:
        """Validate and invert a request (nothing applied yet); returns its log bytes and apply step.

        Everything that can refuse the input (JSON encoding of the record, the
        segment builder's id and weight checks) runs here, before logging: a
        record in the log must be one that replay can apply.
        """
        if r.op == "upsert":
            assert r.vectors is not None and r.stored is not None and r.sources is not None
            keep = last_wins(r.ids)
            if len(keep) != len(r.ids):
                r.ids, r.vectors = [r.ids[i] for i in keep], self.fmt.take(r.vectors, keep)
                r.stored, r.sources = [r.stored[i] for i in keep], [r.sources[i] for i in keep]
            if not r.ids:
                return r, b"", lambda: None
            part = self.fmt.build(r.ids, r.vectors, r.stored, self.terms.n_terms, self._base.config)
            data = b""
            if self.live_mode:
                data = encode_record({"op": "upsert", "docs": [{**(s or {}), "_id": i}
                                                               for i, s in zip(r.ids, r.sources)]})
            for i in r.ids:
                present[i] = True
            ids, vectors, stored, sources = r.ids, r.vectors, r.stored, r.sources
            return r, data, lambda: self._apply_upsert(ids, vectors, stored, sources, part)
        found = [i for i in r.ids if present.get(i, self._exists(i))]
        for i in found:
            present[i] = False
        data = encode_record({"op": "delete", "ids": found}) if found and self.live_mode else b""
        return r, data, lambda: self._buffer.delete(found, self.live_ids()) or found

    def _exists(self, doc_id: str) -> bool:
        if doc_id in self._buffer.docs:
            return True
        return doc_id not in self._buffer.deleted and doc_id in self.live_ids()

    def _apply_upsert(self, ids: list[str], vectors: Any, stored: list[dict[str, Any]],
                      sources: list[dict[str, Any] | None], part: Any) -> None:
        self._buffer.add(ids, vectors, stored, sources, part, self.live_ids(), self.terms.n_terms, self._base.config)

    # ------------------------------------------------------------ recovery

    def replay(self, records: list[dict[str, Any]], reindex: Reindex, where: str) -> None:
        """Apply logged records as one batch: fold them to final states, re-encode the survivors once.

        Idempotent: records whose effects a commit already holds (a flush
        that took effect before the log was emptied) give the same documents.
        """
        final: dict[str, dict[str, Any]] = {}
        touched: set[str] = set()
        for n, record in enumerate(records, start=1):
            try:
                if record["op"] == "upsert":
                    for obj in record["docs"]:
                        doc_id = str(obj["_id"])
                        final.pop(doc_id, None)
                        final[doc_id] = {key: value for key, value in obj.items() if key != "_id"}
                        touched.add(doc_id)
                else:
                    for doc_id in record["ids"]:
                        final.pop(str(doc_id), None)
                        touched.add(str(doc_id))
            except (KeyError, TypeError, ValueError, AttributeError) as e:
                raise IndexFormatError(f"{where}: record {n} is malformed ({e})") from None
        live = self.live_ids()
        self._buffer.deleted = {i for i in touched if i in live}
        if final:
            log.info("%s: replaying %d logged documents", self.path, len(final))
            ids, sources = list(final), list(final.values())
            vectors, stored = reindex(ids, sources)
            part = self.fmt.build(ids, vectors, stored, self.terms.n_terms, self._base.config)
            self._buffer.add(ids, vectors, stored, sources, part, live, self.terms.n_terms, self._base.config)

    # ------------------------------------------------------------ commit (flush) and merge

    def log_bytes(self) -> int:
        return self._log.size if self._log is not None else 0

    def flush_due(self, now: float | None = None) -> bool:
        """Whether buffered writes should become a segment now (the scheduler asks every tick)."""
        if self._closed or self._log is None or not (self._buffer or self._commit_unsynced):
            return False
        now = time.monotonic() if now is None else now
        if self._commit_unsynced and not self._buffer:
            return now - self._last_flush >= 1.0  # retry the directory fsync that keeps the log
        if self._flush_failures:  # back off while the disk refuses: 1, 2, 4 ... 60 s
            return now - self._last_flush >= min(60.0, 2.0 ** (self._flush_failures - 1))
        return (len(self._buffer.docs) >= self.settings.flush_docs or self._log.size >= self.settings.flush_bytes
                or now - self._last_flush >= self.settings.flush_seconds)

    def commit(self) -> None:
        """Make buffered writes a new generation (atomic manifest swap); live, then empty the log.

        Collection statistics are recomputed over live documents, so scores
        afterwards equal those of a fresh build over the same documents.  On
        failure the last good manifest stays in force, the partial files are
        swept and (live) the buffer and log keep every acknowledged write.
        """
        with self._lock:
            if self._buffer:
                before = self._generation()
                try:
                    self._commit_buffer()
                except BaseException as error:
                    self.reload()
                    if self._generation() == before:
                        self._flush_failures += 1
                        self._last_flush = time.monotonic()
                        raise
                    if self._log is None:  # the rename took effect: the buffer is committed
                        self._buffer.clear()
                        raise
                    # In force but not known durable (its directory fsync failed): keep the log,
                    # whose records replay idempotently, until an fsync succeeds.
                    log.warning("%s: the flush took effect although the disk reported an error (%s); the log "
                                "keeps its writes until the commit is known durable", self.path, error)
                    self._commit_unsynced = True
                self._buffer.clear()
                self.publish()
                if self.live_mode and self._commit_durable():
                    if self._log is not None:
                        self._log.reset()
                    self._merge_all()
            elif self._log is not None and self._log.size and self._commit_durable():
                self._log.reset()
            elif self._attached:
                self._commit_durable()
            self._flush_failures = 0
            self._last_flush = time.monotonic()

    flush = commit  # what the flush scheduler calls

    def _generation(self) -> int:
        return self._base.manifest.generation if self._base.manifest else 0

    def _commit_buffer(self) -> None:
        live = self.live_ids()
        base = self._base
        masks = [None if seg.deleted is None else np.array(seg.deleted) for seg in base.segments]
        changed = [False] * len(masks)
        for doc_id in self._buffer.deleted:
            i, local = live[doc_id]
            if masks[i] is None:
                masks[i] = np.zeros(base.segments[i].n_docs, np.uint8)
            masks[i][local] = 1  # type: ignore[index]
            changed[i] = True
        kept = [seg.with_deletes(mask) for seg, mask in zip(base.segments, masks)]
        new = [self._buffer.segment(self.terms.n_terms, base.config)] if self._buffer.docs else []
        infos = list(base.manifest.segments) if base.manifest else [None] * len(kept)
        parts = [Part(s, info, c) for s, info, c in zip(kept, infos, changed)] + [Part(s) for s in new]
        self._install(parts)

    def _install(self, parts: list[Part]) -> None:
        """Make ``parts`` the committed generation (on disk when the writer has a directory)."""
        base = self._base
        if self.path is None:
            self._base = self.fmt.snapshot([self.fmt.seal(p.segment) for p in parts], base.scoring, base.config)
        else:
            with writer_lock(self.path):
                self._base = commit_generation(self.path, self._generation() + 1, base.manifest, parts,
                                               self.terms, base.scoring, base.config, self.fmt)
        self._live = None
        if not self.live_mode:
            self._snapshot = self._base

    def merge(self, policy: MergePolicy | None = None) -> bool:
        """Run the one merge ``policy`` asks for next, if any; returns whether one ran.

        The merged segment takes the place of the first segment it replaces.
        Searches running meanwhile keep their snapshot; scores are unchanged
        because statistics are collection-wide.
        """
        with self._lock:
            if self._buffer and not self.live_mode:
                raise RuntimeError("commit pending changes before merging")
            segments = self._base.segments
            live = [int(s.live_mask().sum()) for s in segments]
            chosen = plan_merge(live, [s.n_docs - n for s, n in zip(segments, live)], policy or MergePolicy())
            if not chosen:
                return False
            merged = self.fmt.merge([segments[i] for i in chosen], self.terms.n_terms, self._base.config)
            infos = list(self._base.manifest.segments) if self._base.manifest else [None] * len(segments)
            parts: list[Part] = []
            for i, seg in enumerate(segments):
                if i == chosen[0]:
                    if merged.n_docs:
                        parts.append(Part(merged))
                elif i not in chosen:
                    parts.append(Part(seg, infos[i]))
            try:
                self._install(parts)
            except BaseException:
                self.reload()
                raise
            if self.live_mode:
                self.publish()
            return True

    def _merge_all(self) -> None:
        """Tiered merges after a flush; a failed merge changes nothing and is retried at the next flush."""
        try:
            while self.merge(self.settings.merge):
                pass
        except SparsearchError:
            log.warning("merge in %s failed; the index is unchanged", self.path, exc_info=True)

    def _commit_durable(self) -> bool:
        """Whether the manifest in force is known to survive a power loss (retrying its directory fsync)."""
        if self._commit_unsynced:
            assert self.path is not None
            try:
                fsync_path(self.path)
            except OSError as e:
                log.warning("%s: the index directory still cannot be synced (%s); the log is kept", self.path, e)
                return False
            self._commit_unsynced = False
        return True

    def reload(self) -> None:
        """Adopt the manifest in force on disk (after a failed commit whose rename may have happened)."""
        if self.path is None:
            return
        manifest = manifest_in_force(self.path)
        if manifest is not None and (self._base.manifest is None or manifest.generation != self._generation()):
            self._base = self.fmt.open(self.path, manifest)
            self._live = None
            if not self.live_mode:
                self._snapshot = self._base

    # ------------------------------------------------------------ life cycle

    def close(self, flush: bool = True) -> None:
        """Stop writes, flush what is buffered (live; a failed flush is logged: the log keeps it), unlock."""
        with self._lock:
            if self._closed:
                return
            if self.live_mode:
                if self._log is not None:
                    scheduler().unregister(self)
                if flush:
                    try:
                        self.commit()
                    except SparsearchError:
                        log.warning("%s: final flush failed; the log keeps every write", self.path, exc_info=True)
                if self._log is not None:
                    self._log.close()
            self._closed = True
            self._held.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def check_open(self) -> None:
        if self._closed:
            raise IndexClosedError(f"{self.path}: the index was closed")

    def publish(self) -> None:
        """Swap in a new snapshot: committed segments with pending deletions masked, plus the buffer."""
        base = self._base
        live = self.live_ids()
        masks = [None if s.deleted is None else np.array(s.deleted) for s in base.segments]
        for doc_id in self._buffer.deleted:
            i, local = live[doc_id]
            if masks[i] is None:
                masks[i] = np.zeros(base.segments[i].n_docs, np.uint8)
            masks[i][local] = 1  # type: ignore[index]
        segments = [s.with_deletes(m) for s, m in zip(base.segments, masks)] + self._buffer.part_segments()
        self._snapshot = self.fmt.snapshot(segments, base.scoring, base.config)


def group_commit(request: Any, queue: list[Any], queue_lock: threading.Lock, write_lock: threading.RLock,
                 apply_batch: Callable[[list[Any]], None]) -> Any:
    """Group commit: queue ``request``; whoever holds the write lock next applies the whole queue (one fsync)."""
    with queue_lock:
        queue.append(request)
    with write_lock:
        if not request.done:
            with queue_lock:
                batch = queue[:]
                queue.clear()
            apply_batch(batch)
    if request.error is not None:
        raise request.error
    return request.result


def user_error(error: BaseException) -> BaseException:
    """Validation errors of bad input reach the caller as input errors; others as they are."""
    if isinstance(error, (SparsearchError, MemoryError)) or not isinstance(error, (ValueError, TypeError)):
        return error
    return InputError(str(error))
