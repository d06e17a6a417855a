"""Dense retrieval: float32 vectors in segments, searched by exact or faiss-approximate inner product.

A dense index is the sparse index's machinery with another segment format
(:mod:`sparsearch.index.formats`): the same :class:`~sparsearch.index.writer.IndexWriter`
adds, deletes, logs, commits, merges and recovers it, so a dense collection
gets atomic generations, group commit, kill -9 recovery and metadata filters
without a second write path.  Only what depends on the representation lives
here:

* :class:`DenseFormat` (``kind = "dense"``): batches are ``(n, dim)`` float32
  matrices; it builds, writes, opens and merges :class:`DenseSegment` s
  (:mod:`sparsearch.index.dense_segment`) and reads them through
  :class:`DenseSnapshot` (:mod:`sparsearch.index.dense_snapshot`);
* :class:`DenseIndexSettings` (:mod:`sparsearch.index.dense_settings`): flat,
  HNSW or IVF-PQ, saved in the manifest (``config["dense"]``) and handed back
  to the format when the index is opened;
* faiss (:mod:`sparsearch.index.dense_ann`), imported only when a structure
  is built, loaded or searched.

The vector dimension is fixed once known: the settings' ``dim``, the term
space's ``n_terms`` when it counts dimensions, the index's segments, or else
the first batch built; every later batch is checked against it before
anything is logged, and the manifest records it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.index.checksum import crc32_of_file
from sparsearch.index.config import IndexConfig
from sparsearch.index.dense_ann import pq_subquantizers
from sparsearch.index.dense_segment import (
    DenseSegment, build_dense_segment, merge_dense_segments, open_dense_segment, seal_dense_segment,
    write_dense_segment)
from sparsearch.index.dense_settings import DenseIndexSettings
from sparsearch.index.dense_snapshot import DenseSnapshot
from sparsearch.index.formats import FORMAT_KEY, register_format
from sparsearch.index.manifest import Manifest, SegmentInfo
from sparsearch.index.segment_types import _crc_message
from sparsearch.scoring import Scoring

__all__ = ["DenseFormat", "DenseIndexSettings", "DenseSegment", "DenseSnapshot", "SETTINGS_KEY"]

SETTINGS_KEY = "dense"  # the settings' key in the manifest's ``config``


class DenseFormat:
    """Dense segments under one :class:`DenseIndexSettings` (implements ``SegmentFormat``).

    One instance per index: it remembers the index's dimension once known
    (:attr:`dim`), which every later batch must have.
    """

    kind: ClassVar[str] = "dense"

    def __init__(self, settings: DenseIndexSettings | None = None, **overrides: Any) -> None:
        if settings is not None and overrides:
            raise TypeError("give DenseFormat settings or keyword settings, not both")
        self.settings = settings if settings is not None else DenseIndexSettings(**overrides)
        self._dim = self.settings.dim  # learned from the first segment or batch when not set

    def __repr__(self) -> str:
        return f"DenseFormat({self.settings!r})"

    @property
    def dim(self) -> int | None:
        """The index's vector dimension, once known."""
        return self._dim

    def _learn(self, segments: Sequence[DenseSegment], where: str = "this index") -> None:
        """Take the dimension from the segments (an empty segment may have been built before it was known)."""
        dims = {s.dim for s in segments if s.n_docs} | ({self._dim} if self._dim is not None else set())
        if len(dims) > 1:
            raise IndexFormatError(f"{where}: segments hold vectors of {sorted(dims)} dimensions (index is corrupt)")
        if dims:
            self._dim = dims.pop()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "DenseFormat":
        """The format a manifest's ``config`` describes (what :func:`~sparsearch.index.formats.format_of` calls)."""
        return cls(DenseIndexSettings.from_dict(config.get(SETTINGS_KEY, {})))

    def manifest_config(self, config: IndexConfig) -> dict[str, Any]:
        settings = {**self.settings.to_dict(), "dim": self._dim}
        return {**config.to_dict(), FORMAT_KEY: self.kind, SETTINGS_KEY: settings}

    # ------------------------------------------------------------ batches

    def count(self, vectors: Any) -> int:
        shape = np.shape(vectors)
        if len(shape) != 2:
            raise InputError(f"dense vectors must be a 2-d array (rows x dimensions), got shape {shape}")
        return int(shape[0])

    def take(self, vectors: Any, rows: Sequence[int]) -> np.ndarray:
        """The rows, copied (buffered rows outlive the caller's array); one row, the buffer's case, as a slice."""
        if isinstance(vectors, np.ndarray):
            if len(rows) == 1:
                return vectors[rows[0]: rows[0] + 1].astype(np.float32)  # 5x faster than fancy indexing
            return np.array(vectors[list(rows)], np.float32)
        return np.array([vectors[i] for i in rows], np.float32)

    def concatenate(self, batches: Sequence[Any]) -> np.ndarray:
        if not batches:
            return np.zeros((0, 0), np.float32)
        return np.concatenate([np.asarray(b, np.float32) for b in batches])

    # ------------------------------------------------------------ segments

    def build(self, ids: Sequence[str], vectors: Any, stored: Sequence[dict[str, Any]], n_terms: int,
              config: IndexConfig) -> DenseSegment:
        """``n_terms``: the term space's size, the dimension when positive (a dense encoder's may be 0: unknown)."""
        dim = self._dim
        if n_terms > 0 and dim is not None and n_terms != dim:
            raise InputError(f"the term space has {n_terms} dimensions; this index holds {dim}")
        segment = build_dense_segment(ids, vectors, stored, dim or (n_terms if n_terms > 0 else None), config)
        if self.settings.index_type == "ivfpq":
            try:
                pq_subquantizers(segment.dim, self.settings.pq_m)  # refused at the first write, not at a flush
            except ValueError as e:
                raise InputError(str(e)) from None
        if self._dim is None and segment.n_docs:
            self._dim = segment.dim
        return segment

    def write(self, segment: DenseSegment, directory: Path, name: str) -> SegmentInfo:
        return write_dense_segment(segment, directory, name, self.settings)

    def seal(self, segment: DenseSegment) -> DenseSegment:
        return seal_dense_segment(segment, self.settings)

    def merge(self, segments: Sequence[DenseSegment], n_terms: int, config: IndexConfig) -> DenseSegment:
        dim = segments[0].dim if segments else (self._dim or n_terms)
        return merge_dense_segments(segments, dim, config)

    def snapshot(self, segments: Sequence[DenseSegment], scoring: Scoring, config: IndexConfig,
                 manifest: Manifest | None = None) -> DenseSnapshot:
        self._learn(segments)
        return DenseSnapshot(segments, scoring, config, self.settings, manifest, self._dim)

    def open(self, directory: Path, manifest: Manifest, mmap: bool = True) -> DenseSnapshot:
        """The reader of a committed generation: the encoder's files summed, every segment opened and checked."""
        masks = {info.deletes for info in manifest.segments if info.deletes}
        for name, expected in manifest.crc32.items():
            if name not in masks:
                actual = crc32_of_file(directory / name)
                if actual != expected:
                    raise IndexFormatError(_crc_message(directory / name, actual, expected))
        segments = [open_dense_segment(directory, info, mmap=mmap, deletes_size=manifest.files.get(info.deletes or ""))
                    for info in manifest.segments]
        self._learn(segments, str(directory))
        return DenseSnapshot(segments, Scoring.from_dict(manifest.scoring), IndexConfig.from_dict(manifest.config),
                             self.settings, manifest, self._dim)


register_format(DenseFormat.kind, DenseFormat.from_config)
