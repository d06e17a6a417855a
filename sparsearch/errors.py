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
