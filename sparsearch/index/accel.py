"""Per-segment acceleration structures: forward index, impact-ordered pruned postings, block maxima.

Built once per immutable segment (at flush and merge, by
:func:`sparsearch.index.segment_build.build_segment`) for learned-sparse
segments large enough to gain from them, and saved beside the postings as
extra files ``accel.<name>.npy``.  An index written before they existed, or
a segment too small to get them at build time, simply lacks these files: it
opens as before, and the first search that needs them builds them in memory
(:func:`segment_accel`) from the postings, once per segment.

What each structure is for:

* forward index (``fwd_*``): document -> (terms ascending, stored weights);
  exact re-scoring of approximate candidates and block scoring in BMP
  (:mod:`sparsearch.index.kernels_forward`);
* impact-ordered pruned postings (``imp_*``): per term its ``lam`` heaviest
  postings, heaviest first; read only by the approximate mode
  (:mod:`sparsearch.index.kernels_approx`);
* block maxima (``bm_*``, ``perm``): BMP's per-term 8-bit block upper bounds
  over a document permutation (:mod:`sparsearch.index.kernels_bmp`).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

#: File stems (after ``accel.``) a complete set of structures holds.
STEMS = ("fwd_offsets", "fwd_terms", "fwd_weights", "imp_offsets", "imp_docs", "imp_weights",
         "bm_offsets", "bm_blocks", "bm_max", "bm_term_max", "bm_perm", "params")
#: Segments with fewer postings are not given the structures at build time: exhaustive scoring of
#: them costs microseconds (and their NumPy path needs no JIT); they are built on demand if asked for.
MIN_BUILD_POSTINGS = 1 << 16
_PARAMS = ("block_size", "lam", "reordered")


@dataclass(frozen=True)
class AccelSettings:
    """How the structures are built (recorded per segment in ``accel.params.npy``).

    ``block_size``: documents per BMP block (Mallia et al. use 8-64; 16 measured
    best here, docs/query_speed_learned.md).  ``prune_fraction`` /
    ``min_lambda``: each pruned list keeps ``lam = max(min_lambda,
    ceil(prune_fraction * n_docs))`` postings.  ``reorder``: ``"maxterm"``
    sorts documents by their heaviest term before cutting blocks, ``"none"``
    keeps segment order.
    """

    block_size: int = 16
    prune_fraction: float = 0.05
    min_lambda: int = 1024
    reorder: str = "maxterm"

    def __post_init__(self) -> None:
        if not 1 <= self.block_size <= 1024:
            raise ValueError(f"block_size must lie in [1, 1024], got {self.block_size}")
        if not 0.0 < self.prune_fraction <= 1.0:
            raise ValueError(f"prune_fraction must lie in (0, 1], got {self.prune_fraction}")
        if self.min_lambda < 1:
            raise ValueError(f"min_lambda must be at least 1, got {self.min_lambda}")
        if self.reorder not in ("maxterm", "none"):
            raise ValueError(f"reorder must be 'maxterm' or 'none', got {self.reorder!r}")

    def lam(self, n_docs: int) -> int:
        return max(self.min_lambda, math.ceil(self.prune_fraction * n_docs))


DEFAULT_SETTINGS = AccelSettings()


@dataclass
class Accel:
    """One segment's structures, as arrays (see the module docstring)."""

    arrays: dict[str, np.ndarray]

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["arrays"][name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def block_size(self) -> int:
        return int(self.arrays["params"][0])

    @property
    def lam(self) -> int:
        return int(self.arrays["params"][1])

    @property
    def n_blocks(self) -> int:
        return -(-(len(self.arrays["fwd_offsets"]) - 1) // self.block_size)

    def nbytes(self, parts: tuple[str, ...] = ("fwd", "imp", "bm")) -> int:
        return sum(int(a.nbytes) for name, a in self.arrays.items() if name.split("_")[0] in parts)


def build_accel(postings_offsets: np.ndarray, postings_docs: np.ndarray, postings_weights: np.ndarray,
                term_scales: np.ndarray, n_docs: int, settings: AccelSettings | None = None) -> Accel:
    """Build every structure of one segment from its postings (stored weights, exactly)."""
    settings = settings or DEFAULT_SETTINGS
    from sparsearch.index import kernels, kernels_bmp, kernels_forward

    started = time.perf_counter()
    n_terms = len(postings_offsets) - 1
    offsets = np.asarray(postings_offsets)
    docs = np.asarray(postings_docs)
    weights = np.asarray(postings_weights)
    n_chunks = max(1, min(64, 4 * _threads()))
    fwd_offsets, fwd_terms, fwd_weights = kernels.invert(offsets, docs.astype(np.int32), weights, n_docs, n_chunks)
    fwd_terms = fwd_terms.astype(np.uint16 if n_terms <= 1 << 16 else np.uint32)
    lam = settings.lam(n_docs)
    imp_offsets, imp_docs, imp_weights = kernels_forward.prune_impact_ordered(offsets, docs, weights, lam)
    scales = np.asarray(term_scales, np.float32)
    if settings.reorder == "maxterm":
        perm = kernels_bmp.max_term_order(fwd_offsets, fwd_terms, fwd_weights, scales)
    else:
        perm = np.arange(n_docs, dtype=np.uint32)
    bm_offsets, bm_blocks, bm_max, bm_term_max = kernels_bmp.block_maxima(
        fwd_offsets, fwd_terms, fwd_weights, perm, settings.block_size, n_terms)
    params = np.array([settings.block_size, lam, settings.reorder == "maxterm"], np.int64)
    arrays = dict(fwd_offsets=fwd_offsets, fwd_terms=fwd_terms, fwd_weights=fwd_weights, imp_offsets=imp_offsets,
                  imp_docs=imp_docs, imp_weights=imp_weights, bm_offsets=bm_offsets, bm_blocks=bm_blocks,
                  bm_max=bm_max, bm_term_max=bm_term_max, bm_perm=perm, params=params)
    log.debug("accel structures for %d documents, %d postings: %.2f s", n_docs, len(docs),
              time.perf_counter() - started)
    return Accel(arrays)


def build_for_segment(segment: Any, linear: bool, settings: AccelSettings | None = None) -> dict[str, np.ndarray]:
    """The structures a freshly built segment is saved with: none for BM25 or small segments."""
    if not linear or segment.n_postings < MIN_BUILD_POSTINGS or segment.n_docs == 0:
        return {}
    return build_accel(segment.postings_offsets, segment.postings_docs, segment.postings_weights, segment.scales,
                       segment.n_docs, settings or DEFAULT_SETTINGS).arrays


_lock = threading.Lock()


def segment_accel(segment: Any) -> Accel:
    """The segment's structures: those saved with it, or built now from its postings (once per segment).

    A built set is stored into ``segment.accel``, a dict every snapshot's view
    of the segment shares, so the cost is paid once per open segment.
    """
    stored = segment.accel
    if all(stem in stored for stem in STEMS):
        return Accel(stored)
    with _lock:
        if not all(stem in stored for stem in STEMS):
            built = build_accel(segment.postings_offsets, segment.postings_docs, segment.postings_weights,
                                segment.scales, segment.n_docs)
            stored.update(built.arrays)
    return Accel(stored)


def structure_problem(arrays: dict[str, np.ndarray], n_docs: int, n_terms: int, n_postings: int) -> str | None:
    """The first broken invariant of saved structures, or None; the kernels index with them unchecked.

    Absent structures are no problem (older index, small segment); a partial set is.
    """
    if not arrays:
        return None
    missing = [s for s in STEMS if s not in arrays]
    if missing:
        return f"accel.{missing[0]}.npy is missing while other acceleration files are present"
    a = arrays
    params = a["params"]
    if params.dtype != np.int64 or params.shape != (len(_PARAMS),) or not 1 <= int(params[0]) <= 1024:
        return "accel.params.npy is malformed"
    block_size = int(params[0])
    n_blocks = -(-n_docs // block_size)
    csr = (("fwd", n_docs, "fwd_terms", n_postings), ("imp", n_terms, "imp_docs", None),
           ("bm", n_terms, "bm_blocks", None))
    for prefix, rows, data, total in csr:
        offs = a[f"{prefix}_offsets"]
        if offs.dtype != np.int64 or offs.shape != (rows + 1,):
            return f"accel.{prefix}_offsets.npy has dtype {offs.dtype} and shape {offs.shape}"
        if rows + 1 and (offs[0] != 0 or np.any(np.diff(offs) < 0) or offs[-1] != len(a[data])):
            return f"accel.{prefix}_offsets.npy is not a valid offset table"
        if total is not None and offs[-1] != total:
            return f"accel.{prefix}_offsets.npy covers {int(offs[-1])} entries, the postings hold {total}"
    bounds = (("fwd_terms", n_terms), ("imp_docs", n_docs), ("bm_blocks", n_blocks), ("bm_perm", n_docs))
    for name, limit in bounds:
        arr = a[name]
        if arr.dtype.kind != "u" or (len(arr) and int(arr.max()) >= limit):
            return f"accel.{name}.npy holds a value outside [0, {limit})"
    if len(a["bm_perm"]) != n_docs or len(a["fwd_weights"]) != len(a["fwd_terms"]) or \
            len(a["imp_weights"]) != len(a["imp_docs"]) or len(a["bm_max"]) != len(a["bm_blocks"]) or \
            len(a["bm_term_max"]) != n_terms:
        return "acceleration arrays disagree in length"
    if n_docs and np.count_nonzero(np.bincount(a["bm_perm"], minlength=n_docs)) != n_docs:
        return "accel.bm_perm.npy is not a permutation of the documents"
    for name in ("fwd_weights", "imp_weights", "bm_term_max"):
        arr = a[name]
        if arr.dtype.kind == "f" and len(arr) and not (np.isfinite(arr).all() and (arr >= 0).all()):
            return f"accel.{name}.npy holds a negative or non-finite weight"
    return None


def _threads() -> int:
    import numba

    return int(numba.get_num_threads())
