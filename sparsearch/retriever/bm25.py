"""BM25 as an encoder: documents become term-frequency vectors, queries IDF-weighted terms.

Okapi BM25 (Robertson & Zaragoza, "The Probabilistic Relevance Framework:
BM25 and Beyond", 2009) in the form Lucene >= 8 and Anserini/Pyserini use:
``score = Σ idf(t)·tf/(tf + k1·(1 − b + b·dl/avgdl))`` with
``idf(t) = ln(1 + (N − df + 0.5)/(df + 0.5))``, ``N`` the number of documents
with at least one term, ``dl`` read through Lucene's one-byte length norm.

Documents are stored as raw ``tf`` and length, not as precomputed impacts:
the index applies the saturation at query time with collection-wide ``N``,
``df`` and ``avgdl`` (see :mod:`sparsearch.index.kernels`), so scores stay
exact as documents are added and removed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
import itertools
import multiprocessing
import threading
from typing import Any, ClassVar, Iterable, Iterator, Sequence

import numpy as np

from sparsearch.index import kernels, small
from sparsearch.scoring import LengthNorm, Scoring
from sparsearch.retriever import query_batch
from sparsearch.retriever.analysis import LuceneEnglishAnalyzer, WordPieceAnalyzer
from sparsearch.retriever.vocab import Vocabulary
from sparsearch.types import CollectionStats, Document, SparseBatch, compact_offsets


@dataclass(frozen=True)
class BM25Config:
    k1: float = 0.9
    b: float = 0.4
    analyzer: str = "lucene-english"
    tokenizer: str | None = None
    length_norm: LengthNorm = "lucene"

    def __post_init__(self) -> None:
        if self.analyzer not in ("lucene-english", "wordpiece"):
            raise ValueError(f"unknown analyzer {self.analyzer!r} (expected 'lucene-english' or 'wordpiece')")
        if self.analyzer == "wordpiece" and not self.tokenizer:
            raise ValueError("the wordpiece analyzer needs a tokenizer path")
        Scoring("saturate", self.k1, self.b, self.length_norm)  # validates k1, b, length_norm


_WORKER_ANALYZER: LuceneEnglishAnalyzer | None = None
# Below this many chunks (about 3,000 documents at the default chunk size) a pool costs more than it saves.
_MIN_PARALLEL_CHUNKS = 3
#: What the query-token cache gives, in a batch, for a token it has never seen (no term id is negative but -1).
_UNSEEN = -(2**62)
#: Single queries after which ``encode_query`` compiles its ASCII path: a process that answers a few pays
#: neither Numba's import nor its compilation (``sparsearch quickstart`` never imports it).
COMPILED_AFTER = 64
PATTERN = -1  # token_table_kernels.PATTERN (not imported here: that module imports Numba)


def _analyze_chunk(texts: list[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Worker side of :meth:`BM25Encoder.encode_document_stream`: terms of a chunk, chunk-local ids."""
    global _WORKER_ANALYZER
    if _WORKER_ANALYZER is None:
        _WORKER_ANALYZER = LuceneEnglishAnalyzer()
    local = Vocabulary()
    offsets, ids = analyze_to_ids(texts, _WORKER_ANALYZER, local, {})
    return local.terms, offsets, ids


def analyze_to_ids(
    texts: Sequence[str], analyzer: LuceneEnglishAnalyzer, vocab: Vocabulary, id_cache: dict[str, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Per-text offsets and flat term ids (stop words dropped), growing ``vocab``.

    Python loops run per text and per never-seen token only: a batch's tokens
    are flattened, its new distinct tokens found with set operations,
    normalised (and stemmed) in one batch, and every token then mapped to its
    id through ``id_cache`` (raw token -> id, -1 for stop words) in C.
    """
    rows = [analyzer.raw_tokens(t) for t in texts]
    counts = np.zeros(len(texts) + 1, np.int64)
    counts[1:] = np.fromiter(map(len, rows), np.int64, count=len(rows))
    flat_tokens = list(itertools.chain.from_iterable(rows))
    new = sorted(set(flat_tokens).difference(id_cache))  # sorted: term ids must not depend on hashing
    if new:
        add = vocab.add
        for token, term in zip(new, analyzer.normalize_many(new)):
            id_cache[token] = -1 if term is None else add(term)
    flat = np.fromiter(map(id_cache.__getitem__, flat_tokens), np.int32, count=len(flat_tokens))
    raw_offsets = np.cumsum(counts)
    keep = flat >= 0
    if keep.all():
        return raw_offsets, flat
    return compact_offsets(raw_offsets, keep), flat[keep]


def bm25_idf(doc_freq: np.ndarray, n_docs: int) -> np.ndarray:
    """Lucene's BM25 IDF, ``ln(1 + (N − df + 0.5)/(df + 0.5))``, in float32 like Lucene."""
    df = np.asarray(doc_freq, np.float64)
    return np.log1p((n_docs - df + 0.5) / (df + 0.5)).astype(np.float32)


def _live_idf(stats: CollectionStats, term_ids: np.ndarray) -> np.ndarray:
    """float32 :func:`bm25_idf` of ``term_ids`` under ``stats``; 0 for a term no live document holds."""
    df = stats.doc_freq
    freq = np.zeros(len(term_ids), np.int64)
    inside = term_ids < len(df)
    freq[inside] = df[term_ids[inside]]
    return np.where(freq > 0, bm25_idf(freq, stats.n_docs), np.float32(0.0))


class BM25Encoder:
    name: ClassVar[str] = "bm25"

    def __init__(self, config: BM25Config | None = None, vocab: Vocabulary | None = None) -> None:
        self.settings = config or BM25Config()
        if self.settings.analyzer == "wordpiece":
            self._wordpiece: WordPieceAnalyzer | None = WordPieceAnalyzer(self.settings.tokenizer or "")
            self.analyzer = self._wordpiece
            self.vocab = vocab or Vocabulary(self._wordpiece.vocab)
        else:
            self._wordpiece = None
            self._lucene = LuceneEnglishAnalyzer()
            self.analyzer = self._lucene
            self.vocab = vocab or Vocabulary()
        self._id_cache: dict[str, int] = {}
        self._query_ids: dict[str, int] = {}  # raw query token -> term id (-1: dropped or unknown); see query_terms
        self._unknown_tokens: list[str] = []  # tokens cached as unknown while the vocabulary had _known_size terms
        self._known_size = -1
        self._idf: tuple[CollectionStats, dict[int, float]] | None = None
        self._idf_array: tuple[CollectionStats, np.ndarray, np.ndarray] | None = None  # (stats, idf, known?)
        self._token_weights: tuple[CollectionStats, dict[str, tuple[int, float] | bool]] | None = None
        self._single_queries = 0  # answered by encode_query before the compiled table starts
        self._compiled_queries: Any = None  # token_table.TokenTable, once COMPILED_AFTER single queries ran
        self._compiled_lock = threading.Lock()

    @property
    def scoring(self) -> Scoring:
        s = self.settings
        return Scoring(transform="saturate", k1=s.k1, b=s.b, length_norm=s.length_norm)

    @property
    def n_terms(self) -> int:
        return len(self.vocab)

    # ------------------------------------------------------------ documents

    def document_token_ids(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Flat term ids of every text (stop words dropped) and per-text offsets; grows the vocabulary."""
        if self._wordpiece is not None:
            rows = self._wordpiece.token_ids(texts)
            offsets = np.zeros(len(rows) + 1, np.int64)
            np.cumsum([len(r) for r in rows], out=offsets[1:])
            flat = np.fromiter((t for r in rows for t in r), np.int32, count=int(offsets[-1]))
            return offsets, flat
        return analyze_to_ids(texts, self._lucene, self.vocab, self._id_cache)

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        return self._term_frequencies(*self.document_token_ids([d.contents for d in documents]))

    @staticmethod
    def _term_frequencies(offsets: np.ndarray, token_ids: np.ndarray) -> SparseBatch:
        # Few tokens: the NumPy twin of the kernel (same arrays, no JIT compilation: index/small.py).
        term_frequencies = small.term_frequencies if small.small_build(len(token_ids)) else kernels.term_frequencies
        row_offsets, term_ids, tf = term_frequencies(offsets, token_ids)
        return SparseBatch(row_offsets, term_ids, tf, lengths=np.diff(offsets).astype(np.float32))

    def encode_document_stream(self, chunks: Iterable[Sequence[Document]], workers: int) -> Iterator[SparseBatch]:
        """``encode_documents`` over many chunks, with text analysis spread over processes.

        Workers tokenize and stem (the Python-bound part of indexing) and send
        back each chunk's distinct terms and term-local ids; only this process
        assigns vocabulary ids, so ids are identical to a sequential build.
        """
        it = iter(chunks)
        head = list(itertools.islice(it, _MIN_PARALLEL_CHUNKS))
        if workers <= 1 or self._wordpiece is not None or len(head) < _MIN_PARALLEL_CHUNKS:
            # A few chunks (or one worker): forking would cost more than it saves.
            for chunk in itertools.chain(head, it):
                yield self.encode_documents(chunk)
            return
        chunks = itertools.chain(head, it)
        texts = ([d.contents for d in chunk] for chunk in chunks)
        context = multiprocessing.get_context("fork")
        with context.Pool(workers) as pool:
            for terms, offsets, local_ids in pool.imap(_analyze_chunk, texts):
                global_ids = np.fromiter((self.vocab.add(t) for t in terms), np.int32, count=len(terms))
                yield self._term_frequencies(offsets, global_ids[local_ids])

    # ------------------------------------------------------------ queries

    def query_terms(self, query: str) -> list[int]:
        """Known term ids of a query, repeated as often as they occur.

        Raw tokens map to ids through one cache (``_query_ids``) instead of two
        lookups (token -> term -> id): a query is a dozen tokens, and those
        lookups were most of its analysis.  Ids never move (the vocabulary
        only grows); a word unknown now may be indexed later, so unknown
        tokens are cached only until the vocabulary grows.
        """
        if self._wordpiece is not None:
            return [t for t in self._wordpiece.token_ids([query])[0] if t < len(self.vocab)]
        tokens = self._lucene.raw_tokens(query)
        ids = list(map(self._query_token_cache().get, tokens))
        if None in ids:
            ids = [self._token_id(tok) if i is None else i for tok, i in zip(tokens, ids)]
        out = [i for i in ids if i >= 0]
        return out

    def _query_token_cache(self) -> dict[str, int]:
        """``_query_ids``, without the tokens cached as unknown if the vocabulary has grown since."""
        size = len(self.vocab)
        if size != self._known_size:
            cache, unknown = self._query_ids, self._unknown_tokens
            self._unknown_tokens = []
            for token in unknown:
                cache.pop(token, None)
            self._known_size = size  # read before the purge: a term added meanwhile triggers the next one
        return self._query_ids

    def _token_id(self, token: str) -> int:
        """A raw token's term id, -1 if it is dropped or unknown (cached; see :meth:`_query_token_cache`)."""
        term = self._lucene.normalize(token)
        i = -1 if term is None else self.vocab.get(term)
        if term is not None and i < 0:
            self._unknown_tokens.append(token)
        self._query_ids[token] = i
        return i

    def _idf_of(self, stats: CollectionStats, terms: Iterable[int]) -> dict[int, float]:
        """IDF of ``terms`` under ``stats`` (0.0 for a term no live document holds), cached per snapshot.

        Cached per statistics object (one per index snapshot) and filled only
        for terms queries use, so a new snapshot after a write costs nothing
        up front; values come from :func:`bm25_idf`, so they are the float32
        numbers of a whole-array computation.
        """
        cached = self._idf
        if cached is None or cached[0] is not stats:
            cached = self._idf = (stats, {})
        table = cached[1]
        missing = [t for t in terms if t not in table]
        if missing:
            table.update(zip(missing, _live_idf(stats, np.asarray(missing, np.int64)).tolist()))
        return table

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        """Rows of ``count(t)·idf(t)``: Anserini's bag-of-words query boosts each term by its count.

        Terms keep their first-occurrence order in a row: the kernels add
        contributions in row order, so the order fixes the float32 score.
        """
        if stats is None:
            raise ValueError("BM25 query weights need collection statistics")
        if len(queries) >= query_batch.MIN_BATCH and self._wordpiece is None:
            return self._encode_query_batch(queries, stats)
        rows = [self.encode_query(q, stats) for q in queries]  # a few queries: the one-query rows, stacked
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(ids) for ids, _ in rows], out=offsets[1:])
        if not rows:
            return SparseBatch(offsets, np.zeros(0, np.int32), np.zeros(0, np.float32))
        return SparseBatch(offsets, np.concatenate([ids for ids, _ in rows]), np.concatenate([w for _, w in rows]))

    def encode_query(self, query: str, stats: CollectionStats) -> tuple[np.ndarray, np.ndarray]:
        """One query's row as ``(term ids int32, weights float32)``: row 0 of ``encode_queries([query], stats)``.

        The one-query search path (``Retriever.search``) takes it: no batch
        object, no per-batch bookkeeping, a few microseconds less per call.
        Once this encoder has answered :data:`COMPILED_AFTER` single queries,
        an ASCII query takes one compiled call (:mod:`~sparsearch.retriever.token_table`),
        which gives the same row; what it cannot finish takes the Python path
        and teaches the table.
        """
        if self._wordpiece is not None:
            counts = self._term_counts(query)
            idf = self._idf_of(stats, counts)
            kept = [t for t in counts if idf[t] > 0.0]  # only a term no live document holds has idf 0
            return np.array(kept, np.int32), np.array([counts[t] * idf[t] for t in kept], np.float32)
        table = self._compiled_queries
        if table is None:
            self._single_queries += 1
            if self._single_queries >= COMPILED_AFTER:
                table = self._start_compiled_queries()
        if table is None or not query.isascii():
            return self._python_query_row(query, stats)
        cached = self._idf_array
        if cached is not None and cached[0] is stats:
            status, term_ids, weights = table.encode(query.encode("ascii"), len(self.vocab), cached[1], cached[2])
            if status >= 0:
                return term_ids, weights
            if status == PATTERN:  # glue only the pattern splits: nothing to teach
                return self._python_query_row(query, stats)
        row = self._python_query_row(query, stats)
        self._teach(table, query, stats)
        return row

    def _start_compiled_queries(self) -> Any:
        """The compiled table, seeded with the ASCII tokens this encoder already knows (imports Numba)."""
        from sparsearch.retriever.token_table import TokenTable

        with self._compiled_lock:
            if self._compiled_queries is None:
                cache = self._query_token_cache()
                table = TokenTable(max(1024, 2 * len(cache)))
                self._fill(table, [t for t in list(cache) if t.isascii()], cache)
                self._compiled_queries = table
        return self._compiled_queries

    def _fill(self, table: Any, tokens: Iterable[str], cache: dict[str, int], changed_only: bool = False) -> None:
        """Copy ``tokens``' cached ids into ``table`` (``changed_only``: skip entries it already holds)."""
        for token in tokens:
            entry = self._entry(cache, token)
            if entry is not None and not (changed_only and table.lookup(token) == entry):
                table.insert(token, *entry)

    def _teach(self, table: Any, query: str, stats: CollectionStats) -> None:
        """After the Python path: the query's tokens into the table, and the IDF of their terms under ``stats``."""
        cache = self._query_token_cache()
        tokens = list(dict.fromkeys(self._lucene.raw_tokens(query)))
        self._fill(table, tokens, cache, changed_only=True)
        ids = [i for i in map(cache.get, tokens) if i is not None and i >= 0]
        self._idf_values(stats, np.asarray(ids, np.int64))  # also (re)builds the array for this snapshot

    def _entry(self, cache: dict[str, int], token: str) -> tuple[int, int] | None:
        """The table's ``(value, stamp)`` for a token the cache holds (None: not looked up yet).

        A term id, or :data:`~token_table_kernels.DROPPED` (a stop word: for
        good), or :data:`~token_table_kernels.UNKNOWN` stamped with the
        vocabulary's size (until it grows).
        """
        from sparsearch.retriever.token_table_kernels import DROPPED, UNKNOWN

        i = cache.get(token)
        if i is None or i >= 0:
            return None if i is None else (i, 0)
        return (DROPPED, 0) if self._lucene.normalize(token) is None else (UNKNOWN, len(self.vocab))

    def _python_query_row(self, query: str, stats: CollectionStats) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`encode_query` in Python (Lucene analyzer): one cached ``(term id, idf)`` per raw token."""
        cached = self._token_weights
        if cached is None or cached[0] is not stats:
            cached = self._token_weights = (stats, {})
        table = cached[1]
        entries = []
        for token in self._lucene.raw_tokens(query):
            entry = table.get(token)
            if entry is None:
                entry = self._token_weight(token, stats, table)
            if entry:
                entries.append(entry)
        ids = [term for term, _ in entries]
        if len(set(ids)) == len(ids):  # the common case: every kept term once, weight = idf
            return np.array(ids, np.int32), np.array([idf for _, idf in entries], np.float32)
        counts, idf_of = {}, dict(entries)
        for term in ids:  # first-occurrence order
            counts[term] = counts.get(term, 0) + 1
        # count * idf in float32, as Lucene multiplies them: the float64 product of two float32 values is exact
        # (24 + 24 significant bits), so rounding it once to float32 gives the float32 product bit for bit.
        return np.array(list(counts), np.int32), np.array([c * idf_of[t] for t, c in counts.items()], np.float32)

    def _token_weight(self, token: str, stats: CollectionStats,
                      table: dict[str, tuple[int, float] | bool]) -> tuple[int, float] | bool:
        """A raw token's ``(term id, idf)`` under ``stats``, ``False`` if it scores nothing; cached in ``table``.

        One lookup per query token instead of token -> id -> idf: the
        one-query path spent more on those lookups than on scoring a small
        collection.  The table belongs to one statistics object (one
        snapshot), so a token dropped because no live document held it is
        looked up again after the next write.
        """
        term = self._query_token_cache().get(token)
        if term is None:
            term = self._token_id(token)
        entry: tuple[int, float] | bool = False
        if term >= 0:
            idf = self._idf_of(stats, (term,))[term]
            if idf > 0.0:  # only a term no live document holds has idf 0
                entry = (term, idf)
        table[token] = entry
        return entry

    def _term_counts(self, query: str) -> dict[int, int]:
        """Known term ids of a query with their counts, in first-occurrence order."""
        counts: dict[int, int] = {}
        for t in self.query_terms(query):
            counts[t] = counts.get(t, 0) + 1
        return counts

    def _encode_query_batch(self, queries: Sequence[str], stats: CollectionStats) -> SparseBatch:
        """:meth:`encode_queries` for many queries in whole-batch steps (:mod:`query_batch`); the same rows."""
        token_rows = query_batch.raw_token_rows(queries, self._lucene.raw_tokens)
        tokens = list(itertools.chain.from_iterable(token_rows))
        # Token -> id in C; a token never looked up before comes back as _UNSEEN and is analysed once here.
        cache = self._query_token_cache()
        ids = np.fromiter(map(cache.get, tokens, itertools.repeat(_UNSEEN)), np.int64, count=len(tokens))
        for i in np.flatnonzero(ids == _UNSEEN).tolist():
            known = cache.get(tokens[i])  # an earlier repeat in this batch may have analysed it already
            ids[i] = self._token_id(tokens[i]) if known is None else known
        lengths = np.fromiter(map(len, token_rows), np.int64, count=len(token_rows))
        offsets, term_ids, counts = query_batch.distinct_counts(ids, lengths, len(self.vocab))
        idf = self._idf_values(stats, term_ids)
        keep = idf > 0.0  # only a term no live document holds has idf 0
        rows = np.repeat(np.arange(len(queries)), np.diff(offsets))
        offsets = np.zeros(len(queries) + 1, np.int64)
        np.cumsum(np.bincount(rows[keep], minlength=len(queries)), out=offsets[1:])
        # count * idf, both float32, as Lucene multiplies them.
        return SparseBatch(offsets, term_ids[keep], counts[keep].astype(np.float32) * idf[keep])

    def _idf_values(self, stats: CollectionStats, term_ids: np.ndarray) -> np.ndarray:
        """float32 IDF of ``term_ids`` under ``stats``: :meth:`_idf_of`'s values, from an array filled as needed."""
        cached = self._idf_array
        if cached is None or cached[0] is not stats or len(cached[1]) < len(self.vocab):
            size = len(self.vocab)
            values, known = np.zeros(size, np.float32), np.zeros(size, bool)
            if cached is not None and cached[0] is stats:
                values[: len(cached[1])], known[: len(cached[2])] = cached[1], cached[2]
            cached = self._idf_array = (stats, values, known)
        _, values, known = cached
        missing = np.unique(term_ids[~known[term_ids]])
        if len(missing):
            values[missing] = _live_idf(stats, missing)
            known[missing] = True
        return values[term_ids]

    # ------------------------------------------------------------ persistence

    def token_strings(self) -> list[str]:
        """The term of every id this encoder emits, in id order (for exports)."""
        return list(self.vocab.terms)

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def state_files(self) -> dict[str, bytes]:
        return {"vocab": self.vocab.to_json_bytes()}

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "BM25Encoder":
        return cls(BM25Config(**config), Vocabulary.load(files["vocab"]))
