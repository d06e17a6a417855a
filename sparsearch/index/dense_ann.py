"""The faiss side of the dense index: approximate structures of a segment, and exact search through faiss.

faiss is imported here only, and only when a structure is built, loaded or
searched (:func:`load_faiss`): a process that never touches a dense index
never loads it, and one without it gets a :class:`MissingDependencyError`
that says what to install.

A segment's approximate structure (:class:`Ann`) is one of

* ``hnsw``: an ``IndexHNSWFlat`` graph over inner products.  On disk it is
  the graph alone (``IO_FLAG_SKIP_STORAGE``): the vectors are already the
  segment's ``vectors.npy``, so they are not stored twice.  Opened, its flat
  storage is filled from that matrix on the first search (faiss's flat
  storage cannot view memory it does not own from Python, so that is one
  copy in RAM; the ``.npy`` stays mapped for reranking and merging);
* ``ivfpq``: an ``IndexIVFPQ`` (coarse inverted lists, product-quantised
  codes): small enough to keep whole in RAM, its scores approximate, so its
  candidates are reranked from the full-precision mapped vectors.

Both are searched with an ``IDSelectorBitmap`` of the documents a search
may return (live, and matching the filter), passed in ``SearchParameters``:
faiss skips the others during the search, so nothing is over-fetched and
dropped afterwards.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from sparsearch.errors import IndexFormatError, MissingDependencyError

if TYPE_CHECKING:
    from sparsearch.index.dense_settings import DenseIndexSettings

ANN_FILES = {"hnsw": "hnsw.faiss", "ivfpq": "ivfpq.faiss"}
_METRIC_IP = 0  # faiss.METRIC_INNER_PRODUCT, without importing faiss to name it


def load_faiss() -> Any:
    """The faiss module, imported on first use; a clear error naming the package when it is absent."""
    try:
        import faiss
    except ImportError as e:
        raise MissingDependencyError(
            f"dense indexes need faiss ({e}): pip install faiss-cpu (or pip install 'sparsearch[dense]')") from None
    return faiss


@contextmanager
def omp_threads(threads: int | None) -> Iterator[None]:
    """faiss's OpenMP thread count for the block (process-wide, as Numba's is: restored afterwards)."""
    if not threads:
        yield
        return
    faiss = load_faiss()
    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(int(threads))
    try:
        yield
    finally:
        faiss.omp_set_num_threads(previous)


def bitmap(mask: np.ndarray) -> np.ndarray:
    """A boolean mask packed as faiss's ``IDSelectorBitmap`` reads it (bit ``i & 7`` of byte ``i >> 3``)."""
    return np.packbits(mask, bitorder="little")


def selector(bits: np.ndarray | None, n: int) -> Any:
    """An ``IDSelectorBitmap`` over ``bits`` (``None``: every id); the caller keeps ``bits`` alive meanwhile."""
    if bits is None:
        return None
    faiss = load_faiss()
    return faiss.IDSelectorBitmap(n, faiss.swig_ptr(bits))


def knn_exact(queries: np.ndarray, vectors: np.ndarray, k: int, bits: np.ndarray | None) -> tuple[np.ndarray,
                                                                                                      np.ndarray]:
    """Exact inner-product top-``k`` with faiss's SIMD scan, straight over ``vectors`` (mapped or not: no copy).

    Faster than a NumPy matrix-vector product for one to three queries
    (faiss 1.15, 200,000 x 384, one thread: 42 ms against 52 ms); its heap
    leaves ties in no particular order, which the caller settles.
    """
    faiss = load_faiss()
    m, n = len(queries), len(vectors)
    scores = np.empty((m, k), np.float32)
    ids = np.empty((m, k), np.int64)
    sel = selector(bits, n)
    faiss.knn_inner_product(faiss.swig_ptr(queries), faiss.swig_ptr(vectors), vectors.shape[1], m, n, k,
                            faiss.swig_ptr(scores), faiss.swig_ptr(ids), sel)
    return scores, ids


class Ann:
    """One segment's approximate structure, shared by every view of the segment (it ignores deletions).

    ``compressed``: its scores are approximations (PQ codes), so candidates
    must be reranked from the full vectors to be exact.
    """

    def __init__(self, kind: str, index: Any, vectors: np.ndarray | None = None) -> None:
        self.kind = kind
        self.compressed = kind == "ivfpq"
        self._index = index
        self._vectors = vectors  # HNSW opened from disk: its storage, attached on the first search
        self._storage: Any = None
        self._lock = threading.Lock()

    @property
    def n_docs(self) -> int:
        return int(self._index.ntotal)

    def index(self) -> Any:
        """The searchable faiss index (an opened HNSW graph gets its flat storage here, once)."""
        if self._vectors is not None:
            with self._lock:
                if self._vectors is not None:
                    faiss = load_faiss()
                    storage = faiss.IndexFlatIP(self._vectors.shape[1])
                    storage.add(np.ascontiguousarray(self._vectors, np.float32))
                    self._index.storage = storage
                    self._index.own_fields = False  # Python owns it: kept alive below, freed with this object
                    self._storage, self._vectors = storage, None
        return self._index

    def search(self, queries: np.ndarray, k: int, bits: np.ndarray | None, ef_search: int,
               nprobe: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` candidates (ids ``-1`` where fewer were found) among the ids set in ``bits``."""
        faiss = load_faiss()
        index = self.index()
        if self.kind == "hnsw":
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(int(ef_search), k)
        else:
            params = faiss.SearchParametersIVF()
            params.nprobe = int(nprobe)
        sel = selector(bits, self.n_docs)
        if sel is not None:
            params.sel = sel
        scores, ids = index.search(np.ascontiguousarray(queries, np.float32), k, params=params)
        return scores, ids

    def to_bytes(self) -> np.ndarray:
        """The structure as written: an HNSW graph without its vectors, an IVF-PQ index whole."""
        faiss = load_faiss()
        flags = faiss.IO_FLAG_SKIP_STORAGE if self.kind == "hnsw" else 0
        return faiss.serialize_index(self._index, flags)

    @classmethod
    def from_bytes(cls, kind: str, data: np.ndarray, vectors: np.ndarray, where: str) -> "Ann":
        """Load a structure written by :meth:`to_bytes` (its checksum already verified) over ``vectors``."""
        faiss = load_faiss()
        flags = faiss.IO_FLAG_SKIP_STORAGE if kind == "hnsw" else 0
        try:
            index = faiss.deserialize_index(data, flags)
        except RuntimeError as e:
            raise IndexFormatError(f"{where}: unreadable faiss structure ({str(e).splitlines()[0]}) "
                                   f"(index is corrupt)") from None
        n, dim = vectors.shape
        if int(index.ntotal) != n or int(index.d) != dim or int(index.metric_type) != _METRIC_IP:
            raise IndexFormatError(f"{where}: faiss structure holds {index.ntotal} vectors of {index.d} dimensions, "
                                   f"the segment {n} of {dim} (index is corrupt)")
        return cls(kind, index, vectors if kind == "hnsw" else None)


def build_ann(kind: str, vectors: np.ndarray, settings: "DenseIndexSettings") -> Ann:
    """Build the ``kind`` structure over ``vectors`` (at flush or merge: where a segment is written)."""
    faiss = load_faiss()
    x = np.ascontiguousarray(vectors, np.float32)
    n, dim = x.shape
    if kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, settings.hnsw_m, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = settings.ef_construction
        index.hnsw.efSearch = settings.ef_search
        index.add(x)
        return Ann(kind, index)
    if kind != "ivfpq":
        raise ValueError(f"unknown approximate structure {kind!r}")
    nlist = ivf_lists(n, settings.ivf_nlist)
    quantizer = faiss.IndexFlatIP(dim)
    index = faiss.IndexIVFPQ(quantizer, dim, nlist, pq_subquantizers(dim, settings.pq_m), settings.pq_nbits,
                             faiss.METRIC_INNER_PRODUCT)
    # Segments are trained on what they hold, often fewer than the 39 points per centroid faiss asks
    # for; the codes only pick candidates that are reranked exactly, so its warnings are noise here.
    index.cp.min_points_per_centroid = 1
    index.pq.cp.min_points_per_centroid = 1
    index.train(x)
    index.add(x)
    index.nprobe = settings.ivf_nprobe
    return Ann(kind, index)


def ivf_lists(n: int, wanted: int | None) -> int:
    """Inverted lists of an IVF segment: ``wanted`` or about 4 sqrt(n), never fewer than 39 points each."""
    nlist = wanted if wanted else int(4 * np.sqrt(n))
    return max(1, min(nlist, n // 39))


def pq_subquantizers(dim: int, wanted: int | None) -> int:
    """PQ sub-vectors: ``wanted`` (must divide ``dim``) or the largest divisor of ``dim`` up to ``dim / 4``."""
    if wanted:
        if dim % wanted:
            raise ValueError(f"pq_m={wanted} does not divide the vector dimension {dim}")
        return wanted
    return next(m for m in range(max(1, dim // 4), 0, -1) if dim % m == 0)
