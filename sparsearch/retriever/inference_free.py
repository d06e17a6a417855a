"""Inference-free learned sparse retrieval (OpenSearch doc-only models; Geng et al. 2024).

Documents are encoded offline by a SPLADE-style MLM; a query is only
tokenized, and each distinct token ``j`` weighs ``idf_j`` from the model's
``idf.json``:  ``score(q, d) = Σ_{j ∈ tokens(q)} idf_j · w_dj``.

The index keeps a copy of ``idf.json`` and ``tokenizer.json``, so searching
an inference-free index needs neither torch nor the model folder: query
latency is tokenization plus the inverted index, like BM25's.

``idf="collection"`` weighs query tokens by the IDF of the *indexed* texts
instead of the model's table (which comes from its training corpora): each
document's distinct text tokens travel with its vector
(:class:`~sparsearch.types.TokenSets`), the index keeps them per segment and
counts them over live documents per snapshot
(:attr:`~sparsearch.types.CollectionStats.text_doc_freq`), so the weights
stay exact under adds, deletes, merges and recovery, as BM25's statistics do.
Text tokens, not postings: the postings hold the model's expansion terms,
whose document frequencies measured worse (Cranfield NDCG@10: 0.3332 with
text-token IDF, 0.3124 with postings IDF, 0.3127 with the model's table).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from sparsearch.errors import IndexFormatError, InputError
from sparsearch.scoring import Scoring
from sparsearch.retriever.idf import bm25_form_idf, idf_vector, parse_idf, special_token_ids
from sparsearch.retriever.splade import (
    check_document_settings,
    current_model_source,
    load_model,
    resolve_config_model,
)
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL
from sparsearch.retriever.wordpiece_fast import FastWordPiece
from sparsearch.types import CollectionStats, Document, SparseBatch, TokenSets, compact_offsets

#: Where query token weights come from: the model's ``idf.json``, or the indexed documents' texts.
IDF_SOURCES = ("model", "collection")


@dataclass(frozen=True)
class InferenceFreeConfig:
    """Document-side settings (as :class:`~sparsearch.retriever.splade.SpladeConfig`); queries need none."""

    model_dir: str = DEFAULT_INFERENCE_FREE_MODEL  # a folder or a name; left out: the general shipped model
    max_length: int = 256
    batch_size: int = 32
    device: str = "auto"
    doc_top_k: int | None = None
    doc_threshold: float = 0.0
    exact_screening: bool = True
    model: str | None = None  # the name model_dir was resolved from (see SpladeConfig)
    #: Query weights: "model" (the model's idf.json) or "collection" (BM25-form IDF of the live documents'
    #: text tokens, kept exact by the index; the index then stores each document's text token set).
    idf: str = "model"

    def __post_init__(self) -> None:
        check_document_settings(self.max_length, self.batch_size, self.doc_top_k, self.doc_threshold)
        if self.idf not in IDF_SOURCES:
            raise InputError(f"must be one of {', '.join(map(repr, IDF_SOURCES))}, got {self.idf!r}", field="idf")
        resolve_config_model(self)


def queryable_terms(query_weights: np.ndarray) -> np.ndarray:
    """The document mask of an inference-free model: ``True`` for the term ids a query can hold.

    A query weighs each token by its IDF, special tokens 0 (:class:`IdfQueryEncoder`), so a
    document weight on a term of query weight 0 never scores: the encoder drops those postings
    and the training student zeroes them (``sparsearch.training.trainer``), both through this mask.
    """
    return np.asarray(query_weights) > 0


class IdfQueryEncoder:
    """Query text -> distinct WordPiece ids weighted by IDF; numpy and ``tokenizers`` only."""

    def __init__(self, tokenizer, idf: dict[str, float]) -> None:  # type: ignore[no-untyped-def]
        self.tokenizer = tokenizer
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()  # (document text tokens go through encode_batch)
        self.idf_table = idf
        self.weights = idf_vector(idf, tokenizer.get_vocab())
        # Special tokens never weigh anything, even if a table lists them.
        self.special = np.asarray(sorted(special_token_ids(tokenizer)), np.int64)
        self.weights[self.special] = 0.0
        self.queryable = queryable_terms(self.weights)  # the terms a document vector keeps
        # Under collection IDF every other token weighs > 0 (ln(1 + (N - df + 0.5)/(df + 0.5)) with df <= N).
        self.not_special = np.ones(len(self.weights), bool)
        self.not_special[self.special] = False
        # Per-token lookups in Python beat numpy calls on ~10 ids.
        self._keep = {"model": self.queryable.tolist(), "collection": self.not_special.tolist()}
        self._fast = FastWordPiece.from_tokenizer(tokenizer)

    def encode(self, queries: Sequence[str], weights: np.ndarray | None = None) -> SparseBatch:
        """Query latency matters here (it is all an inference-free query costs besides the index):
        ASCII queries take the cached pure-Python WordPiece (exactly the same ids), others
        ``tokenizers``; distinct ids are collected without numpy set operations.

        ``weights``: per-token weights to use instead of the table's (collection IDF, see
        :meth:`collection_weights`); every token but the special ones is then kept.
        """
        keep = self._keep["model" if weights is None else "collection"]
        rows = [self._row(query, keep) for query in queries]
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        term_ids = np.fromiter((t for r in rows for t in r), np.int64, count=int(offsets[-1]))
        return SparseBatch(offsets, term_ids, (self.weights if weights is None else weights)[term_ids])

    def encode_one(self, query: str, weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One query's row as ``(term ids int32, weights float32)``: row 0 of ``encode([query], weights)``."""
        term_ids = np.array(self._row(query, self._keep["model" if weights is None else "collection"]), np.int32)
        return term_ids, (self.weights if weights is None else weights)[term_ids]

    def _row(self, query: str, keep: list[bool]) -> list[int]:
        """A query's distinct kept token ids, ascending."""
        ids = self._fast.ids(query) if self._fast is not None else None
        if ids is None:
            ids = self.tokenizer.encode(query, add_special_tokens=False).ids
        return sorted({t for t in ids if keep[t]})

    def token_sets(self, texts: Sequence[str]) -> TokenSets:
        """Each text's distinct non-special token ids, untruncated: what :func:`~sparsearch.retriever.idf.
        document_frequencies` counts, so collection IDF equals ``idf_table`` over the same texts.

        One ``np.unique`` over ``row * vocab + id`` keys sorts and deduplicates every row at once.
        """
        if not texts:
            return TokenSets.empty()
        encodings = self.tokenizer.encode_batch(list(texts), add_special_tokens=False)
        sizes = np.fromiter((len(e.ids) for e in encodings), np.int64, count=len(encodings))
        flat = np.fromiter((t for e in encodings for t in e.ids), np.int64, count=int(sizes.sum()))
        rows = np.repeat(np.arange(len(encodings), dtype=np.int64), sizes)
        keep = self.not_special[flat]
        vocab = len(self.weights)
        keys = np.unique(rows[keep] * vocab + flat[keep])
        offsets = np.zeros(len(encodings) + 1, np.int64)
        np.cumsum(np.bincount(keys // vocab, minlength=len(encodings)), out=offsets[1:])
        return TokenSets.packed(offsets, keys % vocab, vocab)

    def collection_weights(self, n_docs: int, doc_freq: np.ndarray) -> np.ndarray:
        """Per-token BM25-form IDF over ``n_docs`` documents with text document frequencies ``doc_freq``
        (float32, as long as the vocabulary; special tokens 0)."""
        df = np.zeros(len(self.weights), np.int64)
        df[: min(len(doc_freq), len(df))] = doc_freq[: len(df)]
        weights = bm25_form_idf(df, n_docs).astype(np.float32)
        weights[self.special] = 0.0
        return weights


class InferenceFreeEncoder:
    """Documents by an MLM (loaded only when documents are encoded), queries by IDF lookup."""

    name: ClassVar[str] = "inference-free"

    def __init__(self, config: InferenceFreeConfig, tokenizer=None, idf: dict[str, float] | None = None) -> None:  # type: ignore[no-untyped-def]
        from sparsearch.retriever.splade import load_tokenizer

        self.settings = config
        if tokenizer is None or idf is None:
            from sparsearch.retriever.resolve import require_model_dir
            from sparsearch.retriever.st_format import describe_model

            # A native folder (tokenizer + idf.json) or a sentence-transformers one (SparseStaticEmbedding).
            layout = describe_model(require_model_dir(config.model_dir, config.model))
            if tokenizer is None:
                tokenizer = load_tokenizer(layout.query_dir)
            if idf is None:
                idf = layout.idf_table()
        self.queries = IdfQueryEncoder(tokenizer, idf)
        self._doc_model = None
        self._model_source = current_model_source()  # set by splade.models_from (a shared copy), else None
        self._collection_idf: tuple[CollectionStats, np.ndarray] | None = None  # weights of the last snapshot

    @property
    def doc_model(self):  # type: ignore[no-untyped-def]
        if self._doc_model is None:
            self._doc_model = load_model(self.settings, self._model_source)
        return self._doc_model

    @property
    def scoring(self) -> Scoring:
        return Scoring(transform="linear")

    @property
    def n_terms(self) -> int:
        return int(self.queries.tokenizer.get_vocab_size())

    @property
    def collection_idf(self) -> bool:
        return self.settings.idf == "collection"

    @property
    def queryable(self) -> np.ndarray:
        """The terms a query can hold: weight > 0 in the model's table, or (collection IDF) every non-special one."""
        return self.queries.not_special if self.collection_idf else self.queries.queryable

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        """Document vectors without the tokens no query can hold (IDF 0: special tokens): same scores, fewer postings.

        With collection IDF each row also carries its text's distinct token ids (``text_tokens``), which
        the index keeps beside the postings to count document frequencies.
        """
        s = self.settings
        texts = [d.contents for d in documents]
        batch = self.doc_model.encode(texts, s.max_length, s.batch_size, s.doc_top_k, s.doc_threshold)
        keep = self.queryable[batch.term_ids]
        if not keep.all():
            batch = SparseBatch(compact_offsets(batch.offsets, keep), batch.term_ids[keep], batch.weights[keep])
        if self.collection_idf:
            batch = batch.with_text_tokens(self.queries.token_sets(texts))
        return batch

    def query_weights(self, stats: CollectionStats | None = None) -> np.ndarray:
        """Every token's query weight (float32 by id): the model's table, or the collection IDF under ``stats``.

        Collection weights are computed once per statistics object (one per
        index snapshot), never per query.
        """
        if not self.collection_idf:
            return self.queries.weights
        if stats is None:
            raise ValueError("collection IDF needs the index's statistics (encode queries through the index)")
        cached = self._collection_idf
        if cached is not None and cached[0] is stats:
            return cached[1]
        if stats.text_doc_freq is None:
            raise IndexFormatError("this index holds documents indexed without their text tokens, so collection "
                                   "IDF cannot be computed over them; rebuild the index with idf='collection'")
        weights = self.queries.collection_weights(stats.text_n_docs, stats.text_doc_freq)
        self._collection_idf = (stats, weights)
        return weights

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        if not self.collection_idf:
            return self.queries.encode(queries)
        return self.queries.encode(queries, self.query_weights(stats))

    def encode_query(self, query: str, stats: CollectionStats | None = None) -> tuple[np.ndarray, np.ndarray]:
        """One query's row as ``(term ids int32, weights float32)``, as :meth:`encode_queries` gives it.

        The one-query search path (``Retriever.search``) takes it: no batch object per query.
        """
        if not self.collection_idf:
            return self.queries.encode_one(query)
        return self.queries.encode_one(query, self.query_weights(stats))

    def token_strings(self) -> list[str]:
        """The WordPiece token of every id (the tokenizer copied into the index names the vocabulary)."""
        from sparsearch.retriever.wordpiece_vocab import tokens_by_id

        return tokens_by_id(self.queries.tokenizer)

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def state_files(self) -> dict[str, bytes]:
        return {
            "idf": json.dumps(self.queries.idf_table, ensure_ascii=False).encode("utf-8"),
            "tokenizer": self.queries.tokenizer.to_str().encode("utf-8"),
        }

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "InferenceFreeEncoder":
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(files["tokenizer"]))
        idf = parse_idf(json.loads(Path(files["idf"]).read_text(encoding="utf-8")), files["idf"])
        from sparsearch.retriever.resolve import configs_from_manifest

        with configs_from_manifest():
            settings = InferenceFreeConfig(**config)
        return cls(settings, tokenizer=tokenizer, idf=idf)
