"""Durable file writes: write to a temporary name, fsync, rename, fsync the directory.

A rename within one directory is atomic on POSIX file systems, so a reader (or
a process restarted after ``kill -9``) sees either the old file or the whole new
one, never a torn write.  The directory fsync makes the rename itself durable.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np


def fsync_path(path: Path) -> None:
    """fsync a file or a directory by path (a directory's fsync makes renames in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_array(path: Path, array: np.ndarray) -> int:
    """Write one ``.npy`` file (not yet fsynced: see :func:`fsync_files`); returns its size in bytes."""
    with open(path, "wb") as f:
        np.save(f, np.ascontiguousarray(array), allow_pickle=False)
    return path.stat().st_size


def fsync_files(paths: list[Path]) -> None:
    """fsync many files at once: concurrent fsyncs share journal commits instead of queueing."""
    with ThreadPoolExecutor(max_workers=min(16, max(1, len(paths)))) as pool:
        list(pool.map(fsync_path, paths))


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_path(path.parent)


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, json.dumps(obj, indent=1, sort_keys=True).encode("utf-8"))


def write_bytes(path: Path, data: bytes) -> int:
    """Write a file that only a manifest not yet committed refers to (so no rename is needed)."""
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return len(data)


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
