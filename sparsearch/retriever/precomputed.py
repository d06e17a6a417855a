"""Documents encoded elsewhere: an encoder over precomputed ``{token: weight}`` vectors.

``sparsearch index --vectors FILE`` reads Pyserini's JsonVectorCollection
layout (:mod:`sparsearch.vectors_io`); each document carries its vector in
``Document.metadata["vector"]`` and this encoder only maps token strings to
ids, growing a vocabulary saved beside the index (state file ``vocab``, as
BM25's).  Scoring is the dot product of query and document weights.

Queries come either as vectors too (``sparsearch search --query-vector``,
``sparsearch eval --query-vectors``, :func:`sparsearch.vectors_io.search_vectors`)
or as text through one of three query analyzers, chosen at build time and
saved in the manifest:

``whitespace`` (default)
    The query is already tokenized: split on whitespace, each token weighs
    the number of times it occurs.  This is Anserini's ``-impact
    -pretokenized`` query side, where a query vector is written as its tokens
    repeated by their (integer) weights.
``lucene-english``
    sparsearch's Lucene English analyzer (the one BM25 uses: lower case, stop
    words, Porter stemming), each term weighing its count.  With the BM25
    impacts ``sparsearch export`` writes, this gives BM25's ranking from text
    queries.
``wordpiece``
    A WordPiece tokenizer (``tokenizer.json``, copied into the index); with
    an ``idf.json`` beside it each distinct token weighs its IDF, exactly the
    query side of an inference-free model, else each token its count.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar, Mapping, Sequence

import numpy as np

from sparsearch.errors import InputError, SparsearchError
from sparsearch.scoring import Scoring
from sparsearch.retriever.vocab import Vocabulary
from sparsearch.types import CollectionStats, Document, SparseBatch

#: Where a document's ``{token: weight}`` travels from the reader to this encoder.
VECTOR_KEY = "vector"

QUERY_ANALYZERS = ("whitespace", "lucene-english", "wordpiece")


@dataclass(frozen=True)
class PrecomputedConfig:
    query_analyzer: str = "whitespace"

    def __post_init__(self) -> None:
        if self.query_analyzer not in QUERY_ANALYZERS:
            raise ValueError(f"unknown query analyzer {self.query_analyzer!r} "
                             f"(expected one of {', '.join(QUERY_ANALYZERS)})")


def check_weight(token: Any, weight: Any, where: str = "") -> float:
    """A vector entry's weight as a float: a finite number >= 0 (bools refused); ``InputError`` otherwise."""
    if not isinstance(token, str) or not token:
        raise InputError(f"{where}tokens must be non-empty strings, got {json.dumps(token)}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)):
        raise InputError(f"{where}weight of token {token!r} must be a number, got {json.dumps(weight)}")
    w = float(weight)
    if not math.isfinite(w) or w < 0:
        raise InputError(f"{where}weight of token {token!r} must be finite and >= 0, got {weight!r} "
                         "(the index scores by dot product over non-negative weights)")
    return w


class PrecomputedEncoder:
    """Token strings -> ids for vectors made elsewhere; text queries through a simple analyzer."""

    name: ClassVar[str] = "precomputed"

    def __init__(self, config: PrecomputedConfig | None = None, vocab: Vocabulary | None = None,
                 tokenizer: Any = None, idf: dict[str, float] | None = None) -> None:
        self.settings = config or PrecomputedConfig()
        self.vocab = vocab or Vocabulary()
        self.tokenizer = tokenizer
        self.idf = idf
        self._lucene = None
        if self.settings.query_analyzer == "wordpiece":
            if tokenizer is None:
                raise ValueError("the wordpiece query analyzer needs a tokenizer")
            tokenizer.no_truncation()
            from sparsearch.retriever.idf import special_token_ids

            self._special = {tokenizer.id_to_token(i) for i in special_token_ids(tokenizer)}
        elif self.settings.query_analyzer == "lucene-english":
            from sparsearch.retriever.analysis import LuceneEnglishAnalyzer

            self._lucene = LuceneEnglishAnalyzer()

    @classmethod
    def for_query_analyzer(cls, spec: str | Path | None) -> "PrecomputedEncoder":
        """``whitespace``, ``lucene-english``, or a folder holding ``tokenizer.json`` (and maybe ``idf.json``)."""
        if spec is None or str(spec) in ("whitespace", "lucene-english"):
            return cls(PrecomputedConfig(str(spec or "whitespace")))
        folder = Path(spec)
        if not folder.is_dir():
            raise SparsearchError(f"--query-analyzer {spec}: expected whitespace, lucene-english or a folder "
                                  "holding tokenizer.json (and optionally idf.json)")
        from sparsearch.retriever.idf import read_idf_json
        from sparsearch.retriever.splade import load_tokenizer

        tokenizer = load_tokenizer(folder)
        idf = read_idf_json(folder / "idf.json") if (folder / "idf.json").exists() else None
        return cls(PrecomputedConfig("wordpiece"), tokenizer=tokenizer, idf=idf)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> "PrecomputedEncoder":
        """:func:`~sparsearch.retriever.registry.build_encoder`'s hook: ``query_analyzer`` may also be a folder
        holding ``tokenizer.json`` (and ``idf.json``), as in :meth:`for_query_analyzer`."""
        return cls.for_query_analyzer(settings.get("query_analyzer"))

    # ------------------------------------------------------------ protocol

    @property
    def scoring(self) -> Scoring:
        return Scoring(transform="linear")

    @property
    def n_terms(self) -> int:
        return len(self.vocab)

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        """Each document's ``metadata["vector"]`` as a row; new tokens join the vocabulary."""
        offsets = np.zeros(len(documents) + 1, np.int64)
        ids: list[int] = []
        weights: list[float] = []
        add = self.vocab.add
        for i, doc in enumerate(documents):
            vector = doc.metadata.get(VECTOR_KEY) if doc.metadata else None
            if not isinstance(vector, Mapping):
                raise InputError(f"document {doc.doc_id!r} has no vector: an index built from precomputed vectors "
                                 "takes documents with vectors only (sparsearch index --vectors FILE.jsonl)")
            for token, weight in vector.items():
                w = check_weight(token, weight, f"document {doc.doc_id!r}: ")
                if w > 0:
                    ids.append(add(token))
                    weights.append(w)
            offsets[i + 1] = len(ids)
        return SparseBatch(offsets, np.asarray(ids, np.int32), np.asarray(weights, np.float32))

    def encode_vectors(self, vectors: Sequence[Mapping[str, float]]) -> SparseBatch:
        """Query vectors by token string; tokens the index has never seen are dropped (they match nothing)."""
        rows = []
        for v in vectors:
            row: dict[int, float] = {}
            for token, weight in v.items():
                w = check_weight(token, weight, "query vector: ")
                i = self.vocab.get(token)
                if i >= 0 and w > 0:
                    row[i] = row.get(i, 0.0) + w
            rows.append(row)
        return SparseBatch.from_dicts(rows)

    def query_vector(self, query: str) -> dict[str, float]:
        """The ``{token: weight}`` a text query becomes under this index's query analyzer."""
        mode = self.settings.query_analyzer
        out: dict[str, float] = {}
        if mode == "whitespace":
            tokens = query.split()
        elif mode == "lucene-english":
            assert self._lucene is not None
            tokens = [t for t in (self._lucene.normalize(tok) for tok in self._lucene.raw_tokens(query)) if t]
        else:
            tokens = [t for t in self.tokenizer.encode(query, add_special_tokens=False).tokens
                      if t not in self._special]
            if self.idf is not None:
                return {t: self.idf[t] for t in dict.fromkeys(tokens) if self.idf.get(t, 0.0) > 0}
        for t in tokens:
            out[t] = out.get(t, 0.0) + 1.0
        return out

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        return self.encode_vectors([self.query_vector(q) for q in queries])

    def token_strings(self) -> list[str]:
        """The term of every id this encoder emits, in id order (for exports)."""
        return list(self.vocab.terms)

    def config(self) -> dict[str, Any]:
        return asdict(self.settings)

    def state_files(self) -> dict[str, bytes]:
        files = {"vocab": self.vocab.to_json_bytes()}
        if self.tokenizer is not None:
            files["tokenizer"] = self.tokenizer.to_str().encode("utf-8")
        if self.idf is not None:
            files["idf"] = json.dumps(self.idf, ensure_ascii=False).encode("utf-8")
        return files

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "PrecomputedEncoder":
        tokenizer = idf = None
        if "tokenizer" in files:
            from tokenizers import Tokenizer

            tokenizer = Tokenizer.from_file(str(files["tokenizer"]))
        if "idf" in files:
            from sparsearch.retriever.idf import parse_idf

            idf = parse_idf(json.loads(Path(files["idf"]).read_text(encoding="utf-8")), files["idf"])
        return cls(PrecomputedConfig(**config), Vocabulary.load(files["vocab"]), tokenizer=tokenizer, idf=idf)
