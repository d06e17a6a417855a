"""One immutable segment: postings by term, per-document statistics, ids and stored fields.

On disk a segment is a directory of plain ``.npy`` files, memory-mapped on
open (``np.load(mmap_mode="r")``) so an index larger than RAM only pages in
the posting lists a query touches.  No pickles: the files are readable from
any NumPy, and a truncated file is caught by the sizes the manifest records.

Size matters as much as speed here, so every array takes the narrowest dtype
that holds it: term frequencies in one byte, lengths in two when they fit,
stored text as raw UTF-8 with 32-bit offsets, and per-term scales only when
quantisation was actually lossy.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError
from sparsearch.index import kernels
from sparsearch.index.config import IndexConfig
from sparsearch.index.manifest import SegmentInfo
from sparsearch.index.storage import fsync_path, fsync_files, save_array
from sparsearch.types import SparseBatch, compact_offsets

REQUIRED_ARRAYS = ("postings_offsets", "postings_docs", "postings_weights", "doc_lengths", "doc_norms", "doc_ids")
TEXT_FIELDS = ("title", "text")


@dataclass
class StoredField:
    """Variable-length per-document values: document ``i`` is ``data[offsets[i]:offsets[i+1]]``."""

    offsets: np.ndarray
    data: np.ndarray
    is_json: bool

    def get(self, local: int) -> Any:
        lo, hi = int(self.offsets[local]), int(self.offsets[local + 1])
        if hi == lo:
            return None
        raw = bytes(self.data[lo:hi]).decode("utf-8")
        return json.loads(raw) if self.is_json else raw

    @classmethod
    def encode(cls, values: Sequence[Any], is_json: bool) -> "StoredField":
        blobs = [b"" if v in (None, "", {}) else
                 (json.dumps(v, ensure_ascii=False) if is_json else v).encode("utf-8") for v in values]
        offsets = np.zeros(len(blobs) + 1, np.int64)
        np.cumsum([len(b) for b in blobs], out=offsets[1:])
        if offsets[-1] < 2**32:
            offsets = offsets.astype(np.uint32)
        return cls(offsets, np.frombuffer(b"".join(blobs), dtype=np.uint8), is_json)



@dataclass
class Segment:
    """Arrays of one segment (in memory or memory-mapped); doc ids are segment-local."""

    postings_offsets: np.ndarray  # int64 [n_terms + 1]
    postings_docs: np.ndarray  # uint32 [n_postings]
    postings_weights: np.ndarray  # float32 or uint8 [n_postings]
    doc_lengths: np.ndarray  # uint16 / uint32 / float32 [n_docs]
    doc_norms: np.ndarray  # uint8 [n_docs]: Lucene one-byte length
    doc_ids: np.ndarray  # bytes (S<n>) [n_docs]: external ids, UTF-8
    term_scales: np.ndarray | None = None  # float32 [n_terms]: real weight = stored * scale; None = 1
    fields: dict[str, StoredField] = field(default_factory=dict)
    deleted: np.ndarray | None = None  # uint8 [n_docs], 1 = deleted; kept in its own file, outside the segment
    _ones: np.ndarray | None = field(default=None, repr=False)

    @property
    def n_docs(self) -> int:
        return len(self.doc_lengths)

    @property
    def n_terms(self) -> int:
        return len(self.postings_offsets) - 1

    @property
    def n_postings(self) -> int:
        return int(self.postings_offsets[-1])

    @property
    def scales(self) -> np.ndarray:
        """Per-term dequantisation scales (all ones when stored exactly)."""
        if self.term_scales is not None:
            return self.term_scales
        if self._ones is None or len(self._ones) != self.n_terms:
            self._ones = np.ones(self.n_terms, np.float32)
        return self._ones

    def doc_freq(self) -> np.ndarray:
        """Documents per term, deleted ones excluded."""
        if self.deleted is None:
            return np.diff(self.postings_offsets)
        return kernels.live_doc_freq(self.postings_offsets, self.postings_docs, self.deleted)

    def doc_freq_all(self) -> np.ndarray:
        """Postings per term, deleted documents included (the CSR row lengths)."""
        return np.diff(self.postings_offsets)

    def live_mask(self) -> np.ndarray:
        return np.ones(self.n_docs, bool) if self.deleted is None else self.deleted == 0

    def with_deletes(self, deleted: np.ndarray | None) -> "Segment":
        """The same immutable arrays under another deletion mask (a new snapshot's view)."""
        return Segment(self.postings_offsets, self.postings_docs, self.postings_weights, self.doc_lengths,
                       self.doc_norms, self.doc_ids, self.term_scales, self.fields, deleted)

    def external_id(self, local: int) -> str:
        return bytes(self.doc_ids[local]).decode("utf-8")

    def stored(self, local: int) -> dict[str, Any]:
        out = {}
        for name, f in self.fields.items():
            value = f.get(local)
            if value is not None:
                out[name] = value
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array to save, by file stem."""
        out = {name: getattr(self, name) for name in REQUIRED_ARRAYS}
        if self.term_scales is not None:
            out["term_scales"] = self.term_scales
        for name, f in self.fields.items():
            kind = "json" if f.is_json else "text"
            out[f"field.{name}.{kind}.offsets"] = f.offsets
            out[f"field.{name}.{kind}.data"] = f.data
        return out



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
    term_scales = None
    integral_over_a_byte = len(weights) and float(weights.max()) > 255.0 and bool(np.all(weights == np.floor(weights)))
    if config.quantization == "uint8" and not integral_over_a_byte:
        # (Counts above 255 would be rounded; such a segment keeps float32 so BM25 stays exact.)
        postings_weights, scales = kernels.quantize_uint8(postings_offsets, postings_weights)
        term_scales = None if bool((scales == 1.0).all()) else scales
    # Encoders without a notion of length (SPLADE, inference-free) get their vectors' non-zero
    # counts: then N counts the documents that hold a term, and avg length is mean non-zeros.
    lengths = vectors.lengths if vectors.lengths is not None else np.diff(offsets).astype(np.float32)
    encoded_ids = [d.encode("utf-8") for d in doc_ids]
    width = max((len(e) for e in encoded_ids), default=1) or 1
    fields = {}
    for name in config.stored_fields:
        values = [s.get(name) for s in stored]
        fields[name] = StoredField.encode(values, is_json=name not in TEXT_FIELDS)
    return Segment(
        postings_offsets=postings_offsets,
        postings_docs=postings_docs,
        postings_weights=postings_weights,
        doc_lengths=_narrow_lengths(np.asarray(lengths)),
        doc_norms=kernels.encode_norms(np.asarray(lengths, np.float32)),
        doc_ids=np.array(encoded_ids, dtype=f"S{width}"),
        term_scales=term_scales,
        fields=fields,
    )


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def write_segment(segment: Segment, directory: Path, name: str) -> SegmentInfo:
    """Write a segment directory (every file fsynced) and describe it for the manifest."""
    path = directory / name
    path.mkdir(parents=True, exist_ok=False)
    files = {f"{stem}.npy": save_array(path / f"{stem}.npy", a) for stem, a in segment.arrays().items()}
    fsync_files([path / name for name in files])
    fsync_path(path)
    return SegmentInfo(
        name=name, n_docs=segment.n_docs, n_postings=segment.n_postings, n_terms=segment.n_terms, files=files
    )


def _load(file: Path, expected: int | None, mmap: bool) -> np.ndarray:
    try:
        size = os.stat(file).st_size
    except FileNotFoundError:
        raise IndexFormatError(f"{file}: missing segment file (index is corrupt)") from None
    if expected is not None and size != expected:
        raise IndexFormatError(f"{file}: size {size} differs from the manifest's {expected} (index is corrupt)")
    try:
        array = np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
        # A plain ndarray view of the mapping (it keeps the map alive through .base): Numba checks a
        # np.memmap subclass argument far more slowly, ~3 µs per search call on a 5-array segment.
        return np.asarray(array) if mmap else array
    except (ValueError, OSError) as e:
        if mmap and "empty" in str(e).lower():
            return np.load(file, allow_pickle=False)  # zero-length arrays cannot be mapped
        raise IndexFormatError(f"{file}: unreadable segment file ({e})") from None


def open_segment(directory: Path, info: SegmentInfo, mmap: bool = True,
                 deletes_size: int | None = None) -> Segment:
    """Open a segment (and its deletion mask), checking every file against the manifest's sizes."""
    path = directory / info.name
    stems = {f[: -len(".npy")] for f in info.files}
    missing = [n for n in REQUIRED_ARRAYS if n not in stems]
    if missing:
        raise IndexFormatError(f"{path}: manifest lists no {missing[0]}.npy (index is corrupt)")
    arrays = {stem: _load(path / f"{stem}.npy", info.files[f"{stem}.npy"], mmap) for stem in sorted(stems)}
    fields = {}
    for stem in stems:
        if stem.startswith("field.") and stem.endswith(".offsets"):
            _, name, kind, _ = stem.split(".")
            fields[name] = StoredField(arrays[stem], arrays[f"field.{name}.{kind}.data"], kind == "json")
    deleted = None
    if info.deletes:
        deleted = np.asarray(_load(directory / info.deletes, deletes_size, mmap=False), np.uint8)
        if len(deleted) != info.n_docs:
            raise IndexFormatError(f"{directory / info.deletes}: deletion mask does not match its segment")
    segment = Segment(**{n: arrays[n] for n in REQUIRED_ARRAYS}, term_scales=arrays.get("term_scales"), fields=fields,
                      deleted=deleted)
    if segment.n_docs != info.n_docs or segment.n_postings != info.n_postings:
        raise IndexFormatError(f"{path}: segment contents disagree with the manifest (index is corrupt)")
    return segment
