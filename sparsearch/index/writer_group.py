"""``WriterGroup``: several live indexes over the same documents, kept consistent by one write-ahead log.

A hybrid collection holds a sparse index and a dense one.  Were each a live
writer with its own log, a crash between the two appends could leave a
document in one index and not the other, and nothing on disk would say
which is right.  Here the group owns the only log: a write is validated by
every member first (anything that can refuse it runs before logging), logged
once with one fsync, and then applied to every member, under the group lock
and the members' write locks, so a reader of either index never sees a write
the other lacks.  Acknowledged means logged, as for a single index.

A flush commits every member (each an ordinary atomic generation) and
empties the log only once all of them are committed durably; a member that
failed keeps its buffer, and the log keeps every write, so the next flush,
or the replay after a crash, brings it level.  Recovery replays the one log
into every member (each re-encodes the logged sources with its own encoder);
replay is idempotent, so a member that had already committed some of those
records ends with the same documents as one that had not.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from sparsearch.errors import IndexClosedError, InputError, SparsearchError, StorageError
from sparsearch.index.flush_scheduler import scheduler
from sparsearch.index.wal import WriteAheadLog
from sparsearch.index.writer import IndexWriter, LiveSettings, Reindex, WriteRequest, group_commit, user_error

log = logging.getLogger(__name__)


@dataclass
class GroupRequest:
    """One caller's write to every member: ``vectors[i]``/``stored[i]`` belong to member ``i``."""

    op: str
    ids: list[str]
    vectors: list[Any] = field(default_factory=list)
    stored: list[list[dict[str, Any]]] = field(default_factory=list)
    sources: list[dict[str, Any]] = field(default_factory=list)
    done: bool = False
    result: Any = None
    error: BaseException | None = None

    def for_member(self, i: int) -> WriteRequest:
        if self.op == "upsert":
            return WriteRequest("upsert", list(self.ids), self.vectors[i], list(self.stored[i]), list(self.sources))
        return WriteRequest("delete", list(self.ids))


class WriterGroup:
    """Attached :class:`IndexWriter` s (``IndexWriter.open_attached``) sharing the write-ahead log at ``log_path``."""

    def __init__(self, writers: Sequence[IndexWriter], log_path: Path, reindexes: Sequence[Reindex],
                 settings: LiveSettings = LiveSettings()) -> None:
        if not writers or len(writers) != len(reindexes):
            raise ValueError("a writer group needs one reindex step per writer, and at least one writer")
        self.writers = list(writers)
        self.settings = settings
        self._lock = threading.RLock()
        self._queue: list[GroupRequest] = []
        self._queue_lock = threading.Lock()
        self._closed = False
        self._last_flush = time.monotonic()
        self._flush_failures = 0
        self._broken: StorageError | None = None
        self._log = WriteAheadLog(log_path)
        records = self._log.read()
        for writer, reindex in zip(self.writers, reindexes):
            writer.replay(records, reindex, str(log_path))
            writer.publish()
        self._log.open()
        scheduler().register(self)

    @property
    def path(self) -> Path:
        return self._log.path

    # ------------------------------------------------------------ writes

    def upsert(self, ids: Sequence[str], vectors: Sequence[Any], stored: Sequence[Sequence[dict[str, Any]]],
               sources: Sequence[dict[str, Any]]) -> None:
        """Add or replace documents in every member; durable and visible in all of them when this returns."""
        if len(vectors) != len(self.writers) or len(stored) != len(self.writers):
            raise InputError(f"one batch of vectors and stored fields per part ({len(self.writers)}) is needed")
        self._submit(GroupRequest("upsert", list(ids), list(vectors), [list(s) for s in stored], list(sources)))

    def delete(self, ids: Sequence[str]) -> list[str]:
        """Delete from every member; returns the ids that existed."""
        return self._submit(GroupRequest("delete", list(dict.fromkeys(ids))))

    def _submit(self, request: GroupRequest) -> Any:
        """Group commit, as a single writer's: whoever takes the lock next logs the whole queue with one fsync."""
        if self._closed:
            raise IndexClosedError(f"{self.path}: the collection was closed")
        if self._broken is not None:
            raise self._broken
        return group_commit(request, self._queue, self._queue_lock, self._lock, self._apply_batch)

    def _prepare(self, r: GroupRequest, presents: list[dict[str, bool]]) -> tuple[bytes, list[Callable[[], Any]]]:
        """Every member validates and builds its part; the first member's record is the one logged."""
        steps = []
        record = b""
        for i, writer in enumerate(self.writers):
            _, data, apply = writer.prepare(r.for_member(i), presents[i])
            record = record or data
            steps.append(apply)
        return record, steps

    def _apply_batch(self, batch: list[GroupRequest]) -> None:
        if self._closed:
            for r in batch:
                r.error, r.done = IndexClosedError(f"{self.path}: the collection was closed"), True
            return
        presents: list[dict[str, bool]] = [{} for _ in self.writers]
        prepared: list[tuple[GroupRequest, bytes, list[Callable[[], Any]]]] = []
        for r in batch:
            saved = [dict(p) for p in presents]
            try:
                prepared.append((r, *self._prepare(r, presents)))
            except BaseException as e:  # bad input: this request fails alone, in no member
                presents = saved
                r.error, r.done = user_error(e), True
        data = b"".join(d for _, d, _ in prepared)
        with contextlib.ExitStack() as held:
            for writer in self.writers:
                held.enter_context(writer.write_lock)
            try:
                if data:
                    self._log.append(data)
            except BaseException as e:
                for r, _, _ in prepared:
                    r.error, r.done = e, True
                return
            try:
                for r, _, steps in prepared:
                    results = [apply() for apply in steps]
                    r.result, r.done = results[0], True
            except BaseException as e:
                self._fail_applied(prepared, e)
                raise
            if data:
                for writer in self.writers:
                    writer.publish()
        try:
            if data and self.flush_due():
                self.flush()
        except Exception:  # durable in the log; retried by the scheduler
            log.warning("flush of %s failed; will retry", self.path, exc_info=True)

    def _fail_applied(self, prepared: list[tuple[GroupRequest, bytes, list[Callable[[], Any]]]],
                      error: BaseException) -> None:
        """A logged write that a member failed to apply: the members may now differ, the log does not.

        Writes stop until the collection is reopened, which replays the log
        into every member; the requests of this batch are durable (logged)
        but reported as failed.
        """
        self._broken = StorageError(f"{self.path}: a part failed to apply a logged write ({error!r}); reopen the "
                                    f"collection to recover every part from its log")
        for r, _, _ in prepared:
            if not r.done:
                r.error, r.done = self._broken, True
        log.error("%s", self._broken)

    # ------------------------------------------------------------ flush

    def flush_due(self, now: float | None = None) -> bool:
        if self._closed or self._broken is not None:
            return False
        now = time.monotonic() if now is None else now
        if all(w.durable for w in self.writers):
            return self._log.size > 0 and now - self._last_flush >= 1.0  # an emptying of the log that failed
        if self._flush_failures:
            return now - self._last_flush >= min(60.0, 2.0 ** (self._flush_failures - 1))
        return (max(w.pending_docs for w in self.writers) >= self.settings.flush_docs
                or self._log.size >= self.settings.flush_bytes
                or now - self._last_flush >= self.settings.flush_seconds)

    def flush(self) -> None:
        """Commit every member; empty the log once all of them are durable.

        Refused after a failed apply: committing members that differ and then
        emptying the log would make the difference permanent.
        """
        with self._lock:
            if self._broken is not None:
                raise self._broken
            try:
                for writer in self.writers:
                    writer.commit()
            except BaseException:
                self._flush_failures += 1
                self._last_flush = time.monotonic()
                raise
            if all(w.durable for w in self.writers):
                self._log.reset()
            self._flush_failures = 0
            self._last_flush = time.monotonic()

    commit = flush

    def log_bytes(self) -> int:
        return self._log.size

    # ------------------------------------------------------------ life cycle

    def close(self, flush: bool = True) -> None:
        """Stop writes, flush (a failure is logged: the log keeps every write), release every member."""
        with self._lock:
            if self._closed:
                return
            scheduler().unregister(self)
            if flush and self._broken is None:
                try:
                    self.flush()
                except SparsearchError:
                    log.warning("%s: final flush failed; the log keeps every write", self.path, exc_info=True)
            self._closed = True
            self._log.close()
            for writer in self.writers:
                writer.close(flush=False)

    @property
    def closed(self) -> bool:
        return self._closed
