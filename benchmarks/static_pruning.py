"""What does static pruning of a learned index buy?  Quality and latency vs BM25 per weight threshold.

Drops every posting whose weight is below ``t`` from a built learned-sparse index (in memory; the
files are untouched), then measures NDCG@10, postings read and documents matched per query, and
single-query latency side by side with BM25 (``paired_latencies_ms``) at several k:

    python benchmarks/static_pruning.py --index scifact=/tmp/if2-scifact --index nfcorpus=/tmp/if2-nfcorpus \\
        --thresholds 0,0.05,0.1,0.2,0.3 --out docs/results/static_pruning.json --plot docs/img/static_pruning.png

Pruning at index time is what ``sparsearch index --doc-threshold t`` does (a threshold on float weights
before quantisation); this script sweeps it without re-encoding the corpus.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch import Index
from sparsearch.eval.bench import paired_latencies_ms
from sparsearch.eval.datasets import load_beir
from sparsearch.eval.metrics import evaluate
from sparsearch.eval.runs import ranking_run
from sparsearch.retriever.bm25 import BM25Encoder

log = logging.getLogger("static_pruning")


def prune_postings(index: Index, threshold: float) -> float:
    """Keep only postings with weight > ``threshold`` in every segment (what ``--doc-threshold`` keeps);
    returns the fraction kept."""
    kept = total = 0
    for seg in index.inverted.segments:
        weights = np.asarray(seg.postings_weights)
        scales = seg.term_scales
        if scales is not None:  # quantised: compare real weights
            per_term = np.repeat(np.asarray(scales, np.float32), np.diff(seg.postings_offsets))
            real = weights.astype(np.float32) * per_term
        else:
            real = weights.astype(np.float32)
        keep = real > threshold
        cumulative = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
        seg.postings_offsets = cumulative[np.asarray(seg.postings_offsets)]
        seg.postings_docs = np.ascontiguousarray(np.asarray(seg.postings_docs)[keep])
        seg.postings_weights = np.ascontiguousarray(weights[keep])
        kept += int(keep.sum())
        total += len(keep)
    index.inverted._bound_cache.clear()
    return kept / max(total, 1)


def measure(dataset: Path, index_dir: Path, thresholds: list[float], ks: list[int], split: str = "test"
            ) -> dict[str, Any]:
    ds = load_beir(dataset, split)
    query_ids = list(ds.queries)
    texts = [ds.queries[q] for q in query_ids]
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="sparsearch-bm25-") as tmp:
        Index.build(ds.corpus(), path=Path(tmp) / "bm25", encoder=BM25Encoder())
        bm25 = Index.open(Path(tmp) / "bm25")
        bm25_ndcg = evaluate(ds.qrels, ranking_run(query_ids, bm25.search_batch(texts, 1000)))["ndcg_cut_10"]
        out["bm25_ndcg_cut_10"] = bm25_ndcg
        for t in thresholds:
            index = Index.open(index_dir)
            kept = prune_postings(index, t)
            ndcg = evaluate(ds.qrels, ranking_run(query_ids, index.search_batch(texts, 1000)))["ndcg_cut_10"]
            queries = index.encode_queries(texts)
            # From the pruned lists, not eval.beir.postings_touched: its document frequencies are the unpruned ones.
            offsets = index.inverted.segments[0].postings_offsets
            postings = float(np.mean([np.diff(offsets)[queries.row(i)[0]].sum() for i in range(len(texts))]))
            matched = float(np.mean([len(h.scores) for h in index.search_batch(texts, index.n_docs)]))
            ms = paired_latencies_ms({"bm25": bm25.search, "learned": index.search}, texts, ks, rounds=20)
            ratios = {k: {s: ms["learned"][k][s] / ms["bm25"][k][s] for s in ("p50", "mean")} for k in ms["bm25"]}
            out[str(t)] = {"postings_kept": kept, "ndcg_cut_10": ndcg, "postings_per_query": postings,
                           "matched_per_query": matched, "latency_ms": ms, "ratio_vs_bm25": ratios}
            log.info("%s t=%g: kept %.3f NDCG@10 %.4f postings %.0f matched %.0f ratio p50 %s", dataset.name, t, kept,
                     ndcg, postings, matched, {k: round(r["p50"], 2) for k, r in ratios.items()})
    return out


def plot(results: dict[str, Any], thresholds: list[float], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [n for n in results if n not in ("mean", "splits")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    ks = list(results[names[0]][str(thresholds[0])]["ratio_vs_bm25"])
    for name in names:
        r = results[name]
        for k, style in zip(ks, ("o-", "s--", "^:")):
            axes[0].plot(thresholds, [r[str(t)]["ratio_vs_bm25"][k]["p50"] for t in thresholds], style,
                         label=f"{name}, k = {k}")
    axes[0].axhline(1.1, color="grey", ls=":", lw=1, label="target: 1.1× BM25")
    axes[0].set_xlabel("weight threshold t (postings with weight ≤ t dropped)")
    axes[0].set_ylabel("p50 latency ÷ BM25's (side by side)")
    axes[0].legend(fontsize=7)
    mean = [results["mean"][str(t)] for t in thresholds]
    axes[1].plot(thresholds, mean, "o-", label="learned, mean of the sets")
    axes[1].axhline(results["mean"]["bm25"] + 0.03, color="grey", ls=":", label="target: BM25 + 0.03")
    axes[1].set_xlabel("weight threshold t (postings with weight ≤ t dropped)")
    axes[1].set_ylabel("mean NDCG@10 of the sets")
    axes[1].legend(fontsize=7)
    for ax in axes:
        ax.grid(alpha=0.3)
    fig.suptitle("Static pruning of the inference-free index: quality vs latency")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=130)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA", "../shared/data")))
    ap.add_argument("--index", action="append", required=True, metavar="DATASET=DIR")
    ap.add_argument("--thresholds", default="0,0.05,0.1,0.2,0.3")
    ap.add_argument("--k", default="10,1000")
    ap.add_argument("--splits", default="", metavar="DATASET=SPLIT,...",
                    help="qrels split per dataset (default test), e.g. scifact=train,nfcorpus=dev to choose t "
                         "without the test queries")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    thresholds = [float(t) for t in args.thresholds.split(",")]
    ks = [int(k) for k in args.k.split(",")]
    splits = dict(item.split("=", 1) for item in args.splits.split(",") if item)
    results: dict[str, Any] = {"splits": {}}
    for item in args.index:
        name, _, directory = item.partition("=")
        split = splits.get(name, "test")
        results["splits"][name] = split
        results[name] = measure(args.data / "beir" / name, Path(directory), thresholds, ks, split)
    names = [n for n in results if n != "splits"]
    results["mean"] = {str(t): float(np.mean([results[n][str(t)]["ndcg_cut_10"] for n in names])) for t in thresholds}
    results["mean"]["bm25"] = float(np.mean([results[n]["bm25_ndcg_cut_10"] for n in names]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    if args.plot:
        plot(results, thresholds, args.plot)


if __name__ == "__main__":
    main()
