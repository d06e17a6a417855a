"""Writes not yet committed to a generation: buffered documents and deletions of committed ones.

The buffer is searchable as small in-memory segments, one per applied
write, with mutable deletion masks: a write costs O(its own documents), and
the parts are consolidated into one when they pile up.  Each buffered
document also keeps its vector row, so a commit builds its segment without
re-encoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sparsearch.index.config import IndexConfig
from sparsearch.index.formats import SegmentFormat
from sparsearch.types import SparseBatch

MAX_PARTS = 16


@dataclass(frozen=True)
class Buffered:
    """One buffered document: its vector (a one-row batch of the format), stored fields and logged source."""

    row: Any
    stored: dict[str, Any]
    source: dict[str, Any] | None


def row_of(batch: SparseBatch, i: int) -> SparseBatch:
    lo, hi = batch.offsets[i], batch.offsets[i + 1]
    return SparseBatch(np.array([0, hi - lo]), batch.term_ids[lo:hi], batch.weights[lo:hi],
                       None if batch.lengths is None else batch.lengths[i : i + 1],
                       None if batch.text_tokens is None else batch.text_tokens.take([i]))


def last_wins(ids: Sequence[str]) -> list[int]:
    """Positions to keep when an id repeats within one write: the last copy, at its last position."""
    last: dict[str, int] = {}
    for i, doc_id in enumerate(ids):
        last.pop(doc_id, None)
        last[doc_id] = i
    return list(last.values())


class WriteBuffer:
    """Buffered documents and pending deletions of committed documents, in write order."""

    def __init__(self, fmt: SegmentFormat) -> None:
        self.fmt = fmt
        self.docs: dict[str, Buffered] = {}
        self.deleted: set[str] = set()  # committed documents deleted or replaced since the last commit
        self._parts: list[tuple[Any, np.ndarray]] = []
        self._where: dict[str, tuple[int, int]] = {}

    def __bool__(self) -> bool:
        return bool(self.docs or self.deleted)

    def add(self, ids: Sequence[str], vectors: Any, stored: Sequence[dict[str, Any]],
            sources: Sequence[dict[str, Any] | None], part: Any, committed: dict[str, Any],
            n_terms: int, config: IndexConfig) -> None:
        """Buffer documents (unique ids, in order) whose segment ``part`` is already built."""
        if not ids:
            return
        for i, doc_id in enumerate(ids):
            self._drop(doc_id)  # re-adding moves it to the end, as a fresh build would order it
            self.docs[doc_id] = Buffered(self.fmt.take(vectors, [i]), stored[i], sources[i])
            if doc_id in committed:
                self.deleted.add(doc_id)
        position = len(self._parts)
        self._parts.append((part, np.zeros(len(ids), np.uint8)))
        for local, doc_id in enumerate(ids):
            self._where[doc_id] = (position, local)
        if len(self._parts) > MAX_PARTS:
            self._consolidate(n_terms, config)

    def delete(self, ids: Sequence[str], committed: dict[str, Any]) -> None:
        for doc_id in ids:
            self._drop(doc_id)
            if doc_id in committed:
                self.deleted.add(doc_id)

    def _drop(self, doc_id: str) -> None:
        if self.docs.pop(doc_id, None) is not None:
            part, local = self._where.pop(doc_id)
            self._parts[part][1][local] = 1

    def _consolidate(self, n_terms: int, config: IndexConfig) -> None:
        """Rebuild the parts as one segment (from the kept vectors, no re-encoding)."""
        self._parts, self._where = [], {}
        if self.docs:
            segment = self.segment(n_terms, config)
            self._parts.append((segment, np.zeros(segment.n_docs, np.uint8)))
            self._where = {doc_id: (0, i) for i, doc_id in enumerate(self.docs)}

    def segment(self, n_terms: int, config: IndexConfig) -> Any:
        """All buffered documents as one segment, in write order."""
        vectors = self.fmt.concatenate([b.row for b in self.docs.values()])
        return self.fmt.build(list(self.docs), vectors, [b.stored for b in self.docs.values()], n_terms, config)

    def part_segments(self) -> list[Any]:
        """The parts with a copy of their current masks: what a snapshot publishes."""
        return [part.with_deletes(mask.copy() if mask.any() else None) for part, mask in self._parts]

    def clear(self) -> None:
        self.docs, self.deleted, self._parts, self._where = {}, set(), [], {}
