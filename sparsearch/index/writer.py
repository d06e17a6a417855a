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
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from sparsearch.errors import IndexExistsError, IndexFormatError, IndexNotFoundError
from sparsearch.index.manifest import MANIFEST_NAME, Manifest
from sparsearch.index.storage import fsync_path, remove_tree_quietly

MARKER_NAME = ".sparsearch"
LOCK_NAME = ".lock"
_OWN_FILE = re.compile(r"^(seg-\d{6}-\d{3}|del-\d{6}-\d{3}\.npy|[a-z_]+-\d{6}\.[a-z]+|\..+\.tmp)$")


class WriterLockedError(IndexExistsError):
    """Another process holds the writer lock of this index directory."""


@contextmanager
def writer_lock(directory: Path) -> Iterator[None]:
    """Hold the directory's exclusive writer lock (released on exit or process death)."""
    fd = os.open(directory / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WriterLockedError(f"{directory}: another process is writing this index") from None
        yield
    finally:
        os.close(fd)


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
    directory.mkdir(parents=True, exist_ok=True)
    marker = directory / MARKER_NAME
    if not marker.exists():
        marker.write_text("sparsearch index directory\n")
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


def collect_garbage(directory: Path, manifest: Manifest) -> None:
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
