"""The two small protocols every model and every index plugs in through.

An encoder turns text into sparse vectors and names the scoring rule the
index must apply; an index stores vectors and answers top-k.  BM25, SPLADE and
inference-free models are all encoders, so none of them touches the index.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol, Sequence, runtime_checkable

from sparsearch.scoring import Scoring
from sparsearch.types import CollectionStats, Document, SparseBatch


@runtime_checkable
class SparseEncoder(Protocol):
    """Text -> sparse vectors over a vocabulary of ``n_terms`` ids."""

    name: ClassVar[str]

    @property
    def scoring(self) -> Scoring:
        """How the index turns this encoder's weights into scores."""
        ...

    @property
    def n_terms(self) -> int:
        """Current vocabulary size (may grow while documents are encoded)."""
        ...

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        """One row per document; ``lengths`` set when the scoring rule needs them."""
        ...

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> SparseBatch:
        """One row per query; collection statistics let query weights depend on the corpus (IDF)."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings, saved in the index manifest."""
        ...

    def state_files(self) -> dict[str, bytes]:
        """Files to save beside the index (e.g. a vocabulary), by kind."""
        ...

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "SparseEncoder":
        """Rebuild the encoder an index was built with from its manifest entry and files."""
        ...


@runtime_checkable
class SparseIndex(Protocol):
    """Stored sparse vectors answering exact top-k, with collection statistics for encoders.

    Incremental ``add`` / ``delete`` / ``commit`` join this protocol with the
    incremental index; every index keeps statistics global across segments.
    """

    @property
    def n_docs(self) -> int: ...

    @property
    def stats(self) -> CollectionStats: ...

    def search(self, queries: SparseBatch, k: int, threads: int | None = None, method: str = "auto") -> Any:
        """Top-``k`` internal ids and scores per query row (a ``TopK``)."""
        ...
