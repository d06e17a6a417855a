"""Inference-free learned sparse retrieval (OpenSearch doc-only models; Geng et al. 2024).

Documents are encoded offline by a SPLADE-style MLM; a query is only
tokenized, and each distinct token ``j`` weighs ``idf_j`` from the model's
``idf.json``:  ``score(q, d) = Σ_{j ∈ tokens(q)} idf_j · w_dj``.

The index keeps a copy of ``idf.json`` and ``tokenizer.json``, so searching
an inference-free index needs neither torch nor the model folder: query
latency is tokenization plus the inverted index, like BM25's.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import numpy as np

from sparsearch.scoring import Scoring
from sparsearch.retriever.idf import idf_vector, parse_idf, special_token_ids
from sparsearch.retriever.splade import (
    check_document_settings,
    current_model_source,
    load_model,
    resolve_config_model,
)
from sparsearch.retriever.resolve import DEFAULT_INFERENCE_FREE_MODEL
from sparsearch.retriever.wordpiece_fast import FastWordPiece
from sparsearch.types import CollectionStats, Document, SparseBatch, compact_offsets


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

    def __post_init__(self) -> None:
        check_document_settings(self.max_length, self.batch_size, self.doc_top_k, self.doc_threshold)
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
        self.idf_table = idf
        self.weights = idf_vector(idf, tokenizer.get_vocab())
        # Special tokens never weigh anything, even if a table lists them.
        self.weights[sorted(special_token_ids(tokenizer))] = 0.0
        self.queryable = queryable_terms(self.weights)  # the terms a document vector keeps
        self._weight_list = self.weights.tolist()  # per-token lookups in Python beat numpy calls on ~10 ids
        self._fast = FastWordPiece.from_tokenizer(tokenizer)

    def encode(self, queries: Sequence[str]) -> SparseBatch:
        """Query latency matters here (it is all an inference-free query costs besides the index):
        ASCII queries take the cached pure-Python WordPiece (exactly the same ids), others
        ``tokenizers``; distinct ids are collected without numpy set operations."""
        w = self._weight_list
        rows = []
        for query in queries:
            ids = self._fast.ids(query) if self._fast is not None else None
            if ids is None:
                ids = self.tokenizer.encode(query, add_special_tokens=False).ids
            rows.append(sorted({t for t in ids if w[t] > 0.0}))
        offsets = np.zeros(len(rows) + 1, np.int64)
        np.cumsum([len(r) for r in rows], out=offsets[1:])
        term_ids = np.fromiter((t for r in rows for t in r), np.int64, count=int(offsets[-1]))
        return SparseBatch(offsets, term_ids, self.weights[term_ids])


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

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        """Document vectors without the tokens no query can hold (IDF 0: special tokens): same scores, fewer postings."""
        s = self.settings
        batch = self.doc_model.encode([d.contents for d in documents], s.max_length, s.batch_size, s.doc_top_k,
                                      s.doc_threshold)
        keep = self.queries.queryable[batch.term_ids]
        if keep.all():
            return batch
        return SparseBatch(compact_offsets(batch.offsets, keep), batch.term_ids[keep], batch.weights[keep])

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        return self.queries.encode(queries)

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
