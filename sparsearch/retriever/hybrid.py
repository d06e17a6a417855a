"""``HybridRetriever``: several retrievers over the same documents, fused; optionally with PRF.

Each part (BM25, learned sparse, dense) is an ordinary
:class:`~sparsearch.retriever.retriever.Retriever`; the hybrid asks each for
its top ``depth`` and fuses the rankings (:mod:`sparsearch.retriever.fusion`).
With pseudo-relevance feedback it follows Li et al. (2022, "To Interpolate
or not to Interpolate: PRF, Dense and Sparse Retrievers"): the feedback
documents are the top of the *fused* ranking, BM25 parts are expanded with
RM3 and dense parts moved with Rocchio toward those documents, each part
searches again, and the second rankings are fused once more.
"""

from __future__ import annotations

import logging
import threading
import weakref
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import numpy as np

from sparsearch.protocols import SparseEncoder
from sparsearch.retriever.fusion import FusionConfig, fuse_batch
from sparsearch.retriever.prf import RM3Config, rocchio
from sparsearch.types import Document, Hits

log = logging.getLogger(__name__)

Prf = Literal["none", "rm3", "rocchio", "both"]


@dataclass(frozen=True)
class HybridSettings:
    """How the parts are fused and fed back.

    ``depth``: candidates asked of each part (and fused).  ``prf``: which
    parts get feedback — ``rm3`` the BM25 parts, ``rocchio`` the dense parts,
    ``both``; the parts without feedback keep their first ranking in the
    second fusion.  ``fb_docs``: feedback documents taken from the fused
    ranking.  Defaults (3 feedback documents, RM3's query weight 0.5,
    Rocchio α 0.7 / β 0.3) were chosen on training queries only (SciFact
    train + NFCorpus dev, ``benchmarks/prf_select.py``) over a grid fixed
    beforehand; the first untuned guess (10 documents, Rocchio 0.4 / 0.6)
    lost to no feedback at all (docs/dense_hybrid.md).
    """

    fusion: FusionConfig = field(default_factory=FusionConfig)
    depth: int = 1000
    prf: Prf = "none"
    fb_docs: int = 3
    rm3: RM3Config = field(default_factory=lambda: RM3Config(fb_docs=3))
    rocchio_alpha: float = 0.7
    rocchio_beta: float = 0.3

    def __post_init__(self) -> None:
        if self.depth < 1 or self.fb_docs < 1:
            raise ValueError(f"depth and fb_docs must be at least 1, got {self.depth} and {self.fb_docs}")
        if self.prf not in ("none", "rm3", "rocchio", "both"):
            raise ValueError(f"unknown prf {self.prf!r} (none, rm3, rocchio or both)")


def is_dense(retriever: Any) -> bool:
    return not isinstance(retriever.encoder, SparseEncoder)


def encoder_is_bm25(encoder: Any) -> bool:
    """BM25-like: a sparse encoder whose scoring saturates term frequencies (RM3 applies to it)."""
    return isinstance(encoder, SparseEncoder) and encoder.scoring.transform == "saturate"


def is_bm25(retriever: Any) -> bool:
    return encoder_is_bm25(retriever.encoder)


class HybridRetriever:
    """Fused search over ``parts`` (retrievers over the same document ids)."""

    def __init__(self, parts: Sequence[Any], settings: HybridSettings = HybridSettings(),
                 text_of: Callable[[str], Document | None] | None = None) -> None:
        if len(parts) < 1:
            raise ValueError("a hybrid needs at least one part")
        self.parts = list(parts)
        self.settings = settings
        self.text_of = text_of  # documents' text for RM3 (an index need not store it)
        if settings.prf in ("rm3", "both") and any(is_bm25(p) for p in parts) and text_of is None:
            raise ValueError("RM3 re-encodes the feedback documents: give text_of (doc id -> Document)")

    def search(self, query: str, k: int = 10, filter: Any = None) -> Hits:
        return self.search_batch([query], k, filter=filter)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, threads: int | None = None,
                     filter: Any = None) -> list[Hits]:
        """Fused top-``k``; ``filter`` (:mod:`sparsearch.filters`) restricts every part's searches, PRF's too.

        One part with feedback: its own ranking (raw scores) chooses and
        weighs the feedback documents, as a PRF run over one retriever does,
        and the second ranking is returned as it is.
        """
        from sparsearch.filters import parse_filter

        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        s = self.settings
        parsed = parse_filter(filter)
        depth = max(s.depth, k)
        first = [p.search_batch(queries, depth, threads=threads, filter=parsed) for p in self.parts]
        single = len(self.parts) == 1
        fused = first[0] if single else fuse_batch(first, s.fusion, k=depth)
        if s.prf == "none":
            return [_top(h, k) for h in fused]
        feedback = [h.ids[: s.fb_docs] for h in fused]
        second = []
        for part, run in zip(self.parts, first):
            if s.prf in ("rm3", "both") and is_bm25(part):
                second.append(self._rm3(part, queries, feedback, fused, depth, threads, parsed))
            elif s.prf in ("rocchio", "both") and is_dense(part):
                second.append(self._rocchio(part, queries, feedback, depth, threads, parsed))
            else:
                second.append(run)
        final = second[0] if single else fuse_batch(second, s.fusion, k=depth)
        return [_top(h, k) for h in final]

    def _rm3(self, part: Any, queries: Sequence[str], feedback: list[list[str]], fused: list[Hits], depth: int,
             threads: int | None, parsed: Any = None) -> list[Hits]:
        """RM3 over ``part`` with feedback documents (and their weights) from the fused ranking."""
        from sparsearch.retriever.prf import bm25_query_batch, expand_with_feedback

        snap = part.snapshot
        # Feedback weights are the fused scores; z-score fusion can make them negative, and RM3
        # weighs documents by non-negative scores: shift those rankings so their lowest is ~0.
        weights = []
        for h in fused:
            w = np.asarray(h.scores[: self.settings.fb_docs], np.float64)
            weights.append(w - w.min() + 1e-6 if len(w) and w.min() < 0 else w)
        assert self.text_of is not None
        expanded = expand_with_feedback(part, queries, feedback, weights, self.text_of, self.settings.rm3, snap)
        return snap.hits(bm25_query_batch(expanded, snap.stats), depth, parsed, threads=threads)

    def _rocchio(self, part: Any, queries: Sequence[str], feedback: list[list[str]], depth: int,
                 threads: int | None, parsed: Any = None) -> list[Hits]:
        """Rocchio over a dense ``part``: queries moved toward the fused ranking's top documents."""
        snap = part.snapshot
        q = part.encode_queries(queries, snap)
        where = rows_of(snap)
        vectors = []
        for ids in feedback:
            rows = [snap.segments[where[d][0]].vectors[where[d][1]] for d in ids if d in where]
            vectors.append(np.asarray(rows, np.float32).reshape(len(rows), q.shape[1]))
        moved = rocchio(q, vectors, self.settings.rocchio_alpha, self.settings.rocchio_beta, normalize=False)
        return snap.hits(np.ascontiguousarray(moved, np.float32), depth, parsed, threads=threads)


_ROWS: "weakref.WeakKeyDictionary[Any, dict[str, tuple[int, int]]]" = weakref.WeakKeyDictionary()
_ROWS_LOCK = threading.Lock()


def rows_of(snapshot: Any) -> dict[str, tuple[int, int]]:
    """External id -> (segment, row) of every live document of a snapshot, built once per snapshot.

    From the snapshot itself, not the writer's committed id table: a live
    collection's snapshot also holds the documents written since the last
    flush, which feedback may pick (a later segment's copy of an id wins,
    as an update does).
    """
    with _ROWS_LOCK:
        rows = _ROWS.get(snapshot)
    if rows is None:
        rows = {}
        for i, seg in enumerate(snapshot.segments):
            mask = seg.live_mask()
            for local, doc_id in enumerate(seg.doc_ids.tolist()):
                if mask[local]:
                    rows[doc_id] = (i, local)
        with _ROWS_LOCK:
            _ROWS[snapshot] = rows
    return rows


def _top(hits: Hits, k: int) -> Hits:
    if len(hits) <= k:
        return hits
    return Hits(hits.ids[:k], hits.scores[:k])
