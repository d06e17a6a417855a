"""Named collections under one data directory, each a live :class:`~sparsearch.retriever.retriever.Retriever`.

Collection names are matched in full against a strict pattern before any path
is built from them, so no name can reach outside ``data_dir/collections``.
One process owns a data directory at a time (an exclusive ``flock`` held for
the store's life); a second gets a clear error instead of corrupting the first.

Only what the server made is ever deleted.  A collection is built in
``collections/.creating-<name>-<random>`` and renamed into place once its
``collection.json`` is written; a dropped one is renamed to
``.dropping-<name>-<random>`` before its files are removed.  Start-up removes
leftovers of those two kinds only; any other folder is logged and left alone.

Collections are opened on first use and closed again when idle beyond
``max_open_collections`` or while the process holds more than its share of
file descriptors (least recently used first): 1,000 collections need neither
1,000 open indexes nor their file handles.  A collection that cannot be
opened (corrupt ``collection.json``, manifest or log, an I/O error) is marked
unavailable with the reason, tried again after ``retry_unavailable_seconds``,
and does not stop the others.

Learned-sparse collections (``splade``, ``inference-free``) name their model
in ``collection.json`` by name and version, never by path: the server's
:class:`~sparsearch.service.models.ModelCatalog` finds it, and every
collection on one model encodes through one shared copy of it
(:func:`~sparsearch.service.models.shared_model`).  A collection whose model
is missing, or whose files changed since its documents were encoded (another
version), is unavailable with that reason, rather than mixing vectors of two
models in one index.

A collection created with a ``dense_model`` is a hybrid one
(:class:`~sparsearch.retriever.hybrid_collection.HybridCollection`): a sparse
index and a dense index under one write-ahead log, so an upsert is logged
once, acknowledged when durable, and recovered into both after a crash.
Its spec records the dense model by name and version like a learned one.
"""

from __future__ import annotations

import contextlib
import errno as errno_codes
import fcntl
import json
import logging
import os
import re
import secrets
import shutil
import threading
import time
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Union

from sparsearch.errors import IndexLockedError, SparsearchError, StorageError, TooManyOpenFilesError
from sparsearch.index.manifest import Manifest
from sparsearch.index.storage import fsync_path, write_json_atomic
from sparsearch.index.writer import LiveSettings
from sparsearch.retriever.hybrid_collection import HybridCollection
from sparsearch.retriever.hybrid_options import HybridSpec
from sparsearch.retriever.retriever import INDEX_DIR, Retriever
from sparsearch.service.fds import fd_exhausted, fd_limit, open_fds
from sparsearch.service.models import ModelCatalog, ModelChanged, ModelInfo

log = logging.getLogger(__name__)

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
SPEC_NAME = "collection.json"
# Folders the server itself makes and may therefore remove: a creation or a drop in progress.
OURS_PATTERN = re.compile(r"\.(creating|dropping)-([a-z0-9][a-z0-9_-]{0,63})-[0-9a-f]{16}")
VERSIONS = ("model_version", "dense_model_version")  # recorded by the server, not given by the client

#: What serves a collection: one live index, or a hybrid collection's indexes under one log.
Live = Union[Retriever, HybridCollection]


class CollectionNameError(SparsearchError, ValueError):
    pass


class CollectionNotFound(SparsearchError, KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class CollectionExists(SparsearchError, FileExistsError):
    pass


class CollectionUnavailable(SparsearchError, RuntimeError):
    """A collection that exists but cannot be served now (it failed to open); the service answers 503."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"collection {name!r} is unavailable: {reason}")
        self.name = name
        self.reason = reason


class StoreClosed(SparsearchError, RuntimeError):
    """The store was closed (the server is shutting down); the service answers 503."""


class DataDirLocked(SparsearchError, RuntimeError):
    pass


def check_name(name: str) -> str:
    """The name itself, if it matches in full (``re.fullmatch``: no trailing newline slips through)."""
    if not NAME_PATTERN.fullmatch(name):
        raise CollectionNameError(
            f"invalid collection name {name!r}: use 1-64 of a-z, 0-9, '_' and '-', starting with a letter or digit")
    return name


@dataclass
class _Entry:
    """One collection: its spec, its live index while open, and who is using it."""

    name: str
    path: Path
    spec: dict[str, Any] | None = None
    live: Live | None = None
    users: int = 0
    error: str | None = None
    failed_at: float = 0.0
    stats: tuple[int, int] | None = None  # (documents, segments) when last seen open
    dropped: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)  # serialises opening and closing


class CollectionStore:
    def __init__(self, data_dir: Path, live: LiveSettings = LiveSettings(), *, max_open: int = 64,
                 fd_budget: float = 0.5, retry_seconds: float = 30.0, room_wait_seconds: float = 10.0,
                 models: ModelCatalog | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.models = models if models is not None else ModelCatalog()
        self.root = self.data_dir / "collections"
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock_fd = os.open(self.data_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise DataDirLocked(f"{self.data_dir}: another sparsearch process is serving this data directory") from None
        self.live = live
        self.max_open = max_open
        self.retry_seconds = retry_seconds
        self.room_wait_seconds = room_wait_seconds
        limit = fd_limit()
        self._fd_budget = None if limit is None else max(64, int(limit * fd_budget))
        self._guard = threading.Lock()  # the entry table, use counts and the LRU order
        self._admin = threading.Lock()  # creations and drops, one at a time
        self._evicting = threading.Lock()  # closings of idle collections, one at a time
        self._released = threading.Condition(self._guard)  # a collection's last user let go
        self._entries: dict[str, _Entry] = {}
        self._open: OrderedDict[str, _Entry] = OrderedDict()  # open collections, least recently used first
        self._closed = False
        for path in sorted(self.root.iterdir()):
            self._adopt(path)

    # ------------------------------------------------------------ start-up

    def _adopt(self, path: Path) -> None:
        """Register one entry of ``collections/``: ours to serve, ours to clean up, or someone else's."""
        if OURS_PATTERN.fullmatch(path.name) and path.is_dir():
            log.warning("removing %s: a collection creation or drop that did not finish", path)
            shutil.rmtree(path, ignore_errors=True)
            return
        if not NAME_PATTERN.fullmatch(path.name) or not path.is_dir() or not (path / SPEC_NAME).exists():
            log.warning("ignoring %s: not a sparsearch collection (left alone)", path)
            return
        entry = _Entry(path.name, path)
        self._entries[path.name] = entry
        try:
            entry.spec = self._read_spec(path)
            # Cheap (one small file, no file handles kept): a corrupt manifest shows in /healthz at once.
            # A corrupt log or segment file is found when the collection is first opened.
            for part in self._index_dirs(path, entry.spec):
                Manifest.read(part)
            self._check_model(entry.spec)  # a missing or changed model too (hashed once per model)
        except (SparsearchError, OSError) as e:
            self._mark_unavailable(entry, e)

    @staticmethod
    def _index_dirs(path: Path, spec: dict[str, Any]) -> list[Path]:
        """The index folders of a collection: one, or a hybrid collection's parts."""
        if "dense_model" not in spec:
            return [path / INDEX_DIR]
        return [path / part for part in HybridSpec.read(path).parts]

    @staticmethod
    def _read_spec(path: Path) -> dict[str, Any]:
        """``collection.json``, checked (by the request schema) enough to build the encoder from it."""
        from sparsearch.service.schemas import LEARNED, CollectionSpec

        try:
            spec = json.loads((path / SPEC_NAME).read_text(encoding="utf-8"))
            if not isinstance(spec, dict) or not isinstance(spec.get("params"), dict) or "encoder" not in spec:
                raise ValueError("expected {\"encoder\": ..., \"params\": {...}}")
            CollectionSpec.model_validate({k: v for k, v in spec.items() if k not in VERSIONS})
            if spec["encoder"] in LEARNED and not isinstance(spec.get("model_version"), str):
                raise ValueError("a learned encoder's spec needs its model_version")
            if "dense_model" in spec and not isinstance(spec.get("dense_model_version"), str):
                raise ValueError("a dense model's spec needs its dense_model_version")
        except (ValueError, TypeError) as e:  # JSONDecodeError, UnicodeDecodeError, ValidationError: ValueErrors
            reason = " ".join(str(e).split())
            raise SparsearchError(f"{path / SPEC_NAME}: corrupt collection spec ({reason})") from None
        return spec

    # ------------------------------------------------------------ models

    def _check_model(self, spec: dict[str, Any]) -> ModelInfo | None:
        """The collection's models as the catalogue has them now; refused if one is not the version recorded."""
        if "dense_model" in spec:
            _same_version(self.models.dense_info(spec["dense_model"]), spec["dense_model_version"])
        if "model" not in spec:
            return None
        return _same_version(self.models.info(spec["model"]), spec["model_version"])

    def _models_for(self, spec: dict[str, Any]) -> Any:
        """The context in which the collection's encoder is built: learned encoders take the shared model."""
        if "model" not in spec:
            return contextlib.nullcontext()
        from sparsearch.retriever.splade import models_from

        return models_from(self.models.source(spec["model"], spec["model_version"]))

    @staticmethod
    def _new_encoder(encoder: str, info: ModelInfo | None, params: dict[str, Any]) -> Any:
        from sparsearch.retriever.registry import build_encoder

        return build_encoder(encoder, params, model=info)

    def model_info(self, name: str) -> dict[str, Any] | None:
        """A learned collection's model: name, version and the settings its documents are encoded with."""
        spec = self.spec(name)
        if "model" not in spec:
            return None
        return {"name": spec["model"], "version": spec["model_version"],
                "settings": {"encoder": spec["encoder"], **spec["params"], "exact_screening": True}}

    def dense_model_info(self, name: str) -> dict[str, Any] | None:
        """A hybrid collection's dense model: name, version and settings."""
        spec = self.spec(name)
        if "dense_model" not in spec:
            return None
        return {"name": spec["dense_model"], "version": spec["dense_model_version"],
                "settings": {"encoder": "dense", **(spec.get("dense_params") or {})}}

    def _mark_unavailable(self, entry: _Entry, error: BaseException) -> None:
        entry.error = str(error) or type(error).__name__
        entry.failed_at = time.monotonic()
        log.error("collection %r is unavailable: %s", entry.name, entry.error)

    # ------------------------------------------------------------ listing

    def names(self) -> list[str]:
        """Every collection, available or not."""
        with self._guard:
            return sorted(self._entries)

    def unavailable(self) -> dict[str, str]:
        """Collections that failed to open, with the reason."""
        with self._guard:
            return {n: e.error for n, e in sorted(self._entries.items()) if e.error is not None}

    def known_stats(self) -> dict[str, tuple[int, int]]:
        """(documents, segments) of every collection that is open or was open since start-up (opens nothing)."""
        with self._guard:
            entries = list(self._entries.values())
        out = {}
        for e in entries:
            live = e.live
            if live is not None and not live.closed:
                out[e.name] = (live.n_docs, live.n_segments)
            elif e.stats is not None:
                out[e.name] = e.stats
        return out

    def stats(self, name: str) -> tuple[int, int]:
        """(documents, segments): from the open index, else as it was closed, else opening it."""
        with self._guard:
            entry = self._entries.get(name)
            if entry is not None and entry.live is None and entry.stats is not None and entry.error is None:
                return entry.stats
        with self.use(name) as live:
            return live.n_docs, live.n_segments

    def spec(self, name: str) -> dict[str, Any]:
        entry = self._entry(name)
        if entry.spec is None:
            raise CollectionUnavailable(name, entry.error or "its collection.json could not be read")
        return entry.spec

    def _entry(self, name: str) -> _Entry:
        check_name(name)
        with self._guard:
            entry = self._entries.get(name)
        if entry is None:
            raise CollectionNotFound(f"no collection named {name!r}")
        return entry

    # ------------------------------------------------------------ using a collection

    @contextmanager
    def use(self, name: str) -> Iterator[Live]:
        """The collection's live index, opened if needed and kept open while the block runs.

        An error inside the block for a collection that was dropped meanwhile
        (its index closed under a racing request) is reported as
        :class:`CollectionNotFound`, and one during shutdown as
        :class:`StoreClosed`, not as whatever the closed index raised.
        """
        entry, live = self._acquire(name)
        try:
            yield live
        except Exception as e:
            if entry.dropped:
                raise CollectionNotFound(f"no collection named {name!r} (it was deleted)") from None
            if self._closed and live.closed:
                raise StoreClosed("the server is shutting down") from e
            raise
        finally:
            self._release(entry)

    def _acquire(self, name: str) -> tuple[_Entry, Live]:
        check_name(name)
        with self._guard:
            if self._closed:
                raise StoreClosed("the server is shutting down")
            entry = self._entries.get(name)
            if entry is None:
                raise CollectionNotFound(f"no collection named {name!r}")
            if entry.error is not None and time.monotonic() - entry.failed_at < self.retry_seconds:
                raise CollectionUnavailable(name, entry.error)
            entry.users += 1
        try:
            with entry.lock:
                if entry.dropped:
                    raise CollectionNotFound(f"no collection named {name!r} (it was deleted)")
                if entry.live is None:
                    self._open_entry(entry)
                live = entry.live
                assert live is not None
            with self._guard:
                if entry.name in self._open:
                    self._open.move_to_end(entry.name)
            return entry, live
        except BaseException:
            with self._guard:
                entry.users -= 1
            raise

    def _open_entry(self, entry: _Entry) -> None:
        """Open a collection (its lock held): make room first; an fd shortage is a limit, not corruption."""
        self._make_room(wait=self.room_wait_seconds)
        try:
            entry.live = self._open_live(entry)
        except BaseException as e:
            if not fd_exhausted(e):
                raise
            log.warning("too many open files while opening %r: closing idle collections and trying again",
                        entry.name)
            self._make_room(wait=0.0, all_idle=True)
            try:
                entry.live = self._open_live(entry)
            except BaseException as again:
                if fd_exhausted(again):
                    raise TooManyOpenFilesError(
                        f"collection {entry.name!r} cannot be opened: too many open files (a file-descriptor "
                        f"limit, not corruption; raise `ulimit -n` or lower --max-open-collections)",
                        errno_codes.EMFILE) from again
                raise
        with self._guard:
            self._open[entry.name] = entry

    def _open_live(self, entry: _Entry) -> Live:
        try:
            if entry.spec is None:
                entry.spec = self._read_spec(entry.path)
            self._check_model(entry.spec)
            with self._models_for(entry.spec):  # the encoder, built from the manifest, takes the shared model
                live: Live = (HybridCollection.open_live(entry.path, self.live) if "dense_model" in entry.spec
                              else Retriever.open_live(entry.path, self.live))
        except (IndexLockedError, TooManyOpenFilesError):
            raise  # another process holds the index, or a limit: not a property of the collection
        except (SparsearchError, OSError) as e:
            if fd_exhausted(e):
                raise
            self._mark_unavailable(entry, e)
            raise CollectionUnavailable(entry.name, entry.error or "") from e
        if entry.error is not None:
            log.warning("collection %r is available again", entry.name)
        entry.error = None
        entry.stats = (live.n_docs, live.n_segments)
        return live

    def _release(self, entry: _Entry) -> None:
        with self._guard:
            entry.users -= 1
            if entry.users == 0:
                self._released.notify_all()

    def _over_budget(self, open_count: int) -> bool:
        """Whether one more open collection would pass the count cap or the file-descriptor budget."""
        if open_count + 1 > self.max_open:
            return True
        if self._fd_budget is None or open_count == 0:
            return False
        fds = open_fds()
        return fds is not None and fds > self._fd_budget

    def _make_room(self, wait: float, all_idle: bool = False) -> None:
        """Before an open: close least recently used idle collections while over the cap or the fd budget.

        A collection in use is never closed.  If every open one is in use,
        wait up to ``wait`` seconds for one to be released (which bounds
        open collections, and their file handles, whatever the number of
        concurrent requests), then go on regardless (the cap is soft: a
        request is not refused for it).  One request makes room at a time,
        since closing may flush.  ``all_idle``: close every idle collection
        (after an EMFILE).
        """
        deadline = time.monotonic() + wait
        with self._evicting:
            while True:
                with self._guard:
                    if not all_idle and not self._over_budget(len(self._open)):
                        return
                    victim = next((e for e in self._open.values() if e.users == 0), None)
                    if victim is None:
                        remaining = deadline - time.monotonic()
                        if all_idle or remaining <= 0 or self._closed:
                            return
                        self._released.wait(remaining)
                        continue
                    del self._open[victim.name]
                self._close_entry(victim)

    def _close_entry(self, entry: _Entry) -> None:
        with entry.lock:
            live, entry.live = entry.live, None
            if live is None:
                return
            with self._guard:
                if entry.users and not entry.dropped and not self._closed:  # taken again meanwhile: keep it
                    entry.live = live
                    self._open[entry.name] = entry
                    return
            entry.stats = (live.n_docs, live.n_segments)
            try:
                live.close()
            except Exception:  # the log keeps every acknowledged write; the next open replays it
                log.exception("closing collection %r failed", entry.name)

    # ------------------------------------------------------------ creating and dropping

    def create(self, name: str, encoder: str, params: dict[str, Any], model: str | None = None,
               dense_model: str | None = None, dense_params: dict[str, Any] | None = None) -> bool:
        """Create a collection; ``False`` if one with the same spec exists (idempotent PUT).

        ``model``: for learned encoders, the name of a model of the catalogue
        (:class:`~sparsearch.service.models.UnknownModel` or
        :class:`~sparsearch.service.models.ModelUnusable` if it cannot serve).
        ``dense_model``: a dense model of the catalogue, which makes the
        collection a hybrid one (``dense_params``: its settings).
        """
        check_name(name)
        spec: dict[str, Any] = {"encoder": encoder, "params": params}
        if model is not None:
            spec = {"encoder": encoder, "model": model, "params": params}
        if dense_model is not None:
            spec.update(dense_model=dense_model, dense_params=dense_params or {})
        with self._admin:
            with self._guard:
                existing = self._entries.get(name)
            if existing is not None:
                if existing.spec is None:
                    raise CollectionUnavailable(name, existing.error or "its collection.json could not be read")
                if _with_defaults({k: v for k, v in existing.spec.items() if k not in VERSIONS}) == spec:
                    return False
                raise CollectionExists(f"collection {name!r} exists with another encoder, model or parameters")
            final = self.root / name
            if final.exists() or final.is_symlink():
                raise CollectionExists(f"{final} exists but is not a collection this server made; "
                                       f"move it away to use the name {name!r}")
            info = dense = None
            if model is not None:
                info = self.models.check(encoder, model, params)
                spec["model_version"] = info.version
            if dense_model is not None:
                dense = self.models.dense_info(dense_model)
                spec["dense_model_version"] = dense.version
            building = self.root / f".creating-{name}-{secrets.token_hex(8)}"
            try:
                with self._models_for(spec):
                    sparse = self._new_encoder(encoder, info, params)
                    if dense is None:
                        Retriever.create_live(building, sparse, settings=self.live).close()
                    else:
                        encoders = {"sparse": sparse, "dense": _dense_encoder(dense, spec["dense_params"])}
                        HybridCollection.create_live(building, encoders, settings=self.live).close()
                write_json_atomic(building / SPEC_NAME, spec)
                os.rename(building, final)
                fsync_path(self.root)
            except BaseException:
                shutil.rmtree(building, ignore_errors=True)
                raise
            with self._guard:
                self._entries[name] = _Entry(name, final, spec=spec, stats=(0, 0))
            return True

    def drop(self, name: str) -> None:
        """Delete a collection (available or not); requests racing with it get 404."""
        check_name(name)
        with self._admin:
            with self._guard:
                entry = self._entries.pop(name, None)
                if entry is None:
                    raise CollectionNotFound(f"no collection named {name!r}")
                entry.dropped = True
                self._open.pop(name, None)
            with entry.lock:
                live, entry.live = entry.live, None
                if live is not None:
                    try:
                        live.close(flush=False)  # its files are about to go: no point writing a segment
                    except Exception:
                        log.exception("closing collection %r before deleting it failed", name)
                doomed = self.root / f".dropping-{name}-{secrets.token_hex(8)}"
                try:
                    os.rename(entry.path, doomed)
                    fsync_path(self.root)
                except OSError as e:
                    with self._guard:  # nothing was deleted: the collection stays, to be opened again
                        entry.dropped = False
                        self._entries[name] = entry
                    raise StorageError(f"deleting collection {name!r} failed: {e.strerror or e}", e.errno,
                                       e.filename) from e
            shutil.rmtree(doomed, ignore_errors=True)  # a leftover is removed at the next start

    def close_idle(self) -> None:
        """Close every open collection not in use now (they reopen on their next request)."""
        self._make_room(wait=0.0, all_idle=True)

    def __enter__(self) -> "CollectionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._guard:
            self._closed = True
            self._released.notify_all()
            entries = list(self._open.values())
            self._open.clear()
        for entry in entries:
            self._close_entry(entry)
        os.close(self._lock_fd)

    # ------------------------------------------------------------ introspection (tests, metrics)

    def open_count(self) -> int:
        with self._guard:
            return len(self._open)


def _same_version(info: ModelInfo, recorded: str) -> ModelInfo:
    """``info`` if it is the version a collection's documents were encoded with, else :class:`ModelChanged`."""
    if info.version != recorded:
        raise ModelChanged(f"model {info.name!r} is version {info.version} now, but the collection's documents "
                           f"were encoded with {recorded}: restore that model, or create a new collection and "
                           f"upsert the documents again")
    return info


def _with_defaults(spec: dict[str, Any]) -> dict[str, Any]:
    """A stored spec with the defaults of parameters added since it was written (``idf``), so that the same
    request still finds it the same collection."""
    from sparsearch.service.schemas import PARAMS

    schema = PARAMS.get(spec.get("encoder", ""))
    if schema is None or not isinstance(spec.get("params"), dict):
        return spec
    return {**spec, "params": {**schema().model_dump(), **spec["params"]}}


def _dense_encoder(info: ModelInfo, params: dict[str, Any]) -> Any:
    from sparsearch.retriever.dense import DenseConfig, DenseEncoder

    return DenseEncoder(DenseConfig(model_dir=str(info.path), **params))


__all__ = [
    "CollectionExists", "CollectionNameError", "CollectionNotFound", "CollectionStore", "CollectionUnavailable",
    "DataDirLocked", "NAME_PATTERN", "StoreClosed", "check_name", "fd_exhausted",
]
