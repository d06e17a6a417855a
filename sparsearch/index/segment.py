"""One immutable segment: postings by term, per-document statistics, ids and stored fields.

On disk a segment is a directory of plain ``.npy`` files.  No pickles: the
files are readable from any NumPy; every file's size and CRC-32 is in the
manifest (format 2), so a truncated or bit-flipped file is caught instead of
producing garbage or, worse, a crash in a kernel that trusts doc ids.

Opening (:func:`open_segment`) reads small files into memory and maps large
ones, without keeping a file descriptor per file (see :class:`_Mapping`), so
an index larger than RAM only pages in the posting lists a query touches, and
a thousand open collections do not exhaust ``ulimit -n``.  Every segment is
then checked structurally (:mod:`sparsearch.index.verify`) before any kernel
sees it.

Size matters as much as speed here, so every array takes the narrowest dtype
that holds it: term frequencies in one byte, lengths in two when they fit,
stored text and external ids as raw UTF-8 with 32-bit offsets, and per-term
scales only when quantisation was actually lossy.
"""

from __future__ import annotations

import ctypes
import io
import json
import math
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, Union

import numpy as np

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.index import kernels, small, verify
from sparsearch.index.checksum import crc32_of_buffer, crc32_of_file, format_crc, read_error
from sparsearch.index.config import IndexConfig
from sparsearch.index.manifest import SegmentInfo
from sparsearch.index.storage import fsync_files, fsync_path, make_dir, save_array
from sparsearch.types import SparseBatch, compact_offsets

#: Arrays every segment has, by file stem (plus its ids: :data:`ID_STEMS`, or ``doc_ids`` in format 1).
POSTINGS_ARRAYS = ("postings_offsets", "postings_docs", "postings_weights", "doc_lengths", "doc_norms")
#: Variable-length external ids (format 2): offsets into UTF-8 bytes, like a stored field.
ID_STEMS = ("doc_ids.offsets", "doc_ids.data")
#: Format-1 ids: one fixed-width ``S<n>`` array (NumPy drops trailing NULs; kept only to open old indexes).
LEGACY_ID_STEM = "doc_ids"
TEXT_FIELDS = ("title", "text")

#: Longest external id, in UTF-8 bytes.  2,048 is the HTTP API's limit of 512 characters
#: (``service/schemas.py``) at UTF-8's worst case of 4 bytes each, so every id the service
#: accepts can be stored (the log is written before the buffer segment is built: an id refused
#: there would be durable but unappliable).  Percent-encoded (at most 6 KiB) such an id still
#: fits the 8 KiB request line that HTTP servers and proxies accept by default (nginx; Apache's
#: 8,190), so every stored id can be read and deleted over HTTP; it is 4x Elasticsearch's and
#: OpenSearch's 512 bytes, so their ids always fit.  Larger "ids" are mistakes (a document body
#: in the id column), and one of them used to inflate every id of a fixed-width segment to its width.
MAX_ID_BYTES = 2048

#: Files up to this size are read into memory instead of memory-mapped: their checksum is
#: then verified on every open for ~0.3 ms per MiB, they cost no mapping (vm.max_map_count)
#: and no page-cache rounding, and their copies stay below ~1 MiB per file, a few MiB per
#: segment.  A segment of a small collection (< ~250,000 postings) is read whole.
SMALL_FILE_BYTES = 1 << 20

#: Mapped files are checksummed on open while the segment's mapped bytes stay below this
#: (~20 ms at 3.6 GB/s from the page cache); larger segments are checksummed by ``sparsearch
#: check``, before a merge rewrites them, or by ``open_segment(verify="full")``.  Structure is
#: checked on every open regardless (docs/design.md, "Integrity", has the measurements).
VERIFY_ON_OPEN_BYTES = 64 << 20


class DocIds:
    """External ids, variable-length: id ``i`` is ``data[offsets[i]:offsets[i+1]]`` as UTF-8.

    Exact for every string (trailing NULs, newlines, 4-byte UTF-8), and an
    index holding long ids grows by their bytes, not by the longest id times
    the number of documents as a fixed-width array does.
    """

    __slots__ = ("offsets", "data")

    def __init__(self, offsets: np.ndarray, data: np.ndarray) -> None:
        self.offsets = offsets  # uint32 (int64 past 4 GiB) [n_docs + 1]
        self.data = data  # uint8 [total bytes]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def get(self, local: int) -> str:
        lo, hi = int(self.offsets[local]), int(self.offsets[local + 1])
        return bytes(self.data[lo:hi]).decode("utf-8")

    def tolist(self) -> list[str]:
        """Every id, decoded at once: ~5x faster than ``np.char.decode`` of the old fixed-width array.

        The blob is decoded once; ids are then sliced out of the string at
        character offsets (byte offsets minus UTF-8 continuation bytes before them).
        """
        blob = self.data.tobytes()
        text = blob.decode("utf-8")
        if len(text) == len(blob):  # ASCII: byte offsets are character offsets
            cuts = self.offsets.tolist()
        else:
            starts = np.zeros(len(self.data) + 1, np.int64)
            np.cumsum((self.data & 0xC0) != 0x80, out=starts[1:])
            cuts = starts[self.offsets].tolist()
        return [text[a:b] for a, b in zip(cuts[:-1], cuts[1:])]

    def arrays(self) -> dict[str, np.ndarray]:
        return {"doc_ids.offsets": self.offsets, "doc_ids.data": self.data}

    @classmethod
    def encode(cls, ids: Sequence[str], max_bytes: int | None = MAX_ID_BYTES) -> "DocIds":
        """Pack ids, refusing one that is not valid Unicode or longer than ``max_bytes`` of UTF-8."""
        joined = "".join(ids)
        if joined.isascii():
            lengths = np.fromiter(map(len, ids), np.int64, len(ids))
            data = joined.encode("ascii")
        else:
            blobs = [_encode_id(d) for d in ids]
            lengths = np.fromiter(map(len, blobs), np.int64, len(blobs))
            data = b"".join(blobs)
        if max_bytes is not None and len(lengths) and int(lengths.max()) > max_bytes:
            i = int(np.argmax(lengths))
            raise InputError(f"document id {_preview(ids[i])} is {int(lengths[i])} bytes long in UTF-8; ids are "
                             f"limited to {max_bytes} bytes", field="_id")
        offsets = np.zeros(len(ids) + 1, np.int64)
        np.cumsum(lengths, out=offsets[1:])
        if offsets[-1] < 2**32:
            offsets = offsets.astype(np.uint32)
        return cls(offsets, np.frombuffer(data, np.uint8))


class FixedWidthIds:
    """Format-1 ids (``S<n>``), read-only: opened so that old indexes keep working.

    NumPy strips trailing NUL bytes from such strings, so an id ending in
    NUL reads back shortened; rewriting the segment (a merge) moves it to
    :class:`DocIds` with what is left.
    """

    __slots__ = ("array",)

    def __init__(self, array: np.ndarray) -> None:
        self.array = array

    def __len__(self) -> int:
        return len(self.array)

    def get(self, local: int) -> str:
        return bytes(self.array[local]).decode("utf-8")

    def tolist(self) -> list[str]:
        return np.char.decode(self.array, "utf-8").tolist()

    def arrays(self) -> dict[str, np.ndarray]:
        return DocIds.encode(self.tolist(), max_bytes=None).arrays()


IdTable = Union[DocIds, FixedWidthIds]


def _encode_id(doc_id: str) -> bytes:
    try:
        return doc_id.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"document id {_preview(doc_id)} is not valid Unicode (it holds an unpaired surrogate)",
                         field="_id") from None


def _preview(doc_id: str, limit: int = 60) -> str:
    """An id for an error message: repr'd (NULs and newlines visible), long ones truncated."""
    return repr(doc_id) if len(doc_id) <= limit else f"{doc_id[:limit]!r}... ({len(doc_id)} characters)"


def check_doc_id(doc_id: str) -> None:
    """Refuse an id that no segment could store (for callers that accept ids before building)."""
    encoded = _encode_id(doc_id)
    if len(encoded) > MAX_ID_BYTES:
        raise InputError(f"document id {_preview(doc_id)} is {len(encoded)} bytes long in UTF-8; ids are limited "
                         f"to {MAX_ID_BYTES} bytes", field="_id")


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


class SegmentSource:
    """Where an opened segment's files live, and which of them still await their checksum.

    Large mapped files are not summed on open (that would read the whole
    index); :meth:`verify` sums them on demand, once: before a merge rewrites
    the segment (so corruption is never laundered into a file with a fresh,
    valid checksum) and in ``sparsearch check``.
    """

    def __init__(self, path: Path, pending: dict[str, int]) -> None:
        self.path = path
        self._pending = dict(pending)  # file name -> expected CRC-32
        self._lock = threading.Lock()

    @property
    def unverified(self) -> list[str]:
        return sorted(self._pending)

    def verify(self) -> None:
        """Checksum every file not verified yet; raises :class:`IndexFormatError` on a mismatch."""
        with self._lock:
            if not self._pending:
                return
            names = sorted(self._pending)
            with ThreadPoolExecutor(max_workers=min(4, len(names))) as pool:
                actual = dict(zip(names, pool.map(lambda n: crc32_of_file(self.path / n), names)))
            for name in names:
                if actual[name] != self._pending[name]:
                    raise IndexFormatError(_crc_message(self.path / name, actual[name], self._pending[name]))
            self._pending.clear()


def _crc_message(path: Path, actual: int, expected: int) -> str:
    return (f"{path}: checksum mismatch (CRC-32 {format_crc(actual)}, manifest says {format_crc(expected)}): "
            f"the file is corrupt; restore the index from a copy or rebuild it")


@dataclass
class Segment:
    """Arrays of one segment (in memory or memory-mapped); doc ids are segment-local."""

    postings_offsets: np.ndarray  # int64 [n_terms + 1]
    postings_docs: np.ndarray  # uint32 [n_postings]
    postings_weights: np.ndarray  # float32 or uint8 [n_postings]
    doc_lengths: np.ndarray  # uint16 / uint32 / float32 [n_docs]
    doc_norms: np.ndarray  # uint8 [n_docs]: Lucene one-byte length
    doc_ids: IdTable  # external ids: DocIds (variable-length UTF-8), FixedWidthIds in old indexes
    term_scales: np.ndarray | None = None  # float32 [n_terms]: real weight = stored * scale; None = 1
    fields: dict[str, StoredField] = field(default_factory=dict)
    deleted: np.ndarray | None = None  # uint8 [n_docs], 1 = deleted; kept in its own file, outside the segment
    _ones: np.ndarray | None = field(default=None, repr=False)
    source: SegmentSource | None = field(default=None, repr=False)  # on-disk origin, for lazy checksums

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
        live_doc_freq = small.live_doc_freq if small.small_build(self.n_postings) else kernels.live_doc_freq
        return live_doc_freq(self.postings_offsets, self.postings_docs, self.deleted)

    def doc_freq_all(self) -> np.ndarray:
        """Postings per term, deleted documents included (the CSR row lengths)."""
        return np.diff(self.postings_offsets)

    def live_mask(self) -> np.ndarray:
        return np.ones(self.n_docs, bool) if self.deleted is None else self.deleted == 0

    def with_deletes(self, deleted: np.ndarray | None) -> "Segment":
        """The same immutable arrays under another deletion mask (a new snapshot's view)."""
        return Segment(self.postings_offsets, self.postings_docs, self.postings_weights, self.doc_lengths,
                       self.doc_norms, self.doc_ids, self.term_scales, self.fields, deleted, source=self.source)

    def external_id(self, local: int) -> str:
        return self.doc_ids.get(local)

    def verify_checksums(self) -> None:
        """Checksum the files that opening left unverified (a no-op for in-memory segments)."""
        if self.source is not None:
            self.source.verify()

    def stored(self, local: int) -> dict[str, Any]:
        out = {}
        for name, f in self.fields.items():
            value = f.get(local)
            if value is not None:
                out[name] = value
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        """Every array to save, by file stem."""
        out = {name: getattr(self, name) for name in POSTINGS_ARRAYS}
        out.update(self.doc_ids.arrays())
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
    return Segment(
        postings_offsets=postings_offsets,
        postings_docs=postings_docs,
        postings_weights=postings_weights,
        doc_lengths=_narrow_lengths(np.asarray(lengths)),
        doc_norms=(small.encode_norms if numpy_path else kernels.encode_norms)(np.asarray(lengths, np.float32)),
        doc_ids=ids,
        term_scales=term_scales,
        fields=fields,
    )


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())


def write_segment(segment: Segment, directory: Path, name: str) -> SegmentInfo:
    """Write a segment directory (every file fsynced) and describe it for the manifest.

    Each file's CRC-32 is computed by reading it back right after it is
    written (from the page cache, ~0.3 ms per MiB): what the manifest
    vouches for is what reached the file, whatever wrote it.
    """
    path = directory / name
    make_dir(path, exist_ok=False)
    files = {f"{stem}.npy": save_array(path / f"{stem}.npy", a) for stem, a in segment.arrays().items()}
    fsync_files([path / name for name in files])
    fsync_path(path)
    crc32 = {file: crc32_of_file(path / file) for file in files}
    return SegmentInfo(
        name=name, n_docs=segment.n_docs, n_postings=segment.n_postings, n_terms=segment.n_terms, files=files,
        crc32=crc32,
    )


# ------------------------------------------------------------------ reading


class _Mapping:
    """A read-only shared mapping of a whole file that keeps no file descriptor open.

    ``np.load(mmap_mode="r")`` goes through Python's ``mmap``, which keeps a
    duplicate of the file's descriptor for the mapping's lifetime (until
    Python 3.13's ``trackfd=False``): 1,000 open collections held 13,016
    descriptors and failed under the default ``ulimit -n 1024``.  The kernel
    needs no descriptor once a mapping exists, so the file is mapped with
    ``mmap(2)`` directly and closed at once; the mapping is unmapped when the
    last array viewing it is garbage-collected (arrays reach this object
    through ``.base``).
    """

    def __init__(self, fd: int, size: int) -> None:
        addr = _libc.mmap(None, size, _PROT_READ, _MAP_SHARED, fd, 0)
        if addr is None or addr == _MAP_FAILED:
            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err))
        self.addr: int = addr
        self.size = size
        self._view: dict[str, Any] = {}

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A read-only C-order ndarray over ``[offset, ...)`` of the mapping (its ``.base`` keeps the mapping alive)."""
        self._view = {"version": 3, "shape": shape, "typestr": dtype.str, "descr": dtype.descr,
                      "data": (self.addr + offset, True)}
        out = np.asarray(self)
        self._view = {}
        return out

    def buffer(self) -> np.ndarray:
        """The whole file as bytes (for its checksum)."""
        return self.array(0, np.dtype(np.uint8), (self.size,))

    @property
    def __array_interface__(self) -> dict[str, Any]:
        return self._view

    def __del__(self) -> None:
        if _libc is not None and getattr(self, "addr", None):
            _libc.munmap(self.addr, self.size)
            self.addr = 0


def _load_libc() -> Any:
    """libc's mmap/munmap through ctypes, or None where that is not safe (then Python's mmap is used)."""
    if not sys.platform.startswith(("linux", "darwin")) or ctypes.sizeof(ctypes.c_void_p) != 8:
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int64]
        libc.munmap.restype = ctypes.c_int
        libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
        return libc
    except (OSError, AttributeError):
        return None


_libc = _load_libc()
_PROT_READ = 1
_MAP_SHARED = 1
_MAP_FAILED = ctypes.c_void_p(-1).value


@dataclass
class _Loaded:
    array: np.ndarray
    verified: bool  # checksum checked (or none to check)


def _parse_header(head: bytes, file: Path) -> tuple[np.dtype, tuple[int, ...], int]:
    """dtype, shape and data offset of a ``.npy`` header (never unpickles; segments hold C-order arrays only)."""
    fp = io.BytesIO(head)
    try:
        version = np.lib.format.read_magic(fp)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fp)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fp)
        else:
            raise ValueError(f"unsupported .npy version {version}")
    except (ValueError, SyntaxError, TypeError, EOFError) as e:
        raise IndexFormatError(f"{file}: unreadable segment file header ({e}) (index is corrupt)") from None
    if dtype.hasobject:
        raise IndexFormatError(f"{file}: segment file holds Python objects (index is corrupt)")
    if fortran and len(shape) > 1:
        raise IndexFormatError(f"{file}: segment file holds a Fortran-order array (index is corrupt)")
    return dtype, tuple(int(n) for n in shape), fp.tell()


def _read_all(fd: int, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = os.read(fd, min(left, 1 << 30))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _load(file: Path, expected: int | None, mmap: bool, crc: int | None = None,
          verify_mapped: bool = False) -> _Loaded:
    """Read or map one ``.npy`` file, checking its size, its checksum where due, and its header.

    Files up to :data:`SMALL_FILE_BYTES` (or all, with ``mmap=False``) are
    read: their CRC-32 is verified for free.  Larger ones are mapped; their
    CRC-32 is verified here only with ``verify_mapped``.  The checksum comes
    before the header, so a flipped bit anywhere reads as what it is.  OS
    errors keep their cause (:func:`~sparsearch.index.checksum.read_error`).
    """
    map_it = mmap and _libc is not None
    doing = "reading"
    try:
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise read_error(e, file, "opening") from None
    try:
        try:
            size = os.fstat(fd).st_size
            if expected is not None and size != expected:
                raise IndexFormatError(f"{file}: size {size} differs from the manifest's {expected} (index is corrupt)")
            if mmap and size > SMALL_FILE_BYTES and not map_it:
                raw: Any = None  # no libc mmap here: NumPy maps it below (keeping one descriptor)
            elif mmap and size > SMALL_FILE_BYTES:
                doing = "mapping"
                raw = _Mapping(fd, size)
            else:
                raw = _read_all(fd, size)
                if len(raw) != size:
                    raise IndexFormatError(f"{file}: file shrank while being read (index is being modified?)")
        except OSError as e:
            raise read_error(e, file, doing) from None
    finally:
        os.close(fd)
    if raw is None:
        return _load_with_numpy(file, crc, verify_mapped, size)
    mapped = isinstance(raw, _Mapping)
    verified = crc is None
    if crc is not None and (verify_mapped or not mapped):
        actual = crc32_of_buffer(raw.buffer() if mapped else raw)  # type: ignore[arg-type]
        if actual != crc:
            raise IndexFormatError(_crc_message(file, actual, crc))
        verified = True
    head = raw.array(0, np.dtype(np.uint8), (min(size, 1 << 16),)).tobytes() if mapped else raw[: 1 << 16]
    dtype, shape, offset = _parse_header(head, file)
    n_bytes = math.prod(shape) * dtype.itemsize
    if offset + n_bytes != size:
        raise IndexFormatError(f"{file}: header promises {n_bytes} bytes of data after {offset}, file holds "
                               f"{size - offset} (index is corrupt)")
    if mapped:
        return _Loaded(raw.array(offset, dtype, shape), verified)
    count = n_bytes // dtype.itemsize if dtype.itemsize else 0
    array = np.frombuffer(raw, dtype=dtype, count=count, offset=offset).reshape(shape)
    if not array.flags.aligned:
        array = array.copy()
        array.flags.writeable = False
    return _Loaded(array, verified)


def _load_with_numpy(file: Path, crc: int | None, verify_now: bool, size: int) -> _Loaded:
    try:
        array = np.asarray(np.load(file, mmap_mode="r", allow_pickle=False))
    except OSError as e:
        raise read_error(e, file, "mapping") from None
    except ValueError as e:
        raise IndexFormatError(f"{file}: unreadable segment file ({e}) (index is corrupt)") from None
    verified = crc is None
    if crc is not None and verify_now:
        actual = crc32_of_file(file)
        if actual != crc:
            raise IndexFormatError(_crc_message(file, actual, crc))
        verified = True
    return _Loaded(array, verified)


def open_segment(directory: Path, info: SegmentInfo, mmap: bool = True,
                 deletes_size: int | None = None, verify_checksums: str = "auto") -> Segment:
    """Open a segment (and its deletion mask): sizes, checksums and structure checked against the manifest.

    ``verify_checksums``: ``"auto"`` sums every file read into memory and the
    mapped ones while the segment maps at most :data:`VERIFY_ON_OPEN_BYTES`
    (the rest are summed by :meth:`Segment.verify_checksums`); ``"full"``
    sums everything now; ``"lazy"`` only what is read anyway.  Indexes of
    format 1 carry no checksums: only their structure is checked.  The
    structure of every array is checked in all modes, so that no kernel ever
    sees an out-of-range doc id or offset.
    """
    if verify_checksums not in ("auto", "full", "lazy"):
        raise ValueError(f"verify_checksums must be auto, full or lazy, not {verify_checksums!r}")
    path = directory / info.name
    stems = {f[: -len(".npy")] for f in info.files if f.endswith(".npy")}
    id_stems = ID_STEMS if ID_STEMS[0] in stems or LEGACY_ID_STEM not in stems else (LEGACY_ID_STEM,)
    missing = [n for n in POSTINGS_ARRAYS + id_stems if n not in stems]
    if missing:
        raise IndexFormatError(f"{path}: manifest lists no {missing[0]}.npy (index is corrupt)")
    mapped_total = sum(size for f, size in info.files.items() if size > SMALL_FILE_BYTES) if mmap else 0
    verify_mapped = verify_checksums == "full" or (verify_checksums == "auto" and mapped_total <= VERIFY_ON_OPEN_BYTES)
    loaded = {stem: _load(path / f"{stem}.npy", info.files[f"{stem}.npy"], mmap, info.crc32.get(f"{stem}.npy"),
                          verify_mapped) for stem in sorted(stems)}
    arrays = {stem: item.array for stem, item in loaded.items()}
    pending = {f"{stem}.npy": info.crc32[f"{stem}.npy"] for stem, item in loaded.items() if not item.verified}
    fields = {}
    for stem in stems:
        if stem.startswith("field.") and stem.endswith(".offsets"):
            parts = stem.split(".")
            if len(parts) != 4 or f"field.{parts[1]}.{parts[2]}.data" not in arrays:
                raise IndexFormatError(f"{path}: stored field file {stem}.npy has no data file (index is corrupt)")
            _, name, kind, _ = parts
            fields[name] = StoredField(arrays[stem], arrays[f"field.{name}.{kind}.data"], kind == "json")
    ids: IdTable
    if id_stems == ID_STEMS:
        ids = DocIds(arrays["doc_ids.offsets"], arrays["doc_ids.data"])
    else:
        ids = FixedWidthIds(arrays[LEGACY_ID_STEM])
    deleted = None
    if info.deletes:
        mask = _load(directory / info.deletes, deletes_size, mmap=False, crc=info.crc32.get(info.deletes)).array
        deleted = mask
    segment = Segment(**{n: arrays[n] for n in POSTINGS_ARRAYS}, doc_ids=ids, term_scales=arrays.get("term_scales"),
                      fields=fields, deleted=deleted, source=SegmentSource(path, pending))
    problem = verify.first_problem(segment, info)
    if problem:
        raise IndexFormatError(f"{path}: {problem} (index is corrupt)")
    return segment


