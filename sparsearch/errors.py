"""The exceptions sparsearch raises on bad input or bad state.

Each subclasses the builtin a caller would naturally catch (``ValueError``,
``FileNotFoundError``, ...), so generic handlers keep working, while the CLI
and the service can map the whole family to one-line messages or HTTP codes
in one place.  Input errors carry the file, line and field they are about, so
a user fixing a 10 GB corpus knows where to look.
"""

from __future__ import annotations

from pathlib import Path


class SparsearchError(Exception):
    """Base class: every error sparsearch raises on purpose."""


class InputError(SparsearchError, ValueError):
    """Malformed user input: a corpus line, a query file, a qrels row."""

    def __init__(
        self,
        message: str,
        *,
        path: str | Path | None = None,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.field = field
        self.reason = message
        where = []
        if self.path is not None:
            where.append(self.path if line is None else f"{self.path}:{line}")
        if field is not None:
            where.append(f"field '{field}'")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class DuplicateIdError(InputError):
    """Two documents of one corpus share an ``_id``."""


class IndexFormatError(SparsearchError, ValueError):
    """An index directory that cannot be opened: corrupt, partial or from a newer version."""


class IndexNotFoundError(SparsearchError, FileNotFoundError):
    """The path holds no sparsearch index."""


class IndexExistsError(SparsearchError, FileExistsError):
    """Refusal to write over an existing directory without ``overwrite``."""


class MissingDependencyError(SparsearchError, ImportError):
    """An optional dependency is needed; the message holds the install command."""


class StorageError(SparsearchError, OSError):
    """The disk refused a write, fsync or rename (EIO and the like).

    Raised after the operation was rolled back: what was acknowledged before
    is intact, and the failed request had no effect.  ``errno`` and
    ``filename`` say what failed where; the service answers 503.
    """

    def __init__(self, message: str, errno: int | None = None, filename: str | None = None) -> None:
        super().__init__(message)
        self.errno = errno
        self.filename = filename
        self.message = message
        # True only for a double fault (a write failed and could not be undone): then a crash
        # before the log is repaired may still replay the write.
        self.outcome_unknown = False

    def __str__(self) -> str:
        return self.message


class StorageFullError(StorageError):
    """No space left on the device (ENOSPC, EDQUOT); the service answers 507."""


class TooManyOpenFilesError(StorageError):
    """The process ran out of file descriptors (EMFILE, ENFILE): a limit, not corruption."""


class IndexClosedError(SparsearchError, RuntimeError):
    """An operation on an index (or collection) that was closed or dropped meanwhile."""


class IndexLockedError(SparsearchError, RuntimeError):
    """Another writer (process or live index) holds this index directory's lock; names the holder."""
