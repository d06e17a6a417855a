"""Every byte sparsearch writes goes through here: writes, fsyncs, renames, truncations.

Two reasons for one narrow layer.  Durability: a file is written to a
temporary name, fsynced, renamed, and its directory fsynced, so a reader (or
a process restarted after ``kill -9``) sees either the old file or the whole
new one.  Testability: because nothing else touches the disk for writing, a
test can make the n-th operation fail with ENOSPC or EIO (:func:`inject_faults`)
and check that the index and the log come back intact; a full disk cannot be
simulated faithfully any other way in a unit test.

:func:`disk_errors` turns the ``OSError`` of a failed operation into the
error a user can act on (:class:`~sparsearch.errors.StorageFullError` for a
full disk, ...), naming the file.
"""

from __future__ import annotations

import errno as errno_codes
import json
import os
import random
import shutil
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator

import numpy as np

from sparsearch.errors import SparsearchError, StorageError, StorageFullError, TooManyOpenFilesError

OPS = ("write", "fsync", "rename", "mkdir", "truncate", "open")
FULL_ERRNOS = (errno_codes.ENOSPC, errno_codes.EDQUOT)
FD_ERRNOS = (errno_codes.EMFILE, errno_codes.ENFILE)


# ------------------------------------------------------------------ fault injection (tests, chaos benchmark)

@dataclass
class FaultRule:
    """Fail matching operations: the ``(after + 1)``-th match and the ``times - 1`` after it.

    ``times=0`` keeps failing until the injector is removed (a disk that
    stays full).  A failed write first writes a prefix of its data, as a
    real full disk does.
    """

    op: str
    errno: int = errno_codes.ENOSPC
    after: int = 0
    times: int = 1
    path_contains: str = ""
    path_suffix: str = ""
    seen: int = 0
    fired: int = 0


@dataclass
class FaultInjector:
    """A set of rules, or random faults at ``rate`` per operation drawn from ``errnos`` (seeded)."""

    rules: list[FaultRule] = field(default_factory=list)
    rate: float = 0.0
    errnos: tuple[int, ...] = (errno_codes.ENOSPC, errno_codes.EIO)
    ops: tuple[str, ...] = OPS
    seed: int = 0
    calls: int = 0
    injected: list[tuple[str, str, int]] = field(default_factory=list)
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def check(self, op: str, path: str | Path) -> int | None:
        """The errno to fail this operation with, or ``None`` to let it run."""
        with self._lock:
            self.calls += 1
            for rule in self.rules:
                if (rule.op not in (op, "*") or rule.path_contains not in str(path)
                        or not str(path).endswith(rule.path_suffix)):
                    continue
                rule.seen += 1
                if rule.seen > rule.after and (rule.times == 0 or rule.fired < rule.times):
                    rule.fired += 1
                    self.injected.append((op, str(path), rule.errno))
                    return rule.errno
            if self.rate and op in self.ops and self._rng.random() < self.rate:
                code = self._rng.choice(self.errnos)
                self.injected.append((op, str(path), code))
                return code
        return None

    def partial_length(self, n: int) -> int:
        with self._lock:
            return self._rng.randrange(n) if n > 1 else 0


_injector: FaultInjector | None = None


@contextmanager
def inject_faults(injector: FaultInjector) -> Iterator[FaultInjector]:
    """Route every disk operation of this process through ``injector`` while the block runs."""
    global _injector
    previous, _injector = _injector, injector
    try:
        yield injector
    finally:
        _injector = previous


def _gate(op: str, path: str | Path) -> None:
    if _injector is not None:
        code = _injector.check(op, path)
        if code is not None:
            raise OSError(code, os.strerror(code), str(path))


# ------------------------------------------------------------------ primitive operations

def open_for_append(path: Path) -> int:
    """A raw file descriptor for appending (the write-ahead log)."""
    _gate("open", path)
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


def write_fd(fd: int, data: bytes | memoryview, path: str | Path) -> None:
    """Write all of ``data`` (looping over short writes); an injected fault writes a prefix first."""
    view = memoryview(data)
    if _injector is not None:
        code = _injector.check("write", path)
        if code is not None:
            cut = _injector.partial_length(len(view))
            if cut:
                os.write(fd, view[:cut])
            raise OSError(code, os.strerror(code), str(path))
    while view:
        n = os.write(fd, view)
        view = view[n:]


def fsync_fd(fd: int, path: str | Path) -> None:
    _gate("fsync", path)
    os.fsync(fd)


def truncate_fd(fd: int, size: int, path: str | Path) -> None:
    _gate("truncate", path)
    os.ftruncate(fd, size)


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory's fsync makes renames in it durable)."""
    _gate("fsync", path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def replace(src: Path, dst: Path) -> None:
    """Atomic rename within one directory."""
    _gate("rename", dst)
    os.replace(src, dst)


def make_dir(path: Path, exist_ok: bool = False) -> None:
    _gate("mkdir", path)
    path.mkdir(parents=True, exist_ok=exist_ok)


class _GatedFile:
    """A binary file whose writes pass the fault gate (``np.save`` writes through it)."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self._f, self._path = f, path

    def write(self, data: Any) -> int:
        buf = memoryview(data).cast("B")
        write_fd(self._f.fileno(), buf, self._path)  # type: ignore[arg-type]
        return len(buf)

    def flush(self) -> None:
        pass


def _create(path: Path) -> BinaryIO:
    _gate("open", path)
    return open(path, "wb", buffering=0)


def save_array(path: Path, array: np.ndarray) -> int:
    """Write one ``.npy`` file (not yet fsynced: see :func:`fsync_files`); returns its size in bytes."""
    with _create(path) as f:
        np.save(_GatedFile(f, path), np.ascontiguousarray(array), allow_pickle=False)  # type: ignore[arg-type]
    return path.stat().st_size


_fsync_pool: ThreadPoolExecutor | None = None
_fsync_pool_guard = threading.Lock()


def fsync_files(paths: list[Path]) -> None:
    """fsync many files at once: concurrent fsyncs share journal commits instead of queueing.

    One pool for the process (eight threads, started on first use), not one
    per call: a server flushing many collections at once would otherwise
    start sixteen threads for each.
    """
    global _fsync_pool
    if len(paths) <= 2:
        for p in paths:
            fsync_path(p)
        return
    with _fsync_pool_guard:
        if _fsync_pool is None:
            _fsync_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="sparsearch-fsync")
    list(_fsync_pool.map(fsync_path, paths))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` all or nothing; a failure leaves the old file and no temporary."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with _create(tmp) as f:
            write_fd(f.fileno(), data, tmp)
            fsync_fd(f.fileno(), tmp)
        replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise
    fsync_path(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> int:
    """Write a file that only a manifest not yet committed refers to (so no rename is needed)."""
    with _create(path) as f:
        write_fd(f.fileno(), data, path)
        fsync_fd(f.fileno(), path)
    return len(data)


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def remove_tree_quietly(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)


def directory_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass
    return total


# ------------------------------------------------------------------ errors users can act on

def as_storage_error(error: OSError, action: str) -> StorageError:
    """The user-facing error for a failed disk operation: full disk, fd limit, or an I/O error."""
    where = f" ({error.filename})" if error.filename else ""
    reason = error.strerror or str(error)
    if error.errno in FULL_ERRNOS:
        return StorageFullError(f"{action} failed: no space left on the device{where}; nothing was changed, "
                                f"retry once space is freed", error.errno, error.filename)
    if error.errno in FD_ERRNOS:
        return TooManyOpenFilesError(f"{action} failed: too many open files{where} (a file-descriptor limit, "
                                     f"not corruption; raise `ulimit -n`)", error.errno, error.filename)
    return StorageError(f"{action} failed: {reason}{where}; nothing was changed", error.errno, error.filename)


@contextmanager
def disk_errors(action: str) -> Iterator[None]:
    """Re-raise a bare ``OSError`` from the block as a :class:`StorageError` naming ``action``."""
    try:
        yield
    except SparsearchError:
        raise
    except OSError as e:
        raise as_storage_error(e, action) from e
