"""Latency and memory of every row of docs/dense_hybrid.md, and the plot of quality against cost.

    python benchmarks/dense_hybrid_costs.py --vectors DIR [--data $SPARSEARCH_DATA]

Quality (NDCG@10) comes from the result files of ``dense_hybrid.py`` and
``prf_select.py``; this script measures what each row costs, in one process
on the same cores:

* **memory**: bytes on disk of each part's index (BM25, learned sparse, dense
  flat), built from the same vectors, per set; a row costs the sum of its
  parts (hybrids hold both indexes; PRF rows also read the documents' text,
  which a BM25 index built by ``sparsearch index`` stores anyway);
* **latency**: SciFact's 300 test queries one at a time, query vectors
  precomputed (the index side: encoding a query with MiniLM on these cores is
  ~35 ms and the same for every row that has a dense part, see
  ``hybrid_latency.py``), all rows interleaved query by query so that load
  changes hit them alike; median and p99 ms; depth 100 for fusion.

Writes ``docs/results/dense_hybrid_costs.json`` and ``docs/img/dense_hybrid.png``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from dense_hybrid import SETS, cached_encoders  # noqa: E402

from sparsearch.eval.datasets import load_beir  # noqa: E402
from sparsearch.index.storage import directory_bytes  # noqa: E402
from sparsearch.retriever.fusion import FusionConfig  # noqa: E402
from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings  # noqa: E402
from sparsearch.retriever.prf import RM3Config, rm3_search  # noqa: E402
from sparsearch.retriever.registry import build_encoder  # noqa: E402
from sparsearch.retriever.retriever import Retriever  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE.parent / "docs" / "results"
DEPTH = 100
log = logging.getLogger("dense_hybrid_costs")

#: Row of the NDCG table -> the parts it holds (for memory) and how it searches (for latency).
ROWS: dict[str, tuple[str, ...]] = {
    "bm25": ("bm25",), "learned": ("learned",), "dense": ("dense",),
    "bm25 + dense (minmax 0.5)": ("bm25", "dense"), "bm25 + dense (rrf)": ("bm25", "dense"),
    "learned + dense (minmax 0.9)": ("learned", "dense"), "bm25 + learned (zscore 0.1)": ("bm25", "learned"),
    "bm25 + learned + dense (minmax (0.2, 0.6, 0.2))": ("bm25", "learned", "dense"),
    "bm25 + learned + dense (rrf)": ("bm25", "learned", "dense"),
    "bm25 + rm3": ("bm25",), "dense + rocchio": ("dense",),
    "bm25 + dense, interpolate -> chosen prf -> interpolate": ("bm25", "dense"),
}


def fusion_of(row: str) -> FusionConfig:
    if "rrf" in row:
        return FusionConfig(method="rrf")
    if "(0.2, 0.6, 0.2)" in row:
        return FusionConfig(method="minmax", weights=(0.2, 0.6, 0.2))
    if "zscore 0.1" in row:
        return FusionConfig(method="zscore", alpha=0.1)
    if "minmax 0.9" in row:
        return FusionConfig(method="minmax", alpha=0.9)
    return FusionConfig(method="minmax", alpha=0.5)


def searchers(parts: dict[str, Retriever], corpus: dict[str, Any]) -> dict[str, Callable[[str], Any]]:
    out: dict[str, Callable[[str], Any]] = {}
    for row, names in ROWS.items():
        members = [parts[n] for n in names]
        if row == "bm25 + rm3":
            out[row] = lambda q: rm3_search(parts["bm25"], [q], corpus.get, 10, RM3Config())
        elif row == "dense + rocchio":
            hybrid = HybridRetriever(members, HybridSettings(depth=DEPTH, prf="rocchio"))
            out[row] = lambda q, h=hybrid: h.search(q, 10)
        elif "chosen prf" in row:
            settings = HybridSettings(fusion=fusion_of(row), depth=DEPTH, prf="both", fb_docs=3,
                                      rm3=RM3Config(fb_docs=3), rocchio_alpha=0.7, rocchio_beta=0.3)
            hybrid = HybridRetriever(members, settings, corpus.get)
            out[row] = lambda q, h=hybrid: h.search(q, 10)
        elif len(members) == 1:
            out[row] = lambda q, r=members[0]: r.search(q, 10)
        else:
            hybrid = HybridRetriever(members, HybridSettings(fusion=fusion_of(row), depth=DEPTH))
            out[row] = lambda q, h=hybrid: h.search(q, 10)
    return out


def interleaved_latency(fns: dict[str, Callable[[str], Any]], queries: list[str]) -> dict[str, dict[str, float]]:
    times: dict[str, list[float]] = {k: [] for k in fns}
    for q in queries[:10]:
        for fn in fns.values():
            fn(q)
    for q in queries:
        for label, fn in fns.items():
            t = time.perf_counter()
            fn(q)
            times[label].append((time.perf_counter() - t) * 1000)
    out = {}
    for label, ts in times.items():
        ts.sort()
        out[label] = {"p50_ms": round(statistics.median(ts), 3), "p99_ms": round(ts[int(0.99 * (len(ts) - 1))], 3)}
    return out


def plot(ndcg: dict[str, dict[str, float]], latency: dict[str, dict[str, float]], memory: dict[str, float],
         path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in ROWS if r in ndcg]
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    width = 0.8 / len(SETS)
    for i, ds in enumerate(SETS):
        left.barh(np.arange(len(rows)) + i * width, [ndcg[r][ds] for r in rows], width, label=ds)
    left.set_yticks(np.arange(len(rows)) + 0.4 - width / 2, rows, fontsize=8)
    left.invert_yaxis()
    left.set_xlim(0, 1.0)  # room for the legend
    left.set_xlabel("NDCG@10 (test splits)")
    left.legend(fontsize=8)
    for r in rows:
        right.scatter(latency[r]["p50_ms"], ndcg[r]["mean"], s=20 + memory[r] / 2e5)
        right.annotate(r, (latency[r]["p50_ms"], ndcg[r]["mean"]), fontsize=7, xytext=(4, 2),
                       textcoords="offset points")
    right.set_xscale("log")
    right.set_xlabel("SciFact latency p50, ms, index side (log scale); marker area ~ index memory")
    right.set_ylabel("mean NDCG@10 of the four sets")
    fig.suptitle("BM25, learned sparse, dense, their hybrids and PRF on the four shared sets")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA")
                                                          or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--vectors", type=Path, required=True)
    parser.add_argument("--learned", default="inference-free-biomed")
    parser.add_argument("--out", type=Path, default=RESULTS / "dense_hybrid_costs.json")
    parser.add_argument("--plot", type=Path, default=HERE.parent / "docs" / "img" / "dense_hybrid.png")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    part_bytes: dict[str, dict[str, int]] = {}
    latency: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for ds, rel in SETS.items():
            split = load_beir(args.data / rel, "test")
            corpus = list(split.corpus())
            cached = cached_encoders(args.vectors, ds, args)
            encoders = {"bm25": build_encoder("bm25", {"k1": 0.9, "b": 0.4}), **cached}
            parts = {n: Retriever.build(corpus, path=Path(tmp) / ds / n, encoder=e) for n, e in encoders.items()}
            part_bytes[ds] = {n: directory_bytes(Path(tmp) / ds / n) for n in parts}
            log.info("%s: index bytes %s", ds, part_bytes[ds])
            if ds == "scifact":
                queries = [split.queries[q] for q in split.qrels]
                latency = interleaved_latency(searchers(parts, {d.doc_id: d for d in corpus}), queries)
    memory = {row: float(sum(part_bytes[ds][n] for ds in SETS for n in names)) / len(SETS)
              for row, names in ROWS.items()}
    ndcg = json.loads((RESULTS / "dense_hybrid.json").read_text())["ndcg_at_10"]
    chosen = json.loads((RESULTS / "prf_select.json").read_text())["test"]["bm25 + dense, chosen prf"]
    ndcg["bm25 + dense, interpolate -> chosen prf -> interpolate"] = chosen
    out = {"latency_scifact_index_side": latency, "index_bytes_per_set": part_bytes,
           "mean_index_bytes_per_row": memory, "depth": DEPTH, "load_average_1min": os.getloadavg()[0]}
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    plot(ndcg, latency, memory, args.plot)
    for row in ROWS:
        print(f"{row:58s} p50 {latency[row]['p50_ms']:7.2f} ms  p99 {latency[row]['p99_ms']:7.2f} ms  "
              f"{memory[row] / 1e6:6.1f} MB")


if __name__ == "__main__":
    main()
