"""Peer runner: bm25s (eager sparse BM25 scores, numba backend) on a BEIR dataset.

Why: bm25s is the fastest pure-Python BM25 engine we know of, so it is the peer our engine
must beat on speed while matching Lucene-style quality.  It is set up the way its README
recommends: ``bm25s.tokenize`` with its English stopwords and a PyStemmer "english"
stemmer, BM25 method "lucene" (Lucene's IDF and length normalisation), numba backend.
Documents are title + " " + text, as for Pyserini.

Usage: python benchmarks/peers/bm25s_bm25.py DATASET_DIR --out-dir DIR [--split test]
       [--k 1000] [--threads N] [--k1 0.9 --b 0.4] [--warmup 1] [--repeats 1]
"""

from __future__ import annotations

import shutil
import time

import bm25s
import numpy as np
import Stemmer

if __package__:  # imported as benchmarks.peers.bm25s_bm25
    from . import _common
else:  # run as a script: this folder is on sys.path
    import _common

STEMMER = Stemmer.Stemmer("english")


def tokenize_queries(texts: list[str]) -> list[list[str]]:
    """Tokenize queries the same way as the corpus.

    A query left with no tokens (e.g. only stopwords) would make ``retrieve`` raise, so it
    becomes ``[""]``: the empty token that ``index()`` adds for this case and that matches
    no document.
    """
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=STEMMER, return_ids=False, show_progress=False)
    return [t if t else [""] for t in tokens]


def to_hits(doc_ids: list[str], indices: np.ndarray, scores: np.ndarray) -> _common.Hits:
    """Map one query's result row to (docid, score), dropping score-0 rows.

    bm25s always returns k rows; those scoring 0 matched no query term and are in
    arbitrary order, so they are not real hits (Lucene would not return them).
    """
    return [(doc_ids[i], float(s)) for i, s in zip(indices, scores) if s > 0]


def main() -> None:
    args = _common.base_arg_parser(__doc__.splitlines()[0]).parse_args()
    args.out_dir.mkdir(parents=True, exist_ok=True)
    data = _common.load_beir(args.dataset_dir, args.split)
    k = min(args.k, len(data.doc_ids))
    index_dir = args.out_dir / "index"
    shutil.rmtree(index_dir, ignore_errors=True)

    # Build = read + tokenize + index + save, mirroring what Lucene's indexer does end to end.
    t0 = time.perf_counter()
    _, doc_texts = _common.read_corpus(args.dataset_dir)
    corpus_tokens = bm25s.tokenize(doc_texts, stopwords="en", stemmer=STEMMER, show_progress=False)
    retriever = bm25s.BM25(method="lucene", k1=args.k1, b=args.b, backend="numba")
    retriever.index(corpus_tokens, show_progress=False)
    retriever.save(str(index_dir))
    build_seconds = time.perf_counter() - t0

    def retrieve(tokens: list[list[str]], n_threads: int) -> tuple[np.ndarray, np.ndarray]:
        return retriever.retrieve(
            tokens, k=k, n_threads=n_threads, backend_selection="numba", show_progress=False
        )

    # Warm-up (see _common.time_search) matters here: the serial and the parallel numba
    # kernels are separate functions, each JIT-compiled on its first call.  Query
    # tokenization is inside the timed regions, as Lucene's query analysis is.
    run, timings = _common.time_search(
        data,
        search_one=lambda text: retrieve(tokenize_queries([text]), 1),
        search_batch=lambda texts, qids, threads: retrieve(tokenize_queries(texts), threads),
        to_hits=lambda res: to_hits(data.doc_ids, res[0][0], res[1][0]),
        warmup=args.warmup,
        repeats=args.repeats,
        threads=args.threads,
    )

    versions = _common.package_versions("bm25s", "numba", "numpy", "scipy", "PyStemmer")
    _common.finish(args, "bm25s-bm25", data, run, k, build_seconds, timings, index_dir, versions)


if __name__ == "__main__":
    main()
