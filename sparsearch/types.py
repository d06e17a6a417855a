"""Core value types shared by every encoder, index and evaluator.

A batch of sparse vectors travels as three flat arrays (CSR by row) rather
than a list of dicts: Numba kernels consume them without conversion, and a
million documents cost three allocations instead of a million.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
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


@dataclass(frozen=True, eq=False)
class TokenSets:
    """Per row, a set of token ids, ascending and distinct (CSR: row ``i`` is ``ids[offsets[i]:offsets[i+1]]``).

    What an index keeps of each document's *text* when an encoder weights
    query tokens by the indexed texts' document frequencies (inference-free
    models with collection IDF): the postings hold learned expansion terms,
    not the text's tokens, so those frequencies cannot come from postings.
    Sets rather than counts: document frequency is all that is asked of them.
    """

    offsets: np.ndarray  # uint32, or int64 past 2^32 entries [n_rows + 1]
    ids: np.ndarray  # uint16 while token ids fit, else uint32 [offsets[-1]]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @classmethod
    def from_rows(cls, rows: Sequence[np.ndarray | Sequence[int]], n_terms: int | None = None) -> "TokenSets":
        """Sets from per-row ids in any order and with repeats (each row is sorted and deduplicated)."""
        sets = [np.unique(np.asarray(r, np.int64)) for r in rows]
        offsets = np.zeros(len(sets) + 1, np.int64)
        np.cumsum([len(r) for r in sets], out=offsets[1:])
        flat = np.concatenate(sets) if sets else np.zeros(0, np.int64)
        return cls.packed(offsets, flat, n_terms)

    @classmethod
    def packed(cls, offsets: np.ndarray, ids: np.ndarray, n_terms: int | None = None) -> "TokenSets":
        """Offsets and ids (already sorted and distinct per row) in the narrowest dtypes that hold them."""
        offsets = np.asarray(offsets, np.int64)
        ids = np.asarray(ids)
        if len(ids) and int(ids.min()) < 0:
            raise ValueError("token ids must be >= 0")
        top = int(n_terms) if n_terms is not None else (int(ids.max()) + 1 if len(ids) else 0)
        if len(ids) and int(ids.max()) >= top:
            raise ValueError(f"token ids must lie in [0, {top})")
        return cls(_narrow_offsets(offsets), ids.astype(np.uint16 if top <= 2**16 else np.uint32))

    @classmethod
    def empty(cls, n_rows: int = 0) -> "TokenSets":
        return cls(np.zeros(n_rows + 1, np.uint32), np.zeros(0, np.uint16))

    def row(self, i: int) -> np.ndarray:
        return self.ids[int(self.offsets[i]) : int(self.offsets[i + 1])]

    def take(self, rows: np.ndarray | Sequence[int]) -> "TokenSets":
        """The given rows, in that order."""
        rows = np.asarray(rows, np.int64)
        starts = np.asarray(self.offsets, np.int64)[rows]
        sizes = np.asarray(self.offsets, np.int64)[rows + 1] - starts
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum(sizes, out=offsets[1:])
        return TokenSets(_narrow_offsets(offsets), self.ids[_gather(starts, sizes, offsets)])

    @classmethod
    def concatenate(cls, parts: Sequence["TokenSets"]) -> "TokenSets":
        if not parts:
            return cls.empty()
        shift = np.cumsum([0] + [int(p.offsets[-1]) for p in parts[:-1]])
        offsets = np.concatenate([[0]] + [np.asarray(p.offsets[1:], np.int64) + s for p, s in zip(parts, shift)])
        return cls(_narrow_offsets(offsets), np.concatenate([p.ids for p in parts]))

    @cached_property
    def _counts(self) -> np.ndarray:
        # Rows per token over every row; computed once and shared by every view of a segment.
        return np.bincount(self.ids).astype(np.int64) if len(self.ids) else np.zeros(0, np.int64)

    def doc_freq(self, deleted: np.ndarray | None = None) -> np.ndarray:
        """Rows holding each token id (array as long as the largest id + 1), rows where ``deleted`` is 1 excluded.

        The count over every row is cached; a deletion mask subtracts its
        deleted rows' tokens, so a snapshot pays for its deletes, not its size.
        """
        counts = self._counts
        if deleted is None:
            return counts
        gone = np.flatnonzero(np.asarray(deleted))
        if not len(gone):
            return counts
        removed = self.take(gone).ids
        return counts - np.bincount(removed, minlength=len(counts)).astype(np.int64)


def _narrow_offsets(offsets: np.ndarray) -> np.ndarray:
    offsets = np.asarray(offsets, np.int64)
    return offsets.astype(np.uint32) if offsets[-1] < 2**32 else offsets


def _gather(starts: np.ndarray, sizes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Flat positions of the slices ``[starts[i], starts[i] + sizes[i])``, in order (``offsets``: their cumsum)."""
    total = int(offsets[-1])
    if total == 0:
        return np.zeros(0, np.int64)
    return np.repeat(starts - offsets[:-1], sizes) + np.arange(total, dtype=np.int64)


@dataclass
class SparseBatch:
    """Rows of sparse vectors: row ``i`` is ``term_ids[offsets[i]:offsets[i+1]]`` with ``weights``.

    Term ids are unique within a row.  ``lengths`` is an optional per-row
    statistic (BM25's document length in tokens); encoders that have no notion
    of length leave it ``None``.  ``text_tokens``, optional too, are each
    document's distinct text token ids, kept by the index beside (never in)
    the postings when an encoder's query weights need the indexed texts'
    document frequencies (:class:`TokenSets`).
    """

    offsets: np.ndarray
    term_ids: np.ndarray
    weights: np.ndarray
    lengths: np.ndarray | None = None
    text_tokens: TokenSets | None = None

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
        if self.text_tokens is not None and len(self.text_tokens) != len(self):
            raise ValueError("text_tokens must have one row per row")

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def row(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        lo, hi = self.offsets[i], self.offsets[i + 1]
        return self.term_ids[lo:hi], self.weights[lo:hi]

    def with_text_tokens(self, text_tokens: TokenSets | None) -> "SparseBatch":
        """The same rows carrying ``text_tokens`` (arrays shared, not copied)."""
        return SparseBatch(self.offsets, self.term_ids, self.weights, self.lengths, text_tokens)

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
        text_tokens = None
        with_tokens = sum(b.text_tokens is not None for b in batches)
        if with_tokens == len(batches):
            text_tokens = TokenSets.concatenate([b.text_tokens for b in batches])  # type: ignore[misc]
        elif with_tokens:
            # Dropping them would leave an index's text statistics silently short of these documents.
            raise ValueError("cannot concatenate batches with and without text_tokens")
        return cls(
            offsets,
            np.concatenate([b.term_ids for b in batches]),
            np.concatenate([b.weights for b in batches]),
            lengths,
            text_tokens,
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
    #: Live documents counted by :attr:`text_doc_freq` (every live document, when that is not ``None``).
    text_n_docs: int = 0
    #: Per token id, the live documents whose *text* holds it (the documents' :class:`TokenSets`):
    #: collection IDF of inference-free queries.  ``None`` when some live document was indexed
    #: without its text tokens (every document of an index built without the option).
    text_doc_freq: np.ndarray | None = None

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
