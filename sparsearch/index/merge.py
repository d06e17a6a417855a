"""Merging segments: a plan (which segments) kept apart from the work (rewriting them).

Planning is a pure function of segment sizes (Lucene's tiered policy in
miniature): segments are grouped into size tiers a factor ``merge_factor``
apart, and a tier holding ``merge_factor`` segments is merged into one, so a
stream of small flushes costs O(log n) rewrites per document.  A segment
whose deleted fraction passes ``max_deleted_fraction`` is rewritten alone to
reclaim space.

Merging itself reuses the build kernels: each segment's term-major postings
are transposed back to document rows (the same count/prefix-sum/scatter
``invert``), deleted documents dropped, rows concatenated and inverted
again.  Weights come back exact for term frequencies; statistics are global,
so scores do not change when segments merge.

Inputs are checksummed before they are read (files that opening left
unverified, see ``Segment.verify_checksums``): a merge writes new files with
new, valid checksums, so it must never carry corrupt bytes into them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig
from sparsearch.index.segment import Segment, build_segment
from sparsearch.types import SparseBatch, TokenSets, compact_offsets


@dataclass(frozen=True)
class MergePolicy:
    merge_factor: int = 4
    max_deleted_fraction: float = 0.3


def plan_merge(live_counts: Sequence[int], deleted_counts: Sequence[int], policy: MergePolicy) -> list[int]:
    """Indexes of the segments to merge next (empty: nothing to do).

    Segments without a live document come first: merging them means dropping them.
    """
    empty = [i for i, n in enumerate(live_counts) if n == 0]
    if empty and len(live_counts) > 1:
        return empty
    tiers: dict[int, list[int]] = {}
    for i, n in enumerate(live_counts):
        tier = int(math.log(max(n, 1), policy.merge_factor))
        tiers.setdefault(tier, []).append(i)
    for tier in sorted(tiers):
        if len(tiers[tier]) >= policy.merge_factor:
            return tiers[tier]
    for i, (n, d) in enumerate(zip(live_counts, deleted_counts)):
        if d and d / (n + d) > policy.max_deleted_fraction:
            return [i]
    return []


def document_rows(segment: Segment) -> tuple[SparseBatch, np.ndarray]:
    """The live documents of a segment as rows (real weights, lengths) and their local ids."""
    weights = segment.postings_weights.astype(np.float32) * np.repeat(segment.scales, segment.doc_freq_all())
    row_offsets, term_ids, row_weights = kernels.invert(
        np.asarray(segment.postings_offsets), np.asarray(segment.postings_docs).astype(np.int32), weights,
        segment.n_docs, 1)
    live = segment.live_mask()
    keep = np.repeat(live, np.diff(row_offsets))
    rows = SparseBatch(compact_offsets(row_offsets, keep)[np.concatenate([[True], live])],
                       term_ids[keep], row_weights[keep], np.asarray(segment.doc_lengths, np.float32)[live])
    return rows, np.flatnonzero(live)


def merge_segments(segments: Sequence[Segment], n_terms: int, config: IndexConfig) -> Segment:
    """One segment holding the live documents of ``segments``, in order.

    Raises :class:`~sparsearch.errors.IndexFormatError` (before writing
    anything) if an input file fails its checksum.
    """
    for seg in segments:
        seg.verify_checksums()
    batches: list[SparseBatch] = []
    ids: list[str] = []
    stored: list[dict[str, Any]] = []
    # Text token sets go along when every segment with a live document has them (else none: the merged
    # segment then lacks them as one of its inputs already did, see InvertedIndex._text_doc_freq).
    keep_text = all(seg.text_tokens is not None or not seg.live_mask().any() for seg in segments)
    for seg in segments:
        rows, locals_ = document_rows(seg)
        if keep_text:
            text = seg.text_tokens.take(locals_) if seg.text_tokens is not None else TokenSets.empty(len(locals_))
            rows = rows.with_text_tokens(text)
        batches.append(rows)
        all_ids = seg.doc_ids.tolist()
        ids.extend(all_ids[i] for i in locals_.tolist())
        stored.extend(seg.stored(int(i)) for i in locals_)
    merged = SparseBatch.concatenate(batches)
    if merged.lengths is not None and np.array_equal(merged.lengths, np.diff(merged.offsets)):
        # Lengths that are the rows' non-zero counts are what a learned-sparse build records without lengths:
        # rebuilt without them, the doc lengths are the same and the segment gets its accel structures again.
        merged = SparseBatch(merged.offsets, merged.term_ids, merged.weights, text_tokens=merged.text_tokens)
    # No id-length limit here: ids an older index already holds (format 1 had none) stay mergeable.
    return build_segment(merged, ids, stored, n_terms, config, max_id_bytes=None)
