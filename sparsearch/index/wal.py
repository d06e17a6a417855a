"""The write-ahead log of a live index: append, fsync, roll back, replay.

One record per line: ``<crc32 of the JSON, 8 hex digits> <JSON>\\n``.  A
record is acknowledged only after the fsync that covers it returns, and the
log holds nothing after a record that failed: a failed append (full disk,
I/O error, a failed fsync) is cut off at the last good offset before the
caller hears of it.  If even that truncation fails, the log refuses appends
(:attr:`WriteAheadLog.broken`) until a later attempt repairs it, so no later
record can land behind a torn one.

On replay, a damaged *last* record is a write that never completed (and was
never acknowledged): it is dropped.  A damaged record with good records after
it cannot come from a failed append, since those are cut off, so it is real
corruption and opening fails with the file and line.  Lines that start with
``{`` (the log format before checksums) are read without one.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from pathlib import Path
from typing import Any

from sparsearch.errors import IndexFormatError, StorageError
from sparsearch.index.storage import as_storage_error, fsync_fd, open_for_append, truncate_fd, write_fd

log = logging.getLogger(__name__)


def encode_record(record: dict[str, Any]) -> bytes:
    """One log line. ``allow_nan=False``: a record that JSON cannot hold is refused before it is logged."""
    body = json.dumps(record, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
    return b"%08x " % zlib.crc32(body) + body + b"\n"


def _decode_line(line: bytes) -> dict[str, Any]:
    if line[:1] == b"{":
        body = line
    else:
        if len(line) < 10 or line[8:9] != b" ":
            raise ValueError("no checksum")
        body = line[9:]
        if int(line[:8], 16) != zlib.crc32(body):
            raise ValueError("checksum mismatch")
    record = json.loads(body)
    if not isinstance(record, dict) or record.get("op") not in ("upsert", "delete"):
        raise ValueError("not a log record")
    return record


class WriteAheadLog:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.size = 0  # bytes of good, durable records: where a failed append is cut back to
        self.broken: StorageError | None = None
        self._fd: int | None = None

    # ------------------------------------------------------------ replay

    def read(self) -> list[dict[str, Any]]:
        """Every good record; a torn last record is dropped (and cut from the file)."""
        try:
            data = self.path.read_bytes() if self.path.exists() else b""
        except OSError as e:
            raise as_storage_error(e, f"reading the write-ahead log {self.path}") from e
        lines = data.split(b"\n")
        complete, tail = lines[:-1], lines[-1]
        records: list[dict[str, Any]] = []
        good_bytes = 0
        for n, line in enumerate(complete, start=1):
            try:
                records.append(_decode_line(line))
            except (ValueError, UnicodeDecodeError) as e:
                if n == len(complete) and not tail:
                    tail = line  # the last record: an append that never completed
                    break
                raise IndexFormatError(f"{self.path}:{n}: corrupt write-ahead log record ({e}); "
                                       f"{len(complete) - n} records follow it") from None
            good_bytes += len(line) + 1
        if tail:
            log.warning("%s: dropping a torn last record (%d bytes), never acknowledged", self.path, len(tail))
        self.size = good_bytes
        return records

    # ------------------------------------------------------------ appending

    def open(self) -> None:
        """Open for appending, first cutting anything past the good records :meth:`read` found."""
        try:
            self._fd = open_for_append(self.path)
            if os.fstat(self._fd).st_size != self.size:
                truncate_fd(self._fd, self.size, self.path)
                fsync_fd(self._fd, self.path)
        except OSError as e:
            raise as_storage_error(e, f"opening the write-ahead log {self.path}") from e

    def append(self, data: bytes) -> None:
        """Append records and make them durable, or leave the log as it was and raise."""
        if self._fd is None:
            raise StorageError(f"{self.path}: the write-ahead log is closed")
        if self.broken is not None:
            self._cut_back()
            if self.broken is not None:
                # This write is refused before it is written: its own outcome is known.
                raise StorageError(f"{self.path}: the log still holds a failed record it could not cut off "
                                   f"({self.broken.message}); refusing writes until it can",
                                   self.broken.errno, str(self.path))
        try:
            write_fd(self._fd, data, self.path)
            fsync_fd(self._fd, self.path)
        except OSError as e:
            self._cut_back()
            error = as_storage_error(e, "writing to the write-ahead log")
            if self.broken is not None:
                # The record may be whole on disk and could not be cut off: a crash before the
                # repair would replay it.  Say so rather than promise it had no effect.
                error.outcome_unknown = True
                error.message = (f"{error.message.replace('; nothing was changed', '')}; the log could not be "
                                 f"repaired, so this write may still appear after a crash")
            raise error from e
        self.size += len(data)

    def _cut_back(self) -> None:
        """Remove whatever a failed append left past the last good record (then fsync that)."""
        assert self._fd is not None
        try:
            truncate_fd(self._fd, self.size, self.path)
            fsync_fd(self._fd, self.path)
            self.broken = None
        except OSError as e:
            self.broken = as_storage_error(e, "repairing the write-ahead log after a failed write")
            log.error("%s: could not cut a failed record (%s); refusing writes until it can", self.path, e)

    def reset(self) -> bool:
        """Empty the log (its records are in a committed segment); ``False`` if the disk refused.

        A log that could not be emptied is still correct: replaying records
        whose effects are already committed gives the same documents, since
        upserts and deletes are idempotent.
        """
        if self._fd is None:
            return False
        try:
            truncate_fd(self._fd, 0, self.path)
            fsync_fd(self._fd, self.path)
        except OSError as e:
            log.warning("%s: could not empty the log after a flush (%s); it will be retried", self.path, e)
            # If the truncation itself happened, the file is empty; otherwise the good records
            # still end at ``size`` (anything past it is a torn append still to be cut off).
            try:
                if os.fstat(self._fd).st_size == 0:
                    self.size, self.broken = 0, None
            except OSError:
                pass
            return False
        self.size = 0
        self.broken = None
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
