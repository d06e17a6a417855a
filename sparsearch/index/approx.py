"""Search modes beyond exhaustive scoring: exact block-max pruning and approximate search, per segment.

``InvertedIndex.hits(..., mode=...)`` and ``Retriever.search(..., mode=...)`` come here for:

* ``"bmp"``: exact top-k by block-max pruning (:mod:`sparsearch.index.kernels_bmp`):
  the same ids and scores as exhaustive scoring, bit for bit;
* ``"approx"``: a candidate pass over the heaviest query terms and the
  statically pruned, impact-ordered lists, then exact re-scoring of the best
  candidates (:mod:`sparsearch.index.kernels_approx`); recall is traded for
  speed with :class:`ApproxSettings`.

Both need linear scoring (learned sparse, or any dot-product vectors); a BM25
index is searched exhaustively whatever the mode (its block-max path is
another module's).  Deleted documents and filters become one exclusion mask
per segment, checked before a document can take a slot.  Segments are
searched one by one and their ranked lists merged like the exhaustive
path's.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from sparsearch.index.accel import segment_accel
from sparsearch.types import SparseBatch

if TYPE_CHECKING:
    from sparsearch.index.inverted import InvertedIndex, TopK

log = logging.getLogger(__name__)

MODES = ("exact", "bmp", "approx")


@dataclass(frozen=True)
class ApproxSettings:
    """The recall/speed knobs of ``mode="approx"``, per call.

    ``query_terms``: keep only this many query terms, those of largest
    ``q * max weight`` (the query-term cut; ``None`` keeps all).
    ``list_fraction``: read at most ``ceil(list_fraction * n_docs)`` postings of
    each pruned list (heaviest first; ``None`` reads the whole pruned list).
    ``candidates``: how many of the best partial scores are re-scored exactly
    from the forward index (at least ``k`` are).
    """

    query_terms: int | None = 10
    list_fraction: float | None = None
    candidates: int = 100

    def __post_init__(self) -> None:
        for name in ("query_terms", "candidates"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
                raise ValueError(f"{name} must be an integer, got {value!r}")
        if self.query_terms is not None and self.query_terms < 1:
            raise ValueError(f"query_terms must be at least 1 (or None), got {self.query_terms}")
        if self.list_fraction is not None and not 0.0 < self.list_fraction <= 1.0:
            raise ValueError(f"list_fraction must lie in (0, 1] (or be None), got {self.list_fraction}")
        if self.candidates < 1:
            raise ValueError(f"candidates must be at least 1, got {self.candidates}")

    @classmethod
    def exhaustive(cls) -> "ApproxSettings":
        """No cut anywhere: every touched document is a candidate (equals exact; for tests)."""
        return cls(query_terms=None, list_fraction=None, candidates=2**31 - 1)


def check_mode(mode: str, approx: ApproxSettings | None) -> None:
    if mode not in MODES:
        raise ValueError(f"unknown search mode {mode!r} (expected one of {', '.join(MODES)})")
    if approx is not None and not isinstance(approx, ApproxSettings):
        raise TypeError(f"approx must be an ApproxSettings, got {type(approx).__name__}")


def top_k(index: "InvertedIndex", queries: SparseBatch, k: int, parsed: Any, mode: str,
          settings: ApproxSettings | None, threads: int | None, where: str) -> "TopK | None":
    """What ``InvertedIndex.hits`` ranks in ``mode``; None where the exhaustive path answers instead.

    That is a BM25 index (these structures score dot products only) and a
    filter matching nothing (``hits`` answers that without searching).
    """
    from sparsearch.index import filtering

    if index.scoring.transform != "linear":
        log.debug("mode %r needs linear scoring; %s scores %s: searched exhaustively", mode, where,
                  index.scoring.transform)
        return None
    if parsed is None:
        return search(index, queries, k, mode, settings, threads)
    if filtering.matches_nothing(index, parsed, where):
        return None
    return search(index, queries, k, mode, settings, threads, filter_exclusions(index, parsed, where))


def search(index: "InvertedIndex", queries: SparseBatch, k: int, mode: str, settings: ApproxSettings | None,
           threads: int | None = None, excluded: Sequence[np.ndarray | None] | None = None) -> "TopK":
    """Top-``k`` of every query by ``mode`` ("bmp" or "approx") over every segment of ``index``.

    ``excluded``: per segment a uint8 mask of documents that may not be hits
    (deleted or filtered out), or None for the segment's deletion mask.
    """
    from sparsearch.index.inverted import TopK, _merge

    settings = settings or ApproxSettings()
    n_q = len(queries)
    result = None
    for i, (seg, base) in enumerate(zip(index.segments, index.bases[:-1])):
        if seg.n_docs == 0:
            continue
        mask = excluded[i] if excluded is not None else None
        if mask is None:
            mask = seg.deleted if seg.deleted is not None else np.zeros(0, np.uint8)
        elif not mask.any():
            mask = np.zeros(0, np.uint8)
        part = _search_segment(seg, int(base), queries, k, mode, settings, threads, mask)
        result = part if result is None else _merge(result, part, k, False)
    if result is None:
        result = TopK(np.zeros((n_q, k), np.float32), np.zeros((n_q, k), np.int64), np.zeros(n_q, np.int64))
    return result


def _search_segment(seg: Any, base: int, queries: SparseBatch, k: int, mode: str, settings: ApproxSettings,
                    threads: int | None, excluded: np.ndarray) -> "TopK":
    import numba

    from sparsearch.index import kernels_approx, kernels_bmp
    from sparsearch.index.inverted import TopK, _numba_threads

    acc = segment_accel(seg)
    n_q = len(queries)
    bits = np.zeros((n_q, k), np.uint32)
    docs = np.zeros((n_q, k), np.int64)
    counts = np.zeros(n_q, np.int64)
    scales = np.asarray(seg.scales, np.float32)
    n_threads = min(threads or numba.get_num_threads(), numba.config.NUMBA_NUM_THREADS)
    n_par = max(1, min(n_threads, n_q))
    fwd = (acc.fwd_offsets, acc.fwd_terms, acc.fwd_weights)
    if n_q == 1:
        # One query: this thread's reused scratch and the serial kernel (no parallel launch, no O(n_docs) allocation).
        t, w = queries.row(0)
        ws = _workspace(seg.n_docs, acc.n_blocks)
        if mode == "bmp":
            counts[0] = kernels_bmp.bmp_one(t, w, k, scales, acc.bm_offsets, acc.bm_blocks, acc.bm_max,
                                            acc.bm_term_max, acc.block_size, acc.bm_perm, *fwd, excluded, base,
                                            ws.ub[:acc.n_blocks], ws.order, bits[0], docs[0])[0]
        else:
            n_cand, n_keep, list_len = _approx_knobs(settings, seg.n_docs, k)
            counts[0] = kernels_approx.approx_one(
                t, w, k, n_cand, n_keep, list_len, scales, acc.imp_offsets, acc.imp_docs, acc.imp_weights, *fwd,
                excluded, base, ws.acc[:seg.n_docs], ws.touched, ws.hist if seg.n_docs >= ws.radix_min else
                ws.hist[:0], np.empty(len(t), np.bool_), np.empty(n_cand, np.float32),
                np.empty(n_cand, np.int64), bits[0], docs[0])
        return TopK(bits.view(np.float32), docs, counts)
    if mode == "bmp":
        bm = (acc.bm_offsets, acc.bm_blocks, acc.bm_max, acc.bm_term_max, acc.block_size, acc.bm_perm)
        with _numba_threads(n_threads):
            kernels_bmp.bmp_many(queries.offsets, queries.term_ids, queries.weights, k, scales, *bm, *fwd,
                                 excluded, base, acc.n_blocks, n_par, bits, docs, counts)
    else:
        n_cand, n_keep, list_len = _approx_knobs(settings, seg.n_docs, k)
        with _numba_threads(n_threads):
            kernels_approx.approx_many(queries.offsets, queries.term_ids, queries.weights, k, n_cand, n_keep,
                                       list_len, scales, acc.imp_offsets, acc.imp_docs, acc.imp_weights, *fwd,
                                       excluded, base, seg.n_docs, n_par, bits, docs, counts)
    return TopK(bits.view(np.float32), docs, counts)


def _approx_knobs(settings: ApproxSettings, n_docs: int, k: int) -> tuple[int, int, int]:
    """(candidates, query terms kept, postings read per list) of one segment."""
    n_cand = max(k, min(settings.candidates, n_docs))
    n_keep = settings.query_terms if settings.query_terms is not None else 2**31 - 1
    list_len = 2**62 if settings.list_fraction is None else max(1, int(np.ceil(settings.list_fraction * n_docs)))
    return n_cand, n_keep, list_len


class _Workspace:
    """One thread's scratch arrays for single-query searches, grown to the largest segment seen."""

    def __init__(self, n_docs: int, n_blocks: int) -> None:
        from sparsearch.index.kernels_topk import _RADIX_MIN_CANDIDATES, RADIX_BUCKETS

        self.acc = np.zeros(n_docs, np.float32)
        self.touched = np.empty(n_docs + 1, np.int32)
        self.hist = np.zeros(RADIX_BUCKETS, np.int32)
        self.radix_min = _RADIX_MIN_CANDIDATES
        self.ub = np.zeros(n_blocks, np.float32)
        self.order = np.empty(n_blocks, np.int32)

    def fits(self, n_docs: int, n_blocks: int) -> bool:
        return len(self.acc) >= n_docs and len(self.ub) >= n_blocks


_local = threading.local()


def _workspace(n_docs: int, n_blocks: int) -> _Workspace:
    ws = getattr(_local, "ws", None)
    if ws is None or not ws.fits(n_docs, n_blocks):
        old = (0, 0) if ws is None else (len(ws.acc), len(ws.ub))
        ws = _local.ws = _Workspace(max(n_docs, old[0]), max(n_blocks, old[1]))
    return ws


def filter_exclusions(index: "InvertedIndex", parsed: Any, where: str) -> list[np.ndarray | None]:
    """Per segment, the uint8 mask of documents a filter (and the deletion mask) keeps out of the hits."""
    from sparsearch.index.columns import filter_masks

    out: list[np.ndarray | None] = []
    for seg, match in zip(index.segments, filter_masks(index, parsed, where)):
        out.append(np.logical_not(match.as_mask(seg.n_docs)).view(np.uint8))
    return out
