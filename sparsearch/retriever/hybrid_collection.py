"""``HybridCollection``: one corpus indexed by several encoders (sparse and dense), searched by mode.

On disk a collection is a folder::

    OUT/
      hybrid.json     parts in fusion order + search defaults (hybrid_options.HybridSpec)
      sparse/         an ordinary index (Retriever.open works on it alone)
      dense/          another
      wal.jsonl       live collections only: the one write-ahead log of every part

Batch collections are built with :meth:`HybridCollection.build` and opened
with :meth:`open`; a plain single-part index opens too (as a one-part
collection), so one search path serves both and a plain index asked for a
mode it lacks says so in one line.  Live collections
(:meth:`create_live`/:meth:`open_live`, what the HTTP service runs) write
through a :class:`~sparsearch.index.writer_group.WriterGroup`: one log for
both parts, so they never disagree on which documents exist.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sparsearch.errors import IndexExistsError, InputError
from sparsearch.index.config import IndexConfig
from sparsearch.index.formats import SegmentFormat
from sparsearch.index.storage import disk_errors, fsync_path, write_bytes
from sparsearch.index.writer import LiveSettings
from sparsearch.index.writer_group import WriterGroup
from sparsearch.retriever.fusion import FusionConfig
from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings, encoder_is_bm25, is_bm25, is_dense
from sparsearch.retriever.hybrid_options import SPEC_NAME, HybridSpec, SearchOptions, is_hybrid
from sparsearch.retriever.retriever import LIVE_STORED_FIELDS, WAL_NAME, Retriever, document_source
from sparsearch.types import Document, Hits

log = logging.getLogger(__name__)

#: What each part of a batch collection stores: the sparse part keeps the text RM3 re-reads.
STORED = {"sparse": ("title", "text", "metadata"), "dense": ("title", "metadata")}


def part_kind(retriever: Retriever) -> str:
    """``"dense"`` or ``"sparse"``: which modes a part answers."""
    return "dense" if is_dense(retriever) else "sparse"


class HybridCollection:
    """Parts (name -> :class:`Retriever`, in fusion order) searched alone or fused, with per-call options."""

    def __init__(self, parts: Mapping[str, Retriever], defaults: SearchOptions = SearchOptions(),
                 path: Path | None = None, group: WriterGroup | None = None, single: bool = False,
                 name: str | None = None) -> None:
        if not parts:
            raise ValueError("a collection needs at least one part")
        self.parts = dict(parts)
        self.defaults = defaults
        self.path = path
        self.group = group
        self.single = single  # a plain index opened as a one-part collection
        self.name = name or (str(path) if path is not None else "this collection")  # what errors call it

    @classmethod
    def of(cls, retriever: Retriever, path: Path | None = None, name: str | None = None) -> "HybridCollection":
        """One index as a one-part collection: searched the same way, and told apart in errors."""
        kind = part_kind(retriever)
        return cls({kind: retriever}, SearchOptions(mode=kind), path, single=True, name=name)

    # ------------------------------------------------------------ building and opening

    @classmethod
    def build(cls, documents: Iterable[Document], path: str | Path | None, encoders: Mapping[str, Any],
              defaults: SearchOptions = SearchOptions(), formats: Mapping[str, SegmentFormat] | None = None,
              overwrite: bool = False, progress: bool = False) -> "HybridCollection":
        """Index ``documents`` once per encoder (``{"sparse": bm25, "dense": dense}``), under ``path``.

        Each part is committed atomically; ``hybrid.json`` is written last,
        so a folder without it is no collection.  ``documents`` is read once
        per part (a list is made of a one-shot iterator).
        """
        docs = documents if isinstance(documents, Sequence) else list(documents)
        folder = None if path is None else Path(path)
        if folder is not None:
            _prepare(folder, overwrite, list(encoders))
        parts = {}
        for name, encoder in encoders.items():
            # Term frequencies fit a byte exactly (Retriever.build's default for BM25).
            config = IndexConfig(quantization="uint8" if encoder_is_bm25(encoder) else "none",
                                 stored_fields=STORED.get(name, ("title", "metadata")))
            parts[name] = Retriever.build(docs, path=None if folder is None else folder / name, encoder=encoder,
                                          config=config, overwrite=overwrite, progress=progress, total=len(docs),
                                          fmt=(formats or {}).get(name))
        if folder is not None:
            HybridSpec(tuple(parts), defaults).write(folder)
        return cls(parts, defaults, folder)

    @classmethod
    def open(cls, path: str | Path) -> "HybridCollection":
        """A hybrid collection, or a plain index as a one-part collection."""
        folder = Path(path)
        if not is_hybrid(folder):
            return cls.of(Retriever.open(folder), folder)
        spec = HybridSpec.read(folder)
        return cls({name: Retriever.open(folder / name) for name in spec.parts}, spec.defaults, folder)

    @classmethod
    def create_live(cls, path: str | Path, encoders: Mapping[str, Any], defaults: SearchOptions = SearchOptions(),
                    settings: LiveSettings = LiveSettings()) -> "HybridCollection":
        """An empty live collection at ``path`` (which must not exist): one index per encoder and one log."""
        folder = Path(path)
        with disk_errors(f"creating {folder}"):
            folder.mkdir(parents=True)
            for name, encoder in encoders.items():
                Retriever.build([], path=folder / name, encoder=encoder,
                                config=IndexConfig(stored_fields=LIVE_STORED_FIELDS))
            write_bytes(folder / WAL_NAME, b"")
            HybridSpec(tuple(encoders), defaults).write(folder)
            fsync_path(folder)
        return cls.open_live(folder, settings)

    @classmethod
    def open_live(cls, path: str | Path, settings: LiveSettings = LiveSettings()) -> "HybridCollection":
        """Every part opened for writing under the collection's one log, which is replayed into each."""
        folder = Path(path)
        spec = HybridSpec.read(folder)
        parts: dict[str, Retriever] = {}
        reindexes = []
        try:
            for name in spec.parts:
                parts[name], reindex = Retriever.open_attached(folder / name, settings)
                reindexes.append(reindex)
            group = WriterGroup([p.writer for p in parts.values()], folder / WAL_NAME, reindexes, settings)
        except BaseException:
            for part in parts.values():
                part.close(flush=False)
            raise
        return cls(parts, spec.defaults, folder, group)

    # ------------------------------------------------------------ writes (live collections)

    def _group(self) -> WriterGroup:
        if self.group is None:
            raise InputError("this collection was opened for searching: writes go to a live collection "
                             "(HybridCollection.open_live)")
        return self.group

    def add(self, documents: Iterable[Document]) -> int:
        """Add or replace documents in every part: encoded by each, logged once, durable when this returns."""
        group = self._group()
        n = 0
        for chunk in self.first.chunks(documents):
            encoded = [part.encode_for_index(chunk) for part in self.parts.values()]
            group.upsert([d.doc_id for d in chunk], [v for v, _ in encoded], [s for _, s in encoded],
                         [document_source(d) for d in chunk])
            n += len(chunk)
        return n

    upsert = add

    def delete(self, ids: Iterable[str]) -> list[str]:
        return self._group().delete(list(ids))

    def commit(self) -> None:
        if self.group is not None:
            self.group.flush()
        else:
            for part in self.parts.values():
                part.commit()

    flush = commit

    def close(self, flush: bool = True) -> None:
        if self.group is not None:
            self.group.close(flush=flush)
        else:
            for part in self.parts.values():
                part.close(flush=flush)

    @property
    def closed(self) -> bool:
        return self.group.closed if self.group is not None else all(p.closed for p in self.parts.values())

    # ------------------------------------------------------------ reads

    @property
    def first(self) -> Retriever:
        return next(iter(self.parts.values()))

    @property
    def n_docs(self) -> int:
        return self.first.n_docs

    @property
    def n_segments(self) -> int:
        return sum(p.n_segments for p in self.parts.values())

    def get(self, doc_id: str) -> dict[str, Any] | None:
        return self.first.get(doc_id)

    def document(self, doc_id: str) -> Document | None:
        return self.first.document(doc_id)

    def live_ids(self) -> dict[str, tuple[int, int]]:
        return self.first.live_ids()

    def options(self, **overrides: Any) -> SearchOptions:
        """The defaults with this call's options (``mode``, ``prf``, ``fusion``, ``alpha``, ...) applied."""
        return self.defaults.override(**overrides)

    def parts_for(self, options: SearchOptions) -> list[Retriever]:
        """The parts a mode uses; a mode the collection lacks is one clear error."""
        parts = list(self.parts.values())
        if options.mode != "hybrid":
            parts = [p for p in parts if part_kind(p) == options.mode]
        kinds = sorted({part_kind(p) for p in self.parts.values()})
        where = self.name
        if not parts or (options.mode == "hybrid" and len(kinds) < 2):
            what = (f"a single {kinds[0]} index (encoder {self.first.encoder.name})" if self.single
                    else f"a collection of {' and '.join(kinds)} parts only")
            hint = (" (a hybrid one is built with `sparsearch index --dense-model`, or created over HTTP with "
                    "\"dense_model\")") if kinds == ["sparse"] else ""
            raise InputError(f"{where} is {what}: mode {options.mode!r} needs "
                             f"{'a sparse and a dense part' if options.mode == 'hybrid' else f'a {options.mode} part'}"
                             f"{hint}")
        if options.prf in ("rm3", "both") and not any(is_bm25(p) for p in parts):
            raise InputError(f"prf {options.prf!r}: RM3 expands BM25 queries, and mode {options.mode!r} of {where} "
                             f"has no BM25 part")
        if options.prf in ("rocchio", "both") and not any(is_dense(p) for p in parts):
            raise InputError(f"prf {options.prf!r}: Rocchio moves dense query vectors, and mode {options.mode!r} "
                             f"of {where} has no dense part")
        return parts

    def search(self, query: str, k: int = 10, filter: Any = None, **options: Any) -> Hits:
        """Top-``k`` for one query; ``options`` override the stored defaults (``mode="dense"``, ``prf="rm3"``)."""
        return self.search_batch([query], k, threads=1, filter=filter, **options)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, threads: int | None = None, filter: Any = None,
                     **options: Any) -> list[Hits]:
        opts = self.options(**options)
        parts = self.parts_for(opts)
        sparse_search = opts.sparse_search()
        if sparse_search:
            if not any(part_kind(p) == "sparse" for p in parts):
                raise InputError(f"search_mode {opts.search_mode!r} ranks sparse indexes, and mode {opts.mode!r} of "
                                 f"{self.name} searches a dense one only (dense search is exact)")
            parts = [_SearchModePart(p, sparse_search) if part_kind(p) == "sparse" else p for p in parts]
        if len(parts) == 1 and opts.prf == "none":
            return parts[0].search_batch(queries, k, threads=threads, filter=filter)
        alpha = opts.alpha if len(parts) == 2 else None  # alpha weighs a pair; more parts weigh equally
        fusion = FusionConfig(method=opts.fusion, alpha=alpha)  # type: ignore[arg-type]
        settings = HybridSettings(fusion=fusion, depth=opts.depth, prf=opts.prf,  # type: ignore[arg-type]
                                  fb_docs=opts.fb_docs)
        hybrid = HybridRetriever(parts, settings, text_of=self.document)
        return [self._with_fields(h) for h in hybrid.search_batch(queries, k, threads=threads, filter=filter)]

    def _with_fields(self, hits: Hits) -> Hits:
        """Fused hits that still give stored fields (``hits.fields(i)``), read by id from the first part."""
        ids = hits.ids

        def fetch(i: int, names: Sequence[str] | None) -> dict[str, Any]:
            stored = self.get(ids[i]) or {}
            return stored if names is None else {n: stored[n] for n in names if n in stored}

        return Hits(ids, hits.scores, np.arange(len(ids), dtype=np.int64), fetch=fetch)

    def info(self) -> dict[str, Any]:
        return {"path": str(self.path) if self.path else None, "n_docs": self.n_docs,
                "defaults": self.defaults.to_dict(),
                "parts": {name: {"kind": part_kind(p), **p.info()} for name, p in self.parts.items()}}


class _SearchModePart:
    """A sparse part whose searches run in one call's search mode (``mode``/``approx`` keywords bound).

    Everything else (encoder, snapshot, documents) is the part's own, so
    fusion and feedback treat it like the part itself.
    """

    def __init__(self, part: Retriever, keywords: Mapping[str, Any]) -> None:
        self._part = part
        self._keywords = dict(keywords)

    def search_batch(self, queries: Sequence[str], k: int = 10, threads: int | None = None,
                     filter: Any = None) -> list[Hits]:
        return self._part.search_batch(queries, k, threads=threads, filter=filter, **self._keywords)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._part, name)


def _prepare(folder: Path, overwrite: bool, names: list[str]) -> None:
    """Refuse to build into a folder holding anything but (with ``overwrite``) an earlier collection."""
    if not folder.exists():
        return
    if not folder.is_dir():
        raise IndexExistsError(f"{folder}: exists and is not a directory")
    if not any(folder.iterdir()):
        return
    if not (folder / SPEC_NAME).is_file():
        raise IndexExistsError(f"{folder}: exists and is not a hybrid collection (choose a new folder)")
    if not overwrite:
        raise IndexExistsError(f"{folder}: a collection already exists (pass --overwrite to replace it)")
    old = HybridSpec.read(folder).parts
    (folder / SPEC_NAME).unlink()  # no spec while the parts are replaced: never a mix of old and new parts
    fsync_path(folder)
    for name in old:
        if name not in names:
            shutil.rmtree(folder / name, ignore_errors=True)
