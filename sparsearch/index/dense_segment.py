"""One immutable dense segment: its vectors, ids and stored fields, built, written, opened and merged.

A dense segment is the sparse segment's directory with a matrix where the
postings were: ``vectors.npy`` (float32, documents x dimensions), the same
variable-length ids (:class:`~sparsearch.index.segment_types.DocIds`) and
stored fields (:class:`~sparsearch.index.segment_types.StoredField`), and,
for an approximate index, one faiss file (:mod:`sparsearch.index.dense_ann`).
Files are written and fsynced before the manifest names them, each with its
CRC-32 in the :class:`~sparsearch.index.manifest.SegmentInfo` (read back
from the page cache, as for sparse segments), and opened through the sparse
segment's loader, so a large matrix is memory-mapped, a small one read, and
either checksummed under the same policy.  The faiss file is always summed
before faiss parses it: faiss's reader and search trust the file's counts
and neighbour ids, where a flipped bit could crash the process.

Deletions are a mask beside the segment, exactly as for sparse ones (the
writer manages them); a segment's faiss structure covers every row, and
searches pass the live rows to faiss as an id selector.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.index import segment as sparse_segment
from sparsearch.index.checksum import crc32_of_buffer, crc32_of_file, read_error
from sparsearch.index.config import IndexConfig
from sparsearch.index.dense_ann import ANN_FILES, Ann, build_ann
from sparsearch.index.dense_settings import DenseIndexSettings
from sparsearch.index.manifest import SegmentInfo
from sparsearch.index.segment_types import (
    ID_STEMS, TEXT_FIELDS, DocIds, IdTable, SegmentSource, StoredField, _crc_message, _preview, decode_fields)
from sparsearch.index.storage import fsync_files, fsync_path, make_dir, save_array, write_bytes
from sparsearch.index.verify import _offsets_problem

VECTORS = "vectors"


@dataclass
class AnnSlot:
    """A segment's approximate structure, set when the segment is written or opened; shared by all its views."""

    ann: Ann | None = None


@dataclass(eq=False)
class DenseSegment:
    """Vectors (in memory, or memory-mapped when opened) with their ids and stored fields; local ids are rows."""

    vectors: np.ndarray  # float32 [n_docs, dim]
    doc_ids: IdTable
    fields: dict[str, StoredField] = field(default_factory=dict)
    deleted: np.ndarray | None = None  # uint8 [n_docs], 1 = deleted
    slot: AnnSlot = field(default_factory=AnnSlot)
    source: SegmentSource | None = field(default=None, repr=False)

    @property
    def n_docs(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def ann(self) -> Ann | None:
        return self.slot.ann

    @property
    def doc_lengths(self) -> np.ndarray:
        """The metadata column cache's identity anchor (:func:`~sparsearch.index.columns.segment_columns`).

        That cache is keyed weakly by an array every view of a segment
        shares; a dense document has no length, so the matrix plays the part.
        """
        return self.vectors

    def live_mask(self) -> np.ndarray:
        return np.ones(self.n_docs, bool) if self.deleted is None else self.deleted == 0

    def with_deletes(self, deleted: np.ndarray | None) -> "DenseSegment":
        """The same immutable arrays (and structure) under another deletion mask."""
        return DenseSegment(self.vectors, self.doc_ids, self.fields, deleted, self.slot, self.source)

    def external_id(self, local: int) -> str:
        return self.doc_ids.get(local)

    def stored(self, local: int) -> dict[str, Any]:
        return decode_fields(self.fields, local)

    def verify_checksums(self) -> None:
        """Checksum the mapped files that opening left unverified (a no-op in memory)."""
        if self.source is not None:
            self.source.verify()

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array to save, by file stem (the sparse segment's names for ids and fields)."""
        out = {VECTORS: self.vectors, **self.doc_ids.arrays()}
        for name, f in self.fields.items():
            kind = "json" if f.is_json else "text"
            out[f"field.{name}.{kind}.offsets"] = f.offsets
            out[f"field.{name}.{kind}.data"] = f.data
        return out


# ------------------------------------------------------------------ building


def as_matrix(vectors: Any, dim: int | None, ids: Sequence[str] | None = None) -> np.ndarray:
    """``vectors`` as a new C-order float32 matrix (of ``dim`` columns, when given), or an ``InputError``."""
    try:
        x = np.array(vectors, dtype=np.float32, order="C")  # a copy: the caller may reuse its array
    except (TypeError, ValueError) as e:
        raise InputError(f"dense vectors must be a matrix of numbers ({e})") from None
    if x.ndim != 2:
        columns = f"{dim} dimensions" if dim else "dimensions"
        raise InputError(f"dense vectors must be a 2-d array (rows x {columns}), got shape {x.shape}")
    if len(x) == 0:
        return np.zeros((0, dim if dim is not None else x.shape[1]), np.float32)
    if x.shape[1] < 1:
        raise InputError("dense vectors must have at least one dimension")
    if dim is not None and x.shape[1] != dim:
        raise InputError(f"vectors have {x.shape[1]} dimensions; this index holds {dim}")
    if not np.isfinite(x).all():  # (the whole-matrix test is 4x faster than the per-row one it falls back to)
        row = int(np.argmin(np.isfinite(x).all(axis=1)))
        which = f"document {_preview(ids[row])}" if ids is not None else f"row {row}"
        raise InputError(f"the vector of {which} holds NaN or infinity")
    return x


def build_dense_segment(ids: Sequence[str], vectors: Any, stored: Sequence[dict[str, Any]], dim: int | None,
                        config: IndexConfig) -> DenseSegment:
    """An in-memory segment (``dim`` columns, when known); refuses bad ids (as sparse segments do) and bad vectors."""
    x = as_matrix(vectors, dim, ids)
    if len(x) != len(ids) or len(stored) != len(ids):
        raise InputError(f"{len(ids)} ids, {len(x)} vectors and {len(stored)} stored fields: one each per document")
    doc_ids = DocIds.encode(list(ids))
    fields = {name: StoredField.encode([s.get(name) for s in stored], is_json=name not in TEXT_FIELDS)
              for name in config.stored_fields}
    return DenseSegment(x, doc_ids, fields)


def merge_dense_segments(segments: Sequence[DenseSegment], dim: int, config: IndexConfig) -> DenseSegment:
    """One segment of the live rows of ``segments``, in order (its structure is rebuilt when it is written).

    Inputs are checksummed first, so corrupt bytes never get a fresh valid
    checksum; ids and stored values are copied as bytes, in runs of
    consecutive live rows, without decoding them.
    """
    for seg in segments:
        seg.verify_checksums()
    rows = [np.flatnonzero(seg.live_mask()) for seg in segments]
    vectors = [np.asarray(seg.vectors)[r] for seg, r in zip(segments, rows) if len(r)]
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)
    ids = _concat_ragged([_take_ragged(_id_arrays(seg), r) for seg, r in zip(segments, rows)])
    fields = {}
    for name in config.stored_fields:
        parts = []
        for seg, r in zip(segments, rows):
            f = seg.fields.get(name)
            parts.append(_take_ragged((f.offsets, f.data), r) if f is not None else (np.zeros(len(r), np.int64), []))
        fields[name] = StoredField(*_concat_ragged(parts), is_json=name not in TEXT_FIELDS)
    return DenseSegment(np.ascontiguousarray(matrix, np.float32), DocIds(*ids), fields)


def _id_arrays(seg: DenseSegment) -> tuple[np.ndarray, np.ndarray]:
    table = seg.doc_ids if isinstance(seg.doc_ids, DocIds) else DocIds.encode(seg.doc_ids.tolist(), max_bytes=None)
    return table.offsets, table.data


def _take_ragged(arrays: tuple[np.ndarray, np.ndarray], rows: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """Value lengths and byte pieces of ``rows`` (ascending) of an offsets/data pair: one piece per run of rows."""
    offsets, data = np.asarray(arrays[0], np.int64), arrays[1]
    if len(rows) == 0:
        return np.zeros(0, np.int64), []
    cuts = np.flatnonzero(np.diff(rows) != 1) + 1
    firsts, lasts = rows[np.concatenate([[0], cuts])], rows[np.concatenate([cuts - 1, [len(rows) - 1]])]
    pieces = [np.asarray(data[offsets[a]:offsets[b + 1]]) for a, b in zip(firsts.tolist(), lasts.tolist())]
    return offsets[rows + 1] - offsets[rows], pieces


def _concat_ragged(parts: Sequence[tuple[np.ndarray, list[np.ndarray]]]) -> tuple[np.ndarray, np.ndarray]:
    lengths = np.concatenate([p[0] for p in parts]) if parts else np.zeros(0, np.int64)
    offsets = np.zeros(len(lengths) + 1, np.int64)
    np.cumsum(lengths, out=offsets[1:])
    if offsets[-1] < 2**32:
        offsets = offsets.astype(np.uint32)  # the narrow offsets new sparse segments write
    pieces = [piece for p in parts for piece in p[1]]
    return offsets, np.concatenate(pieces).astype(np.uint8, copy=False) if pieces else np.zeros(0, np.uint8)


# ------------------------------------------------------------------ writing


def write_dense_segment(seg: DenseSegment, directory: Path, name: str, settings: DenseIndexSettings) -> SegmentInfo:
    """Write a segment directory (every file fsynced) and describe it; builds its approximate structure.

    The structure is built here, where a segment is written (a flush or a
    merge), for segments of at least ``settings.min_docs(kind)`` rows;
    smaller ones are searched exactly.  A segment that already has one (opened, or
    written before) keeps it rather than rebuilding it.
    """
    path = directory / name
    make_dir(path, exist_ok=False)
    files = {f"{stem}.npy": save_array(path / f"{stem}.npy", a) for stem, a in seg.arrays().items()}
    fsync_files([path / f for f in files])
    ann = _structure_for(seg, settings)
    if ann is not None:
        file = ANN_FILES[ann.kind]
        files[file] = write_bytes(path / file, memoryview(ann.to_bytes()))
    fsync_path(path)
    crc32 = {file: crc32_of_file(path / file) for file in files}
    seg.slot.ann = ann
    return SegmentInfo(name=name, n_docs=seg.n_docs, n_postings=0, n_terms=seg.dim, files=files, crc32=crc32)


def _structure_for(seg: DenseSegment, settings: DenseIndexSettings) -> Ann | None:
    """The segment's own structure if it is of the configured kind, else a new one if the segment is large enough."""
    ann_kind = settings.ann_kind
    ann = seg.ann if seg.ann is not None and seg.ann.kind == ann_kind else None
    if ann is None and ann_kind is not None and seg.n_docs >= settings.min_docs(ann_kind):
        ann = build_ann(ann_kind, seg.vectors, settings)
    return ann


def seal_dense_segment(seg: DenseSegment, settings: DenseIndexSettings) -> DenseSegment:
    """Give a committed in-memory segment the structure writing it would build (else it is searched exactly)."""
    seg.slot.ann = _structure_for(seg, settings)
    return seg


# ------------------------------------------------------------------ reading


def open_dense_segment(directory: Path, info: SegmentInfo, mmap: bool = True,
                       deletes_size: int | None = None) -> DenseSegment:
    """Open a segment: sizes, checksums (the sparse segment's policy) and structure checked against ``info``."""
    path = directory / info.name
    stems = {f[: -len(".npy")] for f in info.files if f.endswith(".npy")}
    missing = [s for s in (VECTORS, *ID_STEMS) if s not in stems]
    if missing:
        raise IndexFormatError(f"{path}: manifest lists no {missing[0]}.npy (index is corrupt)")
    small = sparse_segment.SMALL_FILE_BYTES
    mapped = sum(size for f, size in info.files.items() if size > small and f.endswith(".npy")) if mmap else 0
    verify_mapped = mapped <= sparse_segment.VERIFY_ON_OPEN_BYTES
    loaded = {stem: sparse_segment._load(path / f"{stem}.npy", info.files[f"{stem}.npy"], mmap,
                                         info.crc32.get(f"{stem}.npy"), verify_mapped) for stem in sorted(stems)}
    arrays = {stem: item.array for stem, item in loaded.items()}
    pending = {f"{stem}.npy": info.crc32[f"{stem}.npy"] for stem, item in loaded.items() if not item.verified}
    fields = {}
    for stem in stems:
        parts = stem.split(".")
        if parts[0] == "field" and parts[-1] == "offsets":
            if len(parts) != 4 or f"field.{parts[1]}.{parts[2]}.data" not in arrays:
                raise IndexFormatError(f"{path}: stored field file {stem}.npy has no data file (index is corrupt)")
            fields[parts[1]] = StoredField(arrays[stem], arrays[f"field.{parts[1]}.{parts[2]}.data"],
                                           parts[2] == "json")
    deleted = None
    if info.deletes:
        deleted = sparse_segment._load(directory / info.deletes, deletes_size, mmap=False,
                                       crc=info.crc32.get(info.deletes)).array
    seg = DenseSegment(arrays[VECTORS], DocIds(arrays["doc_ids.offsets"], arrays["doc_ids.data"]), fields, deleted,
                       source=SegmentSource(path, pending))
    problem = structure_problem(seg, info)
    if problem:
        raise IndexFormatError(f"{path}: {problem} (index is corrupt)")
    for kind, file in ANN_FILES.items():
        if file in info.files:
            data = _read_verified(path / file, info.files[file], info.crc32.get(file))
            seg.slot.ann = Ann.from_bytes(kind, data, seg.vectors, str(path / file))
    return seg


def structure_problem(seg: DenseSegment, info: SegmentInfo | None = None) -> str | None:
    """The first structural problem of a segment (shapes and dtypes that disagree, ragged offsets), or None.

    Values are not scanned: they were checked when built, and the checksums
    catch what changed them since.
    """
    x = seg.vectors
    if not isinstance(x, np.ndarray) or x.dtype != np.float32 or x.ndim != 2:
        return f"vectors are not a float32 matrix ({getattr(x, 'dtype', type(x))}, {getattr(x, 'ndim', '?')}-d)"
    if info is not None and x.shape != (info.n_docs, info.n_terms):
        return f"vectors have shape {x.shape}, the manifest says ({info.n_docs}, {info.n_terms})"
    n = len(x)
    if not isinstance(seg.doc_ids, DocIds):
        return "doc ids are not variable-length"
    problem = _offsets_problem("doc id", seg.doc_ids.offsets, n, seg.doc_ids.data)
    for name, f in seg.fields.items():
        problem = problem or _offsets_problem(f"stored field {name!r}", f.offsets, n, f.data)
    if problem is None and seg.deleted is not None:
        d = seg.deleted
        if not isinstance(d, np.ndarray) or d.dtype != np.uint8 or d.shape != (n,):
            problem = f"deletion mask has shape {getattr(d, 'shape', '?')}, expected ({n},) uint8"
    return problem


def _read_verified(file: Path, size: int, crc: int | None) -> np.ndarray:
    """A whole file's bytes, its size and CRC-32 checked (before anything parses them)."""
    try:
        with open(file, "rb") as f:
            data = f.read()
    except OSError as e:
        raise read_error(e, file) from None
    if len(data) != size:
        raise IndexFormatError(f"{file}: size {len(data)} differs from the manifest's {size} (index is corrupt)")
    if crc is not None:
        actual = crc32_of_buffer(data)
        if actual != crc:
            raise IndexFormatError(_crc_message(file, actual, crc))
    return np.frombuffer(data, np.uint8)
