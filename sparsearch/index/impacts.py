"""BM25 impacts precomputed per segment and snapshot, so exhaustive search scores by one multiply per posting.

A saturating (BM25) contribution is ``q · w / (w + K(d))``: per posting, a
length-norm lookup in a document-indexed array and a division.  Both depend
only on the posting and the snapshot's average length, not on the query, so
once a snapshot has scored enough, sparsearch computes ``w / (w + K(d))`` for
every posting of a segment once (float32, the very operations the kernel
performs: :func:`~sparsearch.index.kernels_topk.saturated_impacts`) and
scores the segment as a dot product with those impacts.  Hits and float32
scores are identical; per query, scoring measured 1.6x faster on SciFact and
1.4x at 10^6 documents (docs/query_speed.md).  bm25s and PISA precompute the
same quantity at index time; sparsearch cannot, because ``avgdl`` (and so
``K(d)``) changes with every added or deleted document, and BM25's scores
must stay those of the current collection (Lucene's definition).

When to build (ski rental): building costs about as much as scoring every
posting of the segment a few times, and a snapshot may serve one query or a
million.  A segment's impacts are built once the postings this snapshot has
scored in it reach ``build_ratio`` times the segment's postings, so a
snapshot that serves little pays little, and a busy one pays the build once
and then saves on every query.  Impacts are reused by later snapshots with
the same statistics, and held within a process-wide byte budget
(``SPARSEARCH_IMPACT_CACHE_MB``, default 2,048; 0 turns them off).
"""

from __future__ import annotations

import logging
import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from sparsearch.scoring import TRANSFORM_LINEAR

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImpactPolicy:
    """When impacts are built and how much memory they may hold (process-wide)."""

    #: Build once a snapshot has scored this many times the segment's postings in it.
    build_ratio: float = 1.0
    #: Bytes all segments' impacts may hold together (4 per posting).
    max_bytes: int = 2048 << 20

    @classmethod
    def from_env(cls) -> "ImpactPolicy":
        raw = os.environ.get("SPARSEARCH_IMPACT_CACHE_MB")
        if raw is None or raw.strip() == "":
            return cls()
        try:
            megabytes = float(raw)
        except ValueError:
            raise ValueError(f"SPARSEARCH_IMPACT_CACHE_MB must be a number of megabytes, got {raw!r}") from None
        if megabytes < 0:
            raise ValueError(f"SPARSEARCH_IMPACT_CACHE_MB must be >= 0, got {raw!r}")
        return cls(max_bytes=int(megabytes * (1 << 20)))


_policy: ImpactPolicy | None = None


def policy() -> ImpactPolicy:
    global _policy
    if _policy is None:
        _policy = ImpactPolicy.from_env()
    return _policy


def set_policy(new: ImpactPolicy | None) -> None:
    """Replace the process-wide policy (``None``: read the environment again); drops every cached impact."""
    global _policy
    _policy = new
    with _lock:
        _cache.clear()


@dataclass(frozen=True)
class SegmentImpacts:
    """One segment's impacts under one snapshot's statistics, as the linear kernels take them."""

    impacts: np.ndarray  # float32, one per posting
    unit_scales: np.ndarray  # float32 ones, one per term
    min_impact: np.float32

    def common(self, common: tuple) -> tuple:
        """The segment's kernel arguments (``_SegmentPlan.common``) with the impacts in place of the raw weights."""
        out = list(common)
        out[2], out[3], out[4] = self.impacts, self.unit_scales, TRANSFORM_LINEAR
        return tuple(out)

    def floors(self) -> tuple[np.float32, float]:
        """``(min_weight, max_kd)`` for the kernels' zero-contribution test: linear scoring has no ``kd``."""
        return self.min_impact, 0.0


# Keyed by the identity of the segment's postings_weights (shared by every view and snapshot of a segment), under a
# weak reference: (ref, statistics key, SegmentImpacts).  One entry per segment: a new snapshot's statistics replace it.
_cache: dict[int, tuple[Any, tuple, SegmentImpacts]] = {}
_lock = threading.Lock()


def _held_bytes(excluding: int) -> int:
    return sum(entry[2].impacts.nbytes for key, entry in _cache.items() if key != excluding)


def held_bytes() -> int:
    """Bytes the impacts of every live segment hold now (for memory reports)."""
    with _lock:
        return _held_bytes(-1)


def statistics_key(common: tuple) -> tuple:
    """What the impacts depend on besides the segment: the norm table and the length parameters."""
    k_table, _norms, k1, b_over_avgdl, one_minus_b, _lengths, exact = common[5:12]
    return (k_table.tobytes(), float(k1), float(b_over_avgdl), float(one_minus_b), bool(exact))


def cached(anchor: np.ndarray, key: tuple) -> SegmentImpacts | None:
    entry = _cache.get(id(anchor))
    if entry is not None and entry[0]() is anchor and entry[1] == key:
        return entry[2]
    return None


def build(common: tuple, key: tuple) -> SegmentImpacts | None:
    """The segment's impacts under ``common``'s statistics (built, or from the cache); ``None`` past the budget."""
    from sparsearch.index import kernels

    offsets, docs, weights, scales, _transform, k_table, norms, k1, b_over_avgdl, one_minus_b, lengths, exact = \
        common[:12]
    anchor = weights
    found = cached(anchor, key)
    if found is not None:
        return found
    need = 4 * len(docs)
    with _lock:
        if need + _held_bytes(id(anchor)) > policy().max_bytes:
            return None
    impacts = kernels.saturated_impacts(offsets, docs, weights, scales, k_table, norms, k1, b_over_avgdl,
                                        one_minus_b, lengths, exact)
    result = SegmentImpacts(impacts, np.ones(len(offsets) - 1, np.float32),
                            impacts.min() if len(impacts) else np.float32(0.0))
    try:
        ref = weakref.ref(anchor, lambda r, k=id(anchor): _forget(k, r))
    except TypeError:
        return result
    with _lock:
        _cache[id(anchor)] = (ref, key, result)
    log.debug("built BM25 impacts for %d postings (%.1f MB)", len(docs), need / 1e6)
    return result


def _forget(key: int, ref: Any) -> None:
    with _lock:
        entry = _cache.get(key)
        if entry is not None and entry[0] is ref:
            del _cache[key]


def postings_of(offsets: np.ndarray, term_ids: np.ndarray) -> int:
    """How many postings the lists of ``term_ids`` hold in a segment (ids past its vocabulary hold none)."""
    ids = term_ids[(term_ids >= 0) & (term_ids < len(offsets) - 1)]
    return int(np.sum(offsets[ids + 1] - offsets[ids])) if len(ids) else 0
