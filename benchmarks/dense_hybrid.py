"""Dense, learned-sparse, BM25, their hybrids and pseudo-relevance feedback on every shared set.

    python benchmarks/dense_hybrid.py [--data $SPARSEARCH_DATA] [--cache /tmp/dense_hybrid]
                                      [--dense all-minilm-l6-v2] [--learned inference-free-biomed]
                                      [--vectors DIR] [--out docs/results/dense_hybrid.json]

``--vectors DIR``: the documents' (and dense queries') vectors encoded
beforehand by ``benchmarks/encode_for_eval.py`` with the same encoders (on a
GPU: these 2 cores encode 3–5 documents a second under load), read from
``DIR/dense.npz`` and ``DIR/learned.npz``; dense vectors travel as float16.
Everything else — indexing, search, fusion, PRF, latency — runs here.

Parts (each an ordinary ``Retriever``, built once per corpus and cached under
``--cache``): BM25 (k1 0.9, b 0.4), the shipped inference-free model
(``doc_threshold`` 0.1) and a dense bi-encoder (all-MiniLM-L6-v2, exact inner
product over unit vectors).  Runs are top 1,000.

Fusion settings are **chosen on training queries only** — SciFact ``train``
and NFCorpus ``dev`` — by the mean NDCG@10 over those two splits, over a grid
of method (min-max, z-score, RRF) and weight; the chosen settings are then
applied unchanged to the test splits of all four sets (Cranfield and CISI
have no training queries: there they are zero-shot settings).  NDCG@10 is
pytrec_eval's over all judged queries of each test split (a query with no
hit counts 0).  Latency: one query at a time on SciFact, median and p99 ms,
all parts in this process on the same cores.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import statistics
import time
from pathlib import Path
from typing import Any, Callable, ClassVar, Sequence

import numpy as np

from sparsearch.eval.datasets import load_beir, read_qrels, read_queries
from sparsearch.eval.metrics import evaluate
from sparsearch.eval.runs import ranking_run
from sparsearch.retriever.fusion import FusionConfig, fuse_batch
from sparsearch.retriever.hybrid import HybridRetriever, HybridSettings
from sparsearch.retriever.prf import RM3Config, rm3_search, rocchio
from sparsearch.retriever.registry import build_encoder
from sparsearch.retriever.resolve import resolve_model
from sparsearch.retriever.retriever import Retriever
from sparsearch.types import Document, Hits, SparseBatch

HERE = Path(__file__).resolve().parent
SETS = {"scifact": "beir/scifact", "nfcorpus": "beir/nfcorpus", "cranfield": "classic/cranfield",
        "cisi": "classic/cisi"}
TRAIN_SPLITS = {"scifact": "train", "nfcorpus": "dev"}  # where fusion settings are chosen
DEPTH = 1000
log = logging.getLogger("dense_hybrid")


class CachedDense:
    """Dense vectors encoded beforehand (``encode_for_eval.py``), looked up by document id and query text."""

    name: ClassVar[str] = "dense"

    def __init__(self, docs: dict[str, np.ndarray], queries: dict[str, np.ndarray]) -> None:
        self.docs, self.queries = docs, queries

    def encode_documents(self, documents: Sequence[Document]) -> np.ndarray:
        return np.array([self.docs[d.doc_id] for d in documents], np.float32).reshape(len(documents), -1)

    def encode_queries(self, queries: Sequence[str], stats: Any = None) -> np.ndarray:
        return np.array([self.queries[q] for q in queries], np.float32)

    def config(self) -> dict[str, Any]:
        return {"precomputed": True}

    def state_files(self) -> dict[str, bytes]:
        return {}


class CachedLearned:
    """Inference-free documents encoded beforehand; queries by the real encoder (tokenizer + IDF, no model)."""

    name: ClassVar[str] = "inference-free"

    def __init__(self, real: Any, rows: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        self.real, self.rows = real, rows

    @property
    def scoring(self) -> Any:
        return self.real.scoring

    @property
    def n_terms(self) -> int:
        return self.real.n_terms

    def encode_documents(self, documents: Sequence[Document]) -> SparseBatch:
        rows = [self.rows[d.doc_id] for d in documents]
        offsets = np.concatenate([[0], np.cumsum([len(t) for t, _ in rows])]).astype(np.int64)
        if not rows:
            return SparseBatch.empty()
        return SparseBatch(offsets, np.concatenate([t for t, _ in rows]), np.concatenate([w for _, w in rows]))

    def encode_queries(self, queries: Sequence[str], stats: Any = None) -> SparseBatch:
        return self.real.encode_queries(queries, stats)

    def config(self) -> dict[str, Any]:
        return self.real.config()

    def state_files(self) -> dict[str, bytes]:
        return self.real.state_files()

    @classmethod
    def load(cls, config: dict[str, Any], files: dict[str, Path]) -> Any:
        raise NotImplementedError("a benchmark stand-in: indexes built with it stay in memory")


def cached_encoders(directory: Path, ds: str, args: argparse.Namespace) -> dict[str, Any]:
    dense = np.load(directory / "dense.npz")
    learned = np.load(directory / "learned.npz")
    docs = dict(zip(dense[f"{ds}.doc_ids"].tolist(), dense[f"{ds}.docs"]))
    queries = dict(zip(dense[f"{ds}.query_texts"].tolist(), dense[f"{ds}.queries"]))
    offsets, terms, weights = (learned[f"{ds}.{k}"] for k in ("offsets", "term_ids", "weights"))
    rows = {doc_id: (terms[offsets[i]:offsets[i + 1]].astype(np.int32), weights[offsets[i]:offsets[i + 1]]
                     .astype(np.float32)) for i, doc_id in enumerate(learned[f"{ds}.doc_ids"].tolist())}
    real = build_encoder("inference-free", {"doc_threshold": 0.1}, model=resolve_model(args.learned))
    return {"dense": CachedDense(docs, queries), "learned": CachedLearned(real, rows)}


def build_part(name: str, corpus: list[Document], cache: Path, args: argparse.Namespace,
               cached: dict[str, Any] | None = None) -> Retriever:
    if cached is not None and name in cached:
        t = time.perf_counter()
        retriever = Retriever.build(corpus, encoder=cached[name])  # in memory: the stand-in cannot be reloaded
        log.info("%s: indexed precomputed %s vectors of %d documents in %.1f s", cache.name, name, len(corpus),
                 time.perf_counter() - t)
        return retriever
    path = cache / name
    if path.exists():
        try:
            return Retriever.open(path)
        except Exception:  # a stale cache: rebuild
            log.warning("rebuilding %s", path, exc_info=True)
    if name == "bm25":
        encoder = build_encoder("bm25", {"k1": 0.9, "b": 0.4})
    elif name == "learned":
        encoder = build_encoder("inference-free", {"doc_threshold": 0.1}, model=resolve_model(args.learned))
    else:
        encoder = build_encoder("dense", {}, model=resolve_model(args.dense))
    t = time.perf_counter()
    retriever = Retriever.build(corpus, path=path, encoder=encoder, overwrite=True)
    log.info("%s: built %s over %d documents in %.1f s", cache.name, name, len(corpus), time.perf_counter() - t)
    return retriever


def ndcg(qrels: dict[str, dict[str, int]], qids: list[str], hits: list[Hits]) -> float:
    return evaluate(qrels, ranking_run(qids, hits))["ndcg_cut_10"]


def fusion_grid() -> list[FusionConfig]:
    grid = [FusionConfig(method="rrf")]
    for method in ("minmax", "zscore"):
        grid += [FusionConfig(method=method, alpha=a) for a in (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)]
    return grid


def three_way_grid() -> list[FusionConfig]:
    grid = [FusionConfig(method="rrf")]
    steps = (0.2, 0.4, 0.6)
    for method in ("minmax", "zscore"):
        for a, b in itertools.product(steps, steps):
            if a + b < 1.0:
                grid.append(FusionConfig(method=method, weights=(a, b, round(1.0 - a - b, 3))))
    return grid


def describe(config: FusionConfig) -> str:
    if config.method == "rrf":
        return "rrf"
    return f"{config.method} {config.weights or config.alpha}"


def choose(train_runs: dict[str, dict[str, list[Hits]]], train_meta: dict[str, tuple[Any, list[str]]],
           parts: tuple[str, ...], grid: list[FusionConfig]) -> tuple[FusionConfig, float]:
    """The fusion setting with the best mean NDCG@10 over the training splits (never a test split)."""
    best: tuple[FusionConfig, float] | None = None
    for config in grid:
        scores = []
        for ds, runs in train_runs.items():
            qrels, qids = train_meta[ds]
            fused = fuse_batch([runs[p] for p in parts], config, k=DEPTH)
            scores.append(ndcg(qrels, qids, fused))
        mean = float(np.mean(scores))
        if best is None or mean > best[1]:
            best = (config, mean)
    assert best is not None
    return best


def latency(fn: Callable[[str], Any], queries: list[str]) -> dict[str, float]:
    times = []
    for q in queries[:20]:
        fn(q)  # warm-up
    for q in queries:
        t = time.perf_counter()
        fn(q)
        times.append((time.perf_counter() - t) * 1000)
    times.sort()
    return {"p50_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA")
                                                          or HERE.parent.parent / "shared" / "data"))
    parser.add_argument("--cache", type=Path, default=Path("/tmp/dense_hybrid"))
    parser.add_argument("--dense", default="all-minilm-l6-v2")
    parser.add_argument("--learned", default="inference-free-biomed")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--vectors", type=Path, default=None, help="dense.npz and learned.npz from encode_for_eval")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "dense_hybrid.json")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    names = ("bm25", "learned", "dense")
    retrievers: dict[str, dict[str, Retriever]] = {}
    corpora: dict[str, dict[str, Document]] = {}
    test_runs: dict[str, dict[str, list[Hits]]] = {}
    test_meta: dict[str, tuple[Any, list[str], list[str]]] = {}
    train_runs: dict[str, dict[str, list[Hits]]] = {}
    train_meta: dict[str, tuple[Any, list[str]]] = {}
    for ds in args.sets.split(","):
        root = args.data / SETS[ds]
        test = load_beir(root, "test")
        corpus = list(test.corpus())
        corpora[ds] = {d.doc_id: d for d in corpus}
        cached = cached_encoders(args.vectors, ds, args) if args.vectors else None
        retrievers[ds] = {p: build_part(p, corpus, args.cache / ds, args, cached) for p in names}
        qids = list(test.qrels)
        texts = [test.queries[q] for q in qids]
        test_runs[ds] = {p: retrievers[ds][p].search_batch(texts, DEPTH) for p in names}
        test_meta[ds] = (test.qrels, qids, texts)
        if ds in TRAIN_SPLITS:
            qrels = read_qrels(root / "qrels" / f"{TRAIN_SPLITS[ds]}.tsv")
            queries = read_queries(root / "queries.jsonl", keep=set(qrels))
            tq = [q for q in qrels if q in queries]
            train_runs[ds] = {p: retrievers[ds][p].search_batch([queries[q] for q in tq], DEPTH) for p in names}
            train_meta[ds] = (qrels, tq)

    rows: dict[str, dict[str, float]] = {}
    chosen: dict[str, str] = {}

    def record(label: str, per_set: dict[str, list[Hits]]) -> None:
        rows[label] = {ds: ndcg(test_meta[ds][0], test_meta[ds][1], hits) for ds, hits in per_set.items()}
        rows[label]["mean"] = float(np.mean([rows[label][ds] for ds in per_set]))
        log.info("%-40s %s", label, "  ".join(f"{k} {v:.4f}" for k, v in rows[label].items()))

    for p in names:
        record(p, {ds: runs[p] for ds, runs in test_runs.items()})
    pairs = [("bm25", "dense"), ("learned", "dense"), ("bm25", "learned")]
    fusions: dict[tuple[str, ...], FusionConfig] = {}
    for combo in pairs + [("bm25", "learned", "dense")]:
        grid = fusion_grid() if len(combo) == 2 else three_way_grid()
        config, train_score = choose(train_runs, train_meta, combo, grid)
        fusions[combo] = config
        label = " + ".join(combo) + f" ({describe(config)})"
        chosen[" + ".join(combo)] = f"{describe(config)} (train mean NDCG@10 {train_score:.4f})"
        record(label, {ds: fuse_batch([runs[p] for p in combo], config, k=DEPTH) for ds, runs in test_runs.items()})
        rrf = FusionConfig(method="rrf")
        record(" + ".join(combo) + " (rrf)", {ds: fuse_batch([runs[p] for p in combo], rrf, k=DEPTH)
                                              for ds, runs in test_runs.items()})

    # Pseudo-relevance feedback: BM25 + RM3, dense + Rocchio, and interpolate -> PRF -> interpolate.
    rm3 = RM3Config()
    record("bm25 + rm3", {ds: rm3_search(retrievers[ds]["bm25"], test_meta[ds][2], corpora[ds].get, DEPTH, rm3)
                          for ds in test_runs})
    record("dense + rocchio", {ds: dense_rocchio(retrievers[ds]["dense"], test_meta[ds][2], test_runs[ds]["dense"])
                               for ds in test_runs})
    pair = ("bm25", "dense")
    for prf in ("both",):
        settings = HybridSettings(fusion=fusions[pair], depth=DEPTH, prf=prf)
        record(f"bm25 + dense, interpolate -> prf ({prf}) -> interpolate",
               {ds: HybridRetriever([retrievers[ds][p] for p in pair], settings, corpora[ds].get)
                .search_batch(test_meta[ds][2], DEPTH) for ds in test_runs})

    # Latency on SciFact, one query at a time, all in this process.
    timing: dict[str, dict[str, float]] = {}
    if "scifact" in retrievers:
        r = retrievers["scifact"]
        qs = test_meta["scifact"][2]
        for p in names:
            timing[p] = latency(lambda q, p=p: r[p].search(q, 10), qs)
        hybrid = HybridRetriever([r["bm25"], r["dense"]], HybridSettings(fusion=fusions[pair], depth=100))
        timing["bm25 + dense (depth 100)"] = latency(lambda q: hybrid.search(q, 10), qs)
        three = HybridRetriever([r[p] for p in names], HybridSettings(fusion=fusions[tuple(names)], depth=100))
        timing["bm25 + learned + dense (depth 100)"] = latency(lambda q: three.search(q, 10), qs)
        for label, t in timing.items():
            log.info("latency %-40s p50 %.2f ms  p99 %.2f ms", label, t["p50_ms"], t["p99_ms"])

    out = {"ndcg_at_10": rows, "fusion_chosen_on_training_queries": chosen, "latency_scifact": timing,
           "depth": DEPTH, "dense_model": args.dense, "learned_model": args.learned,
           "load_average_1min": os.getloadavg()[0]}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


def dense_rocchio(retriever: Retriever, queries: list[str], first: list[Hits], fb_docs: int = 10) -> list[Hits]:
    """Dense + Rocchio: the query moved toward its own top ``fb_docs`` documents, searched again."""
    snap = retriever.snapshot
    q = retriever.encode_queries(queries, snap)
    feedback = []
    for hits in first:
        internal = hits.internal_ids[:fb_docs] if hits.internal_ids is not None else []
        feedback.append(np.asarray([_vector(snap, int(i)) for i in internal], np.float32).reshape(-1, q.shape[1]))
    return snap.hits(np.ascontiguousarray(rocchio(q, feedback), np.float32), DEPTH)


def _vector(snap: Any, internal_id: int) -> np.ndarray:
    seg, local = snap.locate(internal_id)
    return np.asarray(seg.vectors[local])


if __name__ == "__main__":
    main()
