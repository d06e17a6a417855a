"""Learned-sparse query speed at k = 10: exhaustive, exact BMP, approximate settings and pyseismic-lsr, same run.

Builds one segment of the chosen collection (``benchmarks/learned_corpus.py``),
its acceleration structures (``sparsearch/index/accel.py``), and, with
``--seismic``, a pyseismic-lsr index at its default build.  Every method then
answers the same queries one at a time on one thread (the per-query cost a
service pays; pyseismic-lsr's ``num_threads`` is ignored by its single-query
call, so this is also its 1-thread figure), and sparsearch's modes answer the
whole batch on ``--threads`` threads.  Recall@10 is against the exhaustive
top-10.  Results: JSON (``--out``), a markdown table on stdout, and a
recall-QPS plot (``--plot``).

    python benchmarks/query_speed_learned.py synthetic --docs 1000000 --queries 200 --threads 2 --seismic \\
        --out docs/results/query_speed_synthetic.json --plot docs/img/query_speed_synthetic.png
    python benchmarks/query_speed_learned.py real --sources benchmarks/cache/if-scifact --threads 2 --seismic
    python benchmarks/query_speed_learned.py recombined --docs 500000 --sources benchmarks/cache/if-scifact \\
        benchmarks/cache/if-nfcorpus --data ../shared/data/beir --threads 2 --seismic ...

(``--sources``: learned indexes built by ``sparsearch index DATASET --encoder inference-free --model
inference-free-biomed``; their test queries are encoded by the same model's query side.)
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks import learned_corpus
from sparsearch.index import accel as accel_mod
from sparsearch.index.approx import ApproxSettings
from sparsearch.index.config import IndexConfig, Scoring
from sparsearch.index.inverted import InvertedIndex
from sparsearch.index.segment import build_segment
from sparsearch.types import SparseBatch

log = logging.getLogger("query_speed_learned")
K = 10


def load_sources(sources: list[Path], data: Path) -> tuple[SparseBatch, SparseBatch, int]:
    """The source indexes' document rows and their datasets' test queries, encoded by the index's encoder."""
    from sparsearch import Index
    from sparsearch.eval.datasets import load_beir
    from sparsearch.index.merge import document_rows

    rows, queries = [], []
    n_terms = 0
    for src in sources:
        index = Index.open(src)
        snap = index.writer.snapshot
        n_terms = max(n_terms, snap.n_terms)
        rows += [document_rows(seg)[0] for seg in snap.segments]
        ds = load_beir(data / src.name.removeprefix("if-"), "test")
        texts = [ds.queries[q] for q in sorted(ds.qrels)]
        queries.append(index.encode_queries(texts, snap))
    docs = SparseBatch.concatenate([SparseBatch(r.offsets, r.term_ids, r.weights) for r in rows])
    return docs, SparseBatch.concatenate(queries), n_terms


def sample_queries(queries: SparseBatch, n: int, seed: int) -> SparseBatch:
    pick = np.sort(np.random.default_rng(seed).permutation(len(queries))[:n])
    return SparseBatch.from_dicts([dict(zip(*map(np.ndarray.tolist, queries.row(int(i))))) for i in pick])


def build(docs: SparseBatch, n_terms: int, settings: accel_mod.AccelSettings) -> tuple[InvertedIndex, dict]:
    accel_mod.MIN_BUILD_POSTINGS = 1 << 62  # timed apart below
    config = IndexConfig(stored_fields=())
    ids = [str(i) for i in range(len(docs))]
    started = time.perf_counter()
    seg = build_segment(docs, ids, [{}] * len(docs), n_terms, config)
    build_s = time.perf_counter() - started
    started = time.perf_counter()
    acc = accel_mod.build_accel(seg.postings_offsets, seg.postings_docs, seg.postings_weights, seg.scales,
                                seg.n_docs, settings)
    accel_s = time.perf_counter() - started
    index_bytes = sum(int(a.nbytes) for a in seg.arrays().values())
    seg.accel = acc.arrays
    info = dict(n_docs=len(docs), n_postings=seg.n_postings, build_seconds=build_s, accel_build_seconds=accel_s,
                index_bytes=index_bytes, forward_bytes=acc.nbytes(("fwd",)), pruned_bytes=acc.nbytes(("imp",)),
                blockmax_bytes=acc.nbytes(("bm",)), lam=acc.lam, accel=asdict(settings))
    info["approx_over_index"] = (info["forward_bytes"] + info["pruned_bytes"]) / index_bytes
    info["bmp_over_index"] = (info["forward_bytes"] + info["blockmax_bytes"]) / index_bytes
    return InvertedIndex([seg], Scoring(), config), info


def rows_of(queries: SparseBatch) -> list[SparseBatch]:
    return [SparseBatch(np.array([0, hi - lo]), queries.term_ids[lo:hi], queries.weights[lo:hi])
            for lo, hi in zip(queries.offsets[:-1], queries.offsets[1:])]


def one_at_a_time(search: Callable[[int], list[int]], n: int, repeat: int) -> tuple[float, list[list[int]]]:
    """QPS of answering queries one by one (best of ``repeat`` passes) and the ids of the last pass."""
    for i in range(min(n, 3)):
        search(i)  # compile / warm
    best = float("inf")
    out: list[list[int]] = []
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        out = [search(i) for i in range(n)]
        best = min(best, time.perf_counter() - started)
    return n / best, out


def recall(truth: list[list[int]], got: list[list[int]]) -> float:
    """Mean share of the exhaustive hits found (a query without any hit counts as fully recalled)."""
    return float(np.mean([len(set(t) & set(g)) / len(t) if t else 1.0 for t, g in zip(truth, got)]))


def sparsearch_methods(approx: list[str], bmp: bool) -> list[tuple[str, str, ApproxSettings | None]]:
    out: list[tuple[str, str, ApproxSettings | None]] = [("exhaustive", "exact", None)]
    if bmp:
        out.append(("bmp", "bmp", None))
    for spec in approx:
        qt, frac, cand = spec.split(":")
        settings = ApproxSettings(query_terms=int(qt) if qt != "all" else None,
                                  list_fraction=float(frac) if frac != "all" else None, candidates=int(cand))
        out.append((f"approx {spec}", "approx", settings))
    return out


def seismic_dataset(docs: SparseBatch, bulk: bool | None = None) -> Any:
    """The documents as a pyseismic-lsr dataset: in one call (0.5.4), or one document at a time (0.5.2).

    0.5.2 is the newest release with a Python 3.12 wheel (the GPU machine's Python); it has no bulk call and
    takes terms as strings.  ``bulk``: force one way (default: the bulk call where the installed release has it).
    """
    import seismic

    dataset = seismic.SeismicDataset()
    if bulk if bulk is not None else hasattr(dataset, "add_documents_by_id"):
        dataset.add_documents_by_id([str(i) for i in range(len(docs))], docs.term_ids.astype(np.int64),
                                    docs.weights.astype(np.float32), docs.offsets.astype(np.int64))
    else:
        string = seismic.get_seismic_string()
        for i, (terms, weights) in enumerate(docs.rows()):
            dataset.add_document(str(i), terms.astype(str).astype(string), weights.astype(np.float32))
    return dataset


def run_seismic(docs: SparseBatch, queries: SparseBatch, settings: list[str], truth: list[list[int]],
                repeat: int) -> list[dict[str, Any]]:
    import seismic

    dataset = seismic_dataset(docs)
    started = time.perf_counter()
    index = seismic.SeismicIndex.build_from_dataset(dataset)
    build_s = time.perf_counter() - started
    log.info("pyseismic-lsr built in %.1f s; timing its queries (keep the machine quiet)", build_s)
    del dataset
    string = seismic.get_seismic_string()
    comps = [np.array([str(t) for t in q.term_ids], dtype=string) for q in rows_of(queries)]
    vals = [q.weights.astype(np.float32) for q in rows_of(queries)]
    out = []
    for spec in settings:
        cut, heap = spec.split(":")

        def search(i: int, cut: int = int(cut), heap: float = float(heap)) -> list[int]:
            return [int(r[2]) for r in index.search(str(i), comps[i], vals[i], K, cut, heap)]

        qps, got = one_at_a_time(search, len(comps), repeat)
        out.append(dict(method=f"seismic {spec}", qps_1=qps, recall=recall(truth, got), build_seconds=build_s))
        log.info("%s", out[-1])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("collection", choices=["synthetic", "recombined", "real"],
                    help="real: the --sources' own documents; recombined: --docs made of them")
    ap.add_argument("--docs", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--sources", type=Path, nargs="*", default=[])
    ap.add_argument("--data", type=Path, default=Path("../shared/data/beir"))
    ap.add_argument("--threads", type=int, default=2, help="threads of the batch figures")
    ap.add_argument("--repeat", type=int, default=2, help="timed passes per method (best kept)")
    ap.add_argument("--block-size", type=int, default=16)
    ap.add_argument("--reorder", default="maxterm")
    ap.add_argument("--prune-fraction", type=float, default=0.05)
    ap.add_argument("--approx", nargs="*", default=["5:all:50", "8:all:100", "12:all:200", "16:all:400"],
                    help="QUERY_TERMS:LIST_FRACTION:CANDIDATES ('all' = no cut)")
    ap.add_argument("--no-bmp", action="store_true", help="skip exact BMP (it scores every block of random data)")
    ap.add_argument("--seismic", action="store_true")
    ap.add_argument("--seismic-settings", nargs="*", default=["5:0.9", "10:0.9", "20:0.9", "30:1.0"],
                    help="QUERY_CUT:HEAP_FACTOR")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    if args.collection == "synthetic":
        docs, queries = learned_corpus.synthetic(args.docs, args.queries, args.seed)
        n_terms = learned_corpus.VOCAB
    else:
        docs, queries, n_terms = load_sources(args.sources, args.data)
        queries = sample_queries(queries, args.queries, args.seed)
        if args.collection == "recombined":
            docs = learned_corpus.recombined(docs, args.docs, args.seed)
    settings = accel_mod.AccelSettings(block_size=args.block_size, reorder=args.reorder,
                                       prune_fraction=args.prune_fraction)
    index, info = build(docs, n_terms, settings)
    info.update(collection=args.collection, n_queries=len(queries), threads=args.threads,
                postings_per_query=learned_corpus.postings_per_query(docs, queries, n_terms),
                terms_per_doc=len(docs.term_ids) / len(docs), terms_per_query=len(queries.term_ids) / len(queries))
    log.info("%s", info)
    rows = rows_of(queries)
    truth = [h.internal_ids.tolist() for h in index.hits(queries, K, threads=args.threads)]
    results = []
    for name, mode, approx in sparsearch_methods(args.approx, not args.no_bmp):
        def search(i: int, mode: str = mode, approx: ApproxSettings | None = approx) -> list[int]:
            return index.hits(rows[i], K, threads=1, mode=mode, approx=approx)[0].internal_ids.tolist()

        qps1, got = one_at_a_time(search, len(rows), args.repeat)
        index.hits(queries, K, threads=args.threads, mode=mode, approx=approx)
        started = time.perf_counter()
        index.hits(queries, K, threads=args.threads, mode=mode, approx=approx)
        qps_batch = len(rows) / (time.perf_counter() - started)
        results.append(dict(method=name, qps_1=qps1, qps_batch=qps_batch, recall=recall(truth, got)))
        log.info("%s", results[-1])
    if args.seismic:
        results += run_seismic(docs, queries, args.seismic_settings, truth, args.repeat)
    base = results[0]["qps_1"]
    for r in results:
        r["speedup_1"] = r["qps_1"] / base
    print_table(info, results)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"info": info, "results": results}, indent=2) + "\n")
    if args.plot:
        plot(results, info, args.plot)


def print_table(info: dict, results: list[dict]) -> None:
    print(f"\n{info['collection']}: {info['n_docs']:,} documents, {info['terms_per_doc']:.1f} terms a document, "
          f"{info['n_queries']} queries of {info['terms_per_query']:.1f} terms, "
          f"{info['postings_per_query']:,.0f} postings a query\n")
    print("| method | recall@10 | QPS, 1 thread, one at a time | ÷ exhaustive | QPS, batch, "
          f"{info['threads']} threads |")
    print("|---|---|---|---|---|")
    for r in results:
        batch = f"{r['qps_batch']:.1f}" if "qps_batch" in r else "—"
        print(f"| {r['method']} | {r['recall']:.4f} | {r['qps_1']:.1f} | {r['speedup_1']:.2f}× | {batch} |")
    mib = 1 << 20
    print(f"\nindex {info['index_bytes'] / mib:.0f} MiB (built in {info['build_seconds']:.1f} s); forward "
          f"{info['forward_bytes'] / mib:.0f} MiB, pruned lists {info['pruned_bytes'] / mib:.0f} MiB (lambda "
          f"{info['lam']}), block maxima {info['blockmax_bytes'] / mib:.0f} MiB, built in "
          f"{info['accel_build_seconds']:.1f} s; approx structures {info['approx_over_index']:.2f}× the index, "
          f"BMP's {info['bmp_over_index']:.2f}×")


def plot(results: list[dict], info: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for prefix, style in (("approx", "o-"), ("seismic", "s--")):
        pts = sorted((r["recall"], r["qps_1"]) for r in results if r["method"].startswith(prefix))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style,
                    label="sparsearch approx" if prefix == "approx" else "pyseismic-lsr")
    for r in results:
        if r["method"] in ("exhaustive", "bmp"):
            ax.plot([r["recall"]], [r["qps_1"]], "^" if r["method"] == "bmp" else "x", markersize=9,
                    label=f"sparsearch {r['method']}")
    ax.set_xlabel("recall@10 (against exhaustive)")
    ax.set_ylabel("queries per second, 1 thread")
    ax.set_title(f"{info['collection']}, {info['n_docs']:,} documents, k = 10")
    ax.grid(alpha=0.3)
    ax.legend()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
