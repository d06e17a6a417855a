"""File descriptors: whether an error is their exhaustion, how many this process holds, and its limit.

The store closes idle collections when descriptors run short rather than
marking a collection corrupt; these tell the two apart.
"""

from __future__ import annotations

import errno as errno_codes
import os

from sparsearch.errors import TooManyOpenFilesError

FD_ERRNOS = (errno_codes.EMFILE, errno_codes.ENFILE)


def fd_exhausted(error: BaseException) -> bool:
    """Whether an error (or what caused it) is EMFILE/ENFILE, however a lower layer wrapped it."""
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, TooManyOpenFilesError) or (isinstance(e, OSError) and e.errno in FD_ERRNOS):
            return True
        if "[Errno 24]" in str(e) or "[Errno 23]" in str(e):  # an OSError flattened into a message
            return True
        e = e.__cause__ or e.__context__
    return False


def open_fds() -> int | None:
    """File descriptors this process holds now (Linux ``/proc``), or ``None`` where that is unknown."""
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return None


def fd_limit() -> int | None:
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return None if soft == resource.RLIM_INFINITY else int(soft)
    except (ImportError, OSError, ValueError):
        return None
