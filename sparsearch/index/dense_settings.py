"""Settings of a dense index, saved in its manifest (under ``config["dense"]``).

They are properties of the data on disk, like a sparse index's quantisation:
which structure each segment holds and how it was built.  The search-time
ones (``ef_search``, ``ivf_nprobe``, ``rerank``) are defaults that a search
may override (``DenseSnapshot.hits(..., ef_search=...)``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from sparsearch.errors import IndexFormatError

INDEX_TYPES = ("flat", "hnsw", "ivfpq")
METRICS = ("ip",)


@dataclass(frozen=True)
class DenseIndexSettings:
    """How a dense index stores and searches its vectors.

    * ``index_type``: ``"flat"`` (exact inner product over every vector),
      ``"hnsw"`` (faiss HNSW graph: ``hnsw_m`` links per node, built with
      ``ef_construction``, searched with ``ef_search``) or ``"ivfpq"`` (faiss
      IVF-PQ: ``ivf_nlist`` lists, about 4 sqrt(n) when ``None``, ``ivf_nprobe``
      searched; ``pq_m`` sub-vectors of ``pq_nbits`` bits, the largest divisor
      of the dimension up to dim / 4 when ``None``).
    * ``metric``: inner product (normalise vectors beforehand for cosine).
    * ``rerank``: candidates of an approximate structure are rescored exactly
      from the full-precision (memory-mapped) vectors; IVF-PQ fetches
      ``rerank_factor`` x k of them first, since its own scores are coarse.
    * ``ann_min_docs``: segments (and filtered selections) smaller than this
      are searched exactly: a scan of a few thousand vectors costs less than
      building or walking a structure, and is exact.
    * ``filter_exact_fraction``: a filter that leaves at most this share of a
      segment is searched exactly over the matching vectors instead of
      through the structure, where so selective a filter starves the search
      (HNSW walks mostly excluded nodes; IVF lists run dry).
    * ``dim``: the vector dimension; ``None`` until known (the term space's
      ``n_terms`` when it has terms, else the first vectors indexed); the
      manifest records it once known.
    """

    index_type: str = "flat"
    metric: str = "ip"
    hnsw_m: int = 32
    ef_construction: int = 200
    ef_search: int = 128
    ivf_nlist: int | None = None
    ivf_nprobe: int = 16
    pq_m: int | None = None
    pq_nbits: int = 8
    rerank: bool = True
    rerank_factor: int = 4
    ann_min_docs: int = 4096
    filter_exact_fraction: float = 0.05
    dim: int | None = None

    def __post_init__(self) -> None:
        if self.index_type not in INDEX_TYPES:
            raise ValueError(f"unknown dense index type {self.index_type!r} (expected {', '.join(INDEX_TYPES)})")
        if self.metric not in METRICS:
            raise ValueError(f"unknown dense metric {self.metric!r} (expected {', '.join(METRICS)})")
        for name in ("hnsw_m", "ef_construction", "ef_search", "ivf_nprobe", "rerank_factor", "ann_min_docs"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("ivf_nlist", "pq_m", "dim"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ValueError(f"{name} must be a positive integer or None, got {value!r}")
        if not isinstance(self.pq_nbits, int) or not 1 <= self.pq_nbits <= 16:
            raise ValueError(f"pq_nbits must lie in [1, 16], got {self.pq_nbits!r}")
        if not 0.0 <= float(self.filter_exact_fraction) <= 1.0:
            raise ValueError(f"filter_exact_fraction must lie in [0, 1], got {self.filter_exact_fraction!r}")

    @property
    def ann_kind(self) -> str | None:
        """The approximate structure segments get (``None``: flat, exact only)."""
        return None if self.index_type == "flat" else self.index_type

    def min_docs(self, kind: str) -> int:
        """Fewest rows a segment needs to get a ``kind`` structure (PQ trains 2^nbits centroids per sub-vector)."""
        return max(self.ann_min_docs, 2**self.pq_nbits) if kind == "ivfpq" else self.ann_min_docs

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "DenseIndexSettings":
        """Settings saved in a manifest; unknown keys are refused (a newer writer's setting may change the data)."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise IndexFormatError(f"dense index settings {unknown} are unknown to this sparsearch; upgrade it")
        try:
            return cls(**dict(d))
        except (TypeError, ValueError) as e:
            raise IndexFormatError(f"invalid dense index settings in the manifest ({e})") from None
