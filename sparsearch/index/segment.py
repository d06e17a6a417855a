"""One immutable segment: postings by term, per-document statistics, ids and stored fields.

On disk a segment is a directory of plain ``.npy`` files, memory-mapped on
open (``np.load(mmap_mode="r")``) so an index larger than RAM only pages in
the posting lists a query touches.  No pickles: the files are readable from
any NumPy, and a truncated file is caught by the sizes the manifest records.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError
from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig
from sparsearch.index.manifest import SegmentInfo
from sparsearch.index.storage import fsync_dir, save_array
from sparsearch.types import SparseBatch, compact_offsets

ARRAY_NAMES = (
    "postings_offsets",
    "postings_docs",
    "postings_weights",
    "term_scales",
    "term_max",
    "doc_lengths",
    "doc_norms",
    "doc_ids",
    "store_offsets",
    "store_data",
)


@dataclass
class Segment:
    """Arrays of one segment (in memory or memory-mapped); doc ids are segment-local."""

    postings_offsets: np.ndarray  # int64 [n_terms + 1]
    postings_docs: np.ndarray  # uint32 [n_postings]
    postings_weights: np.ndarray  # float32 or uint8 [n_postings]
    term_scales: np.ndarray  # float32 [n_terms]: real weight = stored * scale
    term_max: np.ndarray  # float32 [n_terms]: largest real weight (pruning bound)
    doc_lengths: np.ndarray  # float32 [n_docs]
    doc_norms: np.ndarray  # uint8 [n_docs]: Lucene one-byte length
    doc_ids: np.ndarray  # bytes (S<n>) [n_docs]: external ids, UTF-8
    store_offsets: np.ndarray  # int64 [n_docs + 1]
    store_data: np.ndarray  # uint8: concatenated UTF-8 JSON of stored fields

    @property
    def n_docs(self) -> int:
        return len(self.doc_lengths)

    @property
    def n_terms(self) -> int:
        return len(self.postings_offsets) - 1

    @property
    def n_postings(self) -> int:
        return int(self.postings_offsets[-1])

    def doc_freq(self) -> np.ndarray:
        return np.diff(self.postings_offsets)

    def external_id(self, local: int) -> str:
        return bytes(self.doc_ids[local]).decode("utf-8")

    def stored(self, local: int) -> dict[str, Any]:
        lo, hi = int(self.store_offsets[local]), int(self.store_offsets[local + 1])
        if hi == lo:
            return {}
        return json.loads(bytes(self.store_data[lo:hi]).decode("utf-8"))

    def nbytes(self) -> int:
        return sum(getattr(self, n).nbytes for n in ARRAY_NAMES)


def build_segment(
    vectors: SparseBatch,
    doc_ids: Sequence[str],
    stored: Sequence[dict[str, Any]],
    n_terms: int,
    config: IndexConfig,
) -> Segment:
    """Invert document vectors into a segment (parallel count / prefix-sum / scatter)."""
    if len(vectors) != len(doc_ids) or len(stored) != len(doc_ids):
        raise ValueError("vectors, doc_ids and stored fields must have one entry per document")
    if len(vectors.term_ids) and (vectors.term_ids.min() < 0 or vectors.term_ids.max() >= n_terms):
        raise ValueError(f"term ids must lie in [0, {n_terms})")
    weights = vectors.weights
    if len(weights) and not (np.isfinite(weights).all() and (weights >= 0).all()):
        raise ValueError("document weights must be finite and non-negative")
    offsets, term_ids = vectors.offsets, vectors.term_ids
    if len(weights) and (weights == 0).any():
        # Zero weights are not postings: dropping them keeps every stored
        # contribution positive, which the scoring kernels rely on.
        keep = weights > 0
        offsets, term_ids, weights = compact_offsets(offsets, keep), term_ids[keep], weights[keep]
    n_chunks = max(1, min(64, 4 * _threads()))
    postings_offsets, postings_docs, postings_weights = kernels.invert(offsets, term_ids, weights, n_terms, n_chunks)
    term_max = kernels.term_max_weights(postings_offsets, postings_weights)
    if config.quantization == "uint8":
        postings_weights, term_scales = kernels.quantize_uint8(postings_offsets, postings_weights)
    else:
        term_scales = np.ones(n_terms, np.float32)
    lengths = vectors.lengths if vectors.lengths is not None else np.zeros(len(vectors), np.float32)
    store_offsets, store_data = _encode_store(stored)
    encoded_ids = [d.encode("utf-8") for d in doc_ids]
    width = max((len(e) for e in encoded_ids), default=1) or 1
    return Segment(
        postings_offsets=postings_offsets,
        postings_docs=postings_docs,
        postings_weights=postings_weights,
        term_scales=term_scales,
        term_max=term_max,
        doc_lengths=np.asarray(lengths, np.float32),
        doc_norms=kernels.encode_norms(np.asarray(lengths, np.float32)),
        doc_ids=np.array(encoded_ids, dtype=f"S{width}"),
        store_offsets=store_offsets,
        store_data=store_data,
    )


def _encode_store(stored: Sequence[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
    blobs = [json.dumps(s, ensure_ascii=False).encode("utf-8") if s else b"" for s in stored]
    offsets = np.zeros(len(blobs) + 1, np.int64)
    np.cumsum([len(b) for b in blobs], out=offsets[1:])
    data = np.frombuffer(b"".join(blobs), dtype=np.uint8)
    return offsets, data


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def write_segment(segment: Segment, directory: Path, name: str) -> SegmentInfo:
    """Write a segment directory (every file fsynced) and describe it for the manifest."""
    path = directory / name
    path.mkdir(parents=True, exist_ok=False)
    files = {}
    for array_name in ARRAY_NAMES:
        files[f"{array_name}.npy"] = save_array(path / f"{array_name}.npy", getattr(segment, array_name))
    fsync_dir(path)
    return SegmentInfo(
        name=name, n_docs=segment.n_docs, n_postings=segment.n_postings, n_terms=segment.n_terms, files=files
    )


def open_segment(directory: Path, info: SegmentInfo, mmap: bool = True) -> Segment:
    """Open a segment, checking every file against the size recorded in the manifest."""
    path = directory / info.name
    arrays = {}
    for array_name in ARRAY_NAMES:
        file = path / f"{array_name}.npy"
        expected = info.files.get(f"{array_name}.npy")
        try:
            size = os.stat(file).st_size
        except FileNotFoundError:
            raise IndexFormatError(f"{file}: missing segment file (index is corrupt)") from None
        if expected is not None and size != expected:
            raise IndexFormatError(f"{file}: size {size} differs from the manifest's {expected} (index is corrupt)")
        try:
            arrays[array_name] = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise IndexFormatError(f"{file}: unreadable segment file ({e})") from None
    segment = Segment(**arrays)
    if segment.n_docs != info.n_docs or segment.n_postings != info.n_postings:
        raise IndexFormatError(f"{path}: segment contents disagree with the manifest (index is corrupt)")
    return segment
