"""``Index``: an encoder and an inverted index, saved and opened together.

This is the object users hold: text in, ranked external ids out.  The
inverted index below it sees only sparse vectors; the encoder that made them
is recorded in the manifest so that ``Index.open`` can encode queries the same
way the documents were encoded.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from itertools import islice
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
from tqdm.auto import tqdm

from sparsearch.errors import DuplicateIdError
from sparsearch.index.config import IndexConfig
from sparsearch.index.inverted import InvertedIndex, TopK
from sparsearch.index.manifest import Manifest, SegmentInfo
from sparsearch.index.merge import MergePolicy, merge_segments, plan_merge
from sparsearch.index.segment import Segment, build_segment, write_segment
from sparsearch.index.storage import directory_bytes, disk_errors, fsync_files, save_array, write_bytes
from sparsearch.index.writer import (
    collect_garbage,
    commit,
    generation_names,
    manifest_in_force,
    prepare_directory,
    writer_lock,
)
from sparsearch.protocols import SparseEncoder
from sparsearch.retriever.registry import encoder_class
from sparsearch.types import Document, Hits, SparseBatch

log = logging.getLogger(__name__)

FORMAT_INFO_VERSION = "0.1.0"


def _chunks(items: Iterable[Document], size: int) -> Iterator[list[Document]]:
    it = iter(items)
    while chunk := list(islice(it, size)):
        yield chunk


def _stored(doc: Document, fields: Sequence[str]) -> dict[str, Any]:
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


class Index:
    """Search a corpus by text.  Build with :meth:`build`, reopen with :meth:`open`."""

    def __init__(self, inverted: InvertedIndex, encoder: SparseEncoder, path: Path | None = None) -> None:
        self.inverted = inverted
        self.encoder = encoder
        self.path = path
        self._live: dict[str, tuple[int, int]] | None = None
        self._pending: dict[str, Document] = {}
        self._pending_deletes: set[str] = set()

    # ------------------------------------------------------------ building

    @classmethod
    def build(
        cls,
        documents: Iterable[Document],
        path: str | Path | None = None,
        encoder: SparseEncoder | None = None,
        config: IndexConfig | None = None,
        overwrite: bool = False,
        progress: bool = False,
        total: int | None = None,
    ) -> "Index":
        """Encode and invert ``documents``; with ``path``, commit the index there atomically.

        ``config=None`` picks 8-bit storage for term-frequency encoders (BM25):
        lossless, since a segment where some term occurs more than 255 times
        in one document is stored as float32 instead; float32 for the others.
        """
        if encoder is None:
            from sparsearch.retriever.bm25 import BM25Encoder

            encoder = BM25Encoder()
        if path is not None:
            # Refuse early, before an hour of encoding, if the target is not writable.
            prepare_directory(Path(path), overwrite)
        chunk_size = config.chunk_size if config else IndexConfig().chunk_size
        doc_ids: list[str] = []
        stored: list[dict[str, Any]] = []
        batches: list[SparseBatch] = []
        seen: set[str] = set()
        fields = config.stored_fields if config else IndexConfig().stored_fields
        bar = tqdm(total=total, desc="encoding", unit="doc", disable=not progress, mininterval=1.0)
        def checked_chunks() -> Iterator[list[Document]]:
            for chunk in _chunks(documents, chunk_size):
                for doc in chunk:
                    if doc.doc_id in seen:
                        raise DuplicateIdError(f"duplicate document id {doc.doc_id!r} (document #{len(doc_ids) + 1})")
                    seen.add(doc.doc_id)
                    doc_ids.append(doc.doc_id)
                    stored.append(_stored(doc, fields))
                bar.update(len(chunk))
                yield chunk

        workers = (config.threads if config and config.threads else os.cpu_count()) or 1
        stream = getattr(encoder, "encode_document_stream", None)
        if stream is not None:
            batches.extend(stream(checked_chunks(), workers))
        else:
            batches.extend(encoder.encode_documents(chunk) for chunk in checked_chunks())
        bar.close()
        vectors = SparseBatch.concatenate(batches)
        if config is None:
            # Term frequencies fit a byte exactly (a segment with larger counts keeps float32).
            config = IndexConfig(quantization="uint8" if encoder.scoring.transform == "saturate" else "none")
        log.info("inverting %d documents, %d postings", len(doc_ids), len(vectors.term_ids))
        segment = build_segment(vectors, doc_ids, stored, encoder.n_terms, config)
        index = cls(InvertedIndex([segment], encoder.scoring, config), encoder)
        if path is not None:
            index.save(path, overwrite=overwrite)
        return index

    def save(self, path: str | Path, overwrite: bool = False) -> None:
        """Commit this index to ``path``: new files under fresh names, then one atomic manifest swap."""
        directory = Path(path)
        previous = prepare_directory(directory, overwrite)
        with writer_lock(directory):
            generation = (previous.generation + 1) if previous else 1
            self.inverted = self._commit_generation(directory, generation, previous,
                                                    [(None, seg, False) for seg in self.inverted.segments])
        self.path = directory

    def _commit_generation(self, directory: Path, generation: int, in_force: Manifest | None,
                           parts: Sequence[tuple[SegmentInfo | None, Segment, bool]]) -> InvertedIndex:
        """:meth:`_write_generation`, leaving the directory clean when the disk fails midway.

        A failed write (full disk, I/O error) leaves files of the new
        generation behind; they are swept here, relative to whatever manifest
        is really in force on disk, so the next attempt starts clean instead of
        tripping over them.  The error reaching the caller names the cause.
        """
        try:
            with disk_errors(f"committing {directory}"):
                # Leftovers of a crashed or failed write are unreferenced: sweep them first.
                collect_garbage(directory, in_force or Manifest(0, {}, {}, {}, []))
                return self._write_generation(directory, generation, parts)
        except BaseException:
            try:
                on_disk = manifest_in_force(directory)
                collect_garbage(directory, on_disk or Manifest(0, {}, {}, {}, []))
            except Exception:  # the sweep is best effort: the next commit sweeps again
                log.warning("could not sweep %s after a failed commit", directory, exc_info=True)
            raise

    def reload(self) -> None:
        """Adopt the manifest in force on disk (after a failed commit whose rename may have happened)."""
        if self.path is None:
            return
        manifest = manifest_in_force(self.path)
        if manifest is not None and (self.inverted.manifest is None
                                     or manifest.generation != self.inverted.manifest.generation):
            self.inverted = InvertedIndex.open(self.path, manifest)
            self._live = None

    def _write_generation(self, directory: Path, generation: int,
                          parts: Sequence[tuple[SegmentInfo | None, Segment, bool]]) -> InvertedIndex:
        """Write one generation and commit it; returns the snapshot it describes.

        ``parts`` lists the segments in order as ``(info, segment, mask_changed)``:
        with an ``info`` the segment is already on disk and only a changed
        deletion mask is written anew; without one it is written whole.
        """
        name = generation_names(generation)
        files: dict[str, int] = {}
        infos: list[SegmentInfo] = []
        segments: list[Segment] = []
        n_new = 0
        for i, (old, seg, mask_changed) in enumerate(parts):
            if old is None:
                info = write_segment(seg, directory, name("seg", n_new))
                n_new += 1
                mask_changed = seg.deleted is not None and bool(seg.deleted.any())
            else:
                info = dataclasses.replace(old)
            if mask_changed and seg.deleted is not None:
                info.deletes = f"del-{generation:06d}-{i:03d}.npy"
                save_array(directory / info.deletes, seg.deleted)
            if info.deletes:
                files[info.deletes] = (directory / info.deletes).stat().st_size
            infos.append(info)
            segments.append(seg)
        fsync_files([directory / f for f in files])
        encoder_files: dict[str, str] = {}
        for kind, data in self.encoder.state_files().items():
            file_name = name(kind)
            files[file_name] = write_bytes(directory / file_name, data)
            encoder_files[kind] = file_name
        snapshot = InvertedIndex(segments, self.inverted.scoring, self.inverted.config)
        manifest = Manifest(
            generation=generation,
            encoder={"name": self.encoder.name, "config": self.encoder.config(), "files": encoder_files},
            scoring=self.inverted.scoring.to_dict(),
            config=self.inverted.config.to_dict(),
            segments=infos,
            files=files,
            info={"created_unix": time.time(), "sparsearch_version": FORMAT_INFO_VERSION,
                  "n_docs": snapshot.n_docs},
        )
        commit(directory, manifest)
        snapshot.manifest = manifest
        return snapshot

    # ------------------------------------------------------------ incremental updates

    def add(self, documents: Iterable[Document]) -> int:
        """Queue documents for the next :meth:`commit`; an id already indexed is replaced (upsert).

        Nothing is visible to searches before the commit, which applies the
        whole batch at once: readers never see half of it.
        """
        n = 0
        for doc in documents:
            self._pending_deletes.discard(doc.doc_id)
            self._pending.pop(doc.doc_id, None)  # re-adding moves the document to the end, as a fresh build would
            self._pending[doc.doc_id] = doc
            n += 1
        return n

    def delete(self, ids: Iterable[str]) -> int:
        """Queue deletions for the next :meth:`commit`; returns how many ids exist (indexed or queued)."""
        live = self.live_ids()
        n = 0
        for doc_id in ids:
            found = self._pending.pop(doc_id, None) is not None
            if doc_id in live:
                self._pending_deletes.add(doc_id)
                found = True
            n += found
        return n

    def commit(self, encoded: SparseBatch | None = None) -> None:
        """Apply queued adds and deletes: a new segment, new deletion masks, one atomic manifest swap.

        Collection statistics are recomputed over live documents, so scores
        afterwards equal those of a fresh build over the same documents.
        ``encoded``: the queued documents' vectors, in queue order, when the
        caller already has them (a live index's buffer), to skip re-encoding.
        """
        if not self._pending and not self._pending_deletes:
            return
        live = self.live_ids()
        replaced = self._pending_deletes | {d for d in self._pending if d in live}
        masks = [None if seg.deleted is None else np.array(seg.deleted) for seg in self.inverted.segments]
        changed = [False] * len(masks)
        for doc_id in replaced:
            i, local = live[doc_id]
            if masks[i] is None:
                masks[i] = np.zeros(self.inverted.segments[i].n_docs, np.uint8)
            masks[i][local] = 1
            changed[i] = True
        kept = [seg.with_deletes(mask) for seg, mask in zip(self.inverted.segments, masks)]
        new: list[Segment] = []
        if self._pending:
            docs = list(self._pending.values())
            vectors = encoded if encoded is not None else self.encoder.encode_documents(docs)
            fields = self.inverted.config.stored_fields
            new.append(build_segment(vectors, [d.doc_id for d in docs], [_stored(d, fields) for d in docs],
                                     self.encoder.n_terms, self.inverted.config))
        if self.path is None:
            self.inverted = InvertedIndex(kept + new, self.inverted.scoring, self.inverted.config)
        else:
            previous = self.inverted.manifest
            with writer_lock(self.path):
                generation = (previous.generation if previous else 0) + 1
                infos = previous.segments if previous else []
                parts = list(zip(infos, kept, changed)) + [(None, seg, False) for seg in new]
                try:
                    self.inverted = self._commit_generation(self.path, generation, self.inverted.manifest, parts)
                except BaseException:
                    self.reload()
                    if self.inverted.manifest is not None and self.inverted.manifest.generation == generation:
                        self._pending, self._pending_deletes = {}, set()  # the rename took effect
                    raise
        self._pending = {}
        self._pending_deletes = set()
        self._live = None

    def merge(self, policy: MergePolicy | None = None) -> bool:
        """Run the one merge ``policy`` asks for next, if any; returns whether one ran.

        The merged segment takes the place of the first segment it replaces.
        Searches running meanwhile keep their snapshot; scores are unchanged
        because statistics are collection-wide.
        """
        if self._pending or self._pending_deletes:
            raise RuntimeError("commit pending changes before merging")
        segments = self.inverted.segments
        live = [int(s.live_mask().sum()) for s in segments]
        chosen = plan_merge(live, [s.n_docs - n for s, n in zip(segments, live)], policy or MergePolicy())
        if not chosen:
            return False
        merged = merge_segments([segments[i] for i in chosen], self.encoder.n_terms, self.inverted.config)
        infos: list[SegmentInfo | None] = (list(self.inverted.manifest.segments) if self.inverted.manifest
                                           else [None] * len(segments))
        parts: list[tuple[SegmentInfo | None, Segment, bool]] = []
        for i, seg in enumerate(segments):
            if i == chosen[0]:
                if merged.n_docs:
                    parts.append((None, merged, False))
            elif i not in chosen:
                parts.append((infos[i], seg, False))
        if self.path is None:
            self.inverted = InvertedIndex([seg for _, seg, _ in parts], self.inverted.scoring, self.inverted.config)
        else:
            with writer_lock(self.path):
                generation = self.inverted.manifest.generation + 1 if self.inverted.manifest else 1
                try:
                    self.inverted = self._commit_generation(self.path, generation, self.inverted.manifest, parts)
                except BaseException:
                    self.reload()
                    raise
        self._live = None
        return True

    def live_ids(self) -> dict[str, tuple[int, int]]:
        """External id -> (segment, local id) of every committed live document (built on first use)."""
        if self._live is None:
            live: dict[str, tuple[int, int]] = {}
            for i, seg in enumerate(self.inverted.segments):
                ids = seg.doc_ids.tolist()
                mask = seg.live_mask()
                for local, doc_id in enumerate(ids):
                    if mask[local]:
                        live[doc_id] = (i, local)
            self._live = live
        return self._live

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """Stored fields of a live document, or ``None``."""
        where = self.live_ids().get(doc_id)
        if where is None:
            return None
        return self.inverted.segments[where[0]].stored(where[1])

    # ------------------------------------------------------------ opening

    @classmethod
    def open(cls, path: str | Path, mmap: bool = True) -> "Index":
        directory = Path(path)
        manifest = Manifest.read(directory)
        spec = manifest.encoder
        encoder = encoder_class(spec["name"]).load(
            spec.get("config", {}), {kind: directory / name for kind, name in spec.get("files", {}).items()}
        )
        return cls(InvertedIndex.open(directory, manifest, mmap=mmap), encoder, directory)

    # ------------------------------------------------------------ searching

    @property
    def n_docs(self) -> int:
        return self.inverted.n_docs

    def encode_queries(self, queries: Sequence[str]) -> SparseBatch:
        return self.encoder.encode_queries(list(queries), self.inverted.stats)

    def search(self, query: str, k: int = 10, filter: Any = None) -> Hits:
        """Top-``k`` documents for one query; an empty or unknown-word query gives no hits.

        ``filter``: a metadata filter (:mod:`sparsearch.filters`: its JSON form as a dict, or its
        clauses), applied before ranking; scores are the unfiltered ones.
        """
        return self.search_batch([query], k, threads=1, filter=filter)[0]

    def search_batch(self, queries: Sequence[str], k: int = 10, threads: int | None = None,
                     filter: Any = None) -> list[Hits]:
        """Top-``k`` for many queries, scored in parallel (``threads=None``: all Numba threads)."""
        from sparsearch.filters import parse_filter

        parsed = parse_filter(filter)  # a malformed filter is refused before any encoding
        if not queries:
            return []
        if parsed is None:
            return self._hits(self.inverted.search(self.encode_queries(queries), self._top(k), threads=threads))
        from sparsearch.index import filtering

        top_k = self._top(k)
        if filtering.matches_nothing(self.inverted, parsed):  # nothing to rank: no query to encode
            return [Hits([], np.zeros(0, np.float32), np.zeros(0, np.int64)) for _ in queries]
        return self._hits(filtering.search(self.inverted, self.encode_queries(queries), top_k, parsed,
                                           threads=threads))

    def _top(self, k: int) -> int:
        """``k`` clamped to the collection: asking for more hits than documents exist is not an error."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        return min(int(k), max(self.n_docs, 1))

    def _hits(self, top: TopK) -> list[Hits]:
        resolve = self.inverted.resolve_ids  # bound to this snapshot: ids stay right after later commits
        out = []
        for q in range(len(top.counts)):
            internal, scores = top.row(q)
            out.append(Hits(None, scores, internal, resolve))
        return out

    def stored_fields(self, internal_id: int) -> dict[str, Any]:
        return self.inverted.stored_fields(internal_id)

    def info(self) -> dict[str, Any]:
        inv = self.inverted
        stats = inv.stats
        out: dict[str, Any] = {
            "path": str(self.path) if self.path else None,
            "encoder": {"name": self.encoder.name, **self.encoder.config()},
            "scoring": inv.scoring.to_dict(),
            "config": inv.config.to_dict(),
            "n_docs": inv.n_docs,
            "n_docs_with_terms": stats.n_docs,
            "n_terms": inv.n_terms,
            "n_postings": inv.n_postings,
            "avg_doc_length": stats.avg_length,
            "segments": len(inv.segments),
        }
        if inv.manifest is not None:
            out["generation"] = inv.manifest.generation
        if self.path is not None:
            out["index_bytes"] = directory_bytes(self.path)
        return out
