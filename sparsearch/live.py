"""A live index: durable single-document writes, searchable at once, while searches run.

Writes go to a write-ahead log (one JSON line per request, fsynced before the
write is acknowledged; concurrent writers share fsyncs, a group commit) and into an in-memory buffer segment that is rebuilt
(inverted by the Numba kernels, milliseconds for thousands of documents) and
published with every write.  Every so often the buffer is flushed: its
documents become an immutable on-disk segment through the ordinary atomic
manifest commit, and the log is emptied.  After ``kill -9`` the log is
replayed on open, so every acknowledged write is back; a torn last line was
never acknowledged and is dropped.

Readers take one snapshot (committed segments with their deletion masks,
plus the buffer segment) per search, published by a single reference swap,
so a search never sees half of a batch.  Collection statistics cover the
whole snapshot, so scores equal a fresh build's at every moment.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from sparsearch.engine import Index
from sparsearch.errors import IndexFormatError
from sparsearch.index.config import IndexConfig
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.merge import MergePolicy
from sparsearch.index.segment import Segment, build_segment
from sparsearch.index.storage import fsync_path, write_bytes_atomic
from sparsearch.protocols import SparseEncoder
from sparsearch.types import Document, SparseBatch

log = logging.getLogger(__name__)

WAL_NAME = "wal.jsonl"
MAX_BUFFER_PARTS = 16
INDEX_DIR = "index"


@dataclass(frozen=True)
class LiveSettings:
    """When the buffer becomes an on-disk segment (after this many documents or seconds), and merging."""

    flush_docs: int = 10_000
    flush_seconds: float = 30.0
    merge: MergePolicy = MergePolicy()


@dataclass
class Snapshot:
    """What one search sees: an immutable inverted index and the ids of its buffer documents."""

    inverted: InvertedIndex
    generation: int


class LiveIndex:
    def __init__(self, path: Path, settings: LiveSettings = LiveSettings()) -> None:
        self.path = Path(path)
        self.settings = settings
        self.index = Index.open(self.path / INDEX_DIR)
        self._lock = threading.RLock()
        self._buffer: dict[str, tuple[Document, SparseBatch]] = {}
        # The buffer is searchable as small in-memory segments, one per write, with mutable
        # deletion masks; a write costs O(its own documents), and the parts are consolidated
        # into one when they pile up.
        self._parts: list[tuple[Segment, np.ndarray]] = []
        self._where: dict[str, tuple[int, int]] = {}
        self._deleted: set[str] = set()  # committed documents deleted or replaced since the last flush
        self._last_flush = time.monotonic()
        self._generation = 0
        self._replay_wal()
        self._wal = open(self.path / WAL_NAME, "ab")
        self._sync_lock = threading.Lock()
        self._epoch = 0
        self._appended = self._synced = 0
        self._publish()
        self._closed = threading.Event()
        self._timer = threading.Thread(target=self._flush_when_due, name=f"flush-{self.path.name}", daemon=True)
        self._timer.start()

    def _flush_when_due(self) -> None:
        """Background flushing: buffered writes reach a segment within ``flush_seconds`` even when idle."""
        while not self._closed.wait(min(1.0, self.settings.flush_seconds)):
            try:
                with self._lock:
                    if not self._closed.is_set():
                        self._maybe_flush()
            except Exception:  # pragma: no cover - logged; the log still holds every write
                log.exception("background flush of %s failed", self.path)

    # ------------------------------------------------------------ creation

    @classmethod
    def create(cls, path: Path, encoder: SparseEncoder, config: IndexConfig | None = None,
               settings: LiveSettings = LiveSettings()) -> "LiveIndex":
        """An empty live index at ``path`` (which must not exist yet)."""
        path = Path(path)
        path.mkdir(parents=True)
        cfg = config or IndexConfig(stored_fields=("title", "text", "metadata"))
        Index.build([], path=path / INDEX_DIR, encoder=encoder, config=cfg)
        (path / WAL_NAME).touch()
        fsync_path(path)
        return cls(path, settings)

    # ------------------------------------------------------------ writes

    def upsert(self, documents: Sequence[Document]) -> None:
        """Add or replace documents; durable (logged and fsynced) when this returns."""
        with self._lock:
            ticket = self._log({"op": "upsert", "docs": [_doc_to_json(d) for d in documents]})
            self._apply_upsert(documents)
            self._publish()
            self._maybe_flush()
        self._sync(ticket)

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; returns the ids that existed. Durable when this returns."""
        with self._lock:
            found = [i for i in dict.fromkeys(ids) if self._exists(i)]
            if not found:
                return found
            ticket = self._log({"op": "delete", "ids": found})
            self._apply_delete(found)
            self._publish()
        self._sync(ticket)
        return found

    def _exists(self, doc_id: str) -> bool:
        if doc_id in self._buffer:
            return True
        return doc_id not in self._deleted and doc_id in self.index.live_ids()

    def _apply_upsert(self, documents: Sequence[Document]) -> None:
        docs = list({d.doc_id: d for d in documents}.values())  # a repeated id within one batch: last wins
        batch = self.index.encoder.encode_documents(docs)
        live = self.index.live_ids()
        for i, doc in enumerate(docs):
            lo, hi = batch.offsets[i], batch.offsets[i + 1]
            row = SparseBatch(np.array([0, hi - lo]), batch.term_ids[lo:hi], batch.weights[lo:hi],
                              None if batch.lengths is None else batch.lengths[i : i + 1])
            self._drop_buffered(doc.doc_id)  # re-adding moves it to the end, as a fresh build would order it
            self._buffer[doc.doc_id] = (doc, row)
            if doc.doc_id in live:
                self._deleted.add(doc.doc_id)
        part = len(self._parts)
        self._parts.append((self._segment_of(docs, batch), np.zeros(len(docs), np.uint8)))
        for local, doc in enumerate(docs):
            self._where[doc.doc_id] = (part, local)
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

    # ------------------------------------------------------------ log

    def _log(self, record: dict[str, Any]) -> tuple[int, int]:
        """Append a record (under the write lock, so log order is apply order); returns its sync ticket."""
        self._wal.write(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")
        self._wal.flush()
        self._appended += 1
        return self._epoch, self._appended

    def _sync(self, ticket: tuple[int, int]) -> None:
        """Group commit: one fsync makes every record appended so far durable, for all waiting writers.

        Runs outside the write lock, so writers queue on the disk together
        instead of one after another.  A record whose log was already emptied
        by a flush (a newer epoch) is durable in a committed segment.
        """
        epoch, n = ticket
        with self._sync_lock:
            if self._epoch != epoch or self._synced >= n:
                return
            target = self._appended
            os.fsync(self._wal.fileno())
            self._synced = target

    def _replay_wal(self) -> None:
        wal = self.path / WAL_NAME
        if not wal.exists():
            return
        data = wal.read_bytes()
        lines = data.split(b"\n")
        complete, torn = lines[:-1], lines[-1]
        if torn:
            log.warning("%s: dropping a torn last record (%d bytes) never acknowledged", wal, len(torn))
            write_bytes_atomic(wal, b"\n".join(complete) + (b"\n" if complete else b""))
        for n, line in enumerate(complete, start=1):
            try:
                record = json.loads(line)
                if record["op"] == "upsert":
                    self._apply_upsert([_doc_from_json(d) for d in record["docs"]])
                elif record["op"] == "delete":
                    self._apply_delete(record["ids"])
                else:
                    raise ValueError(f"unknown op {record['op']!r}")
            except (ValueError, KeyError, TypeError) as e:
                raise IndexFormatError(f"{wal}:{n}: corrupt write-ahead log record ({e})") from None

    # ------------------------------------------------------------ flush

    def _maybe_flush(self) -> None:
        if len(self._buffer) >= self.settings.flush_docs or (
            (self._buffer or self._deleted) and time.monotonic() - self._last_flush >= self.settings.flush_seconds
        ):
            self.flush()

    def flush(self) -> None:
        """Make the buffer an on-disk segment (atomic manifest commit), then empty the log."""
        with self._lock:
            if self._buffer or self._deleted:
                self.index.delete(self._deleted)
                self.index.add(doc for doc, _ in self._buffer.values())
                self.index.commit()
                self._buffer = {}
                self._parts, self._where = [], {}
                self._deleted = set()
                while self.index.merge(self.settings.merge):
                    pass
                self._publish()
            with self._sync_lock:
                write_bytes_atomic(self.path / WAL_NAME, b"")
                self._wal.close()
                self._wal = open(self.path / WAL_NAME, "ab")
                self._epoch += 1
                self._appended = self._synced = 0
            self._last_flush = time.monotonic()

    def close(self) -> None:
        self._closed.set()
        self._timer.join()
        self.flush()
        self._wal.close()

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
            if doc_id in self._buffer:
                d = self._buffer[doc_id][0]
                return {"title": d.title, "text": d.text, "metadata": d.metadata}
            if doc_id in self._deleted:
                return None
            return self.index.get(doc_id)

    def search(self, query: str, k: int, filter: dict[str, Any] | None = None,
               fields: Sequence[str] | None = None) -> list[tuple[str, float, dict[str, Any]]]:
        """Top-k ``(id, score, stored fields)``; ``filter`` keeps documents whose metadata has those values.

        ``fields`` names the stored fields to decode (all when ``None``): a
        search that shows titles does not decode every hit's full text.
        """
        wanted = None if fields is None else sorted(set(fields) | ({"metadata"} if filter else set()))
        snap = self._snapshot.inverted
        queries = self.index.encoder.encode_queries([query], snap.stats)
        n = snap.n_docs
        fetch = k if not filter else min(max(k * 10, 100), max(n, 1))
        while True:
            top = snap.search(queries, fetch, threads=1)
            internal, scores = top.row(0)
            hits = []
            for d, s in zip(internal.tolist(), scores.tolist()):
                stored = snap.stored_fields(d, wanted)
                if filter and not _matches(stored.get("metadata") or {}, filter):
                    continue
                hits.append((snap.external_ids(np.array([d]))[0], s, stored))
                if len(hits) == k:
                    return hits
            if not filter or fetch >= n or len(internal) < fetch:
                return hits
            fetch = min(fetch * 4, n)


def _matches(metadata: dict[str, Any], filter: dict[str, Any]) -> bool:
    return all(metadata.get(key) == value for key, value in filter.items())


def _doc_to_json(doc: Document) -> dict[str, Any]:
    return {"_id": doc.doc_id, "title": doc.title, "text": doc.text, "metadata": doc.metadata}


def _doc_from_json(obj: dict[str, Any]) -> Document:
    return Document(obj["_id"], obj.get("title", ""), obj.get("text", ""), obj.get("metadata") or {})
