"""One immutable segment on disk: writing and opening it (and the public facade of the segment modules).

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

The segment itself is :mod:`sparsearch.index.segment_types` (:class:`Segment`,
its ids and stored fields) and building one from vectors is
:mod:`sparsearch.index.segment_build`; every name of both is re-exported
here, so callers import them from ``sparsearch.index.segment`` as before.
Reading stays in this module, beside the settings it reads at call time
(:data:`SMALL_FILE_BYTES`, :data:`VERIFY_ON_OPEN_BYTES`, ``_libc``,
``_read_all``): whoever changes them (the integrity tests do) changes them
here, and the change must reach :func:`open_segment`.
"""

from __future__ import annotations

import ctypes
import io
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch.errors import IndexFormatError
from sparsearch.index import verify
from sparsearch.index.accel import structure_problem as accel_structure_problem
from sparsearch.index.checksum import crc32_of_buffer, crc32_of_file, read_error
from sparsearch.index.manifest import SegmentInfo
from sparsearch.index.storage import fsync_files, fsync_path, make_dir, save_array
from sparsearch.types import TokenSets

# The public facade: the segment's types and its builder, re-exported from where they now live.
from sparsearch.index.segment_build import _narrow_lengths, _threads, build_segment  # noqa: F401
from sparsearch.index.segment_types import (  # noqa: F401
    ID_STEMS,
    LEGACY_ID_STEM,
    MAX_ID_BYTES,
    POSTINGS_ARRAYS,
    TEXT_FIELDS,
    TEXT_TOKEN_STEMS,
    DocIds,
    FixedWidthIds,
    IdTable,
    Segment,
    SegmentSource,
    StoredField,
    _crc_message,
    _encode_id,
    _preview,
    check_doc_id,
)

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
    accel = {stem[len("accel."):]: a for stem, a in arrays.items() if stem.startswith("accel.")}
    text_tokens = None
    present = [stem for stem in TEXT_TOKEN_STEMS if stem in arrays]
    if present:
        if len(present) != len(TEXT_TOKEN_STEMS):
            missing = next(stem for stem in TEXT_TOKEN_STEMS if stem not in arrays)
            raise IndexFormatError(f"{path}: manifest lists {present[0]}.npy but no {missing}.npy (index is corrupt)")
        text_tokens = TokenSets(*(arrays[stem] for stem in TEXT_TOKEN_STEMS))
    segment = Segment(**{n: arrays[n] for n in POSTINGS_ARRAYS}, doc_ids=ids, term_scales=arrays.get("term_scales"),
                      fields=fields, deleted=deleted, source=SegmentSource(path, pending), accel=accel,
                      text_tokens=text_tokens)
    problem = verify.first_problem(segment, info) or accel_structure_problem(accel, segment.n_docs, segment.n_terms,
                                                                             segment.n_postings)
    if problem:
        raise IndexFormatError(f"{path}: {problem} (index is corrupt)")
    return segment
