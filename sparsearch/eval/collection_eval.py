"""Evaluate a multi-part (hybrid) collection, or any index searched with a mode or PRF, on a BEIR split.

The counterpart of :func:`~sparsearch.eval.beir.evaluate_beir` for
:class:`~sparsearch.retriever.hybrid_collection.HybridCollection`: quality
(pytrec_eval), the search options that produced it, latency with query
encoding included, and size.  Postings statistics are left out: a fused
ranking has no single posting count.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from sparsearch.eval.beir import EvalSettings, add_warnings, check_run_ids, effective_k, environment
from sparsearch.eval.bench import latencies_ms, peak_rss_bytes, throughput
from sparsearch.eval.datasets import load_beir
from sparsearch.eval.metrics import evaluate
from sparsearch.eval.runs import ranking_run, write_trec
from sparsearch.index.storage import directory_bytes
from sparsearch.types import Document

#: Builds a collection from a corpus into a folder (the CLI's ``--dense-model`` build).
Build = Callable[[Iterable[Document], Path], Any]


def evaluate_collection(dataset_dir: str | Path, index_dir: str | Path | None = None, build: Build | None = None,
                        options: dict[str, Any] | None = None, settings: EvalSettings = EvalSettings(),
                        run_path: str | Path | None = None, log_warnings: bool = True) -> dict[str, Any]:
    """Search every query of a split through ``HybridCollection.open(index_dir)`` with ``options``.

    Without ``index_dir``, ``build`` makes the collection in a temporary
    folder first (``build_seconds`` includes writing it).  ``options``
    override the collection's stored search defaults (``mode``, ``prf``,
    ``fusion``, ``alpha``, ``depth``, ``fb_docs``).
    """
    from sparsearch.retriever.hybrid_collection import HybridCollection

    effective_k(settings.k, 1)
    options = dict(options or {})
    dataset = load_beir(dataset_dir, settings.split)
    query_ids = list(dataset.queries)
    check_run_ids(query_ids, run_path)
    texts = [dataset.queries[q] for q in query_ids]
    with tempfile.TemporaryDirectory(prefix="sparsearch-eval-") as tmp:
        build_seconds = None
        if index_dir is None:
            if build is None:
                raise ValueError("give an index folder or a build step")
            t = time.perf_counter()
            build(dataset.corpus(), Path(tmp) / "index")
            build_seconds = time.perf_counter() - t
            index_dir = Path(tmp) / "index"
        collection = HybridCollection.open(index_dir)
        used = collection.options(**options)
        collection.parts_for(used)  # a mode or PRF the collection cannot run: one line, before any search
        k = effective_k(settings.k, collection.n_docs)
        results = collection.search_batch(texts, k, **options)
        metrics = evaluate(dataset.qrels, ranking_run(query_ids, results))
        if run_path is not None:
            write_trec(run_path, query_ids, results, settings.run_tag)
        report: dict[str, Any] = {
            "dataset": dataset.name, "split": settings.split, "n_queries": len(query_ids),
            "n_docs": collection.n_docs, "k": k, "search": used.to_dict(),
            "parts": {name: {"encoder": p.encoder.name, **p.encoder.config(), "format": p.writer.fmt.kind}
                      for name, p in collection.parts.items()},
            "metrics": metrics, "build_seconds": build_seconds, "index_bytes": directory_bytes(Path(index_dir)),
        }
        if settings.measure_speed:
            report["qps_1_thread"] = throughput(lambda: collection.search_batch(texts, k, threads=1, **options),
                                                len(texts))
            report["latency_ms"] = latencies_ms(lambda q: collection.search(q, k, **options), texts)
        report["peak_rss_bytes"] = peak_rss_bytes()
        add_warnings(report, dataset, query_ids, results, collection.live_ids(), log_warnings)
        report["environment"] = environment()
    return report
