"""Pure Numba kernels of the inverted index: building postings and scoring queries (the public facade).

Everything here works on flat NumPy arrays and nothing else: no Python
objects, no I/O.  That keeps the kernels testable against plain NumPy
(``kernel.py_func`` runs the same code uncompiled) and lets them release the
GIL, so searches run in parallel with each other and with Python work.

The kernels live in modules with one job each, and every name is re-exported
here, so callers write ``kernels.search_one`` whatever file defines it:

* :mod:`~sparsearch.index.kernels_build`: term counts, inversion to postings,
  quantisation, Lucene's one-byte length norms;
* :mod:`~sparsearch.index.kernels_topk`: exhaustive exact top-k (accumulate,
  rank, merge ranked lists);
* :mod:`~sparsearch.index.kernels_prune`: MaxScore (document at a time, and
  term at a time over the accumulator), dynamically pruned and just as
  exact, with its per-term bounds;
* :mod:`~sparsearch.index.kernels_blockmax`: block-max MaxScore over
  blocks of documents, with per-block bounds of long lists;
* :mod:`~sparsearch.index.kernels_scan`: whole-segment scans (live document
  frequencies, structural validation on open);
* :mod:`~sparsearch.index.kernels_jit`: the deferred compilation below.

Compilation is cached on disk (``cache=True``) so a CLI call pays the JIT only
the first time a given kernel signature is seen.  Importing this module does
not import Numba: the decorators only record each kernel, and the first use
of any kernel (a call, or an attribute such as ``py_func``) imports Numba and
turns every recorded kernel, in every module above and here, into its
dispatcher at once.  A process that only ever takes the NumPy paths of small
inputs (:mod:`sparsearch.index.small`) therefore never pays Numba's import
(~0.4 s) nor loads its cache.

Score transforms
----------------
The index stores per posting a non-negative weight ``w``.  Two transforms turn
it into a score contribution for a query term weight ``q``:

* ``TRANSFORM_LINEAR``: ``q * w`` (dot product; learned sparse models).
* ``TRANSFORM_SATURATE``: ``q * w / (w + K(d))`` with
  ``K(d) = k1 * (1 - b + b * len(d) / avgdl)``: term-frequency saturation with
  length normalisation (Robertson & Zaragoza 2009), which with ``w = tf`` and
  ``q = idf`` is BM25 in Lucene's form.  ``K`` is read from a 256-entry table
  indexed by the document's one-byte norm (Lucene's SmallFloat length), or
  computed from the exact length.  Computing it at query time, from
  collection-wide ``avgdl``, keeps scores exact when documents are added.
"""

from __future__ import annotations

# The public facade: every name of the former single-file module, re-exported from where it now lives.
# (After the first kernel use, kernels_jit.materialize() rebinds the kernel names here to their dispatchers too.)
from sparsearch.index.kernels_build import (  # noqa: F401
    NUM_FREE_VALUES,
    _chunk_bounds,
    _int4_to_int,
    _int_to_int4,
    _MAX_INT4,
    decode_norm_table,
    encode_norms,
    invert,
    quantize_uint8,
    term_frequencies,
)
from sparsearch.index.kernels_blockmax import blockmax_many, blockmax_one, block_rows  # noqa: F401
from sparsearch.index.kernels_jit import _Deferred, njit, numba_loaded  # noqa: F401
from sparsearch.index.kernels_jit import materialize as _materialize  # noqa: F401
from sparsearch.index.kernels_prune import (  # noqa: F401
    _bits_float,
    _contribution,
    _float_bits,
    _next_geq,
    maxscore_many,
    maxscore_one,
    pruned_many,
    pruned_one,
    term_bounds,
)
from sparsearch.index.kernels_scan import (  # noqa: F401
    first_bad_offset,
    first_bad_posting_list,
    first_bad_weight,
    live_doc_freq,
)
from sparsearch.index.kernels_topk import (  # noqa: F401
    _HEAP_MAX_K,
    _LOW32,
    _RADIX_MIN_CANDIDATES,
    _SELECT_BITS,
    RADIX_BUCKETS,
    _accumulate,
    _collect_top_k,
    _largest_by_heap,
    _radix_select,
    _radix_sort_descending,
    _sift_down,
    _worse,
    merge_top_k,
    saturated_impacts,
    search_many,
    search_one,
)
from sparsearch.scoring import TRANSFORM_LINEAR, TRANSFORM_SATURATE  # noqa: F401  (one definition, in the core)
