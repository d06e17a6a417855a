"""BM25 query speed at small k: sparsearch (exhaustive and pruned) against bm25s, text in, ids out, same run.

    python benchmarks/query_speed.py [--sets scifact nfcorpus real-100000 synthetic-1000000]
                                     [--threads 1 2] [--k 10] [--out docs/results/query_speed.json]

Sets: BEIR folders under ``$SPARSEARCH_DATA`` (default ``../shared/data``;
their test queries) and the corpora of ``benchmarks/scale_corpus.py`` under
``~/.cache/sparsearch/scale`` (1,000 real queries).  sparsearch's index is
built once and cached under ``--work``; bm25s' is built in process each run.  Every measurement goes from query text to
ranked internal ids, query analysis included, for both systems:

* batch: all queries in one call, at each ``--threads`` count;
* one at a time: one call per query, on one thread (the service's case).

Rounds are interleaved (each round times every configuration once, in a
fixed order) and each figure is the median over rounds, so load from other
processes on the machine hits every configuration alike; ratios are taken
within the run.  One-thread figures divide by the calling thread's CPU
time (``time.thread_time``: on a shared machine other processes delay a run
without adding to it, and idle worker threads spinning after a parallel
call do not count), several-thread ones by wall-clock time; both are in
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


def bm25s_search(corpus: Path) -> tuple[Callable[[list[str], int, int], Any], float]:
    """bm25s (numba backend, Lucene's BM25, k1 0.9, b 0.4) as ``search(texts, k, threads) -> ids``, and its build time.

    Built in this process every run: an index saved by bm25s 0.3.16 and
    loaded back crashed its numba retrieval (segmentation fault) on the 10^5
    corpus, where the same index built in process did not.
    """
    import bm25s
    import Stemmer

    stemmer = Stemmer.Stemmer("english")
    t = time.perf_counter()
    with open(corpus / "corpus.jsonl", encoding="utf-8") as f:
        texts = [(lambda d: f"{d.get('title', '')} {d['text']}")(json.loads(line)) for line in f]
    tokens = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, show_progress=False)
    del texts
    model = bm25s.BM25(method="lucene", k1=0.9, b=0.4, backend="numba")
    model.index(tokens, show_progress=False)
    build = time.perf_counter() - t
    del tokens
    vocab = model.vocab_dict

    def search(texts: list[str], k: int, threads: int) -> Any:
        q = bm25s.tokenize(texts, stopwords="en", stemmer=stemmer, return_ids=False, show_progress=False)
        q = [[t for t in x if t in vocab] for x in q]  # words the corpus lacks score nothing
        # A query left with no word gets no hits without asking bm25s: its stand-in, the empty token, has an id
        # past its score matrix (0.3.16 adds "" to the vocabulary after building the matrix), which read out of
        # bounds and crashed its numba retrieval on NFCorpus.
        asked = [i for i, x in enumerate(q) if x]
        ids = np.full((len(q), k), -1, np.int64)
        if asked:
            found = model.retrieve([q[i] for i in asked], k=k, n_threads=threads, backend_selection="numba",
                                   show_progress=False)[0]
            ids[asked] = found
        return ids

    return search, build


def measure(name: str, args: argparse.Namespace) -> dict[str, Any]:
    corpus, queries = corpus_and_queries(name)
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    index = sparsearch_index(corpus, work)
    peer, peer_build = bm25s_search(corpus)
    one = queries[: args.one_at_a_time] if args.one_at_a_time else queries
    k = args.k
    configs: dict[str, tuple[Callable[[], Any], int]] = {}
    for method in args.methods:
        for threads in args.threads:
            configs[f"sparsearch {method} batch {threads}t"] = (
                lambda m=method, t=threads: index.search_batch(queries, k, threads=t, method=m), len(queries))
        configs[f"sparsearch {method} one-at-a-time"] = (
            lambda m=method: [index.search(q, k, method=m) for q in one], len(one))
    for threads in args.threads:
        configs[f"bm25s batch {threads}t"] = (lambda t=threads: peer(queries, k, t), len(queries))
    configs["bm25s one-at-a-time"] = (lambda: [peer([q], k, 1) for q in one], len(one))

    exhaustive = index.search_batch(queries, k, threads=1, method="exhaustive")
    same = {}
    for method in args.methods:
        hits = index.search_batch(queries, k, threads=1, method=method)
        same[method] = float(np.mean([np.array_equal(a.internal_ids, b.internal_ids)
                                      and np.array_equal(a.scores, b.scores) for a, b in zip(exhaustive, hits)]))
    wall: dict[str, list[float]] = {c: [] for c in configs}
    cpu: dict[str, list[float]] = {c: [] for c in configs}
    for fn, _ in configs.values():
        fn()  # warm-up: JIT, caches, page cache
    for _ in range(args.rounds):
        for c, (fn, _n) in configs.items():
            t, c0 = time.perf_counter(), time.thread_time()
            fn()
            cpu[c].append(time.thread_time() - c0)
            wall[c].append(time.perf_counter() - t)
    # One thread: CPU seconds of this thread (other processes on a shared machine delay a run, they do not add
    # to its CPU time; Numba's OpenMP layer runs a one-thread parallel region on the calling thread, for both
    # systems); several threads: wall-clock seconds, the only measure of their overlap.
    qps = {c: n / float(np.median(cpu[c] if _one_thread(c) else wall[c])) for c, (_fn, n) in configs.items()}
    wall_qps = {c: n / float(np.median(wall[c])) for c, (_fn, n) in configs.items()}
    out: dict[str, Any] = {
        "n_docs": index.n_docs, "n_queries": len(queries), "n_one_at_a_time": len(one), "k": k,
        "index_bytes": _dir_bytes(work / "sparsearch"), "bm25s_build_seconds": peer_build,
        "impact_bytes": _impact_bytes(),
        "equals_exhaustive": same, "qps": qps, "wall_clock_qps": wall_qps,
    }
    for line in report_lines(name, out, args.threads, args.methods):
        print(line, flush=True)
    return out


def _impact_bytes() -> int:
    """Memory of the BM25 impacts sparsearch's searches built (sparsearch.index.impacts), beside the index."""
    from sparsearch.index import impacts

    return impacts.held_bytes()


def _one_thread(config: str) -> bool:
    return config.endswith(("one-at-a-time", " 1t"))


def report_lines(name: str, r: dict[str, Any], threads: list[int], methods: list[str]) -> list[str]:
    """Markdown rows: QPS of each sparsearch method and of bm25s, and sparsearch's default (auto) ÷ bm25s."""
    q = r["qps"]
    rows = []
    for mode in [f"batch {t}t" for t in threads] + ["one-at-a-time"]:
        peer = q[f"bm25s {mode}"]
        cells = " | ".join(f"{q[f'sparsearch {m} {mode}']:,.0f}" for m in methods)
        rows.append(f"| {name} | {mode} | {cells} | {peer:,.0f} | {q[f'sparsearch auto {mode}'] / peer:.2f}× |")
    ratio = q["sparsearch auto batch 1t"] / q["sparsearch auto one-at-a-time"]
    rows.append(f"| {name} | one query's cost ÷ its share of a batch (auto, 1 thread) | {ratio:.2f}× |")
    return rows


def by_postings(name: str, args: argparse.Namespace) -> list[str]:
    """Markdown rows: per query, CPU time of each method ÷ exhaustive's, grouped by the postings it reads.

    Scoring only (queries encoded beforehand), one query per call, best of three.
    """
    corpus, queries = corpus_and_queries(name)
    index = sparsearch_index(corpus, args.work / name)
    snap = index.snapshot
    encoded = [index.encode_queries([q], snap) for q in queries[: args.one_at_a_time or None]]
    lengths = np.diff(snap.segments[0].postings_offsets) if len(snap.segments) == 1 else None
    if lengths is None:
        raise SystemExit("--by-postings needs a one-segment index")
    methods = ["exhaustive"] + [m for m in args.methods if m not in ("auto", "exhaustive")]
    rows = []
    for e in encoded:
        cost = []
        for m in methods:
            times = []
            for _ in range(3):
                t = time.thread_time()
                snap.search(e, args.k, threads=1, method=m)
                times.append(time.thread_time() - t)
            cost.append(min(times))
        rows.append([int(lengths[e.term_ids].sum())] + cost)
    table = np.array(rows)
    out = [f"| postings per query | queries | exhaustive µs | {' | '.join(f'{m} ÷ exhaustive' for m in methods[1:])} |",
           "|---|---|---|" + "---|" * (len(methods) - 1)]
    edges = [0, 5_000, 20_000, 50_000, 100_000, 300_000, np.inf]
    for lo, hi in zip(edges, edges[1:]):
        sel = (table[:, 0] >= lo) & (table[:, 0] < hi)
        if sel.any():
            ratios = " | ".join(f"{table[sel, j].sum() / table[sel, 1].sum():.2f}×" for j in range(2, len(methods) + 1))
            out.append(f"| {lo:,.0f}–{hi:,.0f} | {int(sel.sum())} | {table[sel, 1].mean() * 1e6:,.0f} | {ratios} |")
    return out


def plot(runs: dict[str, Any], path: Path) -> None:
    """One group of bars per set: each configuration's QPS as a multiple of bm25s' in the same mode."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(runs)
    modes = sorted({c.split(" ", 2)[2] for r in runs.values() for c in r["qps"] if c.startswith("sparsearch")})
    methods = sorted({c.split(" ")[1] for r in runs.values() for c in r["qps"] if c.startswith("sparsearch")})
    series = [(m, mode) for mode in modes for m in methods
              if all(f"sparsearch {m} {mode}" in r["qps"] for r in runs.values())]
    fig, ax = plt.subplots(figsize=(1.6 + 1.9 * len(names), 4.2))
    width = 0.8 / len(series)
    for i, (m, mode) in enumerate(series):
        ratios = [r["qps"][f"sparsearch {m} {mode}"] / r["qps"][f"bm25s {mode}"] for r in runs.values()]
        ax.bar(np.arange(len(names)) + (i - len(series) / 2 + 0.5) * width, ratios, width, label=f"{m}, {mode}")
    ax.axhline(1.0, color="black", lw=0.8)
    ax.axhline(2.0, color="gray", lw=0.8, ls="--")
    ax.set_xticks(np.arange(len(names)), [n.split(" ")[0] for n in names])
    ax.set_ylabel("QPS ÷ bm25s QPS (same mode, same run)")
    ax.set_title("BM25 top-10, text in, ids out")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=["scifact", "nfcorpus", "real-100000", "synthetic-1000000"])
    parser.add_argument("--threads", nargs="+", type=int, default=[1, os.cpu_count() or 1])
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--methods", nargs="+", default=["auto", "pruned", "blockmax"],
                        help="sparsearch search methods to time (auto is the default one)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--one-at-a-time", type=int, default=0, help="queries timed one at a time (0: all)")
    parser.add_argument("--work", type=Path, default=Path("/tmp/sparsearch-query-speed"))
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "query_speed.json")
    parser.add_argument("--plot", type=Path, default=HERE.parent / "docs" / "img" / "query_speed.png")
    parser.add_argument("--by-postings", action="store_true",
                        help="instead: per-query cost of each method against exhaustive, by postings read")
    args = parser.parse_args()
    if args.by_postings:
        for name in args.sets:
            print("\n".join([f"\n{name}, k = {args.k}"] + by_postings(name, args)), flush=True)
        return
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}
    runs = results.setdefault("runs", {})
    print(f"| set | mode | {' | '.join(args.methods)} | bm25s | auto ÷ bm25s |\n|---|---|"
          + "---|" * (len(args.methods) + 2))
    for name in args.sets:
        runs[f"{name} k{args.k} threads {'/'.join(map(str, args.threads))}"] = measure(name, args)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1) + "\n")
    plot(runs, args.plot)


if __name__ == "__main__":
    main()
