"""Shared plumbing for the peer-system runners: BEIR loading, timing, evaluation, reports.

Why it is shared: both peer runners must read the data, score the runs and write the
report in exactly the same way, otherwise differences between systems could come from
the harness instead of the engines.  Only the stdlib, numpy and pytrec_eval are used here
so that this module never affects what a peer's own import costs.
"""

from __future__ import annotations

import argparse
import csv
import importlib.metadata
import json
import os
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import pytrec_eval

# A ranked list for one query: (docid, score), best first.
Hits = list[tuple[str, float]]

R = TypeVar("R")  # a system's raw result for one query

METRICS = {"ndcg_cut.10": "ndcg_cut_10", "recall.100": "recall_100", "recall.1000": "recall_1000"}


@dataclass
class BeirData:
    """One BEIR split: documents as (id, title + " " + text), queries and judgements."""

    root: Path
    doc_ids: list[str]
    doc_texts: list[str]
    query_ids: list[str]
    query_texts: list[str]
    qrels: dict[str, dict[str, int]]


def load_beir(dataset_dir: Path, split: str) -> BeirData:
    """Read corpus, the split's queries (the query ids present in its qrels) and qrels.

    Documents are ``title + " " + text``, as in Pyserini's BEIR "flat" indexes, so every
    system sees the same text.  The qrels files have CRLF line ends; ``newline=""`` plus
    the csv module copes with that.
    """
    qrels: dict[str, dict[str, int]] = {}
    with open(dataset_dir / "qrels" / f"{split}.tsv", newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t")
        next(reader)  # header: query-id, corpus-id, score
        for qid, docid, score in reader:
            qrels.setdefault(qid, {})[docid] = int(score)

    doc_ids, doc_texts = read_corpus(dataset_dir)

    queries: dict[str, str] = {}
    with open(dataset_dir / "queries.jsonl", encoding="utf-8") as f:
        for line in f:
            q = json.loads(line)
            if str(q["_id"]) in qrels:
                queries[str(q["_id"])] = q["text"]
    missing = set(qrels) - set(queries)
    if missing:
        raise ValueError(f"{len(missing)} judged queries are missing from queries.jsonl")
    return BeirData(dataset_dir, doc_ids, doc_texts, list(queries), list(queries.values()), qrels)


def read_corpus(dataset_dir: Path) -> tuple[list[str], list[str]]:
    """Ids and ``title + " " + text`` of every document.

    Runners call this again inside their timed build: reading the corpus file is part of
    building an index from it, for every system alike (sparsearch's build reads it too).
    """
    doc_ids, doc_texts = [], []
    with open(dataset_dir / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            doc_ids.append(str(doc["_id"]))
            doc_texts.append(f"{doc.get('title', '')} {doc.get('text', '')}")
    return doc_ids, doc_texts


def base_arg_parser(description: str) -> argparse.ArgumentParser:
    """The command line every peer runner accepts."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("dataset_dir", type=Path, help="BEIR dataset folder (corpus.jsonl, queries.jsonl, qrels/)")
    p.add_argument("--out-dir", type=Path, required=True, help="where index/, run.trec and report.json go")
    p.add_argument("--split", default="test")
    p.add_argument("--k", type=int, default=1000, help="hits retrieved per query")
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="threads for the all-threads pass")
    p.add_argument("--k1", type=float, default=0.9)
    p.add_argument("--b", type=float, default=0.4)
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up queries per search path")
    p.add_argument("--repeats", type=int, default=1, help="timed passes of each kind; QPS is the median")
    return p


def time_search(
    data: BeirData,
    search_one: Callable[[str], R],
    search_batch: Callable[[list[str], list[str], int], object],
    to_hits: Callable[[R], Hits],
    warmup: int,
    repeats: int,
    threads: int,
) -> tuple[dict[str, Hits], dict]:
    """Time search the same way for every system (sparsearch's ``eval`` uses the same definitions).

    * ``qps_1_thread``: the whole query set through the system's batch API limited to one
      thread; ``qps_all_threads``: the same with ``threads`` threads.
    * ``latency_ms``: one query at a time through ``search_one``, every query timed.

    First ``warmup`` queries go, untimed, through every path, so one-off costs (JVM class
    loading, numba JIT) stay out.  QPS is the median of ``repeats`` passes.  The run
    returned is the single-query pass's, converted with ``to_hits`` outside the timed region.
    """
    for i in range(warmup):
        j = i % len(data.query_texts)
        search_one(data.query_texts[j])
        search_batch(data.query_texts[j : j + 1], data.query_ids[j : j + 1], 1)
        search_batch(data.query_texts[j : j + 1], data.query_ids[j : j + 1], threads)

    run: dict[str, Hits] = {}
    latencies: list[float] = []
    seconds_1: list[float] = []
    seconds_n: list[float] = []
    for rep in range(repeats):
        raw: list[R] = []
        for text in data.query_texts:
            t = time.perf_counter()
            raw.append(search_one(text))
            latencies.append(time.perf_counter() - t)
        if rep == 0:
            run = {qid: to_hits(r) for qid, r in zip(data.query_ids, raw)}
        del raw
        for n_threads, sink in ((1, seconds_1), (threads, seconds_n)):
            start = time.perf_counter()
            search_batch(data.query_texts, data.query_ids, n_threads)
            sink.append(time.perf_counter() - start)

    n = len(data.query_ids)
    return run, {
        "qps_1_thread": n / statistics.median(seconds_1),
        "qps_all_threads": n / statistics.median(seconds_n),
        "latency_ms": latency_ms(latencies),
        "qps_passes": {"1_thread": [n / s for s in seconds_1], "all_threads": [n / s for s in seconds_n]},
    }


def evaluate(run: dict[str, Hits], qrels: dict[str, dict[str, int]]) -> dict[str, float]:
    """Mean of each metric over ALL judged queries; a query without hits scores 0.

    pytrec_eval only reports queries present in the run, so we average ourselves over the
    qrels' query ids instead of trusting its per-query dict's length.
    """
    run_scores = {qid: {d: float(s) for d, s in hits} for qid, hits in run.items() if hits}
    per_query = pytrec_eval.RelevanceEvaluator(qrels, set(METRICS)).evaluate(run_scores)
    return {
        name: sum(per_query.get(qid, {}).get(name, 0.0) for qid in qrels) / len(qrels)
        for name in METRICS.values()
    }


def write_trec(path: Path, run: dict[str, Hits], tag: str) -> None:
    """Write a TREC run file: ``qid Q0 docid rank score tag``."""
    with open(path, "w", encoding="utf-8") as f:
        for qid, hits in run.items():
            for rank, (docid, score) in enumerate(hits, start=1):
                f.write(f"{qid} Q0 {docid} {rank} {score:.6f} {tag}\n")


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def latency_ms(seconds: list[float]) -> dict[str, float]:
    """p50 and p99 of per-query latencies, in milliseconds."""
    ms = np.asarray(seconds) * 1000.0
    return {"p50": float(np.percentile(ms, 50)), "p99": float(np.percentile(ms, 99))}


def package_versions(*names: str) -> dict[str, str]:
    """Installed versions of the named distributions, plus Python's."""
    out = {"python": sys.version.split()[0]}
    for name in names:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def peak_rss_bytes() -> int:
    """Peak resident set size of this process so far (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def finish(args: argparse.Namespace, system: str, data: BeirData, run: dict[str, Hits], k: int,
           build_seconds: float, timings: dict, index_dir: Path, versions: dict[str, str]) -> None:
    """Write the run file and the report every peer runner produces, in one shape."""
    write_trec(args.out_dir / "run.trec", run, system)
    write_report(args.out_dir, {
        "system": system,
        "dataset": args.dataset_dir.name,
        "split": args.split,
        "params": {"k1": args.k1, "b": args.b, "k": k, "threads": args.threads,
                   "warmup_queries": args.warmup, "repeats": args.repeats},
        "build_seconds": build_seconds,
        **timings,
        "index_bytes": dir_bytes(index_dir),
        "peak_rss_bytes": peak_rss_bytes(),
        "n_queries": len(data.query_ids),
        "n_docs": len(data.doc_ids),
        "versions": versions,
        "metrics": evaluate(run, data.qrels),
    })


def write_report(out_dir: Path, report: dict) -> None:
    """Write report.json and echo it, so a log of the run also holds the numbers."""
    text = json.dumps(report, indent=2)
    (out_dir / "report.json").write_text(text + "\n", encoding="utf-8")
    print(text)
