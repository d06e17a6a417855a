"""Encode every shared set's documents and queries once (on a GPU where present), for the hybrid benchmark.

    python benchmarks/encode_for_eval.py --data DATA --kind dense   --model all-minilm-l6-v2 --out OUT/dense.npz
    python benchmarks/encode_for_eval.py --data DATA --kind learned --model inference-free-biomed \\
                                         --doc-threshold 0.1 --out OUT/learned.npz

Uses sparsearch's own encoders (the same code a CPU index build runs), so
``benchmarks/dense_hybrid.py --vectors`` scores exactly what an index built
here would hold.  Dense: float16 document and query matrices.  Learned: the
inference-free documents as CSR (offsets, uint16 term ids, float16 weights);
its queries need no model.  One ``.npz``, arrays named ``<set>.<what>``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from sparsearch.corpus import read_corpus
from sparsearch.retriever.registry import build_encoder
from sparsearch.retriever.resolve import resolve_model

SETS = {"scifact": "beir/scifact", "nfcorpus": "beir/nfcorpus", "cranfield": "classic/cranfield",
        "cisi": "classic/cisi"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--kind", choices=("dense", "learned"), required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--doc-threshold", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    found = resolve_model(args.model)
    if args.kind == "dense":
        encoder = build_encoder("dense", {"batch_size": args.batch_size}, model=found)
    else:
        encoder = build_encoder("inference-free", {"doc_threshold": args.doc_threshold,
                                                   "batch_size": args.batch_size}, model=found)
    arrays: dict[str, np.ndarray] = {}
    report: dict[str, object] = {"kind": args.kind, "model": args.model, "encoder": encoder.config()}
    for name, rel in SETS.items():
        root = args.data / rel
        docs = list(read_corpus(root))
        t = time.perf_counter()
        vectors = encoder.encode_documents(docs)
        seconds = time.perf_counter() - t
        arrays[f"{name}.doc_ids"] = np.array([d.doc_id for d in docs])
        if args.kind == "dense":
            arrays[f"{name}.docs"] = np.asarray(vectors, np.float16)
            queries = [json.loads(line) for line in (root / "queries.jsonl").open(encoding="utf-8")]
            arrays[f"{name}.query_texts"] = np.array([q["text"] for q in queries])
            arrays[f"{name}.queries"] = np.asarray(encoder.encode_queries([q["text"] for q in queries]), np.float16)
        else:
            assert int(vectors.term_ids.max(initial=0)) < 65536
            arrays[f"{name}.offsets"] = vectors.offsets
            arrays[f"{name}.term_ids"] = vectors.term_ids.astype(np.uint16)
            arrays[f"{name}.weights"] = vectors.weights.astype(np.float16)
        report[name] = {"documents": len(docs), "encode_seconds": round(seconds, 2),
                        "docs_per_second": round(len(docs) / seconds, 1)}
        print(name, report[name], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out, **arrays)
    args.out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
