"""The two small protocols every model and every index plugs in through.

An **encoder** turns text into a representation — sparse vectors here, dense
vectors for a bi-encoder — on a document side and a query side, and says how
the index must score them.  An **index** stores representations under
external ids and answers top-k with :class:`~sparsearch.types.Hits`: add,
delete, commit, take a snapshot, search.  The :class:`~sparsearch.retriever.
retriever.Retriever` joins one of each; nothing else needs to know which.

This module is core: it imports neither Numba nor torch (``docs/design.md``
says how a dense encoder and a faiss index fit the same two protocols).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator, Protocol, Sequence, TypeVar, runtime_checkable

from sparsearch.scoring import Scoring
from sparsearch.types import CollectionStats, Document, Hits, SparseBatch

Rep = TypeVar("Rep")  # a batch of representations: SparseBatch, or a dense matrix
Rep_co = TypeVar("Rep_co", covariant=True)
Rep_contra = TypeVar("Rep_contra", contravariant=True)


@runtime_checkable
class Encoder(Protocol[Rep_co]):
    """Text -> representations, documents and queries each on their own side."""

    name: ClassVar[str]

    def encode_documents(self, documents: Sequence[Document]) -> Rep_co:
        """One row per document."""
        ...

    def encode_queries(self, queries: Sequence[str], stats: CollectionStats | None = None) -> Rep_co:
        """One row per query; collection statistics let query weights depend on the corpus (IDF)."""
        ...

    def config(self) -> dict[str, Any]:
        """JSON-serialisable settings, saved in the index manifest."""
        ...

    def state_files(self) -> dict[str, bytes]:
        """Files to save beside the index (e.g. a vocabulary), by kind."""
        ...


@runtime_checkable
class SparseEncoder(Encoder[SparseBatch], Protocol):
    """Text -> sparse vectors over a vocabulary of ``n_terms`` ids, scored by an inverted index."""

    @property
    def scoring(self) -> Scoring:
        """How the index turns this encoder's weights into scores."""
        ...

    @property
    def n_terms(self) -> int:
        """Current vocabulary size (may grow while documents are encoded)."""
        ...

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> "SparseEncoder":
        """Rebuild the encoder an index was built with from its manifest entry and files."""
        ...


@runtime_checkable
class StreamingEncoder(Protocol):
    """An encoder that encodes a stream of chunks in parallel itself (BM25's analyzer over processes)."""

    def encode_document_stream(self, chunks: Iterable[Sequence[Document]], workers: int) -> Iterator[SparseBatch]:
        ...


@runtime_checkable
class TokenVocabulary(Protocol):
    """A sparse encoder whose term ids name tokens (every one here): what exports write out."""

    def token_strings(self) -> list[str]:
        """The token of every term id, in id order."""
        ...


@runtime_checkable
class IndexSnapshot(Protocol[Rep_contra]):
    """An immutable view of an index: what one search sees, however many writes follow."""

    @property
    def n_docs(self) -> int: ...

    @property
    def stats(self) -> CollectionStats:
        """Collection statistics over the snapshot's live documents (for encoders' query weights)."""
        ...

    def hits(self, queries: Rep_contra, k: int, filter: Any = None, threads: int | None = None,
             where: str = "this index") -> list[Hits]:
        """Top-``k`` per query row, among documents matching ``filter``."""
        ...


@runtime_checkable
class Index(Protocol[Rep]):
    """Representations under external ids: the one write path and its readers.

    ``add`` replaces an existing id (upsert); what ``add``/``delete`` do
    becomes visible at ``commit`` (or at once, for a live index); ``snapshot``
    is immutable, so a search never sees half of a commit.
    """

    @property
    def n_docs(self) -> int: ...

    @property
    def snapshot(self) -> IndexSnapshot[Rep]: ...

    def add(self, ids: Sequence[str], vectors: Rep, stored: Sequence[dict[str, Any]] | None = None,
            sources: Sequence[dict[str, Any] | None] | None = None) -> None: ...

    def delete(self, ids: Iterable[str]) -> list[str]:
        """Delete by id; returns the ids that existed."""
        ...

    def commit(self) -> None: ...

    def search(self, queries: Rep, k: int, filter: Any = None, threads: int | None = None,
               where: str = "this index") -> list[Hits]: ...

    def get(self, doc_id: str) -> dict[str, Any] | None:
        """Stored fields of a visible document, or ``None``."""
        ...

    def close(self, flush: bool = True) -> None: ...


#: The sparse instance of the index protocol (``IndexWriter`` implements it).
SparseIndex = Index[SparseBatch]
