"""File checksums and read-side error reporting, shared by the segment loader, the manifest and ``check``.

Why CRC-32 (``zlib.crc32``): it is in the standard library, runs at
~3.6 GB/s on one core here (SHA-1 1.7, SHA-256 1.6, BLAKE2b 0.8 GB/s) and
releases the GIL, so two files are summed on two cores at once.  It is a
check against bit rot, torn writes and stray edits, not against tampering:
whoever can rewrite a segment file can rewrite the manifest too.

A read that fails is reported by its cause, not as corruption: running out
of file descriptors is a limit of the process (``ulimit -n``), an I/O error
is the disk's; only a file that is missing, short or malformed is a format
problem (:class:`~sparsearch.errors.IndexFormatError`).
"""

from __future__ import annotations

import errno
import os
import zlib
from pathlib import Path

from sparsearch.errors import IndexFormatError, SparsearchError, StorageError, TooManyOpenFilesError

#: Bytes read per call when summing a file: large enough that the per-call cost vanishes,
#: small enough to stay in the CPU cache between read and sum.
CHUNK_BYTES = 4 << 20

#: errno values that mean "this process or system holds too many open files".
FD_ERRNOS = (errno.EMFILE, errno.ENFILE)


def crc32_of_buffer(data: bytes | bytearray | memoryview) -> int:
    """CRC-32 of an in-memory buffer (what was just read or mapped)."""
    return zlib.crc32(data) & 0xFFFFFFFF


def crc32_of_file(path: Path) -> int:
    """CRC-32 of a whole file, read in chunks (no mapping: the file is read once, sequentially)."""
    crc = 0
    try:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(CHUNK_BYTES)
            view = memoryview(buf)
            while n := f.readinto(buf):
                crc = zlib.crc32(view[:n], crc)
    except OSError as e:
        raise read_error(e, path, "reading") from None
    return crc & 0xFFFFFFFF


def format_crc(value: int) -> str:
    return f"{value:08x}"


def read_error(e: OSError, path: Path | str, doing: str = "reading") -> SparsearchError:
    """The sparsearch error for an ``OSError`` met while reading an index file.

    EMFILE/ENFILE become :class:`TooManyOpenFilesError` (a descriptor limit,
    never corruption), a missing file :class:`IndexFormatError` (the manifest
    names it, so the index is damaged), anything else from the operating
    system (EIO, EACCES, ENOMEM for a mapping, ...) :class:`StorageError`.
    """
    if e.errno in FD_ERRNOS:
        return TooManyOpenFilesError(
            f"{path}: cannot open index file: the process ran out of file descriptors ({e.strerror}); this is a "
            f"limit, not corruption: raise `ulimit -n` or open fewer indexes at once",
            errno=e.errno, filename=str(path))
    if e.errno in (errno.ENOENT, errno.ENOTDIR):
        return IndexFormatError(f"{path}: missing index file (index is corrupt)")
    reason = e.strerror or str(e)
    return StorageError(f"{path}: {doing} failed: {reason} (errno {e.errno}); the disk or file system reported an "
                        f"error, the index files may be intact", errno=e.errno, filename=str(path))


def file_size(path: Path) -> int:
    """Size of ``path``; a missing file is an :class:`IndexFormatError`, other failures by their cause."""
    try:
        return os.stat(path).st_size
    except OSError as e:
        raise read_error(e, path, "stat") from None
