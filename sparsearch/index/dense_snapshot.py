"""``DenseSnapshot``: an immutable reader over dense segments, exact or approximate top-k by inner product.

Internal ids are global, as in :class:`~sparsearch.index.inverted.InvertedIndex`:
segment ``i`` covers ``[bases[i], bases[i+1])``, and ties are broken by the
lower internal id everywhere.  Per segment, a search ranks only the rows it
may return (live, and matching the filter), never over-fetching and
dropping: an exact search masks or gathers those rows, an approximate one
hands them to faiss as an ``IDSelectorBitmap``.  Each segment's top-k are
then merged.

Exact search (flat segments, small ones, the in-memory buffer, selective
filters) is faiss's SIMD scan for up to :data:`FAISS_MAX_QUERIES` queries
and a NumPy matrix product (BLAS) for more, whichever measured faster
(faiss 1.15, OpenBLAS, one thread, 200,000 x 384: one query 42 ms against
52 ms; 8 queries 39 against 24 ms each; 64 queries 41 against 7.7).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Sequence, cast

import numpy as np

from sparsearch.errors import InputError
from sparsearch.index.config import IndexConfig
from sparsearch.index.dense_ann import bitmap, knn_exact, omp_threads
from sparsearch.index.dense_segment import DenseSegment
from sparsearch.index.dense_settings import DenseIndexSettings
from sparsearch.index.documents import SegmentDocuments
from sparsearch.index.manifest import Manifest
from sparsearch.scoring import Scoring
from sparsearch.types import CollectionStats, Hits

#: Up to this many queries an exact scan goes through faiss (SIMD, one query at a time); more take BLAS.
FAISS_MAX_QUERIES = 3
#: An exact search over at most this share of a segment's rows copies them out rather than masking the rest.
GATHER_FRACTION = 0.25
#: Scores held at once by a batched exact search (queries x rows): 64 MiB of float32.
BLOCK_SCORES = 1 << 24
#: Filters whose per-segment selections are kept per snapshot.
PLAN_CACHE = 32


@dataclass
class Allowed:
    """The rows of one segment a search may return: all of them, a mask, or (few) ascending ids."""

    count: int
    mask: np.ndarray | None = None  # bool [n_docs]
    rows: np.ndarray | None = None  # int64, ascending, unique
    _bits: np.ndarray | None = None

    @property
    def everything(self) -> bool:
        return self.mask is None and self.rows is None

    def as_mask(self, n: int) -> np.ndarray | None:
        if self.mask is None and self.rows is not None:
            self.mask = np.zeros(n, bool)
            self.mask[self.rows] = True
        return self.mask

    def bits(self, n: int) -> np.ndarray | None:
        """The selection as faiss's bitmap (``None``: every row)."""
        if self._bits is None and not self.everything:
            self._bits = bitmap(self.as_mask(n))  # type: ignore[arg-type]
        return self._bits


@dataclass
class Ranked:
    """Per query, up to ``k`` (score, id) pairs, best first: row ``q`` holds ``counts[q]`` valid entries."""

    scores: np.ndarray  # float32 [m, k]
    ids: np.ndarray  # int64 [m, k]
    counts: np.ndarray  # int64 [m]

    @classmethod
    def empty(cls, m: int, k: int) -> "Ranked":
        return cls(np.zeros((m, k), np.float32), np.full((m, k), -1, np.int64), np.zeros(m, np.int64))

    def put(self, q: int, scores: np.ndarray, ids: np.ndarray) -> None:
        """Row ``q`` := the best of (scores, ids), ties by lower id."""
        order = np.lexsort((ids, -scores))[: self.scores.shape[1]]
        n = len(order)
        self.scores[q, :n], self.ids[q, :n], self.counts[q] = scores[order], ids[order], n

    def row(self, q: int) -> tuple[np.ndarray, np.ndarray]:
        n = int(self.counts[q])
        return self.scores[q, :n], self.ids[q, :n]


class DenseSnapshot(SegmentDocuments):
    """An immutable view of dense segments (implements ``IndexSnapshot``)."""

    def __init__(self, segments: Sequence[DenseSegment], scoring: Scoring, config: IndexConfig,
                 settings: DenseIndexSettings, manifest: Manifest | None = None, dim: int | None = None) -> None:
        self.segments = list(segments)
        self._dim = next((s.dim for s in self.segments if s.n_docs), dim)
        self.scoring = scoring
        self.config = config
        self.settings = settings
        self.manifest = manifest
        self.bases = np.zeros(len(self.segments) + 1, np.int64)
        np.cumsum([s.n_docs for s in self.segments], out=self.bases[1:])
        self._live: list[Allowed] | None = None
        self._plans: OrderedDict[Any, list[Allowed]] = OrderedDict()
        self._lock = threading.Lock()
        self._id_table: list[str] | None = None

    # ------------------------------------------------------------ statistics

    @property
    def id_space(self) -> int:
        """Internal ids in use, deleted documents included."""
        return int(self.bases[-1])

    @property
    def n_docs(self) -> int:
        """Live documents."""
        return sum(a.count for a in self._live_rows())

    @property
    def dim(self) -> int | None:
        """The vector dimension (``None``: nothing indexed yet, any query is accepted and finds nothing)."""
        return self._dim

    @property
    def stats(self) -> CollectionStats:
        """Live documents only: dense encoders use no term statistics."""
        return CollectionStats(n_docs=self.n_docs, total_length=0.0, doc_freq=np.zeros(0, np.int64))

    def _live_rows(self) -> list[Allowed]:
        if self._live is None:
            self._live = [Allowed(s.n_docs) if s.deleted is None else
                          Allowed(int(np.count_nonzero(m)), m) for s in self.segments for m in [s.live_mask()]]
        return self._live

    # ------------------------------------------------------------ search

    def hits(self, queries: Any, k: int, filter: Any = None, threads: int | None = None,
             where: str = "this index", *, ef_search: int | None = None, nprobe: int | None = None,
             exact: bool = False) -> list[Hits]:
        """Top-``k`` per query row (an ``(m, dim)`` matrix) by inner product, among documents matching ``filter``.

        ``k`` is clamped to the collection.  ``ef_search`` / ``nprobe``
        override the index's settings for this search; ``exact`` ignores the
        approximate structures (the reference an approximate search is measured against).
        """
        ranked = self.search(queries, k, filter, threads, where, ef_search=ef_search, nprobe=nprobe, exact=exact)
        return [Hits(None, s, i, self.resolve_ids, self.stored_fields)
                for s, i in (ranked.row(q) for q in range(len(ranked.counts)))]

    def search(self, queries: Any, k: int, filter: Any = None, threads: int | None = None,
               where: str = "this index", *, ef_search: int | None = None, nprobe: int | None = None,
               exact: bool = False) -> Ranked:
        """What :meth:`hits` returns, as arrays of internal ids."""
        from sparsearch.filters import parse_filter

        parsed = parse_filter(filter)
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        q = self._queries(queries)
        top_k = min(int(k), max(self.n_docs, 1))
        out = Ranked.empty(len(q), top_k)
        allowed = self._live_rows() if parsed is None else self._filtered(parsed, where)
        parts = []
        for seg, base, rows in zip(self.segments, self.bases[:-1].tolist(), allowed):
            if rows.count and len(q):
                part = self._search_segment(seg, rows, q, top_k, threads, ef_search, nprobe, exact)
                part.ids += np.where(part.ids >= 0, base, 0)
                parts.append(part)
        if len(parts) == 1:
            return parts[0]
        for i in range(len(q) if parts else 0):
            rows_q = [p.row(i) for p in parts]
            out.put(i, np.concatenate([r[0] for r in rows_q]), np.concatenate([r[1] for r in rows_q]))
        return out

    def _queries(self, queries: Any) -> np.ndarray:
        try:
            q = np.ascontiguousarray(queries, dtype=np.float32)
        except (TypeError, ValueError) as e:
            raise InputError(f"dense queries must be a matrix of numbers ({e})") from None
        if q.ndim != 2:
            raise InputError(f"dense queries must be a 2-d array (queries x dimensions), got shape {q.shape}")
        if self.dim is not None and q.shape[1] != self.dim:
            raise InputError(f"queries have {q.shape[1]} dimensions; this index holds {self.dim}")
        if not np.isfinite(q).all():
            raise InputError("dense queries must be finite (a query holds NaN or infinity)")
        return q

    def _filtered(self, flt: Any, where: str) -> list[Allowed]:
        """Per segment, the live rows ``flt`` matches (evaluated on the stored metadata's column index; cached)."""
        from sparsearch.filters import cache_key
        from sparsearch.index.columns import filter_masks

        try:
            key: Any = cache_key(flt)
        except TypeError:  # a flat filter holding values JSON cannot write: evaluated every time
            key = None
        with self._lock:
            found = self._plans.get(key) if key is not None else None
            if found is not None:
                self._plans.move_to_end(key)
                return found
        plan = []
        for match in filter_masks(cast(Any, self), flt, where):
            if match.ids is not None:
                rows = np.unique(match.ids).astype(np.int64)
                plan.append(Allowed(len(rows), rows=rows))
            else:
                plan.append(Allowed(match.count, mask=match.mask))
        if key is not None:
            with self._lock:
                self._plans[key] = plan
                while len(self._plans) > PLAN_CACHE:
                    self._plans.popitem(last=False)
        return plan

    def _search_segment(self, seg: DenseSegment, allowed: Allowed, q: np.ndarray, k: int, threads: int | None,
                        ef_search: int | None, nprobe: int | None, exact: bool) -> Ranked:
        st = self.settings
        k = min(k, allowed.count)
        ann = seg.ann
        use_ann = (ann is not None and not exact and allowed.count >= st.ann_min_docs
                   and (allowed.everything or allowed.count > st.filter_exact_fraction * seg.n_docs))
        with omp_threads(threads):
            if not use_ann:
                return exact_search(q, seg.vectors, k, allowed)
            assert ann is not None
            wanted = min(k * st.rerank_factor if ann.compressed and st.rerank else k, allowed.count)
            scores, ids = ann.search(q, wanted, allowed.bits(seg.n_docs), ef_search or st.ef_search,
                                     nprobe or st.ivf_nprobe)
        out = Ranked.empty(len(q), k)
        for i in range(len(q)):
            found = ids[i] >= 0
            if st.rerank:  # rescored from the full vectors: a document's score is the same on every path
                rows = np.unique(ids[i][found])
                out.put(i, np.asarray(seg.vectors[rows] @ q[i], np.float32), rows)
            else:
                out.put(i, scores[i][found], ids[i][found])
        return out


# ------------------------------------------------------------------ exact search


def exact_search(q: np.ndarray, x: np.ndarray, k: int, allowed: Allowed) -> Ranked:
    """Exact top-``k`` inner products of each query among the ``allowed`` rows of ``x`` (``k <= allowed.count``)."""
    n = len(x)
    if allowed.rows is not None and len(allowed.rows) <= GATHER_FRACTION * n:
        rows = allowed.rows
        scores, cols = top_k_rows(q @ np.asarray(x[rows]).T, k)
        return Ranked(scores, rows[cols], np.full(len(q), scores.shape[1], np.int64))
    if len(q) <= FAISS_MAX_QUERIES:
        return _exact_faiss(q, x, k, allowed)
    dead = None if allowed.everything else ~allowed.as_mask(n)  # type: ignore[operator]
    out = Ranked.empty(len(q), k)
    block = max(1, BLOCK_SCORES // max(n, 1))
    for lo in range(0, len(q), block):
        s = q[lo: lo + block] @ x.T
        if dead is not None:
            s[:, dead] = -np.inf
        out.scores[lo: lo + block], out.ids[lo: lo + block] = top_k_rows(s, k)
    out.counts[:] = k
    return out


def _exact_faiss(q: np.ndarray, x: np.ndarray, k: int, allowed: Allowed) -> Ranked:
    """faiss's scan, fetching one more than ``k`` to see a tie at the cut; such a query is redone in NumPy."""
    wanted = min(k + 1, allowed.count)
    scores, ids = knn_exact(q, x, wanted, allowed.bits(len(x)))
    out = Ranked.empty(len(q), k)
    for i in range(len(q)):
        if wanted > k and scores[i, k - 1] == scores[i, k]:  # which tied row makes the cut depends on the ids
            s = q[i: i + 1] @ x.T
            if not allowed.everything:
                s[:, ~allowed.as_mask(len(x))] = -np.inf  # type: ignore[operator]
            top_s, top_i = top_k_rows(s, k)
            out.put(i, top_s[0], top_i[0])
        else:
            out.put(i, scores[i, :k], ids[i, :k])
    return out


def top_k_rows(s: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a score matrix, the columns of the ``k`` highest scores, best first, ties by lower column.

    ``argpartition`` picks an arbitrary subset of values tied at the cut, so
    a row with more than ``k`` scores at or above its ``k``-th is settled
    among all of them.
    """
    m, c = s.shape
    k = min(k, c)
    if k == 0:
        return np.zeros((m, 0), np.float32), np.zeros((m, 0), np.int64)
    part = np.argpartition(s, c - k, axis=1)[:, c - k:] if k < c else np.tile(np.arange(c), (m, 1))
    top = np.take_along_axis(s, part, axis=1)
    kth = top.min(axis=1)
    out_s, out_i = np.empty((m, k), np.float32), np.empty((m, k), np.int64)
    tied = np.count_nonzero(s >= kth[:, None], axis=1) > k if k < c else np.zeros(m, bool)
    for i in range(m):
        cols = np.flatnonzero(s[i] >= kth[i]) if tied[i] else part[i]
        order = np.lexsort((cols, -s[i, cols]))[:k]
        out_s[i], out_i[i] = s[i, cols[order]], cols[order]
    return out_s, out_i
