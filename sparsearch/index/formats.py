"""Segment formats: what the one writer needs to know of a representation.

The writer (:mod:`sparsearch.index.writer`) buffers, logs, commits and
merges *segments*; how a segment is built from a batch of vectors, written,
opened, merged and searched depends on the representation — postings for
sparse vectors, a matrix (and a faiss structure) for dense ones.  A format
bundles those operations, so durability, locking, group commit, the flush
scheduler and crash recovery are written once for every kind of index.

A segment of any format offers the same small surface to the writer:
``n_docs``, ``doc_ids`` (``tolist()``), ``deleted``, ``live_mask()``,
``with_deletes(mask)``, ``stored(local)``, ``external_id(local)``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence

from sparsearch.index.config import IndexConfig
from sparsearch.index.manifest import Manifest, SegmentInfo
from sparsearch.scoring import Scoring
from sparsearch.types import SparseBatch

FORMAT_KEY = "format"  # in the manifest's ``config``; absent means sparse (indexes written before formats)


class SegmentFormat(Protocol):
    """Build, write, open, merge and search segments of one representation."""

    kind: ClassVar[str]

    def count(self, vectors: Any) -> int:
        """Rows in a batch of vectors."""
        ...

    def take(self, vectors: Any, rows: Sequence[int]) -> Any:
        """The given rows of a batch, in that order."""
        ...

    def concatenate(self, batches: Sequence[Any]) -> Any: ...

    def build(self, ids: Sequence[str], vectors: Any, stored: Sequence[dict[str, Any]], n_terms: int,
              config: IndexConfig) -> Any:
        """An in-memory segment; where bad ids and bad vectors are refused, before anything is logged."""
        ...

    def write(self, segment: Any, directory: Path, name: str) -> SegmentInfo: ...

    def merge(self, segments: Sequence[Any], n_terms: int, config: IndexConfig) -> Any: ...

    def snapshot(self, segments: Sequence[Any], scoring: Scoring, config: IndexConfig,
                 manifest: Manifest | None = None) -> Any:
        """An immutable reader over ``segments`` (implements ``IndexSnapshot``; has ``segments``, ``manifest``)."""
        ...

    def open(self, directory: Path, manifest: Manifest, mmap: bool = True) -> Any:
        """The reader of a committed generation."""
        ...


class SparseFormat:
    """Sparse vectors in inverted segments (postings), searched by the Numba kernels."""

    kind: ClassVar[str] = "sparse"

    def count(self, vectors: SparseBatch) -> int:
        return len(vectors)

    def take(self, vectors: SparseBatch, rows: Sequence[int]) -> SparseBatch:
        from sparsearch.index.buffer import row_of

        if len(rows) == 1:
            return row_of(vectors, rows[0])
        return SparseBatch.concatenate([row_of(vectors, i) for i in rows])

    def concatenate(self, batches: Sequence[SparseBatch]) -> SparseBatch:
        return SparseBatch.concatenate(batches)

    def build(self, ids: Sequence[str], vectors: SparseBatch, stored: Sequence[dict[str, Any]], n_terms: int,
              config: IndexConfig) -> Any:
        from sparsearch.index.segment import build_segment

        return build_segment(vectors, list(ids), list(stored), n_terms, config)

    def write(self, segment: Any, directory: Path, name: str) -> SegmentInfo:
        from sparsearch.index.segment import write_segment

        return write_segment(segment, directory, name)

    def merge(self, segments: Sequence[Any], n_terms: int, config: IndexConfig) -> Any:
        from sparsearch.index.merge import merge_segments

        return merge_segments(segments, n_terms, config)

    def snapshot(self, segments: Sequence[Any], scoring: Scoring, config: IndexConfig,
                 manifest: Manifest | None = None) -> Any:
        from sparsearch.index.inverted import InvertedIndex

        return InvertedIndex(list(segments), scoring, config, manifest)

    def open(self, directory: Path, manifest: Manifest, mmap: bool = True) -> Any:
        from sparsearch.index.inverted import InvertedIndex

        return InvertedIndex.open(directory, manifest, mmap=mmap)


SPARSE = SparseFormat()
_FORMATS: dict[str, SegmentFormat] = {"sparse": SPARSE}


def register_format(fmt: SegmentFormat) -> None:
    _FORMATS[fmt.kind] = fmt


def format_named(kind: str) -> SegmentFormat:
    from sparsearch.errors import IndexFormatError

    if kind == "dense" and "dense" not in _FORMATS:
        import sparsearch.index.dense  # noqa: F401  (registers itself; needs faiss only when searched)
    fmt = _FORMATS.get(kind)
    if fmt is None:
        raise IndexFormatError(f"unknown index format {kind!r} (known: {', '.join(sorted(_FORMATS))})")
    return fmt


def format_of(manifest: Manifest) -> SegmentFormat:
    """The format a committed index was written in (sparse for indexes older than formats)."""
    return format_named(str(manifest.config.get(FORMAT_KEY, "sparse")))
