"""Core value types shared by every encoder, index and evaluator.

A batch of sparse vectors travels as three flat arrays (CSR by row) rather
than a list of dicts: Numba kernels consume them without conversion, and a
million documents cost three allocations instead of a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Sequence

import numpy as np

TERM_DTYPE = np.int32
WEIGHT_DTYPE = np.float32
OFFSET_DTYPE = np.int64


def compact_offsets(offsets: np.ndarray, keep: np.ndarray) -> np.ndarray:
    """Row offsets after dropping the flat entries where ``keep`` is False."""
    kept_before = np.concatenate([[0], np.cumsum(keep, dtype=OFFSET_DTYPE)])
    return kept_before[offsets]


@dataclass(frozen=True)
class Document:
    """One corpus record, in BEIR's field names (``_id`` becomes ``doc_id``)."""

    doc_id: str
    title: str = ""
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def contents(self) -> str:
        """The text BEIR baselines index: ``title + " " + text`` (Pyserini's "flat" field)."""
        if not self.title:
            return self.text
        return f"{self.title} {self.text}"


@dataclass
class SparseBatch:
    """Rows of sparse vectors: row ``i`` is ``term_ids[offsets[i]:offsets[i+1]]`` with ``weights``.

    Term ids are unique within a row.  ``lengths`` is an optional per-row
    statistic (BM25's document length in tokens); encoders that have no notion
    of length leave it ``None``.
    """

    offsets: np.ndarray
    term_ids: np.ndarray
    weights: np.ndarray
    lengths: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.offsets = np.ascontiguousarray(self.offsets, dtype=OFFSET_DTYPE)
        self.term_ids = np.ascontiguousarray(self.term_ids, dtype=TERM_DTYPE)
        self.weights = np.ascontiguousarray(self.weights, dtype=WEIGHT_DTYPE)
        if self.lengths is not None:
            self.lengths = np.ascontiguousarray(self.lengths, dtype=np.float32)
        if self.offsets.ndim != 1 or len(self.offsets) == 0 or self.offsets[0] != 0:
            raise ValueError("offsets must be a 1-d array starting at 0")
        if self.offsets[-1] != len(self.term_ids) or len(self.term_ids) != len(self.weights):
            raise ValueError("offsets[-1], term_ids and weights disagree in length")
        if self.lengths is not None and len(self.lengths) != len(self):
            raise ValueError("lengths must have one entry per row")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.term_ids[lo:hi], self.weights[lo:hi]

    def rows(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        for i in range(len(self)):
            yield self.row(i)

    @classmethod
    def empty(cls) -> "SparseBatch":
        return cls(np.zeros(1, OFFSET_DTYPE), np.zeros(0, TERM_DTYPE), np.zeros(0, WEIGHT_DTYPE))

    @classmethod
    def from_dicts(cls, rows: Sequence[dict[int, float]], lengths: Sequence[float] | None = None) -> "SparseBatch":
        """Build from ``{term_id: weight}`` dicts; convenient for tests and small callers."""
        offsets = np.zeros(len(rows) + 1, OFFSET_DTYPE)
        for i, r in enumerate(rows):
            offsets[i + 1] = offsets[i] + len(r)
        term_ids = np.fromiter((t for r in rows for t in r), TERM_DTYPE, count=int(offsets[-1]))
        weights = np.fromiter((w for r in rows for w in r.values()), WEIGHT_DTYPE, count=int(offsets[-1]))
        return cls(offsets, term_ids, weights, None if lengths is None else np.asarray(lengths, np.float32))

    @classmethod
    def concatenate(cls, batches: Sequence["SparseBatch"]) -> "SparseBatch":
        if not batches:
            return cls.empty()
        sizes = [b.offsets[1:] for b in batches]
        shift = np.cumsum([0] + [int(b.offsets[-1]) for b in batches[:-1]])
        offsets = np.concatenate([[0]] + [s + sh for s, sh in zip(sizes, shift)])
        lengths = None
        if all(b.lengths is not None for b in batches):
            lengths = np.concatenate([b.lengths for b in batches])  # type: ignore[misc]
        return cls(
            offsets,
            np.concatenate([b.term_ids for b in batches]),
            np.concatenate([b.weights for b in batches]),
            lengths,
        )


@dataclass(frozen=True)
class CollectionStats:
    """Collection-wide statistics over the live documents of every segment.

    Kept global (never per segment) so that a score does not depend on how
    the documents happen to be split into segments, as in Lucene.
    ``n_docs`` counts documents with at least one term, which is Lucene's
    ``docCount`` and the ``N`` of its BM25 IDF.
    """

    n_docs: int
    total_length: float
    doc_freq: np.ndarray

    @property
    def avg_length(self) -> float:
        return self.total_length / self.n_docs if self.n_docs else 0.0


class Hits:
    """The ranked answer to one query: external ids, best first, with their scores.

    External ids are resolved on first access: a caller that only reads the
    top few, or only internal ids, does not pay for turning 1,000 ids into
    strings.
    """

    __slots__ = ("_ids", "_resolve", "_fetch", "scores", "internal_ids")

    def __init__(
        self,
        ids: list[str] | None,
        scores: np.ndarray,
        internal_ids: np.ndarray | None = None,
        resolve: Callable[[np.ndarray], list[str]] | None = None,
        fetch: Callable[[int, Sequence[str] | None], dict[str, Any]] | None = None,
    ) -> None:
        if ids is None and (internal_ids is None or resolve is None):
            raise ValueError("Hits needs ids, or internal ids and a resolver")
        self._ids = ids
        self._resolve = resolve
        self._fetch = fetch
        self.scores = scores
        self.internal_ids = internal_ids

    @property
    def ids(self) -> list[str]:
        if self._ids is None:
            assert self.internal_ids is not None and self._resolve is not None
            self._ids = self._resolve(self.internal_ids)
        return self._ids

    def __len__(self) -> int:
        return len(self.scores)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Hits) and self.ids == other.ids and np.array_equal(self.scores, other.scores)

    def __repr__(self) -> str:
        return f"Hits(ids={self.ids[:5]}{'...' if len(self) > 5 else ''}, n={len(self)})"

    def fields(self, i: int, names: Sequence[str] | None = None) -> dict[str, Any]:
        """Stored fields of the ``i``-th hit (``names``: only those, so a title list does not decode texts)."""
        if self._fetch is None or self.internal_ids is None:
            raise ValueError("these hits carry no stored fields")
        return self._fetch(int(self.internal_ids[i]), names)

    def __iter__(self) -> Iterator[tuple[str, float]]:
        return iter(zip(self.ids, self.scores.tolist()))

    def as_dict(self) -> dict[str, float]:
        return {d: float(s) for d, s in zip(self.ids, self.scores)}
