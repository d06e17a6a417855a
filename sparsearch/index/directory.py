"""Committing new index generations to a directory, crash-safely.

Every file of a generation gets a fresh name; the manifest rename is the
commit; files no manifest names any more are deleted only after the commit.
So ``kill -9`` at any instant leaves either the previous index (whole) or the
new one (whole), plus perhaps unreferenced leftovers that the next commit
sweeps away.  A file lock keeps a second writer out of the directory.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sparsearch.errors import IndexExistsError, IndexFormatError, IndexLockedError, IndexNotFoundError
from sparsearch.index.manifest import MANIFEST_NAME, Manifest
from sparsearch.index.storage import as_storage_error, fsync_path, make_dir, remove_tree_quietly, write_bytes

MARKER_NAME = ".sparsearch"
LOCK_NAME = ".lock"
_OWN_FILE = re.compile(r"^(seg-\d{6}-\d{3}|del-\d{6}-\d{3}\.npy|[a-z_]+-\d{6}\.[a-z]+|\..+\.tmp)$")


class WriterLockedError(IndexLockedError, IndexExistsError):
    """Another process holds the writer lock of this index directory."""


class _Held:
    """One process-wide hold of a directory's ``flock``: shared by every writer object of this process."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.count = 0


_held: dict[str, _Held] = {}
_held_guard = threading.Lock()


def _lock_holder(path: Path) -> str:
    """Who holds a lock file: its recorded pid and, where /proc tells, that process's command line."""
    try:
        pid = int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return "another process"
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        cmd = ""
    return f"process {pid}" + (f" ({cmd[:120]})" if cmd else "")


@contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """Hold the directory's exclusive writer lock (released on exit or process death).

    Every writer takes it: ``Index`` commits, merges and saves, and a
    ``LiveIndex`` for its whole life, so the CLI cannot write into a
    collection a server is serving.  Within one process the lock is shared
    (counted): a live index commits through its own ``Index`` while holding
    it, and serialises its writers itself.  Across processes the second
    writer gets :class:`WriterLockedError` naming the process that holds it.
    """
    key = os.path.realpath(directory)
    with _held_guard:
        held = _held.get(key)
        if held is None:
            lock_path = directory / LOCK_NAME
            try:
                fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise as_storage_error(e, f"locking {directory}") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise WriterLockedError(f"{directory}: the index is being written by {_lock_holder(lock_path)}; "
                                        f"stop it (or write through it) first") from None
            try:  # who holds it, for the next writer's error message (not needed for correctness)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            except OSError:
                pass
            held = _held[key] = _Held(fd)
        held.count += 1
    try:
        yield
    finally:
        with _held_guard:
            held.count -= 1
            if held.count == 0:
                del _held[key]
                os.close(held.fd)


def prepare_directory(directory: Path, overwrite: bool) -> Manifest | None:
    """Make ``directory`` ready for a new generation; returns the manifest in force, if any.

    Refuses an existing index unless ``overwrite``, and never takes over a
    non-empty directory that sparsearch did not create.
    """
    if directory.exists() and not directory.is_dir():
        raise IndexExistsError(f"{directory}: exists and is not a directory")
    if directory.exists():
        has_manifest = (directory / MANIFEST_NAME).exists()
        ours = (directory / MARKER_NAME).exists()
        if has_manifest and not overwrite:
            raise IndexExistsError(f"{directory}: an index already exists (pass --overwrite to replace it)")
        if not ours and any(directory.iterdir()):
            raise IndexExistsError(
                f"{directory}: exists, is not empty and is not a sparsearch index; refusing to write into it"
            )
    make_dir(directory, exist_ok=True)
    marker = directory / MARKER_NAME
    if not marker.exists():
        write_bytes(marker, b"sparsearch index directory\n")
        fsync_path(directory)
    if (directory / MANIFEST_NAME).exists():
        try:
            return Manifest.read(directory)
        except (IndexFormatError, IndexNotFoundError):
            if not overwrite:
                raise
            return None
    return None


def commit(directory: Path, manifest: Manifest) -> None:
    """Make ``manifest`` the index in force, then delete what it no longer names."""
    manifest.write(directory)
    collect_garbage(directory, manifest)


def manifest_in_force(directory: Path) -> Manifest | None:
    """The manifest on disk now (``None`` if there is none yet): the truth after a failed commit."""
    if not (directory / MANIFEST_NAME).exists():
        return None
    return Manifest.read(directory)


def collect_garbage(directory: Path, manifest: Manifest) -> None:
    """Delete our files that ``manifest`` does not name: leftovers of crashed or failed commits."""
    keep = manifest.referenced_names()
    for entry in directory.iterdir():
        if entry.name in keep or not _OWN_FILE.match(entry.name):
            continue
        if entry.is_dir():
            remove_tree_quietly(entry)
        else:
            try:
                entry.unlink()
            except FileNotFoundError:
                pass


def generation_names(generation: int) -> Callable[[str, int | None], str]:
    """Name files of one generation: ``seg-000003-000`` or ``vocab-000003.json``."""

    def name(kind: str, index: int | None = None) -> str:
        if kind == "seg":
            return f"seg-{generation:06d}-{(index or 0):03d}"
        return f"{kind}-{generation:06d}.json"

    return name
