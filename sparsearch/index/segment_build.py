"""Building a segment in memory from document vectors: inversion, quantisation, length norms, stored fields.

The heavy lifting is the kernels' (:mod:`sparsearch.index.kernels_build`), or
for a small build their NumPy twins (:mod:`sparsearch.index.small`), which
give identical arrays without importing Numba.  Writing the result to disk
is :func:`sparsearch.index.segment.write_segment`.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sparsearch.index import accel, kernels, small
from sparsearch.index.config import IndexConfig
from sparsearch.index.segment_types import MAX_ID_BYTES, TEXT_FIELDS, DocIds, Segment, StoredField
from sparsearch.types import SparseBatch, compact_offsets


def _narrow_lengths(lengths: np.ndarray) -> np.ndarray:
    if len(lengths) == 0 or not np.array_equal(lengths, np.floor(lengths)):
        return np.asarray(lengths, np.float32)
    top = float(lengths.max())
    return lengths.astype(np.uint16 if top < 2**16 else np.uint32)


def build_segment(
    vectors: SparseBatch,
    doc_ids: Sequence[str],
    stored: Sequence[dict[str, Any]],
    n_terms: int,
    config: IndexConfig,
    *,
    max_id_bytes: int | None = MAX_ID_BYTES,
) -> Segment:
    """Invert document vectors into a segment (parallel count / prefix-sum / scatter).

    Raises :class:`~sparsearch.errors.InputError` for an id longer than
    ``max_id_bytes`` (:data:`MAX_ID_BYTES`; ``None`` when rewriting ids an
    older index already holds) or not encodable as UTF-8, before any work.
    """
    if len(vectors) != len(doc_ids) or len(stored) != len(doc_ids):
        raise ValueError("vectors, doc_ids and stored fields must have one entry per document")
    ids = DocIds.encode(doc_ids, max_bytes=max_id_bytes)
    if len(vectors.term_ids) and (vectors.term_ids.min() < 0 or vectors.term_ids.max() >= n_terms):
        raise ValueError(f"term ids must lie in [0, {n_terms})")
    text_tokens = vectors.text_tokens
    if text_tokens is not None and len(text_tokens.ids) and int(text_tokens.ids.max()) >= n_terms:
        raise ValueError(f"text token ids must lie in [0, {n_terms})")
    weights = vectors.weights
    if len(weights) and not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("document weights must be finite and non-negative")
    offsets, term_ids = vectors.offsets, vectors.term_ids
    if len(weights) and (weights == 0).any():
        # Zero weights are not postings: dropping them keeps every stored
        # contribution positive, which the scoring kernels rely on.
        keep = weights > 0
        offsets, term_ids, weights = compact_offsets(offsets, keep), term_ids[keep], weights[keep]
    # A small build runs the NumPy twins of the kernels (same arrays; no JIT compilation: index/small.py).
    numpy_path = small.small_build(len(weights)) and weights.dtype == np.float32
    if numpy_path:
        postings_offsets, postings_docs, postings_weights = small.invert(offsets, term_ids, weights, n_terms)
    else:
        n_chunks = max(1, min(64, 4 * _threads()))
        postings_offsets, postings_docs, postings_weights = kernels.invert(offsets, term_ids, weights, n_terms,
                                                                           n_chunks)
    term_scales = None
    integral_over_a_byte = len(weights) and float(weights.max()) > 255.0 and bool(np.all(weights == np.floor(weights)))
    if config.quantization == "uint8" and not integral_over_a_byte:
        # (Counts above 255 would be rounded; such a segment keeps float32 so BM25 stays exact.)
        quantize = small.quantize_uint8 if numpy_path else kernels.quantize_uint8
        postings_weights, scales = quantize(postings_offsets, postings_weights)
        term_scales = None if bool((scales == 1.0).all()) else scales
    # Encoders without a notion of length (SPLADE, inference-free) get their vectors' non-zero
    # counts: then N counts the documents that hold a term, and avg length is mean non-zeros.
    lengths = vectors.lengths if vectors.lengths is not None else np.diff(offsets).astype(np.float32)
    fields = {}
    for name in config.stored_fields:
        values = [s.get(name) for s in stored]
        fields[name] = StoredField.encode(values, is_json=name not in TEXT_FIELDS)
    segment = Segment(
        postings_offsets=postings_offsets,
        postings_docs=postings_docs,
        postings_weights=postings_weights,
        doc_lengths=_narrow_lengths(np.asarray(lengths)),
        doc_norms=(small.encode_norms if numpy_path else kernels.encode_norms)(np.asarray(lengths, np.float32)),
        doc_ids=ids,
        term_scales=term_scales,
        fields=fields,
        text_tokens=text_tokens,
    )
    # Forward index, pruned impact-ordered lists, block maxima (index/accel.py): learned sparse only
    # (encoders without lengths score by dot product); a BM25 or small segment gets none.
    segment.accel = accel.build_for_segment(segment, linear=vectors.lengths is None)
    return segment


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())
