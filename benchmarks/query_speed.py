"""BM25 query speed at small k: sparsearch (exhaustive and pruned) against bm25s, text in, ids out, same run.

    python benchmarks/query_speed.py [--sets scifact nfcorpus real-100000 synthetic-1000000]
                                     [--threads 1 2] [--k 10] [--out docs/results/query_speed.json]

Sets: BEIR folders under ``$SPARSEARCH_DATA`` (default ``../shared/data``;
their test queries) and the corpora of ``benchmarks/scale_corpus.py`` under
``~/.cache/sparsearch/scale`` (1,000 real queries).  Indexes are built once
and cached under ``--work``.  Every measurement goes from query text to
ranked internal ids, query analysis included, for both systems:

* batch: all queries in one call, at each ``--threads`` count;
* one at a time: one call per query, on one thread (the service's case).

Rounds are interleaved (each round times every configuration once, in a
fixed order) and each figure is the median over rounds, so load from other
processes on the machine hits every configuration alike; ratios are taken
within the run.  One-thread figures divide by the process's CPU time
(``time.process_time``: on a shared machine other processes delay a run
without adding to it), several-thread ones by wall-clock time; both are in
the JSON.  The pruned search is checked against exhaustive search on
every query (``recall`` is the share of identical top-k id lists).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.scale import CACHE, _dir_bytes, _queries

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SPARSEARCH_DATA", HERE.parent.parent / "shared" / "data"))


def corpus_and_queries(name: str) -> tuple[Path, list[str]]:
    """The corpus folder of a set and its queries (BEIR: the test split's)."""
    if (CACHE / name).exists():
        return CACHE / name, _queries(CACHE / name)
    from sparsearch.eval.datasets import read_qrels, read_queries

    folder = DATA / "beir" / name
    qrels = read_qrels(folder / "qrels" / "test.tsv")
    queries = read_queries(folder / "queries.jsonl", keep=set(qrels))
    return folder, [queries[q] for q in sorted(queries)]


def sparsearch_index(corpus: Path, work: Path) -> Any:
    from sparsearch import Index, read_corpus

    path = work / "sparsearch"
    if not (path / "manifest.json").exists():
        t = time.perf_counter()
        Index.build(read_corpus(corpus), path=path, overwrite=True, progress=True)
        print(f"   sparsearch build {time.perf_counter() - t:.1f} s", flush=True)
    return Index.open(path)


def bm25s_search(corpus: Path, work: Path) -> Callable[[list[str], int, int], Any]:
    """bm25s (numba backend, Lucene's BM25, k1 0.9, b 0.4) as a text -> ids function ``search(texts, k, threads)``."""
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    path = work / "bm25s"
    if not (path / "params.index.json").exists():
        t = time.perf_counter()
        with open(corpus / "corpus.jsonl", encoding="utf-8") as f:
            texts = [(lambda d: f"{d.get('title', '')} {d['text']}")(json.loads(line)) for line in f]
        tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
        del texts
        model = bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend="numba")
        model.index(tokens, show_progress=False)
        model.save(str(path))
        print(f"   bm25s build {time.perf_counter() - t:.1f} s", flush=True)
    model = bm25s.BM25.load(str(path), mmap=False)
    model.backend = "numba"

    def search(texts: list[str], k: int, threads: int) -> Any:
        q = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        q = [x if x else [""] for x in q]
        return model.retrieve(q, k=k, n_threads=threads, backend_selection="numba", show_progress=False)[0]

    return search


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    corpus, queries = corpus_and_queries(name)
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    index = sparsearch_index(corpus, work)
    peer = bm25s_search(corpus, work)
    one = queries[: args.one_at_a_time] if args.one_at_a_time else queries
    k = args.k
    configs: dict[str, tuple[Callable[[], Any], int]] = {}
    for method in ("exhaustive", "pruned", "auto"):
        for threads in args.threads:
            configs[f"sparsearch {method} batch {threads}t"] = (
                lambda m=method, t=threads: index.search_batch(queries, k, threads=t, method=m), len(queries))
        configs[f"sparsearch {method} one-at-a-time"] = (
            lambda m=method: [index.search(q, k, method=m) for q in one], len(one))
    for threads in args.threads:
        configs[f"bm25s batch {threads}t"] = (lambda t=threads: peer(queries, k, t), len(queries))
    configs["bm25s one-at-a-time"] = (lambda: [peer([q], k, 1) for q in one], len(one))

    exhaustive = index.search_batch(queries, k, threads=1, method="exhaustive")
    pruned = index.search_batch(queries, k, threads=1, method="pruned")
    same = [np.array_equal(a.internal_ids, b.internal_ids) and np.array_equal(a.scores, b.scores)
            for a, b in zip(exhaustive, pruned)]
    wall: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    for fn, _ in configs.values():
        fn()  # warm-up: JIT, caches, page cache
    for _ in range(args.rounds):
        for c, (fn, _n) in configs.items():
            t, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[c].append(time.process_time() - c0)
            wall[c].append(time.perf_counter() - t)
    # One thread: CPU seconds of this process (other processes on a shared machine delay a run, they do
    # not add to its CPU time); several threads: wall-clock seconds, the only measure of their overlap.
    qps = {c: n / float(np.median(cpu[c] if _one_thread(c) else wall[c])) for c, (_fn, n) in configs.items()}
    wall_qps = {c: n / float(np.median(wall[c])) for c, (_fn, n) in configs.items()}
    out: dict[str, Any] = {
        "n_docs": index.n_docs, "n_queries": len(queries), "n_one_at_a_time": len(one), "k": k,
        "index_bytes": _dir_bytes(work / "sparsearch"), "bm25s_index_bytes": _dir_bytes(work / "bm25s"),
        "pruned_equals_exhaustive": float(np.mean(same)), "qps": qps, "wall_clock_qps": wall_qps,
    }
    for line in report_lines(name, out, args.threads):
        print(line, flush=True)
    return out


def _one_thread(config: str) -> bool:
    return config.endswith(("one-at-a-time", " 1t"))


def report_lines(name: str, r: dict[str, Any], threads: list[int]) -> list[str]:
    """Markdown rows: QPS of each sparsearch method and bm25s, and sparsearch (auto) ÷ bm25s."""
    q = r["qps"]
    rows = []
    modes = [f"batch {t}t" for t in threads] + ["one-at-a-time"]
    for mode in modes:
        peer = q[f"bm25s {mode}"]
        rows.append(f"| {name} | {mode} | {q[f'sparsearch exhaustive {mode}']:,.0f} | {q[f'sparsearch pruned {mode}']:,.0f}"
                    f" | {q[f'sparsearch auto {mode}']:,.0f} | {peer:,.0f} | {q[f'sparsearch auto {mode}'] / peer:.2f}× |")
    batch = q["sparsearch auto batch 1t"]
    rows.append(f"| {name} | one ÷ batch cost | | | {batch / q['sparsearch auto one-at-a-time']:.2f}× | | |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["scifact", "nfcorpus", "real-100000", "synthetic-1000000"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one-at-a-time", type=int, default=0, help="queries timed one at a time (0: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sparsearch-query-speed"))
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "query_speed.json")
    args = parser.parse_args()
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    runs = results.setdefault("runs", {})
    print("| set | mode | exhaustive | pruned | auto | bm25s | auto ÷ bm25s |\n|---|---|---|---|---|---|---|")
    for name in args.sets:
        runs[f"{name} k{args.k} threads {'/'.join(map(str, args.threads))}"] = measure(name, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")


if __name__ == "__main__":
    main()
