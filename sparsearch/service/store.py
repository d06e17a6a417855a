"""Named collections under one data directory, each a :class:`~sparsearch.live.LiveIndex`.

Collection names are checked against a strict pattern before any path is
built from them, so no name can reach outside ``data_dir/collections``.  One
process owns a data directory at a time (an exclusive ``flock`` held for the
store's life); a second gets a clear error instead of corrupting the first.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import threading
from pathlib import Path
from typing import Any

from sparsearch.errors import SparsearchError
from sparsearch.index.storage import write_json_atomic
from sparsearch.live import LiveIndex, LiveSettings
from sparsearch.retriever.bm25 import BM25Config, BM25Encoder

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
SPEC_NAME = "collection.json"


class CollectionNameError(SparsearchError, ValueError):
    pass


class CollectionNotFound(SparsearchError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class CollectionExists(SparsearchError, FileExistsError):
    pass


class DataDirLocked(SparsearchError, RuntimeError):
    pass


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise CollectionNameError(
            f"invalid collection name {name!r}: use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit")
    return name


class CollectionStore:
    def __init__(self, data_dir: Path, live: LiveSettings = LiveSettings()) -> None:
        self.data_dir = Path(data_dir)
        self.root = self.data_dir / "collections"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"{self.data_dir}: another sparsearch process is serving this data directory") from None
        self.live = live
        self._guard = threading.Lock()
        self._collections: dict[str, LiveIndex] = {}
        self._specs: dict[str, dict[str, Any]] = {}
        for path in sorted(self.root.iterdir()):
            if (path / SPEC_NAME).exists() and NAME_PATTERN.match(path.name):
                self._specs[path.name] = json.loads((path / SPEC_NAME).read_text())
                self._collections[path.name] = LiveIndex(path, live)
            elif path.is_dir():
                shutil.rmtree(path, ignore_errors=True)  # a creation that crashed before its spec was written

    def names(self) -> list[str]:
        return sorted(self._collections)

    def get(self, name: str) -> LiveIndex:
        check_name(name)
        try:
            return self._collections[name]
        except KeyError:
            raise CollectionNotFound(f"no collection named {name!r}") from None

    def spec(self, name: str) -> dict[str, Any]:
        self.get(name)
        return self._specs[name]

    def create(self, name: str, encoder: str, params: dict[str, Any]) -> bool:
        """Create a collection; ``False`` if one with the same spec exists (idempotent PUT)."""
        check_name(name)
        with self._guard:
            if name in self._collections:
                if self._specs[name] == {"encoder": encoder, "params": params}:
                    return False
                raise CollectionExists(f"collection {name!r} exists with another encoder or parameters")
            path = self.root / name
            if path.exists():
                shutil.rmtree(path)
            live = LiveIndex.create(path, BM25Encoder(BM25Config(**params)), settings=self.live)
            spec = {"encoder": encoder, "params": params}
            write_json_atomic(path / SPEC_NAME, spec)  # written last: its presence means "created"
            self._collections[name] = live
            self._specs[name] = spec
            return True

    def drop(self, name: str) -> None:
        with self._guard:
            live = self.get(name)
            live.close()
            del self._collections[name]
            del self._specs[name]
            path = self.root / name
            (path / SPEC_NAME).unlink()
            shutil.rmtree(path)

    def close(self) -> None:
        for live in self._collections.values():
            live.close()
        os.close(self._lock_fd)
