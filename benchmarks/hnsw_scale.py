"""HNSW against Flat on a 10^6-vector dense index: recall@10 of Flat's top 10, and queries per second.

    python benchmarks/hnsw_scale.py --model DIR [--n 1000000] [--queries 1000] --out RESULT.json

Documents are the synthetic corpus of ``scale_corpus.py`` (its fitted model
ships in ``benchmarks/data/scale_model.npz``; the first N documents with seed
0), encoded by sparsearch's ``DenseEncoder`` (all-MiniLM-L6-v2 from ``DIR``;
meant for a GPU: 10^6 documents take about a minute on one H100).  Queries
are real SciFact + NFCorpus queries sampled by the same generator.  Both
indexes go through sparsearch's one writer (``IndexWriter`` with a
``DenseFormat``), one segment each; the HNSW one is built with M=32,
efConstruction=200 and searched at several ``ef_search``; exact rescoring of
HNSW's candidates from the full vectors is on, as by default.

Reference: Flat's exact top 10 (``exact=True``).  Timing: one query at a
time on one thread (the interactive case) and the whole batch on every
thread, in that order for each system, on the same warm process.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import scale_corpus as sc  # noqa: E402

from sparsearch.index.config import IndexConfig  # noqa: E402
from sparsearch.index.dense import DenseFormat  # noqa: E402
from sparsearch.index.dense_settings import DenseIndexSettings  # noqa: E402
from sparsearch.index.writer import IndexWriter  # noqa: E402
from sparsearch.retriever.registry import build_encoder  # noqa: E402
from sparsearch.retriever.resolve import resolve_model  # noqa: E402
from sparsearch.scoring import Scoring  # noqa: E402
from sparsearch.types import Document  # noqa: E402

log = logging.getLogger("hnsw_scale")
MODEL_NPZ = Path(__file__).resolve().parent / "data" / "scale_model.npz"


class DimTerms:
    """The term space of a dense index: its dimension."""

    def __init__(self, dim: int) -> None:
        self.n_terms = dim

    def manifest_entry(self) -> dict[str, Any]:
        return {"name": "dense", "config": {}}

    def state_files(self) -> dict[str, bytes]:
        return {}


def _chunk(args: tuple[int, int, int]) -> list[tuple[str, str, str]]:
    seed, chunk, n = args
    sampler = sc._Sampler(sc.load_model(MODEL_NPZ))
    rows = sc._render_chunk(sampler, seed, chunk, n).data.splitlines()
    return [(d["_id"], d["title"], d["text"]) for d in map(json.loads, rows)]


def synthetic_documents(n: int, seed: int, workers: int) -> list[Document]:
    """The first ``n`` documents of the seeded synthetic corpus, generated chunk by chunk in parallel."""
    jobs = [(seed, c, min(sc.DOCS_PER_CHUNK, n - c * sc.DOCS_PER_CHUNK)) for c in range(-(-n // sc.DOCS_PER_CHUNK))]
    docs: list[Document] = []
    with ProcessPoolExecutor(workers) as pool:
        for rows in pool.map(_chunk, jobs):
            docs.extend(Document(doc_id=i, title=t, text=x) for i, t, x in rows)
    return docs


def _fast_gpu() -> Any:
    """fp16 autocast on a GPU (10^6 documents in fp32 take minutes); nothing on CPU.

    The benchmark compares two indexes over the same vectors, so how the
    vectors were computed does not bias it.
    """
    import contextlib

    import torch

    return torch.autocast("cuda", dtype=torch.float16) if torch.cuda.is_available() else contextlib.nullcontext()


def recombined(npz_path: Path, n: int, n_queries: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` vectors mixed from real MiniLM document vectors, and real query vectors (no GPU needed).

    Each vector is ``w a + (1 - w) b + noise`` for two random real documents
    ``a``, ``b`` of the four shared sets (``w`` uniform in [0.5, 1], noise of
    norm ~0.1), normalised: it keeps the low intrinsic dimension and the
    topic clusters of real embeddings that random Gaussian vectors lack (on
    which HNSW needs a far wider beam), at any size.
    """
    z = np.load(npz_path)
    docs = np.concatenate([z[k].astype(np.float32) for k in z.files if k.endswith(".docs")])
    queries = np.concatenate([z[k].astype(np.float32) for k in z.files if k.endswith(".queries")])
    rng = np.random.default_rng(seed)
    out = np.empty((n, docs.shape[1]), np.float32)
    for lo in range(0, n, 100_000):
        m = min(100_000, n - lo)
        w = rng.uniform(0.5, 1.0, (m, 1)).astype(np.float32)
        a, b = docs[rng.integers(0, len(docs), m)], docs[rng.integers(0, len(docs), m)]
        noise = rng.standard_normal((m, docs.shape[1])).astype(np.float32) * (0.1 / np.sqrt(docs.shape[1]))
        x = w * a + (1 - w) * b + noise
        out[lo:lo + m] = x / np.linalg.norm(x, axis=1, keepdims=True)
    return out, queries[rng.permutation(len(queries))[:n_queries]]


def build(vectors: np.ndarray, ids: list[str], settings: DenseIndexSettings) -> tuple[IndexWriter, float]:
    writer = IndexWriter.in_memory([], Scoring(), IndexConfig(stored_fields=()), DimTerms(vectors.shape[1]),
                                   fmt=DenseFormat(settings))
    t = time.perf_counter()
    step = 100_000
    for lo in range(0, len(ids), step):
        writer.add(ids[lo:lo + step], vectors[lo:lo + step], [{} for _ in ids[lo:lo + step]])
    writer.commit()
    return writer, time.perf_counter() - t


def timed(search: Any, queries: np.ndarray, threads: int, one_at_a_time: bool) -> tuple[float, list[Any]]:
    import faiss

    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    if one_at_a_time:
        hits = [search(queries[i:i + 1], threads)[0] for i in range(len(queries))]
    else:
        hits = search(queries, threads)
    return len(queries) / (time.perf_counter() - t), hits


def recall(hits: list[Any], reference: list[Any]) -> float:
    found = sum(len(set(h.ids) & set(r.ids)) for h, r in zip(hits, reference))
    return found / sum(len(r.ids) for r in reference)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="dense model folder (all-MiniLM-L6-v2): encode synthetic text")
    parser.add_argument("--recombine", type=Path, help="dense.npz of encode_for_eval.py: mix real vectors instead")
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=1000)
    parser.add_argument("--flat-one-at-a-time", type=int, default=100,
                        help="queries timed one at a time on Flat (each scans every vector)")
    parser.add_argument("--ef", type=int, nargs="+", default=[16, 32, 64, 128, 256, 512])
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-construction", type=int, default=200)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    cores = os.cpu_count() or 1
    result: dict[str, Any] = {"n": args.n, "cores": cores, "hnsw_m": args.hnsw_m,
                              "ef_construction": args.ef_construction, "max_length": args.max_length}

    if args.recombine:
        doc_vectors, query_vectors = recombined(args.recombine, args.n, args.queries)
        ids = [str(i) for i in range(args.n)]
        result["vectors"] = f"recombined from {args.recombine.name}"
    else:
        doc_vectors, query_vectors, ids = encoded(args, cores, result)
    measure(doc_vectors, query_vectors, ids, args, cores, result)
    args.out.write_text(json.dumps(result, indent=2))


def encoded(args: argparse.Namespace, cores: int, result: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Synthetic text encoded by the dense model (meant for a GPU)."""
    t = time.perf_counter()
    docs = synthetic_documents(args.n, sc.DEFAULT_SEED, cores)
    queries, _ = sc.sample_queries(sc.load_model(MODEL_NPZ).queries, args.queries, sc.DEFAULT_SEED)
    result["generate_s"] = round(time.perf_counter() - t, 1)
    log.info("generated %d documents in %.1fs", len(docs), result["generate_s"])

    encoder = build_encoder("dense", {"batch_size": args.batch_size, "max_length": args.max_length},
                            model=resolve_model(str(args.model)))
    t = time.perf_counter()
    with _fast_gpu():
        doc_vectors = np.asarray(encoder.encode_documents(docs), np.float32)
    result["encode_docs_per_s"] = round(len(docs) / (time.perf_counter() - t))
    with _fast_gpu():
        query_vectors = np.asarray(encoder.encode_queries([q["text"] for q in queries]), np.float32)
    ids = [d.doc_id for d in docs]
    log.info("encoded at %d docs/s", result["encode_docs_per_s"])
    return doc_vectors, query_vectors, ids


def measure_flat(doc_vectors: np.ndarray, query_vectors: np.ndarray, ids: list[str], args: argparse.Namespace,
                 cores: int, result: dict[str, Any]) -> tuple[list[Any], float, float]:
    """Flat's exact top 10 (the reference) and its QPS; the index is freed on return (10^6 vectors: GBs)."""
    flat, flat_build = build(doc_vectors, ids, DenseIndexSettings(index_type="flat"))
    result["flat_build_s"] = round(flat_build, 1)
    snap = flat.snapshot

    def search(q: np.ndarray, th: int) -> list[Any]:
        return snap.hits(q, 10, threads=th, exact=True)

    _, hits = timed(search, query_vectors, cores, False)
    reference = [SimpleNamespace(ids=list(h.ids)) for h in hits]
    flat_one, _ = timed(search, query_vectors[:args.flat_one_at_a_time], 1, True)
    flat_batch, _ = timed(search, query_vectors, cores, False)
    result["flat"] = {"qps_one_thread_one_at_a_time": round(flat_one, 2), "qps_batch_all_threads": round(flat_batch, 1)}
    log.info("flat: %s", result["flat"])
    return reference, flat_one, flat_batch


def measure(doc_vectors: np.ndarray, query_vectors: np.ndarray, ids: list[str], args: argparse.Namespace,
            cores: int, result: dict[str, Any]) -> None:
    """Flat's exact top 10 as the reference, then HNSW at each ef_search: recall and QPS."""

    reference, flat_one, flat_batch = measure_flat(doc_vectors, query_vectors, ids, args, cores, result)
    settings = DenseIndexSettings(index_type="hnsw", hnsw_m=args.hnsw_m, ef_construction=args.ef_construction)
    hnsw, hnsw_build = build(doc_vectors, ids, settings)
    result["hnsw_build_s"] = round(hnsw_build, 1)
    log.info("hnsw built in %.1fs", hnsw_build)
    snap = hnsw.snapshot
    rows = []
    for ef in args.ef:
        def search(q: np.ndarray, th: int, ef: int = ef) -> list[Any]:
            return snap.hits(q, 10, threads=th, ef_search=ef)

        one, hits = timed(search, query_vectors, 1, True)
        batch, _ = timed(search, query_vectors, cores, False)
        row = {"ef_search": ef, "recall_at_10": round(recall(hits, reference), 4),
               "qps_one_thread_one_at_a_time": round(one, 1), "qps_batch_all_threads": round(batch, 1),
               "speedup_one_thread": round(one / flat_one, 1), "speedup_batch": round(batch / flat_batch, 1)}
        rows.append(row)
        log.info("hnsw %s", row)
    result["hnsw"] = rows


if __name__ == "__main__":
    main()
