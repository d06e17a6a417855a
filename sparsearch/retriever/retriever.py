"""``Retriever``: an encoder and an index, the object users hold — text in, ranked :class:`Hits` out.

The index below it (:class:`~sparsearch.index.writer.IndexWriter`) sees
only ids, vectors and stored fields; the encoder that made the vectors is
recorded in the manifest so that :meth:`Retriever.open` encodes queries the
same way the documents were encoded.  The same class serves a one-shot
build, incremental ``add``/``delete``/``commit`` from Python or the CLI, and
a live collection behind the HTTP service (durable writes visible at once).
"""

from __future__ import annotations

import logging
import os
import threading
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from sparsearch.errors import DuplicateIdError
from sparsearch.filters import parse_filter
from sparsearch.index.config import IndexConfig
from sparsearch.index.directory import prepare_directory
from sparsearch.index.formats import SPARSE, SegmentFormat, format_named
from sparsearch.index.manifest import Manifest
from sparsearch.index.merge import MergePolicy
from sparsearch.index.storage import directory_bytes, disk_errors, fsync_path, write_bytes
from sparsearch.index.writer import IndexWriter, LiveSettings
from sparsearch.protocols import Encoder, SparseEncoder, StreamingEncoder
from sparsearch.scoring import Scoring
from sparsearch.retriever.registry import encoder_class
from sparsearch.types import Document, Hits, SparseBatch

log = logging.getLogger(__name__)

#: A live collection's layout: the index directory and its write-ahead log beside it.
INDEX_DIR = "index"
WAL_NAME = "wal.jsonl"
LIVE_STORED_FIELDS = ("title", "text", "metadata")


class EncoderTerms:
    """The encoder as the index sees it (:class:`~sparsearch.index.generations.TermSpace`): opaque state."""

    def __init__(self, encoder: Encoder[Any]) -> None:
        self.encoder = encoder

    @property
    def n_terms(self) -> int:
        """Term ids in use (a dense encoder has none: its vectors are positional)."""
        return self.encoder.n_terms if isinstance(self.encoder, SparseEncoder) else 0

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": self.encoder.name, "config": self.encoder.config()}

    def state_files(self) -> dict[str, bytes]:
        return self.encoder.state_files()


def stored_fields_of(doc: Document, fields: Sequence[str]) -> dict[str, Any]:
    """The fields of ``doc`` an index keeps (empty values are not stored)."""
    out: dict[str, Any] = {}
    for f in fields:
        if f == "metadata":
            if doc.metadata:
                out[f] = doc.metadata
            continue
        value = getattr(doc, f, None) if f in ("title", "text") else doc.metadata.get(f)
        if value:
            out[f] = value
    return out


def document_source(doc: Document) -> dict[str, Any]:
    """What a live index logs of a document: enough to encode it again after a crash."""
    return {"title": doc.title, "text": doc.text, "metadata": doc.metadata}


def document_from_source(doc_id: str, source: dict[str, Any]) -> Document:
    return Document(doc_id, source.get("title", ""), source.get("text", ""), source.get("metadata") or {})


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def reindexer(encoder: Any, fields: Sequence[str]) -> Any:
    """The recovery step of a live index: logged sources encoded again, as one batch."""

    def reindex(ids: list[str], sources: list[dict[str, Any]]) -> tuple[Any, list[dict[str, Any]]]:
        docs = [document_from_source(i, s) for i, s in zip(ids, sources)]
        return encoder.encode_documents(docs), [stored_fields_of(d, fields) for d in docs]

    return reindex


def load_encoder(directory: Path, manifest: Manifest) -> Any:
    """Rebuild the encoder an index was built with, from its manifest entry and files."""
    spec = manifest.encoder
    files = {kind: directory / name for kind, name in spec.get("files", {}).items()}
    return encoder_class(spec["name"]).load(spec.get("config", {}), files)


class Retriever:
    """Search a corpus by text.  Build with :meth:`build`, reopen with :meth:`open`, serve with :meth:`open_live`."""

    def __init__(self, encoder: Any, writer: IndexWriter) -> None:
        self.encoder = encoder
        self.writer = writer
        self._encode_lock = threading.Lock()  # encoders may grow a vocabulary: one document encoding at a time

    # ------------------------------------------------------------ building and opening

    @classmethod
    def build(cls, documents: Iterable[Document], path: str | Path | None = None,
              encoder: Any = None, config: IndexConfig | None = None, overwrite: bool = False,
              progress: bool = False, total: int | None = None, fmt: SegmentFormat | None = None) -> "Retriever":
        """Encode and index ``documents``; with ``path``, commit the index there atomically.

        ``config=None`` picks 8-bit storage for term-frequency encoders (BM25):
        lossless, since a segment where some term occurs more than 255 times
        in one document is stored as float32 instead; float32 for the others.
        ``fmt``: the segment format; by default sparse for sparse encoders and
        dense (exact inner product; :class:`~sparsearch.index.dense.DenseFormat`
        for HNSW or IVF-PQ) for the others.
        """
        if encoder is None:
            from sparsearch.retriever.bm25 import BM25Encoder

            encoder = BM25Encoder()
        if path is not None:
            prepare_directory(Path(path), overwrite)  # refuse early, before an hour of encoding
        settings = config or IndexConfig()
        doc_ids: list[str] = []
        stored: list[dict[str, Any]] = []
        seen: set[str] = set()
        bar = tqdm(total=total, desc="encoding", unit="doc", disable=not progress, mininterval=1.0)

        def checked_chunks() -> Iterator[list[Document]]:
            for chunk in _chunks(documents, settings.chunk_size):
                for doc in chunk:
                    if doc.doc_id in seen:
                        raise DuplicateIdError(f"duplicate document id {doc.doc_id!r} (document #{len(doc_ids) + 1})")
                    seen.add(doc.doc_id)
                    doc_ids.append(doc.doc_id)
                    stored.append(stored_fields_of(doc, settings.stored_fields))
                bar.update(len(chunk))
                yield chunk

        workers = settings.threads or os.cpu_count() or 1
        if isinstance(encoder, StreamingEncoder):
            batches = list(encoder.encode_document_stream(checked_chunks(), workers))
        else:
            batches = [encoder.encode_documents(chunk) for chunk in checked_chunks()]
        bar.close()
        sparse = isinstance(encoder, SparseEncoder)
        fmt = fmt or (SPARSE if sparse else format_named("dense"))
        if not batches:
            batches = [encoder.encode_documents([])]  # an empty collection still has the encoder's shape
        vectors = fmt.concatenate(batches)
        if config is None:
            # Term frequencies fit a byte exactly (a segment with larger counts keeps float32).
            saturate = sparse and encoder.scoring.transform == "saturate"
            config = IndexConfig(quantization="uint8" if saturate else "none")
        log.info("indexing %d documents (%s)", len(doc_ids), fmt.kind)
        terms = EncoderTerms(encoder)
        segment = fmt.build(doc_ids, vectors, stored, terms.n_terms, config)
        scoring = encoder.scoring if sparse else Scoring()  # dense: inner product
        retriever = cls(encoder, IndexWriter.in_memory([segment], scoring, config, terms, fmt))
        if path is not None:
            retriever.save(path, overwrite=overwrite)
        return retriever

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Commit this index to ``path``: new files under fresh names, then one atomic manifest swap."""
        self.writer.save(Path(path), overwrite=overwrite)

    @classmethod
    def open(cls, path: str | Path, mmap: bool = True) -> "Retriever":
        directory = Path(path)
        manifest = Manifest.read(directory)
        encoder = load_encoder(directory, manifest)
        return cls(encoder, IndexWriter.open(directory, EncoderTerms(encoder), manifest, mmap=mmap))

    @classmethod
    def create_live(cls, path: str | Path, encoder: SparseEncoder, config: IndexConfig | None = None,
                    settings: LiveSettings = LiveSettings()) -> "Retriever":
        """An empty live collection at ``path`` (which must not exist yet): an index and its log."""
        path = Path(path)
        with disk_errors(f"creating {path}"):
            path.mkdir(parents=True)
            cls.build([], path=path / INDEX_DIR, encoder=encoder,
                      config=config or IndexConfig(stored_fields=LIVE_STORED_FIELDS))
            write_bytes(path / WAL_NAME, b"")
            fsync_path(path)
        return cls.open_live(path, settings)

    @classmethod
    def open_live(cls, path: str | Path, settings: LiveSettings = LiveSettings()) -> "Retriever":
        """A live collection: durable writes visible at once, flushed to segments in the background."""
        path = Path(path)
        manifest = Manifest.read(path / INDEX_DIR)
        encoder = load_encoder(path / INDEX_DIR, manifest)
        reindex = reindexer(encoder, IndexConfig.from_dict(manifest.config).stored_fields)
        writer = IndexWriter.open_live(path / INDEX_DIR, path / WAL_NAME, EncoderTerms(encoder), reindex,
                                       settings, manifest)
        return cls(encoder, writer)

    @classmethod
    def open_attached(cls, path: str | Path, settings: LiveSettings = LiveSettings()) -> tuple["Retriever", Any]:
        """The index at ``path`` as a member of a :class:`~sparsearch.index.writer_group.WriterGroup`,
        with its recovery step (the group owns the log)."""
        path = Path(path)
        manifest = Manifest.read(path)
        encoder = load_encoder(path, manifest)
        writer = IndexWriter.open_attached(path, EncoderTerms(encoder), settings, manifest)
        return cls(encoder, writer), reindexer(encoder, IndexConfig.from_dict(manifest.config).stored_fields)

    # ------------------------------------------------------------ writes

    def add(self, documents: Iterable[Document]) -> int:
        """Add or replace documents (upsert); returns how many were given.

        Batch mode: visible to searches at :meth:`commit`, which applies the
        whole batch at once.  Live mode: durable and visible when this returns.
        """
        n = 0
        for chunk in self.chunks(documents):
            vectors, stored = self.encode_for_index(chunk)
            sources = [document_source(d) for d in chunk] if self.writer.live_mode else None
            self.writer.add([d.doc_id for d in chunk], vectors, stored, sources)
            n += len(chunk)
        return n

    def chunks(self, documents: Iterable[Document]) -> Iterator[list[Document]]:
        """``documents`` in the index's encoding chunks."""
        return _chunks(documents, self.writer.committed.config.chunk_size)

    def encode_for_index(self, chunk: Sequence[Document]) -> tuple[Any, list[dict[str, Any]]]:
        """A chunk's vectors and the stored fields this index keeps of it."""
        fields = self.writer.committed.config.stored_fields
        with self._encode_lock:
            vectors = self.encoder.encode_documents(chunk)
        return vectors, [stored_fields_of(d, fields) for d in chunk]

    upsert = add

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete documents by id; returns the ids that existed (indexed, or added since the last commit)."""
        return self.writer.delete(ids)

    def commit(self) -> None:
        """Make buffered writes a new on-disk generation (live: a flush that empties the log)."""
        self.writer.commit()

    flush = commit

    def merge(self, policy: MergePolicy | None = None) -> bool:
        return self.writer.merge(policy)

    def reload(self) -> None:
        self.writer.reload()

    def close(self, flush: bool = True) -> None:
        self.writer.close(flush=flush)

    @property
    def closed(self) -> bool:
        return self.writer.closed

    # ------------------------------------------------------------ reads

    @property
    def path(self) -> Path | None:
        return self.writer.path

    @property
    def snapshot(self) -> Any:
        """The immutable reader a search sees now."""
        return self.writer.snapshot

    @property
    def inverted(self) -> Any:
        """Alias of :attr:`snapshot` (the name of earlier releases)."""
        return self.writer.snapshot

    @property
    def n_docs(self) -> int:
        return self.writer.n_docs

    @property
    def n_segments(self) -> int:
        return len(self.writer.snapshot.segments)

    def live_ids(self) -> dict[str, tuple[int, int]]:
        return self.writer.live_ids()

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """Stored fields of a document, or ``None``."""
        return self.writer.get(doc_id)

    def document(self, doc_id: str) -> Document | None:
        """A document as stored (title, text and metadata; empty where the index keeps no such field)."""
        stored = self.writer.get(doc_id)
        return None if stored is None else document_from_source(doc_id, stored)

    def encode_queries(self, queries: Sequence[str], snapshot: Any = None) -> Any:
        return self.encoder.encode_queries(list(queries), (snapshot or self.writer.snapshot).stats)

    def search(self, query: str, k: int = 10, filter: Any = None, method: str = "auto", mode: str = "exact",
               approx: Any = None) -> Hits:
        """Top-``k`` documents for one query; an empty or unknown-word query gives no hits.

        ``filter``: a metadata filter (:mod:`sparsearch.filters`: its JSON form
        as a dict, or its clauses), applied before ranking; scores are the
        unfiltered ones.  ``hits.fields(i)`` gives a hit's stored fields.
        ``method``: how a sparse index ranks (``InvertedIndex.search``: auto,
        exhaustive, pruned, maxscore; all exact, the same hits).
        ``mode`` / ``approx``: ``"exact"``, ``"bmp"`` or ``"approx"`` with an
        ``ApproxSettings`` (:mod:`sparsearch.index.approx`; learned sparse indexes).
        """
        if filter is None and method == "auto" and mode == "exact" and approx is None:
            one = getattr(self.encoder, "encode_query", None)
            if one is not None and self.writer.fmt is SPARSE:
                return self._search_one(query, k, one)
        return self.search_batch([query], k, threads=1, filter=filter, method=method, mode=mode, approx=approx)[0]

    def _search_one(self, query: str, k: int, encode_one: Any) -> Hits:
        """The plain one-query search (no filter, default method and mode) on the calling thread.

        The encoder's one-query row and the snapshot's one-query kernel call
        (``InvertedIndex.hits_one``) skip the batch objects of
        :meth:`search_batch`; a snapshot that needs the general path (several
        segments, a small one) gets the same row through it.  Same hits either way.
        """
        self.writer.check_open()
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        snapshot = self.writer.snapshot
        term_ids, weights = encode_one(query, snapshot.stats)
        hits = snapshot.hits_one(term_ids, weights, k)
        if hits is None:
            row = SparseBatch(np.array([0, len(term_ids)], np.int64), term_ids, weights)
            hits = snapshot.hits(row, k, None, threads=1,
                                 where="this collection" if self.writer.live_mode else "this index")[0]
        return hits

    def search_batch(self, queries: Sequence[str], k: int = 10, threads: int | None = None,
                     filter: Any = None, method: str = "auto", mode: str = "exact", approx: Any = None) -> list[Hits]:
        """Top-``k`` for many queries, scored in parallel (``threads=None``: all Numba threads)."""
        self.writer.check_open()
        parsed = None if filter is None else parse_filter(filter)  # a malformed filter is refused before encoding
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        if not queries:
            return []
        snapshot = self.writer.snapshot  # one snapshot for encoding and scoring
        where = "this collection" if self.writer.live_mode else "this index"
        if parsed is not None and self.writer.fmt is SPARSE:  # (a dense snapshot plans its filters itself)
            from sparsearch.index import filtering

            if filtering.matches_nothing(snapshot, parsed, where):  # nothing to rank: no query to encode
                return [Hits([], np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
        extra: dict[str, Any] = {} if method == "auto" else {"method": method}  # a dense index takes neither
        if mode != "exact" or approx is not None:
            extra.update(mode=mode, approx=approx)
        return snapshot.hits(self.encode_queries(queries, snapshot), k, parsed, threads=threads, where=where, **extra)

    def stored_fields(self, internal_id: int) -> dict[str, Any]:
        return self.writer.snapshot.stored_fields(internal_id)

    def info(self) -> dict[str, Any]:
        inv = self.writer.snapshot
        out: dict[str, Any] = {
            "path": str(self.path) if self.path else None,
            "encoder": {"name": self.encoder.name, **self.encoder.config()},
            "format": self.writer.fmt.kind,
            "scoring": inv.scoring.to_dict(),
            "config": self.writer.fmt.manifest_config(inv.config),
            "n_docs": inv.n_docs,
            "segments": len(inv.segments),
        }
        if self.writer.fmt is SPARSE:
            stats = inv.stats
            out.update(n_docs_with_terms=stats.n_docs, n_terms=inv.n_terms, n_postings=inv.n_postings,
                       avg_doc_length=stats.avg_length)
        if self.writer.committed.manifest is not None:
            out["generation"] = self.writer.committed.manifest.generation
        if self.path is not None:
            out["index_bytes"] = directory_bytes(self.path)
        return out
