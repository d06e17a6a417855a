"""Sparse vectors in and out: Pyserini/Anserini JsonVectorCollection, OpenSearch ``rank_features``.

In
--
:func:`read_vector_collection` reads Pyserini's JsonVectorCollection layout,
one JSON object a line::

    {"id": "doc1", "contents": "text ...", "vector": {"token": 1.25, "other": 3}}

``id`` (Pyserini) or ``_id`` (BEIR) names the document; ``vector`` maps token
strings to weights (integers or floats, finite, >= 0; zeros are dropped);
``contents`` (and an optional ``title``) is stored for display.  A folder is
read file by file in name order (``*.jsonl``, ``*.json``, ``*.jsonl.gz``), as
Anserini reads a collection folder.  :func:`build_from_vectors` indexes such a
collection with the :class:`~sparsearch.retriever.precomputed.PrecomputedEncoder`
(score = dot product).

Out
---
:func:`export_index` writes an index's document vectors, read back from its
term-major postings (:func:`sparsearch.index.merge.document_rows`), with token
strings from the encoder's vocabulary (BM25's terms, a learned model's
WordPiece tokens):

``anserini``
    JsonVectorCollection with integer weights ``round(w * scale)`` (ties to
    even; entries that round to 0 are left out): Anserini's impact indexes
    (``-impact -pretokenized``) take the weight as the term's frequency, so it
    must be an integer.  ``scale`` defaults to ``255 / max weight`` (8 bits);
    ``scale=100`` is the convention of the SPLADE exports Anserini ships.
``jsonl``
    The same layout with float32 weights written exactly: lossless, for
    sparsearch (``sparsearch index --vectors``) or any reader taking floats.
``opensearch``
    A bulk file for a ``rank_features`` field: action line
    ``{"index": {"_index": NAME, "_id": ID}}``, then the document
    ``{FIELD: {token: weight}, <stored fields>}``.  Weights are float32, all
    > 0 (``rank_features`` rejects zero and negative values).  Lucene's
    FeatureField keeps 9 significant bits of each value (relative error up to
    0.4 %); OpenSearch accepts feature names holding a dot, Elasticsearch 8
    refuses them.

BM25 indexes store term frequencies, and BM25 is no dot product of them, so
their export writes BM25 *impacts* instead: for term ``t`` of document ``d``
``idf(t) · tf/(tf + k1·(1 − b + b·dl/avgdl))`` with the index's own
collection statistics and Lucene length norm, the saturated term weight that
Anserini's BM25 impact indexes and uniCOIL-style exports hold.  The dot
product of these with a query's term counts is the BM25 score (up to float
rounding; plus quantisation for ``anserini``).  Import such a file with
``--query-analyzer lucene-english`` to query it with text; the statistics are
frozen at export time (documents added later do not move them).
"""

from __future__ import annotations

import gzip
import io
import json
import os
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np

from sparsearch.corpus import iter_json_lines
from sparsearch.errors import DuplicateIdError, InputError, SparsearchError
from sparsearch.retriever.precomputed import VECTOR_KEY, PrecomputedEncoder, check_weight
from sparsearch.types import Document, Hits, SparseBatch

EXPORT_FORMATS = ("anserini", "jsonl", "opensearch")
VECTOR_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz")


# ---------------------------------------------------------------- reading


def vector_files(path: str | Path) -> list[Path]:
    """The file itself, or a collection folder's ``*.jsonl`` / ``*.json`` (optionally gzipped) in name order."""
    p = Path(path)
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(VECTOR_SUFFIXES))
        if not files:
            raise InputError(f"no {', '.join(VECTOR_SUFFIXES)} files in this folder", path=p)
        return files
    if not p.exists():
        raise InputError("no such vector file", path=p)
    return [p]


def _json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line_number, object)`` of a JSON-lines file, gzipped or not; errors name the line."""
    return iter_json_lines(path)


def _record_id(obj: dict[str, Any], path: Path, line_no: int) -> str:
    """``id`` (Pyserini) or ``_id`` (BEIR); both present must agree."""
    keys = [k for k in ("id", "_id") if k in obj]
    if not keys:
        raise InputError("missing (expected 'id' or '_id')", path=path, line=line_no, field="id")
    values = []
    for k in keys:
        v = obj[k]
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)
        if not isinstance(v, str) or not v:
            raise InputError(f"must be a non-empty string, got {json.dumps(v)}", path=path, line=line_no, field=k)
        values.append(v)
    if len(values) == 2 and values[0] != values[1]:
        raise InputError(f"'id' {values[0]!r} and '_id' {values[1]!r} disagree", path=path, line=line_no, field="id")
    return values[0]


def _record_vector(obj: dict[str, Any], path: Path, line_no: int, required: bool = True) -> dict[str, float]:
    if "vector" not in obj:
        if required:
            raise InputError("missing", path=path, line=line_no, field="vector")
        return {}
    vector = obj["vector"]
    if not isinstance(vector, dict):
        raise InputError(f"must be an object of token -> weight, got {type(vector).__name__}", path=path,
                         line=line_no, field="vector")
    out: dict[str, float] = {}
    try:
        for token, weight in vector.items():
            w = check_weight(token, weight)
            if w > 0:
                out[token] = w
    except InputError as e:
        raise InputError(e.reason, path=path, line=line_no, field="vector") from None
    return out


def _text(obj: dict[str, Any], name: str, path: Path, line_no: int) -> str:
    value = obj.get(name, "")
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"must be a string, got {type(value).__name__}", path=path, line=line_no, field=name)
    return value


def read_vector_collection(path: str | Path) -> Iterator[Document]:
    """Documents of a JsonVectorCollection; each carries its vector in ``metadata["vector"]``.

    ``contents`` becomes the document's text (``text`` is accepted too), a
    ``title`` its title.  A repeated id is an error naming both places.
    """
    first: dict[str, str] = {}
    for p in vector_files(path):
        for line_no, obj in _json_lines(p):
            doc_id = _record_id(obj, p, line_no)
            if doc_id in first:
                raise DuplicateIdError(f"duplicate id {doc_id!r} (first seen at {first[doc_id]})", path=p,
                                       line=line_no, field="id")
            first[doc_id] = f"{p.name}:{line_no}"
            vector = _record_vector(obj, p, line_no)
            text = _text(obj, "contents", p, line_no) if "contents" in obj else _text(obj, "text", p, line_no)
            yield Document(doc_id, _text(obj, "title", p, line_no), text, {VECTOR_KEY: vector})


def read_query_vectors(path: str | Path) -> dict[str, dict[str, float]]:
    """``{query_id: {token: weight}}`` from the same layout (``id``/``_id`` and ``vector``)."""
    out: dict[str, dict[str, float]] = {}
    for p in vector_files(path):
        for line_no, obj in _json_lines(p):
            qid = _record_id(obj, p, line_no)
            if qid in out:
                raise DuplicateIdError(f"duplicate query id {qid!r}", path=p, line=line_no, field="id")
            out[qid] = _record_vector(obj, p, line_no)
    return out


def parse_query_vector(text: str) -> dict[str, float]:
    """A ``{"token": weight}`` JSON object given on the command line."""
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"--query-vector is not valid JSON ({e.msg} at column {e.colno})") from None
    if not isinstance(obj, dict):
        raise InputError("--query-vector must be a JSON object of token -> weight")
    try:
        return {t: check_weight(t, w) for t, w in obj.items()}
    except InputError as e:
        raise InputError(f"--query-vector: {e.reason}") from None


def count_vector_lines(path: str | Path) -> int | None:
    """Line count of plain files (for a progress bar); ``None`` when some file is gzipped."""
    n = 0
    for p in vector_files(path):
        if p.name.endswith(".gz"):
            return None
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                n += block.count(b"\n")
    return n


def build_from_vectors(path: str | Path, out: str | Path | None = None, query_analyzer: str | Path | None = None,
                       overwrite: bool = False, progress: bool = False):  # type: ignore[no-untyped-def]
    """Index a JsonVectorCollection: dot-product scoring, float32 weights, ``title`` and ``text`` stored."""
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.index.config import IndexConfig

    encoder = PrecomputedEncoder.for_query_analyzer(query_analyzer)
    config = IndexConfig(quantization="none", stored_fields=("title", "text"))
    total = count_vector_lines(path) if progress else None
    return Retriever.build(read_vector_collection(path), path=out, encoder=encoder, config=config, overwrite=overwrite,
                       progress=progress, total=total)


# ---------------------------------------------------------------- tokens and query vectors


def token_strings(encoder: Any) -> list[str]:
    """Token string of every term id the encoder can emit (its vocabulary, in id order)."""
    from sparsearch.protocols import TokenVocabulary

    if not isinstance(encoder, TokenVocabulary):
        raise SparsearchError(f"encoder {getattr(encoder, 'name', encoder)!r} has no token vocabulary to export")
    return encoder.token_strings()


def query_vector_batch(index: Any, vectors: Sequence[Mapping[str, float]]) -> SparseBatch:
    """Query rows for ``{token: weight}`` vectors under ``index``'s vocabulary (unknown tokens dropped).

    On a BM25 index the weight multiplies the saturated term frequency (so
    ``{term: idf(term)}`` is a BM25 query); on the others it is a dot product.
    """
    encoder = index.encoder
    if isinstance(encoder, PrecomputedEncoder):
        return encoder.encode_vectors(vectors)
    ids = {t: i for i, t in enumerate(token_strings(encoder))}
    rows = []
    for v in vectors:
        row: dict[int, float] = {}
        for token, weight in v.items():
            w = check_weight(token, weight, "query vector: ")
            i = ids.get(token)
            if i is not None and w > 0:
                row[i] = row.get(i, 0.0) + w
        rows.append(row)
    return SparseBatch.from_dicts(rows)


def search_vectors(index: Any, vectors: Sequence[Mapping[str, float]], k: int = 10,
                   threads: int | None = None) -> list[Hits]:
    """Top-``k`` hits of each query vector (``Retriever.search_batch`` for vectors instead of text)."""
    if not vectors:
        return []
    if k < 1:
        raise InputError(f"k must be at least 1, got {k}")
    return index.snapshot.hits(query_vector_batch(index, vectors), k, threads=threads)


def evaluate_query_vectors(dataset_dir: str | Path, index_dir: str | Path, query_vectors: str | Path,
                           split: str = "test", k: int = 1000, run_path: str | Path | None = None) -> dict[str, Any]:
    """BEIR metrics of an index searched with precomputed query vectors (``id``/``vector`` JSON lines).

    A judged query without a vector retrieves nothing (it counts 0), with a
    warning; vectors of unjudged queries are ignored.
    """
    from sparsearch.retriever.retriever import Retriever
    from sparsearch.eval.beir import effective_k
    from sparsearch.eval.datasets import load_beir
    from sparsearch.eval.metrics import evaluate, judgement_warnings
    from sparsearch.eval.runs import ranking_run, write_trec

    effective_k(k, 1)
    dataset = load_beir(dataset_dir, split)
    vectors = read_query_vectors(query_vectors)
    qids = list(dataset.queries)
    index = Retriever.open(index_dir)
    k = effective_k(k, index.n_docs)
    results = search_vectors(index, [vectors.get(q, {}) for q in qids], k)
    metrics = evaluate(dataset.qrels, ranking_run(qids, results))
    if run_path is not None:
        write_trec(run_path, qids, results)
    warnings, n_missing = judgement_warnings(dataset.qrels, {q: h.ids for q, h in zip(qids, results)},
                                             index.live_ids())
    absent = [q for q in qids if q not in vectors]
    if absent:
        warnings.insert(0, f"{len(absent)} of the {len(qids)} judged queries have no vector in {query_vectors} "
                           f"(e.g. {absent[0]!r}): they retrieve nothing and count 0")
    batch = query_vector_batch(index, [vectors.get(q, {}) for q in qids])
    return {
        "dataset": dataset.name, "split": split, "n_queries": len(qids), "n_docs": index.n_docs, "k": k,
        "encoder": {"name": index.encoder.name, **index.encoder.config()}, "queries": "vectors",
        "metrics": metrics, "avg_nonzeros_per_query": len(batch.term_ids) / max(len(qids), 1),
        "warnings": warnings, "qrels_docs_not_in_index": n_missing,
    }


# ---------------------------------------------------------------- reading vectors back from an index


@dataclass
class SegmentVectors:
    """The live documents of one segment as rows of export weights (BM25: impacts)."""

    doc_ids: list[str]
    stored: list[dict[str, Any]]
    rows: SparseBatch


def bm25_impacts(index: Any, seg: Any, rows: SparseBatch, locals_: np.ndarray) -> np.ndarray:
    """``idf(t)·tf/(tf + K(d))`` per posting of ``rows``: the index's BM25 contribution of a query term counted once.

    Same float32 arithmetic as the scoring kernel: ``K(d)`` from the
    collection's ``avgdl`` through Lucene's one-byte length norm (or the exact
    length under ``length_norm="exact"``), IDF over the live documents.
    """
    from sparsearch.index import kernels
    from sparsearch.retriever.bm25 import bm25_idf

    sc = index.snapshot.scoring
    stats = index.snapshot.stats
    avgdl = stats.avg_length or 1.0
    if sc.length_norm == "exact":
        lengths = np.asarray(seg.doc_lengths, np.float32)[locals_]
        kd = (np.float32(sc.k1) * (np.float32(1.0 - sc.b) + np.float32(sc.b / avgdl) * lengths)).astype(np.float32)
    else:
        norm_lengths = kernels.decode_norm_table()
        k_table = (sc.k1 * ((1.0 - sc.b) + sc.b * norm_lengths / np.float32(avgdl))).astype(np.float32)
        kd = k_table[np.asarray(seg.doc_norms)[locals_]]
    per_posting_kd = np.repeat(kd, np.diff(rows.offsets))
    tf = rows.weights.astype(np.float32)
    idf = bm25_idf(stats.doc_freq, stats.n_docs)[rows.term_ids]
    return (idf * (tf / (tf + per_posting_kd))).astype(np.float32)


def index_vectors(index: Any) -> Iterator[SegmentVectors]:
    """Every live document's vector, segment by segment, in index order, as the dot-product weights to export."""
    from sparsearch.index.merge import document_rows

    saturate = index.snapshot.scoring.transform == "saturate"
    for seg in index.snapshot.segments:
        if seg.n_docs == 0:
            continue
        rows, locals_ = document_rows(seg)
        if saturate:
            rows = SparseBatch(rows.offsets, rows.term_ids, bm25_impacts(index, seg, rows, locals_), rows.lengths)
        all_ids = seg.doc_ids.tolist()
        yield SegmentVectors([all_ids[i] for i in locals_.tolist()], [seg.stored(int(i)) for i in locals_], rows)


def _contents(stored: dict[str, Any]) -> str:
    return " ".join(s for s in (stored.get("title"), stored.get("text")) if isinstance(s, str) and s)


@dataclass
class ExportSummary:
    format: str
    path: str
    documents: int = 0
    postings: int = 0
    scale: float | None = None
    dropped_postings: int = 0  # rounded to 0 by quantisation
    max_abs_error: float = 0.0  # largest |round(w·s)/s − w| over the written postings
    bm25_impacts: bool = False
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        what = "BM25 impacts" if self.bm25_impacts else "vectors"
        text = f"exported {self.documents} documents ({self.postings} postings, {what}) as {self.format} to {self.path}"
        if self.scale is not None:
            text += (f"; weights = round(w * {self.scale:.6g}), {self.dropped_postings} postings rounded to 0 "
                     f"and left out, max error {self.max_abs_error:.3g} before scaling")
        return text


def _float32_text(values: np.ndarray) -> list[str]:
    """Shortest decimal text that reads back to the same float32 (numpy's unique repr)."""
    return [str(v) for v in values.astype(np.float32)]


def export_index(index: Any, out: str | Path, fmt: str = "anserini", scale: float | None = None,
                 field_name: str = "sparse_embedding", index_name: str | None = None) -> ExportSummary:
    """Write ``index``'s document vectors to ``out`` (``.gz``: gzipped), atomically (temp file + rename).

    ``scale`` applies to ``anserini`` only (``None``: ``255 / max weight``).
    """
    if fmt not in EXPORT_FORMATS:
        raise InputError(f"unknown export format {fmt!r} (expected one of {', '.join(EXPORT_FORMATS)})")
    if scale is not None and (not np.isfinite(scale) or scale <= 0):
        raise InputError(f"--scale must be a positive number, got {scale}")
    if fmt != "anserini" and scale is not None:
        raise InputError("--scale applies to --format anserini only (the others write float weights)")
    if fmt == "opensearch" and not field_name:
        raise InputError("an OpenSearch export needs a field name")
    out = Path(out)
    tokens = token_strings(index.encoder)
    summary = ExportSummary(fmt, str(out), bm25_impacts=index.snapshot.scoring.transform == "saturate")
    if fmt == "anserini":
        if scale is None:
            top = max((float(part.rows.weights.max()) for part in index_vectors(index) if len(part.rows.weights)),
                      default=0.0)
            scale = 255.0 / top if top > 0 else 1.0
        summary.scale = float(scale)
    name = index_name or (Path(index.path).name if index.path is not None else "sparsearch")
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as raw:
            stream: Any = gzip.GzipFile(filename="", fileobj=raw, mode="wb", mtime=0) if out.name.endswith(".gz") else raw
            text = io.TextIOWrapper(stream, encoding="utf-8", newline="\n", write_through=False)
            for part in index_vectors(index):
                _write_part(text, part, tokens, fmt, summary, field_name, name)
            text.flush()
            text.detach()
            if stream is not raw:
                stream.close()  # writes the gzip trailer; leaves ``raw`` open
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return summary


def _write_part(text: Any, part: SegmentVectors, tokens: list[str], fmt: str, summary: ExportSummary,
                field_name: str, index_name: str) -> None:
    rows = part.rows
    weights = rows.weights
    if fmt == "anserini":
        assert summary.scale is not None
        scaled = np.rint(weights.astype(np.float64) * summary.scale)
        kept = scaled > 0
        summary.dropped_postings += int((~kept).sum())
        if kept.any():
            err = np.abs(scaled[kept] / summary.scale - weights[kept])
            summary.max_abs_error = max(summary.max_abs_error, float(err.max()))
        values: list[Any] = scaled.astype(np.int64).tolist()
    else:
        kept = weights > 0
        values = _float32_text(weights)
    term_ids = rows.term_ids.tolist()
    keep = kept.tolist()
    offsets = rows.offsets.tolist()
    dumps = json.dumps
    for i, doc_id in enumerate(part.doc_ids):
        lo, hi = offsets[i], offsets[i + 1]
        pairs = [f"{dumps(tokens[term_ids[p]], ensure_ascii=False)}: {values[p]}" for p in range(lo, hi) if keep[p]]
        vector = "{" + ", ".join(pairs) + "}"
        summary.documents += 1
        summary.postings += len(pairs)
        if fmt == "opensearch":
            action = {"index": {"_index": index_name, "_id": doc_id}}
            source = dumps({k: v for k, v in part.stored[i].items() if k != field_name}, ensure_ascii=False)
            rest = "" if source == "{}" else ", " + source[1:-1]
            text.write(dumps(action, ensure_ascii=False) + "\n")
            text.write("{" + dumps(field_name) + ": " + vector + rest + "}\n")
        else:
            head = dumps({"id": doc_id, "contents": _contents(part.stored[i])}, ensure_ascii=False)
            text.write(head[:-1] + ', "vector": ' + vector + "}\n")
