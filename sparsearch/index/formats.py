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

A format may carry settings of its own (a dense index's HNSW parameters):
it writes them into the manifest's ``config`` (:meth:`SegmentFormat.manifest_config`),
and the factory registered for its kind gets that ``config`` back when the
index is opened (:func:`format_of`), so the index is read as it was written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping, Protocol, Sequence

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

    def seal(self, segment: Any) -> Any:
        """A segment of an in-memory generation, given what :meth:`write` would have built for it.

        An index without a directory never writes its segments, yet its
        committed segments are as final as written ones: a search structure
        that writing builds (a dense index's HNSW graph) is built here instead.
        """
        ...

    def merge(self, segments: Sequence[Any], n_terms: int, config: IndexConfig) -> Any: ...

    def snapshot(self, segments: Sequence[Any], scoring: Scoring, config: IndexConfig,
                 manifest: Manifest | None = None) -> Any:
        """An immutable reader over ``segments`` (implements ``IndexSnapshot``; has ``segments``, ``manifest``)."""
        ...

    def open(self, directory: Path, manifest: Manifest, mmap: bool = True) -> Any:
        """The reader of a committed generation."""
        ...

    def manifest_config(self, config: IndexConfig) -> dict[str, Any]:
        """The manifest's ``config``: the index's settings, plus the format's kind and own settings."""
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

    def seal(self, segment: Any) -> Any:
        return segment  # postings are the search structure: nothing more to build

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

    def manifest_config(self, config: IndexConfig) -> dict[str, Any]:
        return config.to_dict()  # no format key: sparse manifests read as they did before formats


SPARSE = SparseFormat()

#: Makes the format of a kind from a manifest's ``config`` (where the format keeps its own settings).
FormatFactory = Callable[[Mapping[str, Any]], SegmentFormat]
_FACTORIES: dict[str, FormatFactory] = {"sparse": lambda config: SPARSE}


def register_format(kind: str, factory: FormatFactory) -> None:
    """Make ``kind`` openable: ``factory(manifest.config)`` returns the format an index of that kind was written in."""
    _FACTORIES[kind] = factory


def format_named(kind: str, config: Mapping[str, Any] | None = None) -> SegmentFormat:
    """The format of ``kind`` under the settings in ``config`` (a manifest's; defaults when ``None``)."""
    from sparsearch.errors import IndexFormatError

    if kind == "dense" and "dense" not in _FACTORIES:
        import sparsearch.index.dense  # noqa: F401  (registers itself; imports faiss only when one is needed)
    factory = _FACTORIES.get(kind)
    if factory is None:
        raise IndexFormatError(f"unknown index format {kind!r} (known: {', '.join(sorted({*_FACTORIES, 'dense'}))})")
    return factory(config or {})


def format_of(manifest: Manifest) -> SegmentFormat:
    """The format a committed index was written in, with its settings (sparse for indexes older than formats)."""
    return format_named(str(manifest.config.get(FORMAT_KEY, "sparse")), manifest.config)
